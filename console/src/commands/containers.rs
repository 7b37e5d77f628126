//! `berth stop` and `berth rm`: one call per container, all of them tried, every failure listed.

use super::print;
use crate::cli::{OutputFormat, RmArgs, StopArgs};
use crate::errors::status_report;
use crate::output::{RemoveJson, StopJson, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::Section;
use color_eyre::eyre::{Report, Result, eyre};

pub async fn stop(session: &mut Session, output: OutputFormat, args: StopArgs) -> Result<()> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for container in &args.containers {
        let request = pb::StopRequest {
            container: container.clone(),
            timeout_secs: args.time,
        };
        match session.client.stop(request).await {
            Ok(r) => {
                let r = r.into_inner();
                let c = r.container.unwrap_or_default();
                replica_note(&c, "stopped");
                done.push(StopJson {
                    id: c.id,
                    name: c.name,
                    was_running: r.was_running,
                });
                if output != OutputFormat::Json {
                    print(&format!("{container}\n"))?;
                }
            }
            Err(s) => failed.push((container.clone(), status_report(s, &session.address))),
        }
    }
    if output == OutputFormat::Json {
        print(&to_json(&done)?)?;
    }
    outcome("stop", args.containers.len(), failed)
}

pub async fn remove(session: &mut Session, output: OutputFormat, args: RmArgs) -> Result<()> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for container in &args.containers {
        let request = pb::RemoveRequest {
            container: container.clone(),
            force: args.force,
        };
        match session.client.remove(request).await {
            Ok(r) => {
                let r = r.into_inner();
                done.push(RemoveJson {
                    id: r.id,
                    name: r.name,
                });
                if output != OutputFormat::Json {
                    print(&format!("{container}\n"))?;
                }
            }
            Err(s) => failed.push((container.clone(), status_report(s, &session.address))),
        }
    }
    if output == OutputFormat::Json {
        print(&to_json(&done)?)?;
    }
    outcome("remove", args.containers.len(), failed)
}

/// One failure is returned as it is (with its hint); several become one report listing each.
fn outcome(verb: &str, total: usize, mut failed: Vec<(String, Report)>) -> Result<()> {
    if failed.len() <= 1 {
        return match failed.pop() {
            None => Ok(()),
            Some((_, report)) if total == 1 => Err(report),
            Some((container, report)) => Err(report.wrap_err(format!("cannot {verb} {container}"))),
        };
    }
    let count = failed.len();
    let mut report = eyre!("cannot {verb} {count} of {total} containers");
    for (container, error) in failed {
        report = report.error(Failed {
            container,
            message: error.to_string(),
        });
    }
    Err(report)
}

/// One container's failure inside a report about several.
#[derive(Debug)]
struct Failed {
    container: String,
    message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.container, self.message)
    }
}

impl std::error::Error for Failed {}

/// A service replica that is stopped or removed by hand comes back: the cluster keeps the
/// service's count, as Swarm does. Says so on stderr.
fn replica_note(c: &pb::ContainerSummary, what: &str) {
    if let Some(slot) = &c.slot {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {} is replica {} of service {}; the cluster replaces what is {what} \
             (use `berth service scale {}=N` or `berth service rm {}`)",
            c.name,
            slot.slot,
            slot.service,
            slot.service,
            slot.service
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(container: &str) -> (String, Report) {
        (
            container.to_owned(),
            eyre!("no container named {container:?}"),
        )
    }

    #[test]
    fn one_failure_keeps_its_message() {
        crate::test_error_hook();
        assert!(outcome("stop", 2, Vec::new()).is_ok());
        let e = outcome("stop", 1, vec![failure("a")]).expect_err("failed");
        assert_eq!(e.to_string(), "no container named \"a\"");
        let e = outcome("stop", 3, vec![failure("a")]).expect_err("failed");
        assert_eq!(e.to_string(), "cannot stop a");
    }

    #[test]
    fn several_failures_are_listed() {
        crate::test_error_hook();
        let e = outcome("remove", 3, vec![failure("a"), failure("b")]).expect_err("failed");
        assert_eq!(e.to_string(), "cannot remove 2 of 3 containers");
        let full = format!("{e:?}");
        assert!(full.contains("a: no container named \"a\""), "{full}");
        assert!(full.contains("b: no container named \"b\""), "{full}");
    }
}
