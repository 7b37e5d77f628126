//! From gRPC statuses and connection failures to one line a person can act on, plus a hint.

use berth_shared::client::{ConnectError, TlsFailure};
use color_eyre::Section;
use color_eyre::eyre::{Report, eyre};
use std::error::Error as _;
use tonic::Code;

const HINT_START_AGENT: &str =
    "start one with `berthd`, or drop --agent and BERTH_AGENT to use an embedded agent";
const HINT_CONTEXT_AGENT: &str = "is that agent's berthd running? `berth context ls` lists the \
     contexts; `berth context use default` stops using this one";
const HINT_TOKEN: &str = "set --token or BERTH_TOKEN to the cluster token";
const HINT_DOCKER: &str = "is Docker running? try `docker info`";

/// A failed call, as the user should read it. `agent` is the address we talked to.
pub fn status_report(status: tonic::Status, agent: &str) -> Report {
    let message = status.message().trim().to_owned();
    match status.code() {
        // tonic reports a broken connection as UNAVAILABLE with the transport error as source;
        // an agent's own UNAVAILABLE has no source.
        Code::Unavailable if status.source().is_some() => {
            eyre!("cannot reach agent at {agent}: {}", root_cause(&status))
                .suggestion(HINT_START_AGENT)
        }
        Code::Unavailable => {
            let lower = message.to_ascii_lowercase();
            if lower.is_empty() || lower.contains("docker") {
                let report = if lower.starts_with("docker is unreachable") {
                    eyre!("agent says {message}")
                } else {
                    eyre!("agent says Docker is unreachable: {message}")
                };
                // The agent may have given the same hint already.
                if lower.contains("docker info") {
                    report
                } else {
                    report.suggestion(HINT_DOCKER)
                }
            } else {
                eyre!("agent says a service is unavailable: {message}")
                    .suggestion("`berth nodes` shows which nodes are up")
            }
        }
        // Any other code with a transport error as its source is the connection failing (e.g. an
        // HTTP/2 GOAWAY arrives as RESOURCE_EXHAUSTED), not the agent's answer: no hint meant
        // for the agent's own codes applies.
        code if status.source().is_some() && code != Code::DeadlineExceeded => {
            eyre!("the connection to the agent at {agent} failed: {message}").suggestion(
                "try again; if it keeps failing, the agent's log says why (an agent with a \
                 cluster secret speaks only TLS: give its token with --token or BERTH_TOKEN)",
            )
        }
        Code::Unauthenticated => {
            eyre!("the agent refused the token: {message}").suggestion(HINT_TOKEN)
        }
        Code::PermissionDenied => eyre!("{message}").suggestion(
            "ask an admin for a token with that scope (`berth token create --scope …`)",
        ),
        Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            eyre!("{message}")
        }
        Code::AlreadyExists => eyre!("{message}")
            .suggestion("choose another --name, or remove the old container with `berth rm`"),
        Code::ResourceExhausted => eyre!("{message}")
            .suggestion("no node has room for it: lower --memory/--cpus or free some resources"),
        Code::DeadlineExceeded => {
            eyre!("the agent at {agent} did not answer in time: {message}")
        }
        code => eyre!("the agent at {agent} failed ({code:?}): {message}"),
    }
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
        assert!(!format!("{r:?}").contains("no node has room"));
        // The agent's own RESOURCE_EXHAUSTED keeps its hint.
        let r = status_report(tonic::Status::resource_exhausted("node n1 is full"), "a:1");
        assert!(format!("{r:?}").contains("no node has room"));
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

    #[test]
    fn agent_unavailable_is_about_docker() {
        crate::test_error_hook();
        let r = status_report(
            tonic::Status::unavailable("docker: connection refused"),
            "a:1",
        );
        assert_eq!(
            text(&r),
            "agent says Docker is unreachable: docker: connection refused"
        );
        assert!(format!("{r:?}").contains("docker info"));
    }
}
