//! `berth stats`: every running container's usage as its owner measured it, refreshed in place
//! on a terminal like `docker stats`, or one sample with `--no-stream`.

use super::nodes::cluster;
use super::print;
use crate::cli::{OutputFormat, StatsArgs};
use crate::errors::status_report;
use crate::output::{Table, short_id, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::quantity::format_bytes;
use color_eyre::eyre::{Result, eyre};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::time::Duration;

/// How often a streaming `stats` asks again: the agents' default stats interval.
const REFRESH: Duration = Duration::from_secs(2);

/// Clear the screen and go home, as `docker stats` redraws (only on a terminal).
const REDRAW: &str = "\x1b[2J\x1b[H";

#[derive(Debug)]
pub struct StatsPlan {
    args: StatsArgs,
}

pub fn prepare(args: StatsArgs) -> Result<StatsPlan> {
    if let Some(q) = args.containers.iter().find(|q| q.trim().is_empty()) {
        return Err(eyre!("NAME|ID: {q:?} is empty"));
    }
    Ok(StatsPlan { args })
}

#[derive(Serialize)]
struct StatsJson {
    id: String,
    name: String,
    node: String,
    cpu_percent: f64,
    memory_bytes: u64,
    /// The container's limit, or its node's memory when it has none (as `docker stats`).
    memory_limit_bytes: u64,
    net_rx_bytes: u64,
    net_tx_bytes: u64,
    block_read_bytes: u64,
    block_write_bytes: u64,
}

pub async fn execute(session: &mut Session, output: OutputFormat, plan: StatsPlan) -> Result<()> {
    let args = plan.args;
    let terminal = std::io::stdout().is_terminal();
    let mut warned = BTreeSet::new();
    let mut chosen: Option<BTreeSet<String>> = None;
    loop {
        let answer = session
            .client
            .container_stats(pb::ContainerStatsRequest {
                node: args.node.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| status_report(s, &session.address))?
            .into_inner();
        let memory = cluster(session)
            .await?
            .nodes
            .into_iter()
            .map(|n| (n.name, n.stats.map_or(0, |s| s.memory_total_bytes)))
            .collect::<HashMap<_, _>>();
        if chosen.is_none() && !args.containers.is_empty() {
            let ids = resolve(&answer.containers, &args.containers).map_err(|e| {
                // A container may be missing because its node did not answer: say which.
                answer.failed.iter().fold(e, |e, f| {
                    e.wrap_err(format!("node {}: {}", f.node, f.error))
                })
            })?;
            chosen = Some(ids);
        }
        // Named containers keep their rows while they run; with none named, every running one.
        let rows: Vec<pb::ContainerSummary> = answer
            .containers
            .into_iter()
            .filter(|c| chosen.as_ref().is_none_or(|ids| ids.contains(&c.id)))
            .collect();
        let failed: Vec<String> = answer
            .failed
            .iter()
            .map(|f| format!("node {}: {}", f.node, f.error))
            .collect();
        let text = match output {
            OutputFormat::Json => {
                let json: Vec<StatsJson> = rows.iter().map(|c| stats_json(c, &memory)).collect();
                if args.no_stream {
                    to_json(&json)?
                } else {
                    // One line per sample, so a script can read the stream line by line.
                    format!("{}\n", serde_json::to_string(&json)?)
                }
            }
            OutputFormat::Table | OutputFormat::Wide => stats_table(&rows, &memory),
        };
        if terminal && !args.no_stream && output != OutputFormat::Json {
            let mut screen = format!("{REDRAW}{text}");
            for f in &failed {
                screen.push_str(&format!("warning: {f}\n"));
            }
            print(&screen)?;
        } else {
            for f in &failed {
                if warned.insert(f.clone()) {
                    eprintln!("warning: {f}");
                }
            }
            print(&text)?;
        }
        if args.no_stream {
            return Ok(());
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// The ids the names stand for, from the first sample: each name is a container's exact name
/// or id, or the start of exactly one id (an ambiguous prefix lists the matches, as elsewhere).
fn resolve(containers: &[pb::ContainerSummary], wanted: &[String]) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut missing = Vec::new();
    for q in wanted {
        let exact: Vec<&pb::ContainerSummary> = containers
            .iter()
            .filter(|c| c.name == *q || c.id == *q)
            .collect();
        let found = if exact.is_empty() {
            containers
                .iter()
                .filter(|c| c.id.starts_with(q.as_str()))
                .collect()
        } else {
            exact
        };
        match found.as_slice() {
            [] => missing.push(q.clone()),
            [one] => {
                ids.insert(one.id.clone());
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|c| format!("{} ({} on {})", short_id(&c.id), c.name, c.node))
                    .collect();
                return Err(eyre!("{q} is ambiguous: {}", list.join(", ")));
            }
        }
    }
    if !missing.is_empty() {
        return Err(eyre!(
            "no running container matches {} (by name, id or id prefix)",
            missing.join(", ")
        ));
    }
    Ok(ids)
}

fn limit(c: &pb::ContainerSummary, memory: &HashMap<String, u64>) -> u64 {
    if c.memory_limit_bytes > 0 {
        c.memory_limit_bytes
    } else {
        memory.get(&c.node).copied().unwrap_or(0)
    }
}

fn stats_json(c: &pb::ContainerSummary, memory: &HashMap<String, u64>) -> StatsJson {
    StatsJson {
        id: c.id.clone(),
        name: c.name.clone(),
        node: c.node.clone(),
        cpu_percent: c.cpu_percent,
        memory_bytes: c.memory_bytes,
        memory_limit_bytes: limit(c, memory),
        net_rx_bytes: c.net_rx_bytes,
        net_tx_bytes: c.net_tx_bytes,
        block_read_bytes: c.block_read_bytes,
        block_write_bytes: c.block_write_bytes,
    }
}

/// `docker stats`'s columns, with the node each container runs on.
fn stats_table(rows: &[pb::ContainerSummary], memory: &HashMap<String, u64>) -> String {
    let mut table = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "NODE",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
    ]);
    for c in rows {
        let limit = limit(c, memory);
        let (limit_text, mem_percent) = if limit > 0 {
            (
                format_bytes(limit),
                format!("{:.2}%", c.memory_bytes as f64 / limit as f64 * 100.0),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        table.row(vec![
            short_id(&c.id).to_owned(),
            c.name.clone(),
            c.node.clone(),
            format!("{:.2}%", c.cpu_percent),
            format!("{} / {limit_text}", format_bytes(c.memory_bytes)),
            mem_percent,
            format!(
                "{} / {}",
                format_bytes(c.net_rx_bytes),
                format_bytes(c.net_tx_bytes)
            ),
            format!(
                "{} / {}",
                format_bytes(c.block_read_bytes),
                format_bytes(c.block_write_bytes)
            ),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, node: &str) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: id.into(),
            name: name.into(),
            node: node.into(),
            state: "running".into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_are_exact_names_ids_or_one_id_s_prefix() {
        let all = vec![
            c("abc123", "web", "a"),
            c("abd456", "db", "b"),
            c("ffff", "abc123x", "b"),
        ];
        let ids = resolve(&all, &["ab".into()]).expect_err("ambiguous");
        let text = ids.to_string();
        assert!(
            text.contains("ab is ambiguous") && text.contains("web on a"),
            "{text}"
        );
        let ids = resolve(&all, &["abd".into(), "web".into(), "ffff".into()]).expect("found");
        assert_eq!(
            ids,
            BTreeSet::from(["abc123".into(), "abd456".into(), "ffff".into()])
        );
        // A name wins over another container's id prefix.
        let ids = resolve(&all, &["abc123x".into()]).expect("by name");
        assert_eq!(ids, BTreeSet::from(["ffff".into()]));
        let err =
            resolve(&all, &["web".into(), "nope".into(), "gone".into()]).expect_err("missing");
        assert!(err.to_string().contains("nope, gone"), "{err}");
    }

    #[test]
    fn the_table_shows_usage_against_the_limit_or_the_node_s_memory() {
        let mut limited = c("abc123abc123abc", "web", "a");
        limited.cpu_percent = 99.5;
        limited.memory_bytes = 64 << 20;
        limited.memory_limit_bytes = 256 << 20;
        limited.net_rx_bytes = 2048;
        limited.net_tx_bytes = 100;
        limited.block_read_bytes = 3 << 20;
        let mut free = c("def456", "db", "b");
        free.memory_bytes = 1 << 30;
        let memory = HashMap::from([("b".to_owned(), 4u64 << 30)]);
        let text = stats_table(&[limited, free, c("0", "lost", "gone")], &memory);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CONTAINER ID"), "{text}");
        assert!(lines[1].starts_with("abc123abc123 "), "{text}");
        for part in [
            "99.50%",
            "64.0MiB / 256.0MiB",
            "25.00%",
            "2.0KiB / 100B",
            "3.0MiB / 0B",
        ] {
            assert!(lines[1].contains(part), "{part} in {text}");
        }
        assert!(
            lines[2].contains("1.0GiB / 4.0GiB") && lines[2].contains("25.00%"),
            "{text}"
        );
        assert!(lines[3].contains("0B / -"), "no limit known: {text}");
    }
}
