//! From gRPC statuses and connection failures to one line a person can act on, plus a hint.

use berth_shared::client::{ConnectError, TlsFailure};
use berth_shared::reason::Reason;
use color_eyre::Section;
use color_eyre::eyre::{Report, eyre};
use std::error::Error as _;
use tonic::Code;

const HINT_START_AGENT: &str =
    "start one with `berthd`, or drop --agent and BERTH_AGENT to use an embedded agent";
const HINT_CONTEXT_AGENT: &str = "is that agent's berthd running? `berth context ls` lists the \
     contexts; `berth context use default` stops using this one";
const HINT_TOKEN: &str = "set --token or BERTH_TOKEN to the cluster token";
const HINT_NODES_UP: &str = "`berth nodes` shows which nodes are up";

/// A failed call, as the user should read it. `agent` is the address we talked to.
///
/// The hint goes by the [`Reason`] the agent put in the status, else by the code alone: never
/// by the message's words, which are for people.
pub fn status_report(status: tonic::Status, agent: &str) -> Report {
    let message = status.message().trim().to_owned();
    match status.code() {
        // tonic reports a broken connection as UNAVAILABLE with the transport error as source;
        // an agent's own UNAVAILABLE has no source.
        Code::Unavailable if status.source().is_some() => {
            return eyre!("cannot reach agent at {agent}: {}", root_cause(&status))
                .suggestion(HINT_START_AGENT);
        }
        // Any other code with a transport error as its source is the connection failing (e.g. an
        // HTTP/2 GOAWAY arrives as RESOURCE_EXHAUSTED), not the agent's answer: no hint meant
        // for the agent's own codes applies.
        code if status.source().is_some() && code != Code::DeadlineExceeded => {
            return eyre!("the connection to the agent at {agent} failed: {message}").suggestion(
                "try again; if it keeps failing, the agent's log says why (an agent with a \
                 cluster secret speaks only TLS: give its token with --token or BERTH_TOKEN)",
            );
        }
        _ => {}
    }
    if let Some(reason) = Reason::of(&status) {
        let report = eyre!("{message}");
        return match reason_hint(reason) {
            Some(hint) => report.suggestion(hint),
            None => report,
        };
    }
    match status.code() {
        Code::Unavailable if message.is_empty() => {
            eyre!("the agent at {agent} is unavailable").suggestion(HINT_NODES_UP)
        }
        Code::Unavailable => eyre!("{message}").suggestion(HINT_NODES_UP),
        Code::Unauthenticated => {
            eyre!("the agent refused the token: {message}").suggestion(HINT_TOKEN)
        }
        Code::PermissionDenied => eyre!("{message}").suggestion(
            "ask an admin for a token with that scope (`berth token create --scope …`)",
        ),
        Code::DeadlineExceeded => {
            eyre!("the agent at {agent} did not answer in time: {message}")
        }
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => {
            eyre!(
                "the agent at {agent} failed ({:?}): {message}",
                status.code()
            )
        }
        // The agent's message says it all (not found, invalid, refused, exists, full).
        _ => eyre!("{message}"),
    }
}

/// What to do about a failure whose reason is known; `None` where the message says it all.
fn reason_hint(reason: Reason) -> Option<&'static str> {
    Some(match reason {
        // The agent's message names the node and says `docker info` already.
        Reason::DockerUnavailable => return None,
        Reason::RegistryResolve => {
            "check the registry's name in the image reference, and that it resolves on that node \
             (`getent hosts REGISTRY` there)"
        }
        Reason::RegistryConnect => {
            "check that the registry is up and reachable from that node (its address and port, \
             a firewall, a proxy)"
        }
        Reason::RegistryTls => {
            "a registry with a private CA needs it in /etc/docker/certs.d/REGISTRY/ on the node; \
             a plain-HTTP one needs \"insecure-registries\" in the node's /etc/docker/daemon.json"
        }
        Reason::RegistryAuth => {
            "Berth does not pass registry credentials yet: run `docker login` and `docker pull` \
             on that node, then run it again"
        }
        Reason::RegistryOther => "`docker pull IMAGE` on that node shows the registry's answer",
        Reason::ImageNotFound => {
            "check the image's name and tag; `berth images` lists what the nodes have"
        }
        Reason::NoRoom => {
            "no node has that much CPU or memory free: lower --memory/--cpus, or free some \
             (`berth nodes` shows what each node has)"
        }
        Reason::NoMatch => {
            "each node's reason is above; `berth nodes -o wide` shows their labels and status"
        }
        Reason::NameInUse => {
            "choose another --name, or remove the old container with `berth rm NAME`"
        }
    })
}

/// A connection that could not be made.
pub fn connect_report(error: ConnectError) -> Report {
    connect_report_via(error, None)
}

/// A connection that could not be made to the agent `context` names, if a context named it.
pub fn connect_report_via(error: ConnectError, context: Option<&str>) -> Report {
    match (&error, context) {
        (ConnectError::Unreachable { address, .. }, Some(name)) => eyre!(
            "cannot reach agent at {address} (context {name}): {}",
            root_cause(&error)
        )
        .suggestion(HINT_CONTEXT_AGENT),
        _ => connect_report_only(error),
    }
}

fn connect_report_only(error: ConnectError) -> Report {
    match &error {
        ConnectError::Unreachable { address, .. } => {
            eyre!("cannot reach agent at {address}: {}", root_cause(&error))
                .suggestion(HINT_START_AGENT)
        }
        ConnectError::BadAddress { .. } => {
            Report::new(error).suggestion("give --agent as host:port or http://host:port")
        }
        ConnectError::BadToken | ConnectError::Token(_) => {
            Report::new(error).suggestion(HINT_TOKEN)
        }
        ConnectError::Trust(_) => Report::new(error),
        ConnectError::Tls { failure, .. } => {
            let hint = match failure {
                TlsFailure::OutOfDate { .. } => {
                    "set the clocks right (NTP) on this machine and the agent's; agents renew \
                     their certificates by themselves"
                }
                TlsFailure::Closed { .. } => "the agent's log says why it closed the connection",
                TlsFailure::NotTls { .. } => {
                    "an agent with no secret speaks plaintext on loopback only: drop --token \
                     and BERTH_TOKEN to reach it, or restart it with the cluster secret"
                }
                _ => {
                    "check that --agent is an agent of your cluster and that the token is that \
                      cluster's (`berth secret new` makes a new cluster, not a token for this one)"
                }
            };
            Report::new(error).suggestion(hint)
        }
    }
}

/// The innermost cause's text: "connection refused" says more than "transport error".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Report) -> String {
        format!("{r}")
    }

    #[test]
    fn agent_messages_pass_through_as_is() {
        crate::test_error_hook();
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::FailedPrecondition,
        ] {
            let r = status_report(tonic::Status::new(code, "no container named \"x\""), "a:1");
            assert_eq!(text(&r), "no container named \"x\"");
        }
    }

    #[test]
    fn a_broken_connection_is_not_read_as_the_agents_answer() {
        crate::test_error_hook();
        let mut status = tonic::Status::resource_exhausted(
            "h2 protocol error: error reading a body from connection",
        );
        status.set_source(std::sync::Arc::new(std::io::Error::other("GOAWAY")));
        let r = status_report(status, "a:1");
        assert_eq!(
            text(&r),
            "the connection to the agent at a:1 failed: h2 protocol error: error reading a body from connection"
        );
        assert!(!format!("{r:?}").contains("--memory"));
        // The agent's own RESOURCE_EXHAUSTED keeps its hint.
        let r = status_report(
            with_reason(
                tonic::Status::resource_exhausted("node n1 is full"),
                Reason::NoRoom,
            ),
            "a:1",
        );
        assert!(format!("{r:?}").contains("--memory"));
    }

    #[test]
    fn unauthenticated_names_the_token() {
        crate::test_error_hook();
        let r = status_report(
            tonic::Status::unauthenticated("token 0a was revoked"),
            "a:1",
        );
        assert_eq!(
            text(&r),
            "the agent refused the token: token 0a was revoked"
        );
        assert!(format!("{r:?}").contains("BERTH_TOKEN"));
    }

    #[test]
    fn a_call_outside_the_scope_says_which_scope_it_needs() {
        crate::test_error_hook();
        let r = status_report(
            tonic::Status::permission_denied("Run needs the operate scope; this token has read"),
            "a:1",
        );
        assert_eq!(text(&r), "Run needs the operate scope; this token has read");
        assert!(format!("{r:?}").contains("berth token create"));
    }

    fn with_reason(mut status: tonic::Status, reason: Reason) -> tonic::Status {
        reason.attach(&mut status);
        status
    }

    /// The hint follows the reason the agent gave, whatever the message's words.
    #[test]
    fn each_reason_gets_its_own_hint() {
        crate::test_error_hook();
        let cases: [(Reason, tonic::Code, &str); 9] = [
            (
                Reason::RegistryResolve,
                Code::Unavailable,
                "resolves on that node",
            ),
            (
                Reason::RegistryConnect,
                Code::Unavailable,
                "reachable from that node",
            ),
            (
                Reason::RegistryTls,
                Code::Unavailable,
                "insecure-registries",
            ),
            (Reason::RegistryAuth, Code::Unavailable, "docker login"),
            (
                Reason::RegistryOther,
                Code::Unavailable,
                "docker pull IMAGE",
            ),
            (Reason::ImageNotFound, Code::NotFound, "berth images"),
            (
                Reason::NoRoom,
                Code::ResourceExhausted,
                "lower --memory/--cpus",
            ),
            (
                Reason::NoMatch,
                Code::ResourceExhausted,
                "berth nodes -o wide",
            ),
            (Reason::NameInUse, Code::AlreadyExists, "another --name"),
        ];
        let all_hints: Vec<&str> = cases.iter().map(|c| c.2).collect();
        for (reason, code, hint) in cases {
            // A message that would mislead a hint picked by its words.
            let message = "docker is unreachable: no room on node n1";
            let r = status_report(
                with_reason(tonic::Status::new(code, message), reason),
                "a:1",
            );
            assert_eq!(text(&r), message, "{reason:?} keeps the agent's message");
            let full = format!("{r:?}");
            assert!(full.contains(hint), "{reason:?}: {full}");
            for other in all_hints.iter().filter(|h| **h != hint) {
                assert!(
                    !full.contains(other),
                    "{reason:?} also got {other:?}: {full}"
                );
            }
            assert!(!full.contains("docker info"), "{reason:?}: {full}");
        }
    }

    #[test]
    fn docker_unavailable_keeps_the_agents_own_hint_once() {
        crate::test_error_hook();
        let message = "docker is unreachable (connection refused): is Docker running? try `docker info` on node n1";
        let r = status_report(
            with_reason(
                tonic::Status::unavailable(message),
                Reason::DockerUnavailable,
            ),
            "a:1",
        );
        assert_eq!(text(&r), message);
        assert_eq!(format!("{r:?}").matches("docker info").count(), 1);
    }

    /// With no reason (an older agent, or a code that says enough), no hint for another cause.
    #[test]
    fn a_code_without_a_reason_gets_no_borrowed_hint() {
        crate::test_error_hook();
        // A service store that is full is not about --memory.
        let r = status_report(
            tonic::Status::resource_exhausted("the store is full"),
            "a:1",
        );
        assert_eq!(text(&r), "the store is full");
        assert!(!format!("{r:?}").contains("--memory"));
        // A service name that is taken is not about containers.
        let r = status_report(
            tonic::Status::already_exists("service \"web\" exists"),
            "a:1",
        );
        assert!(!format!("{r:?}").contains("berth rm"));
        // An agent's UNAVAILABLE that is not Docker's.
        let r = status_report(tonic::Status::unavailable("node n2 is down"), "a:1");
        assert_eq!(text(&r), "node n2 is down");
        let full = format!("{r:?}");
        assert!(full.contains("berth nodes"), "{full}");
        assert!(!full.contains("docker info"), "{full}");
        let r = status_report(tonic::Status::unavailable(""), "a:1");
        assert_eq!(text(&r), "the agent at a:1 is unavailable");
        let r = status_report(tonic::Status::internal("boom"), "a:1");
        assert_eq!(text(&r), "the agent at a:1 failed (Internal): boom");
    }
}
