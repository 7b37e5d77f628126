//! The agent's view: its node and the containers it owns, and the change feed `Watch` serves.
//!
//! Every write goes through [`State::apply`], which updates the view and broadcasts what changed
//! under one lock, so a watcher that takes a snapshot and subscribes at once misses nothing and
//! sees nothing twice. Docker stays the source of truth: the view is rebuilt from it on every
//! (re)connection.

use crate::error::AgentError;
use berth_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;
use tokio::sync::broadcast;

/// How many changes a slow watcher may fall behind before it gets a fresh snapshot instead.
pub const DEFAULT_WATCH_BUFFER: usize = 1024;

/// A running container's usage figures come from the stats loop, not from Docker's inspect:
/// an upsert keeps the last ones.
fn keep_usage(c: &mut pb::ContainerSummary, old: &pb::ContainerSummary) {
    c.cpu_percent = old.cpu_percent;
    c.memory_bytes = old.memory_bytes;
    c.net_rx_bytes = old.net_rx_bytes;
    c.net_tx_bytes = old.net_tx_bytes;
    c.block_read_bytes = old.block_read_bytes;
    c.block_write_bytes = old.block_write_bytes;
}

/// One container's latest usage sample, as the stats loop measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub id: String,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub io: crate::runtime::docker::Io,
}

/// One change to the view.
#[derive(Debug, Clone)]
pub enum Change {
    /// The node's own row (stats, runtime status) — replaces the old one.
    Node(Box<pb::Node>),
    /// A container was created or changed state (from Docker's events or our own commands).
    Upsert(Box<pb::ContainerSummary>),
    Removed(String),
    /// The full list, after (re)connecting to Docker: whatever is not in it is gone.
    Resync(Vec<pb::ContainerSummary>),
    /// The service store's digest changed: it goes into this node's row (and so its gossip).
    ServicesDigest(String),
    /// Live usage of running containers, from the stats loop.
    Usage(Vec<Usage>),
    /// The service store's node records changed (`berth node drain|activate|rm`): rows are
    /// marked drained, and forgotten nodes leave the view.
    NodeRecords(BTreeMap<String, pb::NodeRecord>),
    /// What gossip shows of the other nodes since the last time: rows that changed, nodes that
    /// are gone, and when each remaining node was last heard from.
    Peers {
        changed: BTreeMap<String, PeerUpdate>,
        gone: Vec<String>,
        seen: Vec<(String, Instant)>,
    },
}

/// Another node and its containers, from gossip.
#[derive(Debug, Clone)]
pub struct PeerView {
    /// The row, with `last_seen_ms_ago` left 0: it is computed when the row is served.
    pub node: pb::Node,
    /// When we last heard from the node (its heartbeat moved).
    pub last_seen: Instant,
    pub containers: BTreeMap<String, pb::ContainerSummary>,
    /// What `containers` add up to, worked out on first use after they change: the scheduler
    /// reads every node's row for each placement, and summing every container in the cluster
    /// each time was the agent's top cost in a busy 50-node cluster (13 % of all CPU).
    tally: OnceLock<Tally>,
}

/// A node's containers summed up: counts by state, and what their limits reserve.
#[derive(Debug, Clone, Default)]
struct Tally {
    counts: pb::ContainerCounts,
    reserved_cpus: f64,
    reserved_memory_bytes: u64,
}

impl Tally {
    fn of(containers: &BTreeMap<String, pb::ContainerSummary>) -> Self {
        let mut t = Tally::default();
        for c in containers.values() {
            match c.state.as_str() {
                "running" | "restarting" => t.counts.running += 1,
                "paused" => t.counts.paused += 1,
                "exited" | "dead" => t.counts.exited += 1,
                "created" => t.counts.created += 1,
                _ => t.counts.other += 1,
            }
            // What the containers' limits reserve: only those that hold (or are about to hold)
            // them.
            if matches!(
                c.state.as_str(),
                "running" | "restarting" | "paused" | "created"
            ) {
                t.reserved_cpus += c.cpus;
                t.reserved_memory_bytes += c.memory_limit_bytes;
            }
        }
        t
    }

    /// The node row with these counts and reservations filled in.
    fn on(&self, node: &pb::Node) -> pb::Node {
        let mut node = node.clone();
        node.stats.get_or_insert_with(Default::default).containers = Some(self.counts);
        node.reserved_cpus = self.reserved_cpus;
        node.reserved_memory_bytes = self.reserved_memory_bytes;
        node
    }
}

/// What changed about one node, from gossip.
#[derive(Debug, Clone)]
pub struct PeerUpdate {
    /// The whole row (it is small); a watcher hears of it only when it differs.
    pub node: pb::Node,
    pub last_seen: Instant,
    pub containers: PeerContainers,
}

/// A peer's containers: all of them, or what changed. Deltas keep a change to one container
/// O(1) for the view and its watchers, where a whole map per change made every agent's work
/// grow with the cluster's size times its containers.
#[derive(Debug, Clone)]
pub enum PeerContainers {
    /// Everything the node has: first sight of it, or after gossip lost track of its history.
    All(BTreeMap<String, pb::ContainerSummary>),
    /// Only what changed since this node's last update.
    Delta {
        upserted: Vec<pb::ContainerSummary>,
        removed: Vec<String>,
    },
}

struct Inner {
    node: pb::Node,
    containers: BTreeMap<String, pb::ContainerSummary>,
    peers: BTreeMap<String, PeerView>,
    records: BTreeMap<String, pb::NodeRecord>,
}

pub struct State {
    inner: RwLock<Inner>,
    tx: broadcast::Sender<pb::WatchEvent>,
}

fn ev(e: pb::watch_event::Event) -> pb::WatchEvent {
    pb::WatchEvent { event: Some(e) }
}

impl State {
    pub fn new(node: pb::Node) -> Self {
        let (tx, _) = broadcast::channel(DEFAULT_WATCH_BUFFER);
        Self {
            inner: RwLock::new(Inner {
                node,
                containers: BTreeMap::new(),
                peers: BTreeMap::new(),
                records: BTreeMap::new(),
            }),
            tx,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A poisoned lock means a panic mid-update elsewhere; the data is still the best we have.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn node_name(&self) -> String {
        self.read().node.name.clone()
    }

    pub fn node(&self) -> pb::Node {
        let inner = self.read();
        with_counts(&inner.node, &inner.containers)
    }

    /// This node's row and its own containers (what it gossips).
    pub fn local(&self) -> (pb::Node, Vec<pb::ContainerSummary>) {
        let inner = self.read();
        (
            with_counts(&inner.node, &inner.containers),
            inner.containers.values().cloned().collect(),
        )
    }

    /// Every node's row (no containers): what the scheduler ranks.
    pub fn nodes(&self) -> Vec<pb::Node> {
        let inner = self.read();
        let mut nodes = Vec::with_capacity(inner.peers.len() + 1);
        nodes.push(with_counts(&inner.node, &inner.containers));
        nodes.extend(inner.peers.values().map(peer_row));
        nodes
    }

    /// Whether the view shows container `id` on `node`.
    pub fn shows(&self, node: &str, id: &str) -> bool {
        let inner = self.read();
        if inner.node.name == node {
            return inner.containers.contains_key(id);
        }
        inner
            .peers
            .get(node)
            .is_some_and(|p| p.containers.contains_key(id))
    }

    /// Another node's row as of now, if gossip knows it.
    pub fn peer(&self, name: &str) -> Option<pb::Node> {
        let inner = self.read();
        inner.peers.get(name).map(peer_row)
    }

    pub fn snapshot(&self) -> pb::ClusterSnapshot {
        let inner = self.read();
        snapshot_of(&inner)
    }

    /// A snapshot and a receiver for every change after it, taken atomically.
    pub fn subscribe(&self) -> (pb::ClusterSnapshot, broadcast::Receiver<pb::WatchEvent>) {
        let inner = self.read();
        (snapshot_of(&inner), self.tx.subscribe())
    }

    pub fn container(&self, id: &str) -> Option<pb::ContainerSummary> {
        self.read().containers.get(id).cloned()
    }

    /// The container a `Run` with request id `id` made: among this node's own containers, and
    /// also among its peers' when `cluster`. A scan, as [`Self::resolve`]: once per run.
    pub fn by_request(&self, id: &str, cluster: bool) -> Option<pb::ContainerSummary> {
        let inner = self.read();
        let peers = inner
            .peers
            .values()
            .filter(|_| cluster)
            .flat_map(|p| p.containers.values());
        inner
            .containers
            .values()
            .chain(peers)
            // A container created and never started is a try cut off half-way, which its node
            // removes when it comes back: not an answer to a retry.
            .find(|c| c.request_id == id && !(c.state == "created" && c.started_unix_ms == 0))
            .cloned()
    }

    /// Finds a container anywhere in the cluster by exact id, exact name, or unique id prefix,
    /// as Docker does; the summary's `node` is its owner.
    pub fn resolve(&self, reference: &str) -> Result<pb::ContainerSummary, AgentError> {
        self.resolve_in(reference, true)
    }

    /// The same among this node's own containers only (for forwarded requests).
    pub fn resolve_local(&self, reference: &str) -> Result<pb::ContainerSummary, AgentError> {
        self.resolve_in(reference, false)
    }

    fn resolve_in(
        &self,
        reference: &str,
        cluster: bool,
    ) -> Result<pb::ContainerSummary, AgentError> {
        let inner = self.read();
        let node = inner.node.name.clone();
        if reference.is_empty() {
            return Err(berth_shared::ValidationError::new("container", "is empty").into());
        }
        let peers = inner
            .peers
            .values()
            .filter(|_| cluster)
            .flat_map(|p| p.containers.values());
        let all: Vec<&pb::ContainerSummary> = inner.containers.values().chain(peers).collect();
        if let Some(c) = all.iter().find(|c| c.id == reference) {
            return Ok((*c).clone());
        }
        let named: Vec<&&pb::ContainerSummary> =
            all.iter().filter(|c| c.name == reference).collect();
        match named.as_slice() {
            [one] => return Ok((**one).clone()),
            [] => {}
            many => {
                return Err(AgentError::Ambiguous {
                    reference: truncate(reference),
                    matches: many
                        .iter()
                        .map(|c| format!("{} ({} on {})", short_id(&c.id), c.name, c.node))
                        .collect(),
                });
            }
        }
        let matches: Vec<&&pb::ContainerSummary> =
            all.iter().filter(|c| c.id.starts_with(reference)).collect();
        match matches.as_slice() {
            [one] => Ok((**one).clone()),
            [] => Err(AgentError::ContainerNotFound(
                truncate(reference),
                if cluster {
                    "the cluster".to_owned()
                } else {
                    format!("node {node}")
                },
            )),
            many => Err(AgentError::Ambiguous {
                reference: truncate(reference),
                matches: many
                    .iter()
                    .map(|c| format!("{} ({} on {})", short_id(&c.id), c.name, c.node))
                    .collect(),
            }),
        }
    }

    pub fn apply(&self, change: Change) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        match change {
            Change::Node(node) => {
                let mut node = *node;
                // The digest is the service store's to set (`ServicesDigest`), not the row's
                // writer's: a stats tick must not put back an old one.
                node.services_digest = inner.node.services_digest.clone();
                node.drained = inner.records.get(&node.name).is_some_and(|r| r.drained);
                if inner.node != node {
                    inner.node = node;
                }
                // Node rows are sent whole (with counts) on every stats tick: they carry their age.
                out.push(ev(pb::watch_event::Event::NodeUpdated(with_counts(
                    &inner.node,
                    &inner.containers,
                ))));
            }
            Change::Upsert(c) => {
                let mut c = *c;
                if let Some(old) = inner.containers.get(&c.id) {
                    if c.state == "running" {
                        keep_usage(&mut c, old);
                    }
                    if *old == c {
                        return;
                    }
                }
                inner.containers.insert(c.id.clone(), c.clone());
                out.push(ev(pb::watch_event::Event::ContainerUpdated(c)));
            }
            Change::ServicesDigest(digest) => {
                inner.node.services_digest = digest;
            }
            Change::Removed(id) => {
                if let Some(old) = inner.containers.remove(&id) {
                    out.push(ev(pb::watch_event::Event::ContainerRemoved(
                        pb::ContainerRemoved { id, node: old.node },
                    )));
                }
            }
            Change::Resync(list) => {
                let fresh: BTreeMap<String, pb::ContainerSummary> =
                    list.into_iter().map(|c| (c.id.clone(), c)).collect();
                let gone: Vec<String> = inner
                    .containers
                    .keys()
                    .filter(|id| !fresh.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    if let Some(old) = inner.containers.remove(&id) {
                        out.push(ev(pb::watch_event::Event::ContainerRemoved(
                            pb::ContainerRemoved { id, node: old.node },
                        )));
                    }
                }
                for (id, mut c) in fresh {
                    if let Some(old) = inner.containers.get(&id) {
                        if c.state == "running" {
                            keep_usage(&mut c, old);
                        }
                        if *old == c {
                            continue;
                        }
                    }
                    inner.containers.insert(id, c.clone());
                    out.push(ev(pb::watch_event::Event::ContainerUpdated(c)));
                }
            }
            Change::NodeRecords(records) => {
                let drained = records.get(&inner.node.name).is_some_and(|r| r.drained);
                if inner.node.drained != drained {
                    inner.node.drained = drained;
                    out.push(ev(pb::watch_event::Event::NodeUpdated(with_counts(
                        &inner.node,
                        &inner.containers,
                    ))));
                }
                let Inner { peers, .. } = &mut *inner;
                let forgotten: Vec<String> = peers
                    .iter()
                    .filter(|(name, p)| hidden(records.get(*name), &p.node, p.last_seen))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in forgotten {
                    forget_peer(peers, name, &mut out);
                }
                for (name, p) in peers.iter_mut() {
                    let drained = records.get(name).is_some_and(|r| r.drained);
                    if p.node.drained != drained {
                        p.node.drained = drained;
                        out.push(ev(pb::watch_event::Event::NodeUpdated(peer_row(p))));
                    }
                }
                inner.records = records;
            }
            Change::Peers {
                changed,
                gone,
                seen,
            } => {
                for name in gone {
                    forget_peer(&mut inner.peers, name, &mut out);
                }
                for (name, at) in seen {
                    if let Some(p) = inner.peers.get_mut(&name) {
                        p.last_seen = at;
                    }
                }
                let Inner { peers, records, .. } = &mut *inner;
                for (name, mut update) in changed {
                    let record = records.get(&name);
                    if hidden(record, &update.node, update.last_seen) {
                        forget_peer(peers, name, &mut out);
                        continue;
                    }
                    update.node.drained = record.is_some_and(|r| r.drained);
                    apply_peer(peers, name, update, &mut out);
                }
            }
            Change::Usage(samples) => {
                for u in samples {
                    if let Some(c) = inner.containers.get_mut(&u.id) {
                        if c.state != "running" {
                            continue;
                        }
                        c.cpu_percent = u.cpu_percent;
                        c.memory_bytes = u.memory_bytes;
                        c.net_rx_bytes = u.io.net_rx;
                        c.net_tx_bytes = u.io.net_tx;
                        c.block_read_bytes = u.io.block_read;
                        c.block_write_bytes = u.io.block_write;
                        out.push(ev(pb::watch_event::Event::ContainerUpdated(c.clone())));
                    }
                }
            }
        }
        for e in out {
            // No receiver is fine: nobody is watching.
            let _ = self.tx.send(e);
        }
    }
}

/// One peer's update into the view, with the events it makes.
/// Takes a peer out of the view, telling watchers its containers and then it are gone.
fn forget_peer(
    peers: &mut BTreeMap<String, PeerView>,
    name: String,
    out: &mut Vec<pb::WatchEvent>,
) {
    if let Some(old) = peers.remove(&name) {
        for (id, c) in old.containers {
            out.push(ev(pb::watch_event::Event::ContainerRemoved(
                pb::ContainerRemoved { id, node: c.node },
            )));
        }
        out.push(ev(pb::watch_event::Event::NodeRemoved(name)));
    }
}

/// Whether `berth node rm` hides this row: forgotten, not alive, and the same run of the same
/// node (its id and its gossip generation, the agent's start time). Every agent agrees whatever
/// its clock or when it first heard of the row, and a new run of the node is shown again.
/// A record without a generation (the row had none) falls back to "not heard from since".
fn hidden(record: Option<&pb::NodeRecord>, node: &pb::Node, last_seen: Instant) -> bool {
    let Some(r) = record.filter(|r| r.forgotten_unix_ms > 0) else {
        return false;
    };
    if matches!(
        pb::NodeStatus::try_from(node.status),
        Ok(pb::NodeStatus::Alive)
    ) {
        return false;
    }
    let same = r.node_id.is_empty() || node.node_id.is_empty() || r.node_id == node.node_id;
    if r.generation != 0 {
        return same && node.generation == r.generation;
    }
    let heard_ms = chrono::Utc::now().timestamp_millis()
        - i64::try_from(last_seen.elapsed().as_millis()).unwrap_or(i64::MAX);
    same && heard_ms <= r.forgotten_unix_ms
}

fn apply_peer(
    peers: &mut BTreeMap<String, PeerView>,
    name: String,
    update: PeerUpdate,
    out: &mut Vec<pb::WatchEvent>,
) {
    let updated =
        |c: &pb::ContainerSummary| ev(pb::watch_event::Event::ContainerUpdated(c.clone()));
    let removed = |id: String, c: &pb::ContainerSummary| {
        ev(pb::watch_event::Event::ContainerRemoved(
            pb::ContainerRemoved {
                id,
                node: c.node.clone(),
            },
        ))
    };
    let PeerUpdate {
        node,
        last_seen,
        containers,
    } = update;
    // The node's row goes before its containers' events (a watcher learns of the node first),
    // but it is made after them so that its counts are the new ones.
    let row_at = out.len();
    let view = peers.entry(name).or_insert_with(|| PeerView {
        node: pb::Node::default(),
        last_seen,
        containers: BTreeMap::new(),
        tally: OnceLock::new(),
    });
    // Worked out again on the next read, whatever changed.
    view.tally = OnceLock::new();
    match containers {
        PeerContainers::All(all) => {
            let old = std::mem::replace(&mut view.containers, all);
            for (id, c) in &view.containers {
                if old.get(id) != Some(c) {
                    out.push(updated(c));
                }
            }
            for (id, c) in old {
                if !view.containers.contains_key(&id) {
                    out.push(removed(id, &c));
                }
            }
        }
        PeerContainers::Delta {
            upserted,
            removed: gone,
        } => {
            for c in upserted {
                if view.containers.get(&c.id) != Some(&c) {
                    out.push(updated(&c));
                    view.containers.insert(c.id.clone(), c);
                }
            }
            for id in gone {
                if let Some(c) = view.containers.remove(&id) {
                    out.push(removed(id, &c));
                }
            }
        }
    }
    view.last_seen = last_seen;
    // Gossip carries no time for a row: it is stamped when it changes here, so a console can
    // tell one CPU sample from the next (a row stamped 0 for ever was one sample).
    let mut node = node;
    let stamped = node.updated_unix_ms == 0;
    if stamped {
        node.updated_unix_ms = view.node.updated_unix_ms;
    }
    if view.node != node {
        if stamped {
            node.updated_unix_ms = chrono::Utc::now()
                .timestamp_millis()
                .max(view.node.updated_unix_ms + 1);
        }
        view.node = node;
        let row = ev(pb::watch_event::Event::NodeUpdated(peer_row(view)));
        out.insert(row_at, row);
    }
}

fn snapshot_of(inner: &Inner) -> pb::ClusterSnapshot {
    let mut nodes = Vec::with_capacity(inner.peers.len() + 1);
    nodes.push(with_counts(&inner.node, &inner.containers));
    nodes.extend(inner.peers.values().map(peer_row));
    let containers = inner
        .containers
        .values()
        .chain(inner.peers.values().flat_map(|p| p.containers.values()))
        .cloned()
        .collect();
    pb::ClusterSnapshot {
        nodes,
        containers,
        answered_by: inner.node.name.clone(),
    }
}

/// A peer's row as served now: with its container counts and the age of its data.
fn peer_row(p: &PeerView) -> pb::Node {
    let mut node = p.tally.get_or_init(|| Tally::of(&p.containers)).on(&p.node);
    node.last_seen_ms_ago = u64::try_from(p.last_seen.elapsed().as_millis()).unwrap_or(u64::MAX);
    node
}

/// The node row with its container counts filled in from the containers it owns.
fn with_counts(node: &pb::Node, containers: &BTreeMap<String, pb::ContainerSummary>) -> pb::Node {
    Tally::of(containers).on(node)
}

/// A reference as quoted back in errors: long ones are cut, so an oversized field is not echoed.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, state: &str) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: id.into(),
            name: name.into(),
            state: state.into(),
            node: "n1".into(),
            ..Default::default()
        }
    }

    fn state() -> State {
        State::new(pb::Node {
            name: "n1".into(),
            ..Default::default()
        })
    }

    #[test]
    fn resolve_by_id_name_and_unique_prefix() {
        let s = state();
        s.apply(Change::Resync(vec![
            c("abc123", "web", "running"),
            c("abd456", "db", "exited"),
        ]));
        assert_eq!(s.resolve("abc123").map(|c| c.name).ok(), Some("web".into()));
        assert_eq!(s.resolve("db").map(|c| c.id).ok(), Some("abd456".into()));
        assert_eq!(s.resolve("abc").map(|c| c.name).ok(), Some("web".into()));
        match s.resolve("ab") {
            Err(AgentError::Ambiguous { matches, .. }) => assert_eq!(matches.len(), 2),
            other => panic!("expected ambiguous, got {other:?}"),
        }
        assert!(matches!(
            s.resolve("zzz"),
            Err(AgentError::ContainerNotFound(..))
        ));
        assert!(matches!(s.resolve(""), Err(AgentError::Invalid(_))));
    }

    #[test]
    fn a_request_id_finds_its_container_unless_it_was_never_started() {
        let s = state();
        let with = |id: &str, state: &str, started: i64, req: &str| pb::ContainerSummary {
            started_unix_ms: started,
            request_id: req.into(),
            ..c(id, id, state)
        };
        s.apply(Change::Resync(vec![
            with("a1", "running", 5, "r1"),
            with("b2", "created", 0, "r2"),
            with("c3", "exited", 5, "r3"),
        ]));
        assert_eq!(
            s.by_request("r1", false).map(|c| c.id).as_deref(),
            Some("a1")
        );
        // Cut off between create and start: not an answer; its node removes it.
        assert!(s.by_request("r2", true).is_none());
        // It ran and stopped: still the container that request made.
        assert_eq!(
            s.by_request("r3", true).map(|c| c.id).as_deref(),
            Some("c3")
        );
        assert!(s.by_request("r4", true).is_none());
    }

    #[test]
    fn subscribe_then_changes_arrive_once_in_order() {
        let s = state();
        let (snap, mut rx) = s.subscribe();
        assert!(snap.containers.is_empty());
        s.apply(Change::Upsert(Box::new(c("a1", "x", "running"))));
        // The same summary again is not a change.
        s.apply(Change::Upsert(Box::new(c("a1", "x", "running"))));
        s.apply(Change::Removed("a1".into()));
        let first = rx.try_recv().expect("upsert event");
        assert!(matches!(
            first.event,
            Some(pb::watch_event::Event::ContainerUpdated(ref c)) if c.id == "a1"
        ));
        let second = rx.try_recv().expect("removed event");
        assert!(matches!(
            second.event,
            Some(pb::watch_event::Event::ContainerRemoved(ref r)) if r.id == "a1"
        ));
        assert!(rx.try_recv().is_err(), "no duplicate events");
    }

    #[test]
    fn resync_drops_what_docker_no_longer_has_and_keeps_usage() {
        let s = state();
        s.apply(Change::Resync(vec![
            c("a1", "x", "running"),
            c("b2", "y", "exited"),
        ]));
        s.apply(Change::Usage(vec![Usage {
            id: "a1".into(),
            cpu_percent: 50.0,
            memory_bytes: 1024,
            io: Default::default(),
        }]));
        s.apply(Change::Resync(vec![c("a1", "x", "running")]));
        let snap = s.snapshot();
        assert_eq!(snap.containers.len(), 1);
        assert_eq!(snap.containers[0].cpu_percent, 50.0);
        let counts = snap.nodes[0]
            .stats
            .as_ref()
            .and_then(|s| s.containers)
            .expect("counts");
        assert_eq!(counts.running, 1);
        assert_eq!(counts.exited, 0);
    }

    fn peer(containers: PeerContainers, cpu: f64) -> Change {
        Change::Peers {
            changed: [(
                "n2".to_string(),
                PeerUpdate {
                    node: pb::Node {
                        name: "n2".into(),
                        stats: Some(pb::NodeStats {
                            cpu_percent: cpu,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    last_seen: Instant::now(),
                    containers,
                },
            )]
            .into(),
            gone: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn on_n2(id: &str, state: &str) -> pb::ContainerSummary {
        pb::ContainerSummary {
            node: "n2".into(),
            ..c(id, id, state)
        }
    }

    /// The events, as `node n2` / `up id state` / `rm id`.
    fn drain(rx: &mut broadcast::Receiver<pb::WatchEvent>) -> Vec<String> {
        use pb::watch_event::Event;
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(match e.event {
                Some(Event::NodeUpdated(n)) => format!("node {}", n.name),
                Some(Event::ContainerUpdated(c)) => format!("up {} {}", c.id, c.state),
                Some(Event::ContainerRemoved(r)) => format!("rm {}", r.id),
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn peers_come_whole_then_as_deltas() {
        let s = state();
        let mut rx = s.tx.subscribe();
        let all = [on_n2("a", "running"), on_n2("b", "running")]
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        s.apply(peer(PeerContainers::All(all), 1.0));
        assert_eq!(drain(&mut rx), ["node n2", "up a running", "up b running"]);
        assert_eq!(
            s.peer("n2").and_then(|n| n.stats).map(|s| s.cpu_percent),
            Some(1.0)
        );

        // A delta: one changed, one unchanged (no event), one removed, one unknown removed.
        s.apply(peer(
            PeerContainers::Delta {
                upserted: vec![on_n2("a", "exited"), on_n2("b", "running")],
                removed: vec!["b".into(), "zz".into()],
            },
            1.0,
        ));
        assert_eq!(drain(&mut rx), ["up a exited", "rm b"]);
        assert_eq!(s.resolve("a").map(|c| c.state).ok(), Some("exited".into()));
        assert!(s.resolve("b").is_err());

        // The row changed: its event comes first and carries the new counts.
        s.apply(peer(
            PeerContainers::Delta {
                upserted: vec![on_n2("c", "running")],
                removed: Vec::new(),
            },
            2.0,
        ));
        assert_eq!(drain(&mut rx), ["node n2", "up c running"]);
        let row = s.peer("n2").expect("known");
        assert_eq!(
            row.stats.and_then(|s| s.containers).map(|c| c.running),
            Some(1)
        );

        // All again (the node came back): what is missing is removed.
        let all = [on_n2("c", "running")]
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        s.apply(peer(PeerContainers::All(all), 2.0));
        assert_eq!(drain(&mut rx), ["rm a"]);
    }

    /// Gossip rows carry no time: each change is stamped here, later than the one before, and
    /// an unchanged row keeps its stamp (a console's CPU history tells samples apart by it).
    #[test]
    fn a_peer_row_is_stamped_when_it_changes() {
        let s = state();
        let empty = || PeerContainers::All(BTreeMap::new());
        s.apply(peer(empty(), 1.0));
        let first = s.peer("n2").expect("known").updated_unix_ms;
        assert!(first > 0, "stamped");
        s.apply(peer(empty(), 1.0));
        assert_eq!(
            s.peer("n2").expect("known").updated_unix_ms,
            first,
            "unchanged"
        );
        s.apply(peer(empty(), 40.0));
        let second = s.peer("n2").expect("known");
        assert!(second.updated_unix_ms > first, "a new sample");
        assert_eq!(second.stats.map(|st| st.cpu_percent), Some(40.0));
    }
}
