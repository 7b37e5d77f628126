//! `berth volume ls|rm` and `berth network ls|rm`: what berth made on every node.

use super::print;
use crate::cli::{ObjectCommand, OutputFormat};
use crate::errors::status_report;
use crate::output::{Table, rfc3339_ms, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::{Result, eyre};
use serde::Serialize;

#[derive(Serialize)]
struct ObjectJson {
    node: String,
    name: String,
    id: String,
    driver: String,
    created: Option<String>,
    used_by: Vec<String>,
}

fn warn_failed(failed: &[pb::NodeFailure], kind: &str) {
    for f in failed {
        eprintln!(
            "warning: node {} did not list its {kind}s: {}",
            f.node, f.error
        );
    }
}

pub async fn execute(
    session: &mut Session,
    output: OutputFormat,
    kind: pb::ObjectKind,
    command: ObjectCommand,
) -> Result<()> {
    let word = if kind == pb::ObjectKind::Volume {
        "volume"
    } else {
        "network"
    };
    match command {
        ObjectCommand::Ls { node } => {
            let answer = session
                .client
                .list_objects(pb::ListObjectsRequest {
                    kind: kind as i32,
                    node: node.unwrap_or_default(),
                })
                .await
                .map_err(|s| status_report(s, &session.address))?
                .into_inner();
            warn_failed(&answer.failed, word);
            let text = match output {
                OutputFormat::Json => to_json(
                    &answer
                        .objects
                        .iter()
                        .map(|o| ObjectJson {
                            node: o.node.clone(),
                            name: o.name.clone(),
                            id: o.id.clone(),
                            driver: o.driver.clone(),
                            created: rfc3339_ms(o.created_unix_ms),
                            used_by: o.used_by.clone(),
                        })
                        .collect::<Vec<_>>(),
                )?,
                OutputFormat::Table | OutputFormat::Wide => {
                    let mut table = Table::new(&["NODE", "NAME", "DRIVER", "USED BY"]);
                    for o in &answer.objects {
                        table.row(vec![
                            o.node.clone(),
                            o.name.clone(),
                            o.driver.clone(),
                            o.used_by.join(","),
                        ]);
                    }
                    table.render()
                }
            };
            print(&text)
        }
        ObjectCommand::Rm { node, names } => {
            let mut failures = 0;
            for name in names {
                let answer = session
                    .client
                    .remove_object(pb::RemoveObjectRequest {
                        kind: kind as i32,
                        name: name.clone(),
                        node: node.clone().unwrap_or_default(),
                    })
                    .await;
                match answer {
                    Ok(r) => {
                        let r = r.into_inner();
                        for n in &r.removed_from {
                            print(&format!("{name} ({n})\n"))?;
                        }
                        for f in &r.failed {
                            failures += 1;
                            eprintln!(
                                "error: cannot remove {word} {name} on node {}: {}",
                                f.node, f.error
                            );
                        }
                    }
                    Err(s) => {
                        failures += 1;
                        eprintln!("error: {}", status_report(s, &session.address));
                    }
                }
            }
            if failures > 0 {
                return Err(eyre!("{failures} {word} removal(s) failed"));
            }
            Ok(())
        }
    }
}
