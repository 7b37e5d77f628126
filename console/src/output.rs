//! What the commands print: aligned tables for people and JSON for scripts.
//!
//! # JSON field names (`-o json`)
//!
//! These names are a stable interface; add fields, never rename or remove them.
//!
//! - `berth nodes -o json`: an array of [`NodeJson`]:
//!   `name`, `address`, `status` (`alive`|`suspect`|`down`|`left`|`unknown`), `cpu_percent`,
//!   `memory_used_bytes`, `memory_total_bytes`, `containers` (how many the node holds, any state),
//!   `runtime_available`, `labels` (object), `updated` (RFC 3339: when the node produced its data;
//!   null for other nodes, whose clocks we do not trust), `age_ms` (how long ago the answering
//!   agent last heard from the node; 0 for itself).
//! - `berth ps -o json`: an array of [`ContainerJson`]:
//!   `id` (full), `name`, `image`, `node`, `state` (Docker's word), `status` (as the table's
//!   STATUS column), `created` (RFC 3339), `cpu_percent`, `memory_bytes`, `ports` (array of
//!   [`PortJson`]: `host_ip`, `host_port`, `container_port`, `protocol`).
//! - `berth run -o json`: one [`RunJson`]: `id`, `name`, `node`.
//! - `berth stop -o json`: an array of [`StopJson`]: `id`, `name`, `was_running`.
//! - `berth rm -o json`: an array of [`RemoveJson`]: `id`, `name`.
//! - `berth inspect` (always JSON): one [`InspectJson`]: `summary` (a [`ContainerJson`] plus
//!   `started`, `finished` (RFC 3339 or null), `exit_code`, `restart_count`, `cpus`,
//!   `memory_limit_bytes`, `labels`), `spec` ([`SpecJson`]), `runtime` (Docker's own inspect
//!   document, as Docker writes it), `error` (Docker's last start error or null), `oom_killed`.

use berth_proto::v1 as pb;
use berth_shared::quantity::format_bytes;
use berth_shared::time::human_duration;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// JSON

#[derive(Debug, Serialize)]
pub struct NodeJson {
    pub name: String,
    pub address: String,
    pub status: &'static str,
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub containers: usize,
    pub runtime_available: bool,
    pub labels: BTreeMap<String, String>,
    pub updated: Option<String>,
    /// How long ago the answering agent last heard from the node (0 for itself).
    pub age_ms: u64,
    /// The named volumes berth made there: containers that mount one are placed there.
    pub volumes: Vec<String>,
    /// The node's own id (kept in its data dir): two agents given one name differ here.
    pub node_id: String,
    /// Drained with `berth node drain`: nothing new is placed there.
    pub drained: bool,
}

#[derive(Debug, Serialize)]
pub struct PortJson {
    /// Empty: all interfaces.
    pub host_ip: String,
    /// 0: not published (or not yet known).
    pub host_port: u32,
    pub container_port: u32,
    pub protocol: String,
}

#[derive(Debug, Serialize)]
pub struct ContainerJson {
    pub id: String,
    pub name: String,
    pub image: String,
    pub node: String,
    pub state: String,
    pub status: String,
    pub created: Option<String>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub ports: Vec<PortJson>,
    /// `starting`, `healthy` or `unhealthy`; null when the container has no health check.
    pub health: Option<String>,
    /// Its node's status: `alive`, `suspect`, `down`, `left` or `gone`. Only with `alive` or
    /// `suspect` does `state` still hold; otherwise it is the last state known.
    pub node_status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RunJson {
    pub id: String,
    pub name: String,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct StopJson {
    pub id: String,
    pub name: String,
    pub was_running: bool,
}

#[derive(Debug, Serialize)]
pub struct RemoveJson {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct InspectSummaryJson {
    #[serde(flatten)]
    pub container: ContainerJson,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: i64,
    pub restart_count: u32,
    /// 0: unlimited.
    pub cpus: f64,
    /// 0: unlimited.
    pub memory_limit_bytes: u64,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct SpecJson {
    pub image: String,
    pub name: Option<String>,
    /// Null: the image's own entrypoint.
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    /// `KEY=VALUE`, as Docker's `Config.Env`.
    pub env: Vec<String>,
    pub ports: Vec<PortJson>,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub restart: String,
    pub labels: BTreeMap<String, String>,
    /// Null: the image's own check (if any).
    pub healthcheck: Option<HealthJson>,
}

/// A container's health check as given (`--health-*`; 0 means Docker's default).
#[derive(Debug, Serialize)]
pub struct HealthJson {
    /// `--no-healthcheck`: the image's check is off too.
    pub disabled: bool,
    pub cmd: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct InspectJson {
    pub summary: Option<InspectSummaryJson>,
    pub spec: Option<SpecJson>,
    pub runtime: serde_json::Value,
    pub error: Option<String>,
    pub oom_killed: bool,
}

/// `unix ms` → RFC 3339 (UTC, seconds precision or finer as needed); 0 → `None`.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

pub fn node_status_word(status: i32) -> &'static str {
    match pb::NodeStatus::try_from(status) {
        Ok(s) => berth_shared::time::node_status_word(Some(s)),
        Err(_) => "unknown",
    }
}

fn containers_of<'a>(
    node: &'a str,
    containers: &'a [pb::ContainerSummary],
) -> impl Iterator<Item = &'a pb::ContainerSummary> + 'a {
    containers.iter().filter(move |c| c.node == node)
}

pub fn node_json(node: &pb::Node, containers: &[pb::ContainerSummary]) -> NodeJson {
    let stats = node.stats.clone().unwrap_or_default();
    NodeJson {
        name: node.name.clone(),
        address: node.address.clone(),
        status: node_status_word(node.status),
        cpu_percent: stats.cpu_percent,
        memory_used_bytes: stats.memory_used_bytes,
        memory_total_bytes: stats.memory_total_bytes,
        containers: containers_of(&node.name, containers).count(),
        runtime_available: node.runtime.as_ref().is_some_and(|r| r.available),
        labels: node
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        updated: rfc3339_ms(node.updated_unix_ms),
        age_ms: node.last_seen_ms_ago,
        volumes: node.volumes.clone(),
        node_id: node.node_id.clone(),
        drained: node.drained,
    }
}

pub fn port_json(p: &pb::PortMapping) -> PortJson {
    PortJson {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p.protocol.clone(),
    }
}

/// Every node's status by name, for what can be said of its containers.
pub fn node_statuses(nodes: &[pb::Node]) -> NodeStatuses {
    nodes
        .iter()
        .map(|n| {
            let status = pb::NodeStatus::try_from(n.status).unwrap_or(pb::NodeStatus::Unspecified);
            (n.name.clone(), status)
        })
        .collect()
}

pub type NodeStatuses = std::collections::HashMap<String, pb::NodeStatus>;

pub fn container_json(
    c: &pb::ContainerSummary,
    node: Option<pb::NodeStatus>,
    now: DateTime<Utc>,
) -> ContainerJson {
    ContainerJson {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        node: c.node.clone(),
        state: c.state.clone(),
        status: berth_shared::time::status_on(c, node, now),
        created: rfc3339_ms(c.created_unix_ms),
        cpu_percent: c.cpu_percent,
        memory_bytes: c.memory_bytes,
        ports: c.ports.iter().map(port_json).collect(),
        health: (!c.health.is_empty()).then(|| c.health.clone()),
        node_status: berth_shared::time::node_status_word(node),
    }
}

pub fn restart_word(r: Option<&pb::RestartPolicy>) -> String {
    use pb::restart_policy::Kind;
    let Some(r) = r else {
        return "no".to_owned();
    };
    match Kind::try_from(r.kind) {
        Ok(Kind::Always) => "always".to_owned(),
        Ok(Kind::UnlessStopped) => "unless-stopped".to_owned(),
        Ok(Kind::OnFailure) if r.max_retries > 0 => format!("on-failure:{}", r.max_retries),
        Ok(Kind::OnFailure) => "on-failure".to_owned(),
        Ok(Kind::No | Kind::Unspecified) | Err(_) => "no".to_owned(),
    }
}

pub fn spec_json(s: &pb::ContainerSpec) -> SpecJson {
    SpecJson {
        image: s.image.clone(),
        name: (!s.name.is_empty()).then(|| s.name.clone()),
        entrypoint: (!s.entrypoint.is_empty()).then(|| s.entrypoint.clone()),
        command: s.command.clone(),
        env: s
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect(),
        ports: s.ports.iter().map(port_json).collect(),
        cpus: s.cpus,
        memory_bytes: s.memory_bytes,
        restart: restart_word(s.restart.as_ref()),
        labels: s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        healthcheck: s.health.as_ref().map(|h| HealthJson {
            disabled: h.disabled,
            cmd: h.cmd.clone(),
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            retries: h.retries,
            start_period_ms: h.start_period_ms,
        }),
    }
}

pub fn inspect_json(d: &pb::ContainerDetail, now: DateTime<Utc>) -> InspectJson {
    let runtime = if d.runtime_json.trim().is_empty() {
        serde_json::Value::Null
    } else {
        // Docker's document is JSON; should it ever not parse, show it as a string, not nothing.
        serde_json::from_str(&d.runtime_json)
            .unwrap_or_else(|_| serde_json::Value::String(d.runtime_json.clone()))
    };
    InspectJson {
        summary: d.summary.as_ref().map(|c| InspectSummaryJson {
            // Its owner answered: the node is alive.
            container: container_json(c, Some(pb::NodeStatus::Alive), now),
            started: rfc3339_ms(c.started_unix_ms),
            finished: rfc3339_ms(c.finished_unix_ms),
            exit_code: c.exit_code,
            restart_count: c.restart_count,
            cpus: c.cpus,
            memory_limit_bytes: c.memory_limit_bytes,
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        spec: d.spec.as_ref().map(spec_json),
        runtime,
        error: (!d.error.is_empty()).then(|| d.error.clone()),
        oom_killed: d.oom_killed,
    }
}

/// Pretty JSON with a trailing newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Tables

/// Columns aligned as `docker ps` aligns them: each padded to its widest cell plus three spaces,
/// the last one not padded at all.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

const COLUMN_GAP: usize = 3;

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + COLUMN_GAP;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The first 12 characters of an id, as Docker shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn percent(p: f64) -> String {
    format!("{p:.1}%")
}

fn is_live(c: &pb::ContainerSummary) -> bool {
    matches!(c.state.as_str(), "running" | "restarting" | "paused")
}

/// Docker's `docker ps` PORTS form: `0.0.0.0:8080->80/tcp`, `[::1]:8080->80/tcp`, `80/tcp`.
pub fn port_text(p: &pb::PortMapping) -> String {
    let protocol = if p.protocol.is_empty() {
        "tcp"
    } else {
        &p.protocol
    };
    if p.host_port == 0 {
        return format!("{}/{protocol}", p.container_port);
    }
    let ip = match p.host_ip.as_str() {
        "" => "0.0.0.0".to_owned(),
        ip if ip.contains(':') => format!("[{ip}]"),
        ip => ip.to_owned(),
    };
    format!("{ip}:{}->{}/{protocol}", p.host_port, p.container_port)
}

/// Something that happened `ms` (unix) before `now`, as Docker says it: `3 minutes ago`.
fn ago(ms: i64, now: DateTime<Utc>) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) if ms > 0 => format!("{} ago", human_duration(now - t)),
        _ => String::new(),
    }
}

pub fn nodes_table(nodes: &[pb::Node], containers: &[pb::ContainerSummary], wide: bool) -> String {
    let mut header = vec![
        "NAME",
        "ADDRESS",
        "STATUS",
        "AGE",
        "CPU %",
        "MEMORY",
        "CONTAINERS",
    ];
    if wide {
        header.extend(["DOCKER", "CORES", "LOAD", "UPTIME", "OS", "LABELS"]);
    }
    let mut table = Table::new(&header);
    for node in nodes {
        let stats = node.stats.clone().unwrap_or_default();
        let total = containers_of(&node.name, containers).count();
        let running = containers_of(&node.name, containers)
            .filter(|c| c.state == "running")
            .count();
        let memory = if stats.memory_total_bytes == 0 {
            "-".to_owned()
        } else {
            format!(
                "{} / {}",
                format_bytes(stats.memory_used_bytes),
                format_bytes(stats.memory_total_bytes)
            )
        };
        let mut row = vec![
            node.name.clone(),
            node.address.clone(),
            if node.drained {
                format!("{} (drained)", node_status_word(node.status))
            } else {
                node_status_word(node.status).to_owned()
            },
            age(node.last_seen_ms_ago),
            percent(stats.cpu_percent),
            memory,
            format!("{running}/{total}"),
        ];
        if wide {
            let docker = match &node.runtime {
                Some(r) if r.available => r.version.clone(),
                Some(r) => format!("unavailable: {}", r.error),
                None => "unavailable: unknown".to_owned(),
            };
            let os = match (stats.os.as_str(), stats.kernel.as_str()) {
                ("", "") => "-".to_owned(),
                (os, "") => os.to_owned(),
                ("", kernel) => kernel.to_owned(),
                (os, kernel) => format!("{os} {kernel}"),
            };
            let uptime_secs = i64::try_from(stats.uptime_secs).unwrap_or(i64::MAX);
            row.extend([
                docker,
                stats.cores.to_string(),
                format!("{:.2} {:.2} {:.2}", stats.load1, stats.load5, stats.load15),
                human_duration(chrono::Duration::seconds(uptime_secs.min(i64::MAX / 1000))),
                os,
                node_labels(&node.labels),
            ]);
        }
        table.row(row);
    }
    table.render()
}

/// A node's labels as `k=v,k=v` in key order, or `-`.
pub fn node_labels(labels: &std::collections::HashMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".to_owned();
    }
    let mut pairs: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// The age of a node's data, short: `<1s`, `3s`, `2m`, `1h`.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => "<1s".to_owned(),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

/// `ps`: a container whose node is down, left or gone shows its last state marked `?` and why
/// it is unknown, with no figures.
pub fn ps_table(
    containers: &[pb::ContainerSummary],
    nodes: &NodeStatuses,
    wide: bool,
    now: DateTime<Utc>,
) -> String {
    let mut header = vec![
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "NODE",
        "STATE",
        "STATUS",
        "CPU %",
        "MEM",
    ];
    if wide {
        header.extend(["PORTS", "CREATED"]);
    }
    let mut table = Table::new(&header);
    for c in containers {
        let node = nodes.get(&c.node).copied();
        let vouched = berth_shared::time::node_vouches(node);
        let (cpu, mem) = if is_live(c) && vouched {
            (percent(c.cpu_percent), format_bytes(c.memory_bytes))
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        let mut row = vec![
            short_id(&c.id).to_owned(),
            c.name.clone(),
            c.image.clone(),
            c.node.clone(),
            berth_shared::time::state_word(c, node),
            berth_shared::time::status_on(c, node, now),
            cpu,
            mem,
        ];
        if wide {
            // A container that is not running publishes nothing, as `docker ps -a` shows it.
            let ports: Vec<String> = if is_live(c) && vouched {
                c.ports.iter().map(port_text).collect()
            } else {
                Vec::new()
            };
            row.extend([ports.join(", "), ago(c.created_unix_ms, now)]);
        }
        table.row(row);
    }
    table.render()
}

/// Whether `ps` without `-a` shows it: running, restarting or paused, as `docker ps`.
pub fn shown_by_default(c: &pb::ContainerSummary) -> bool {
    is_live(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(NOW_MS).expect("valid")
    }

    fn node(
        name: &str,
        address: &str,
        status: pb::NodeStatus,
        docker: Result<&str, &str>,
    ) -> pb::Node {
        pb::Node {
            name: name.into(),
            address: address.into(),
            status: status as i32,
            stats: Some(pb::NodeStats {
                cpu_percent: 12.34,
                cores: 4,
                memory_used_bytes: 1536 * 1024 * 1024,
                memory_total_bytes: 8 * 1024 * 1024 * 1024,
                load1: 0.5,
                load5: 0.25,
                load15: 0.125,
                uptime_secs: 3 * 86_400,
                os: "Debian GNU/Linux 12".into(),
                kernel: "6.1.0".into(),
                ..Default::default()
            }),
            runtime: Some(match docker {
                Ok(v) => pb::RuntimeStatus {
                    available: true,
                    version: v.into(),
                    error: String::new(),
                },
                Err(e) => pb::RuntimeStatus {
                    available: false,
                    version: String::new(),
                    error: e.into(),
                },
            }),
            labels: [("zone".to_owned(), "a".to_owned())].into(),
            agent_version: "0.1.0".into(),
            updated_unix_ms: NOW_MS - 1_500,
            ..Default::default()
        }
    }

    fn container(id: &str, name: &str, node: &str, state: &str) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: id.into(),
            name: name.into(),
            image: "nginx:1".into(),
            node: node.into(),
            state: state.into(),
            created_unix_ms: NOW_MS - 5 * 60_000,
            started_unix_ms: NOW_MS - 3 * 60_000,
            finished_unix_ms: if state == "exited" {
                NOW_MS - 2 * 60_000
            } else {
                0
            },
            exit_code: if state == "exited" { 137 } else { 0 },
            restart_count: 0,
            ports: vec![pb::PortMapping {
                host_ip: String::new(),
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
            }],
            cpu_percent: 1.5,
            memory_bytes: 512 * 1024 * 1024,
            cpus: 0.5,
            memory_limit_bytes: 0,
            labels: Default::default(),
            slot: None,
            health: String::new(),
            request_id: String::new(),
            ..Default::default()
        }
    }

    fn fixture() -> (Vec<pb::Node>, Vec<pb::ContainerSummary>) {
        let mut b = node(
            "b",
            "10.0.0.2:7070",
            pb::NodeStatus::Suspect,
            Err("connection refused"),
        );
        b.last_seen_ms_ago = 4_200;
        let nodes = vec![
            node(
                "alpha",
                "10.0.0.1:7070",
                pb::NodeStatus::Alive,
                Ok("docker 27.3.1"),
            ),
            b,
        ];
        let containers = vec![
            container(
                &format!("{:0<64}", "0123456789abcdef"),
                "web",
                "alpha",
                "running",
            ),
            container(
                &format!("{:0<64}", "fedcba9876543210"),
                "old",
                "alpha",
                "exited",
            ),
        ];
        (nodes, containers)
    }

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        t.row(vec!["y".into(), String::new()]);
        assert_eq!(t.render(), "A           LONGER\nwide cell   x\ny\n");
    }

    #[test]
    fn nodes_table_renders_fixed_data() {
        let (nodes, containers) = fixture();
        assert_eq!(
            nodes_table(&nodes, &containers, false),
            "\
NAME    ADDRESS         STATUS    AGE   CPU %   MEMORY            CONTAINERS
alpha   10.0.0.1:7070   alive     <1s   12.3%   1.5GiB / 8.0GiB   1/2
b       10.0.0.2:7070   suspect   4s    12.3%   1.5GiB / 8.0GiB   0/0
"
        );
    }

    #[test]
    fn nodes_wide_table_adds_runtime_and_host_columns() {
        let (mut nodes, containers) = fixture();
        nodes[0].labels = [("zone", "a"), ("disk", "ssd")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            nodes_table(&nodes, &containers, true),
            "\
NAME    ADDRESS         STATUS    AGE   CPU %   MEMORY            CONTAINERS   DOCKER                            CORES   LOAD             UPTIME   OS                          LABELS
alpha   10.0.0.1:7070   alive     <1s   12.3%   1.5GiB / 8.0GiB   1/2          docker 27.3.1                     4       0.50 0.25 0.12   3 days   Debian GNU/Linux 12 6.1.0   disk=ssd,zone=a
b       10.0.0.2:7070   suspect   4s    12.3%   1.5GiB / 8.0GiB   0/0          unavailable: connection refused   4       0.50 0.25 0.12   3 days   Debian GNU/Linux 12 6.1.0   zone=a
"
        );
    }

    #[test]
    fn a_container_on_a_down_node_is_not_shown_as_running() {
        let (mut nodes, mut containers) = fixture();
        nodes[1].status = pb::NodeStatus::Down as i32;
        containers[0].node = "b".into();
        let text = ps_table(&containers, &node_statuses(&nodes), false, now());
        let row = text.lines().nth(1).expect("row");
        assert!(
            row.contains("running?") && row.contains("node down?"),
            "{text}"
        );
        assert!(
            !row.contains("Up 3") && !row.contains("1.5%"),
            "no figures: {text}"
        );
        let json = container_json(&containers[0], Some(pb::NodeStatus::Down), now());
        assert_eq!(json.node_status, "down");
        let gone = container_json(&containers[0], None, now());
        assert_eq!(gone.node_status, "gone");
    }

    #[test]
    fn ps_table_renders_fixed_data() {
        let (nodes, containers) = fixture();
        let nodes = node_statuses(&nodes);
        assert_eq!(
            ps_table(&containers, &nodes, false, now()),
            "\
CONTAINER ID   NAME   IMAGE     NODE    STATE     STATUS                       CPU %   MEM
0123456789ab   web    nginx:1   alpha   running   Up 3 minutes                 1.5%    512.0MiB
fedcba987654   old    nginx:1   alpha   exited    Exited (137) 2 minutes ago   -       -
"
        );
    }

    #[test]
    fn ps_wide_table_adds_ports_and_created() {
        let (nodes, mut containers) = fixture();
        let nodes = node_statuses(&nodes);
        containers[0].ports.push(pb::PortMapping {
            host_ip: "::1".into(),
            host_port: 5353,
            container_port: 53,
            protocol: "udp".into(),
        });
        // The exited one keeps its mapping in the summary, but publishes nothing now.
        assert!(!containers[1].ports.is_empty());
        assert_eq!(
            ps_table(&containers, &nodes, true, now()),
            "\
CONTAINER ID   NAME   IMAGE     NODE    STATE     STATUS                       CPU %   MEM        PORTS                                      CREATED
0123456789ab   web    nginx:1   alpha   running   Up 3 minutes                 1.5%    512.0MiB   0.0.0.0:8080->80/tcp, [::1]:5353->53/udp   5 minutes ago
fedcba987654   old    nginx:1   alpha   exited    Exited (137) 2 minutes ago   -       -                                                     5 minutes ago
"
        );
    }

    #[test]
    fn port_text_follows_docker() {
        let p = |ip: &str, host, proto: &str| pb::PortMapping {
            host_ip: ip.into(),
            host_port: host,
            container_port: 80,
            protocol: proto.into(),
        };
        assert_eq!(port_text(&p("", 8080, "tcp")), "0.0.0.0:8080->80/tcp");
        assert_eq!(
            port_text(&p("127.0.0.1", 8080, "udp")),
            "127.0.0.1:8080->80/udp"
        );
        assert_eq!(port_text(&p("", 0, "tcp")), "80/tcp");
    }

    #[test]
    fn node_json_field_names_are_stable() {
        let (nodes, containers) = fixture();
        let v = serde_json::to_value(node_json(&nodes[0], &containers)).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "name": "alpha",
                "address": "10.0.0.1:7070",
                "status": "alive",
                "cpu_percent": 12.34,
                "memory_used_bytes": 1_610_612_736_u64,
                "memory_total_bytes": 8_589_934_592_u64,
                "containers": 2,
                "runtime_available": true,
                "labels": {"zone": "a"},
                "updated": "2025-12-31T23:59:58.500Z",
                "age_ms": 0,
                "volumes": [],
                "node_id": "",
                "drained": false,
            })
        );
    }

    #[test]
    fn container_json_field_names_are_stable() {
        let (_, containers) = fixture();
        let v = serde_json::to_value(container_json(
            &containers[1],
            Some(pb::NodeStatus::Alive),
            now(),
        ))
        .expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "id": format!("{:0<64}", "fedcba9876543210"),
                "name": "old",
                "image": "nginx:1",
                "node": "alpha",
                "state": "exited",
                "status": "Exited (137) 2 minutes ago",
                "created": "2025-12-31T23:55:00Z",
                "cpu_percent": 1.5,
                "memory_bytes": 536_870_912_u64,
                "ports": [{"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}],
                "health": null,
                "node_status": "alive",
            })
        );
    }

    #[test]
    fn run_json_and_inspect_json_field_names_are_stable() {
        let v = serde_json::to_value(RunJson {
            id: "abc".into(),
            name: "web".into(),
            node: "alpha".into(),
        })
        .expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({"id": "abc", "name": "web", "node": "alpha"})
        );

        let (_, containers) = fixture();
        let detail = pb::ContainerDetail {
            summary: Some(containers[0].clone()),
            spec: Some(pb::ContainerSpec {
                image: "nginx:1".into(),
                env: vec![pb::EnvVar {
                    key: "A".into(),
                    value: "1".into(),
                }],
                restart: Some(pb::RestartPolicy {
                    kind: pb::restart_policy::Kind::OnFailure as i32,
                    max_retries: 3,
                }),
                ..Default::default()
            }),
            runtime_json: r#"{"Id":"x","State":{"Running":true}}"#.into(),
            error: String::new(),
            oom_killed: false,
        };
        let v = serde_json::to_value(inspect_json(&detail, now())).expect("serializes");
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            ["error", "oom_killed", "runtime", "spec", "summary"]
        );
        assert_eq!(
            keys(&v["summary"]),
            [
                "cpu_percent",
                "cpus",
                "created",
                "exit_code",
                "finished",
                "health",
                "id",
                "image",
                "labels",
                "memory_bytes",
                "memory_limit_bytes",
                "name",
                "node",
                "node_status",
                "ports",
                "restart_count",
                "started",
                "state",
                "status"
            ]
        );
        assert_eq!(
            keys(&v["spec"]),
            [
                "command",
                "cpus",
                "entrypoint",
                "env",
                "healthcheck",
                "image",
                "labels",
                "memory_bytes",
                "name",
                "ports",
                "restart"
            ]
        );
        assert_eq!(v["runtime"]["State"]["Running"], true);
        assert_eq!(v["spec"]["env"][0], "A=1");
        assert_eq!(v["spec"]["restart"], "on-failure:3");
        assert_eq!(v["error"], serde_json::Value::Null);
    }
}
