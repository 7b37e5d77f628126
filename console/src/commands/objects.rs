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

/// `berth pull`: progress on stderr (one line redrawn in place for one node on a terminal, a
/// line per change, prefixed with the node, otherwise), `IMAGE@NODE ID` on stdout per node.
pub async fn pull(session: &mut Session, args: crate::cli::PullArgs) -> Result<()> {
    use std::io::IsTerminal;
    let image = args.image.to_string();
    let many = args.all;
    let mut stream = session
        .client
        .pull(pb::PullRequest {
            image: image.clone(),
            node: args.node.unwrap_or_default(),
            all: args.all,
        })
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    let terminal = !many && std::io::stderr().is_terminal();
    let mut progress: std::collections::BTreeMap<String, super::run::Progress<std::io::Stderr>> =
        Default::default();
    let mut failed = Vec::new();
    loop {
        let event = match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(s) => return Err(status_report(s, &session.address)),
        };
        let shown = if many {
            format!("{image} on {}", event.node)
        } else {
            image.clone()
        };
        let p = progress
            .entry(event.node.clone())
            .or_insert_with(|| super::run::Progress::new(std::io::stderr(), shown, terminal));
        match event.event {
            Some(pb::pull_event::Event::Progress(ev)) => p.pull(&ev),
            Some(pb::pull_event::Event::Done(id)) => {
                p.finish();
                let id = id.strip_prefix("sha256:").unwrap_or(&id);
                print(&format!(
                    "{image}@{} {}\n",
                    event.node,
                    id.get(..12).unwrap_or(id)
                ))?;
            }
            Some(pb::pull_event::Event::Error(e)) => {
                p.finish();
                eprintln!("error: node {} cannot pull {image}: {e}", event.node);
                failed.push(event.node);
            }
            None => {}
        }
    }
    if !failed.is_empty() {
        return Err(eyre!("{image} was not pulled on {}", failed.join(", ")));
    }
    Ok(())
}

#[derive(Serialize)]
struct ImageJson {
    node: String,
    repository: String,
    tag: String,
    id: String,
    size_bytes: u64,
    created: Option<String>,
    used_by: Vec<String>,
}

/// `berth images`: every node's images, as `docker images` lists them.
pub async fn images(
    session: &mut Session,
    output: OutputFormat,
    args: crate::cli::ImagesArgs,
) -> Result<()> {
    let answer = session
        .client
        .list_objects(pb::ListObjectsRequest {
            kind: pb::ObjectKind::Image as i32,
            node: args.node.unwrap_or_default(),
        })
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    warn_failed(&answer.failed, "image");
    let short = |id: &str| {
        let id = id.strip_prefix("sha256:").unwrap_or(id);
        id.get(..12).unwrap_or(id).to_owned()
    };
    let text = match output {
        OutputFormat::Json => to_json(
            &answer
                .objects
                .iter()
                .map(|o| ImageJson {
                    node: o.node.clone(),
                    repository: o.name.clone(),
                    tag: o.tag.clone(),
                    id: o.id.clone(),
                    size_bytes: o.size_bytes,
                    created: rfc3339_ms(o.created_unix_ms),
                    used_by: o.used_by.clone(),
                })
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Table | OutputFormat::Wide => {
            let mut table = Table::new(&["NODE", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]);
            let mut rows: Vec<&pb::NodeObject> = answer.objects.iter().collect();
            rows.sort_by(|a, b| (&a.node, &a.name, &a.tag).cmp(&(&b.node, &b.name, &b.tag)));
            for o in rows {
                table.row(vec![
                    o.node.clone(),
                    o.name.clone(),
                    o.tag.clone(),
                    short(&o.id),
                    berth_shared::quantity::format_bytes(o.size_bytes),
                ]);
            }
            table.render()
        }
    };
    print(&text)
}
