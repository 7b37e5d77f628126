//! The bookkeeping of placements: this node's admission ledger, and the entry agent's own
//! placements that gossip has not echoed yet.

use crate::placement::scheduler;
use crate::state::State;
use berth_proto::v1 as pb;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An entry agent's placement counts against the node until gossip shows the container, or
/// this long at most.
pub const PENDING_PLACEMENT_TTL: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// This node's admissions in flight: a run holds its reservation from admission until its
/// container is in the view, so two runs at once cannot both take the last gigabyte.
#[derive(Default)]
pub struct Ledger {
    inflight: Mutex<Vec<(u64, f64, u64)>>,
    next: AtomicU64,
}

pub struct Admission<'a> {
    ledger: &'a Ledger,
    key: u64,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        lock(&self.ledger.inflight).retain(|(k, _, _)| *k != self.key);
    }
}

impl Ledger {
    /// Reserves `cpus` and `memory` on this node, or says why they do not fit.
    pub fn admit(&self, state: &State, cpus: f64, memory: u64) -> Result<Admission<'_>, String> {
        let mut inflight = lock(&self.inflight);
        let node = state.node();
        let candidate = scheduler::Candidate {
            name: node.name.clone(),
            schedulable: Ok(()),
            labels: HashMap::new(),
            allocatable_cpus: node.allocatable_cpus,
            allocatable_memory: node.allocatable_memory_bytes,
            reserved_cpus: node.reserved_cpus + inflight.iter().map(|e| e.1).sum::<f64>(),
            reserved_memory: node.reserved_memory_bytes + inflight.iter().map(|e| e.2).sum::<u64>(),
            containers: 0,
            volumes: Vec::new(),
            drained: false,
        };
        let req = scheduler::Request {
            cpus,
            memory,
            ..Default::default()
        };
        scheduler::fits(&candidate, &req).map_err(|why| format!("node {}: {why}", node.name))?;
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        inflight.push((key, cpus, memory));
        Ok(Admission { ledger: self, key })
    }
}

struct PendingPlacement {
    key: u64,
    node: String,
    id: Option<String>,
    cpus: f64,
    memory: u64,
    at: Instant,
}

/// Placements this agent made (or is making) that gossip may not show yet. Counted at once, so
/// back-to-back runs through one agent spread without waiting for gossip to echo each one.
#[derive(Default)]
pub struct Pending {
    entries: Mutex<Vec<PendingPlacement>>,
    next: AtomicU64,
}

impl Pending {
    pub fn add(&self, node: &str, cpus: f64, memory: u64) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.entries).push(PendingPlacement {
            key,
            node: node.to_owned(),
            id: None,
            cpus,
            memory,
            at: Instant::now(),
        });
        key
    }

    pub fn started(&self, key: u64, id: &str) {
        if let Some(p) = lock(&self.entries).iter_mut().find(|p| p.key == key) {
            p.id = Some(id.to_owned());
        }
    }

    pub fn remove(&self, key: u64) {
        lock(&self.entries).retain(|p| p.key != key);
    }

    /// The scheduler's candidates: every node of the view, with our pending placements added
    /// to the nodes that do not show them yet.
    pub fn candidates(&self, state: &State) -> Vec<scheduler::Candidate> {
        let nodes = state.nodes();
        let mut entries = lock(&self.entries);
        entries.retain(|p| {
            p.at.elapsed() < PENDING_PLACEMENT_TTL
                && !p.id.as_ref().is_some_and(|id| state.shows(&p.node, id))
        });
        nodes
            .iter()
            .map(|n| {
                let mine = entries.iter().filter(|p| p.node == n.name);
                let (mut cpus, mut mem, mut count) = (0.0, 0u64, 0u32);
                for p in mine {
                    cpus += p.cpus;
                    mem += p.memory;
                    count += 1;
                }
                let counts = n
                    .stats
                    .as_ref()
                    .and_then(|s| s.containers)
                    .unwrap_or_default();
                let total =
                    counts.running + counts.paused + counts.exited + counts.created + counts.other;
                scheduler::Candidate {
                    name: n.name.clone(),
                    schedulable: schedulable(n),
                    labels: n.labels.clone(),
                    allocatable_cpus: n.allocatable_cpus,
                    allocatable_memory: n.allocatable_memory_bytes,
                    reserved_cpus: n.reserved_cpus + cpus,
                    reserved_memory: n.reserved_memory_bytes + mem,
                    containers: total + count,
                    // A node that left took its volumes out of the cluster: they pin nothing.
                    volumes: if n.status == pb::NodeStatus::Left as i32 {
                        Vec::new()
                    } else {
                        n.volumes.clone()
                    },
                    drained: n.drained,
                }
            })
            .collect()
    }
}

fn schedulable(n: &pb::Node) -> Result<(), String> {
    match pb::NodeStatus::try_from(n.status).unwrap_or(pb::NodeStatus::Unspecified) {
        pb::NodeStatus::Alive => {}
        pb::NodeStatus::Suspect => {
            return Err(format!(
                "suspect (not heard from for {:.1}s)",
                n.last_seen_ms_ago as f64 / 1000.0
            ));
        }
        pb::NodeStatus::Down => return Err("down".into()),
        pb::NodeStatus::Left => return Err("left the cluster".into()),
        pb::NodeStatus::Unspecified => return Err("status unknown".into()),
    }
    if n.drained {
        return Err(format!(
            "drained (`berth node activate {}` places on it again)",
            n.name
        ));
    }
    match &n.runtime {
        Some(r) if r.available => Ok(()),
        Some(r) => Err(format!("docker unavailable ({})", r.error)),
        None => Err("docker status unknown".into()),
    }
}
