//! Models made of fixed, made-up data, for the snapshot tests and the frame benchmark. Built by
//! feeding the same messages the agent would send, so they go through the real update path.
#![doc(hidden)]

use super::conn::ConnEvent;
use super::model::{Clock, Config, Model, Msg};
use berth_proto::v1 as pb;

/// 2026-01-01T00:00:00Z.
pub const NOW_MS: i64 = 1_767_225_600_000;
const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

pub fn config(color: bool) -> Config {
    Config {
        agent: "127.0.0.1:7070".into(),
        color,
        mouse: true,
        log_lines: 1_000,
    }
}

pub fn node(name: &str, status: pb::NodeStatus, cpu: f64, used_gib: f64, age_ms: i64) -> pb::Node {
    pb::Node {
        name: name.into(),
        address: format!("10.0.0.{}:7070", name.len()),
        status: status as i32,
        stats: Some(pb::NodeStats {
            cpu_percent: cpu,
            cores: 8,
            memory_used_bytes: (used_gib * GIB as f64) as u64,
            memory_total_bytes: 16 * GIB,
            ..Default::default()
        }),
        runtime: Some(pb::RuntimeStatus {
            available: true,
            version: "docker 27.3.1".into(),
            error: String::new(),
        }),
        labels: [("zone".to_owned(), format!("z{}", name.len() % 3))].into(),
        agent_version: "0.1.0".into(),
        updated_unix_ms: NOW_MS - age_ms,
        last_seen_ms_ago: u64::try_from(age_ms).unwrap_or(0),
        ..Default::default()
    }
}

pub fn container(id: u64, name: &str, node: &str, state: &str, cpu: f64) -> pb::ContainerSummary {
    let running = state == "running";
    pb::ContainerSummary {
        id: format!("{:016x}{id:048x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        name: name.into(),
        image: format!(
            "registry.local/team/{}:1.{}",
            name.split('-').next().unwrap_or(name),
            id % 7
        ),
        node: node.into(),
        state: state.into(),
        created_unix_ms: NOW_MS - 3_600_000 - (id as i64 % 50) * 60_000,
        started_unix_ms: NOW_MS - 1_800_000 - (id as i64 % 30) * 60_000,
        finished_unix_ms: if running { 0 } else { NOW_MS - 120_000 },
        exit_code: if state == "exited" {
            (id % 2) as i64 * 137
        } else {
            0
        },
        restart_count: 0,
        ports: if id.is_multiple_of(3) {
            vec![pb::PortMapping {
                host_ip: String::new(),
                host_port: 8000 + (id % 1000) as u32,
                container_port: 80,
                protocol: "tcp".into(),
            }]
        } else {
            Vec::new()
        },
        cpu_percent: if running { cpu } else { 0.0 },
        memory_bytes: if running { (id % 900 + 20) * MIB } else { 0 },
        cpus: 0.0,
        memory_limit_bytes: 0,
        labels: Default::default(),
        slot: None,
        health: String::new(),
        request_id: String::new(),
        ..Default::default()
    }
}

fn snapshot(nodes: Vec<pb::Node>, containers: Vec<pb::ContainerSummary>) -> Msg {
    Msg::Watch(pb::WatchEvent {
        event: Some(pb::watch_event::Event::Snapshot(pb::ClusterSnapshot {
            nodes,
            containers,
            answered_by: "alpha".into(),
        })),
    })
}

/// A small cluster: three nodes in three states, six containers in several states, connected,
/// with a minute of CPU history on `alpha`.
pub fn small(color: bool, width: u16, height: u16) -> Model {
    let mut m = Model::new(config(color));
    m.clock = Clock {
        wall_ms: NOW_MS,
        mono_ms: 100_000,
    };
    m.update(Msg::Resize(width, height));
    m.update(Msg::Conn(ConnEvent::Connected));
    // A minute of samples for alpha's sparkline.
    for i in 0..30 {
        let cpu = 10.0 + (i as f64 * 7.0) % 80.0;
        let mut n = node("alpha", pb::NodeStatus::Alive, cpu, 6.5, 0);
        n.updated_unix_ms = NOW_MS - 60_000 + i * 2_000;
        m.update(Msg::Watch(pb::WatchEvent {
            event: Some(pb::watch_event::Event::NodeUpdated(n)),
        }));
    }
    m.update(snapshot(
        vec![
            node("alpha", pb::NodeStatus::Alive, 42.5, 6.5, 1_000),
            node(
                "beta-long-node-name",
                pb::NodeStatus::Suspect,
                3.0,
                12.0,
                45_000,
            ),
            node("gamma", pb::NodeStatus::Down, 0.0, 1.0, 300_000),
        ],
        vec![
            container(1, "web-1", "alpha", "running", 12.5),
            container(2, "web-2", "alpha", "running", 3.25),
            container(3, "db", "beta-long-node-name", "running", 55.0),
            container(4, "batch-job", "alpha", "exited", 0.0),
            container(5, "cache", "gamma", "restarting", 0.0),
            container(6, "old-worker", "beta-long-node-name", "created", 0.0),
        ],
    ));
    m.settle();
    m
}

/// A big synthetic cluster: `nodes` nodes and `containers` containers spread over them, for the
/// frame benchmark.
pub fn synthetic(nodes: usize, containers: usize, width: u16, height: u16) -> Model {
    let mut m = Model::new(config(true));
    m.clock = Clock {
        wall_ms: NOW_MS,
        mono_ms: 100_000,
    };
    m.update(Msg::Resize(width, height));
    m.update(Msg::Conn(ConnEvent::Connected));
    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:04}")).collect();
    let node_list = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            node(
                n,
                pb::NodeStatus::Alive,
                (i % 100) as f64,
                (i % 16) as f64,
                2_000,
            )
        })
        .collect();
    let states = ["running", "running", "running", "exited", "created"];
    let container_list = (0..containers)
        .map(|i| {
            container(
                i as u64,
                &format!("svc{}-{i}", i % 97),
                names.get(i % nodes.max(1)).map_or("none", String::as_str),
                states[i % states.len()],
                (i % 1000) as f64 / 10.0,
            )
        })
        .collect();
    m.update(snapshot(node_list, container_list));
    m.settle();
    m
}

/// A slot's container id: `id` in hex, repeated to 64 digits (none for 0).
pub fn slot_container_id(id: u64) -> String {
    if id == 0 {
        return String::new();
    }
    format!("{id:x}").repeat(64)[..64].to_owned()
}

fn slot(
    slot: &str,
    id: u64,
    container: &str,
    node: &str,
    state: &str,
    error: &str,
) -> pb::ServiceSlotStatus {
    pb::ServiceSlotStatus {
        slot: slot.into(),
        container_id: slot_container_id(id),
        container_name: container.into(),
        node: node.into(),
        state: state.into(),
        version: 2,
        error: error.into(),
    }
}

fn service(
    name: &str,
    mode: pb::ServiceMode,
    desired: u32,
    running: u32,
    state: &str,
    slots: Vec<pb::ServiceSlotStatus>,
) -> pb::ServiceStatus {
    pb::ServiceStatus {
        entry: Some(pb::ServiceEntry {
            id: format!("{:064x}", name.len()),
            name: name.into(),
            spec: Some(pb::ServiceSpec {
                name: name.into(),
                mode: mode as i32,
                replicas: if mode == pb::ServiceMode::Global {
                    0
                } else {
                    desired
                },
                container: Some(pb::ContainerSpec {
                    image: format!("registry.local/{name}:2"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            version: 2,
            created_unix_ms: NOW_MS - 7_200_000,
            updated_unix_ms: NOW_MS - 60_000,
            message: if state == "paused" {
                "update to version 2 failed: slot 1 exited (1)".into()
            } else {
                String::new()
            },
            ..Default::default()
        }),
        replicas_desired: desired,
        replicas_running: running,
        state: state.into(),
        slots,
        responsible: "alpha".into(),
    }
}

/// Three services: one converging with a pending slot, one global and converged, one paused.
pub fn services() -> Vec<pb::ServiceStatus> {
    vec![
        service(
            "web",
            pb::ServiceMode::Replicated,
            3,
            2,
            "converging",
            vec![
                slot("1", 11, "web.1.a1b2c3", "alpha", "running", ""),
                slot(
                    "2",
                    12,
                    "web.2.d4e5f6",
                    "beta-long-node-name",
                    "running",
                    "",
                ),
                slot(
                    "3",
                    0,
                    "",
                    "",
                    "pending",
                    "no node has 512.0MiB of memory free",
                ),
            ],
        ),
        service(
            "agent",
            pb::ServiceMode::Global,
            2,
            2,
            "converged",
            vec![
                slot("alpha", 21, "agent.alpha.0a0b0c", "alpha", "running", ""),
                slot(
                    "beta-long-node-name",
                    22,
                    "agent.beta-long-node-name.1a1b1c",
                    "beta-long-node-name",
                    "running",
                    "",
                ),
            ],
        ),
        service(
            "batch",
            pb::ServiceMode::Replicated,
            1,
            0,
            "paused",
            vec![slot(
                "1",
                31,
                "batch.1.ffeedd",
                "alpha",
                "exited",
                "exited (1)",
            )],
        ),
    ]
}

/// The small cluster in the services view, with [`services`] listed.
pub fn services_view(color: bool, width: u16, height: u16) -> (Model, Vec<super::model::Effect>) {
    let mut m = small(color, width, height);
    let mut effects = Vec::new();
    m.run_command("services", &mut effects);
    effects.extend(m.update(Msg::Tick));
    m.update(Msg::Services(Ok(services())));
    m.settle();
    (m, effects)
}
