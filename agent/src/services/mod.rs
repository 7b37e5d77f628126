//! Services: desired state kept by every agent, reconciled with no master.
//!
//! - `store` — the LWW map of service entries in the data dir, and its digest.
//! - anti-entropy ([`Services::sync_loop`]) — the digest rides in gossip (`svc` key); an agent
//!   that sees a peer's digest differ from its own pulls the newer entries from that peer over
//!   gRPC (`SyncServices`). A write is also pushed to a few peers before it is answered.
//! - `reconcile` — the pure decisions; [`Services::reconcile_loop`] gathers the inputs from the
//!   view each round and carries the actions out, through the placer and the runtime only, for
//!   the services this node is responsible for (rendezvous hashing over ready nodes).

pub mod reconcile;
pub mod store;

use crate::cluster::peers::{PeerPool, forwarded};
use crate::placement::placer::Placer;
use crate::placement::scheduler::{self, Strategy};
use crate::runtime::Runtime;
use crate::state::{Change, State};
use berth_proto::v1 as pb;
use berth_shared::service::{Mode, ServiceSpec, UpdateOrder};
use berth_shared::spec::SlotRef;
use reconcile::{Action, Desired, NodeHealth, Replica};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;
use tokio::sync::{Semaphore, watch};
use tonic::metadata::MetadataMap;

/// `--reschedule-after`: how long a down node must have been silent before its replicas are
/// placed elsewhere. The failure detector calls a node down after about 3 s of silence; 10 s
/// rides out an agent restart or a short network blip without moving replicas (churn), and
/// still restores the count sooner than Swarm (a node is down after three missed 5 s
/// heartbeats, 15 s, before its tasks are replaced) or Nomad (a heartbeat TTL of at least 10 s
/// plus a 10 s grace, then the reschedule delay).
pub const DEFAULT_RESCHEDULE_AFTER: Duration = Duration::from_secs(10);
/// `--placement-workers`: placements and removals carried out at once by one reconciler; 500
/// missing replicas queue behind these instead of starting 500 pulls at once.
pub const DEFAULT_PLACEMENT_WORKERS: usize = 8;
/// How often the reconciler looks (it also wakes on every change of the store).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);
/// How often an agent compares its digest with its peers'.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A write is pushed to this many peers before it is answered: it survives the death of the
/// agent that took it.
pub const WRITE_FANOUT: usize = 2;
/// How long a push or a pull may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// A placement the reconciler made counts for its slot until the view shows the container, or
/// this long at most.
const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);
/// Backoff after a failed placement of a slot: from this, doubling, to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub reschedule_after: Duration,
    pub workers: usize,
    pub tombstone_ttl: Duration,
    /// Whether this agent has peers at all; a single node (the console's embedded agent) has
    /// nobody to wait for after a restart.
    pub gossip: bool,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            reschedule_after: DEFAULT_RESCHEDULE_AFTER,
            workers: DEFAULT_PLACEMENT_WORKERS,
            tombstone_ttl: store::DEFAULT_TOMBSTONE_TTL,
            gossip: true,
        }
    }
}

struct InFlight {
    at: Instant,
    /// The node the placement was planned for (its first choice), so that the next slots of
    /// the same round, and of the next rounds until the view shows it, spread around it.
    planned: Option<String>,
    /// The container, once started: the slot stays in flight until the view shows it.
    placed: Option<(String, String)>,
}

struct SlotError {
    message: String,
    version: u64,
    until: Instant,
    backoff: Duration,
    /// The placement itself failed (not a replica that ran and died).
    placement: bool,
}

/// What the reconciler remembers between rounds (lost on restart; the view is the truth).
#[derive(Default)]
struct Memory {
    in_flight: HashMap<(String, String), InFlight>,
    errors: HashMap<(String, String), SlotError>,
    removing: BTreeSet<String>,
    /// Services in a rolling update, and to which version.
    rollouts: HashMap<String, u64>,
}

pub struct Services {
    pub store: Arc<Store>,
    state: Arc<State>,
    placer: Placer,
    peers: Arc<PeerPool>,
    runtime: Arc<dyn Runtime>,
    cfg: ServicesConfig,
    memory: Mutex<Memory>,
    workers: Arc<Semaphore>,
    started: Instant,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How each node of the view looks to the reconciler.
pub fn health(nodes: &[pb::Node], reschedule_after: Duration) -> HashMap<String, NodeHealth> {
    nodes
        .iter()
        .map(|n| {
            let status = pb::NodeStatus::try_from(n.status).unwrap_or(pb::NodeStatus::Unspecified);
            let runtime_ok = n.runtime.as_ref().is_some_and(|r| r.available);
            let h = match status {
                pb::NodeStatus::Alive if runtime_ok && n.drained => NodeHealth::Drained,
                pb::NodeStatus::Alive if runtime_ok => NodeHealth::Ready,
                pb::NodeStatus::Alive | pb::NodeStatus::Suspect => NodeHealth::Unsure,
                pb::NodeStatus::Down
                    if Duration::from_millis(n.last_seen_ms_ago) < reschedule_after =>
                {
                    NodeHealth::Unsure
                }
                _ => NodeHealth::Lost,
            };
            (n.name.clone(), h)
        })
        .collect()
}

/// The replicas of every service in the view, by service id.
pub fn replicas(containers: &[pb::ContainerSummary]) -> HashMap<String, Vec<Replica>> {
    let now = now_ms();
    let mut out: HashMap<String, Vec<Replica>> = HashMap::new();
    for c in containers {
        let Some(slot) = &c.slot else { continue };
        out.entry(slot.service_id.clone())
            .or_default()
            .push(Replica {
                id: c.id.clone(),
                node: c.node.clone(),
                slot: slot.slot.clone(),
                version: slot.version,
                state: c.state.clone(),
                created_ms: c.created_unix_ms,
                running_ms: if c.state == "running" && c.started_unix_ms > 0 {
                    u64::try_from(now - c.started_unix_ms).unwrap_or(0)
                } else {
                    0
                },
                restart_count: c.restart_count,
                health: c.health.clone(),
            });
    }
    out
}

/// The slots a service wants: `1..=N`, or the name of every ready node that meets its
/// constraints (global mode).
fn slots(
    spec: &ServiceSpec,
    nodes: &[pb::Node],
    health: &HashMap<String, NodeHealth>,
) -> Vec<String> {
    match spec.mode {
        Mode::Replicated(n) => (1..=n).map(|i| i.to_string()).collect(),
        Mode::Global => nodes
            .iter()
            .filter(|n| health.get(&n.name) == Some(&NodeHealth::Ready))
            .filter(|n| spec.constraints.iter().all(|k| k.holds(&n.name, &n.labels)))
            .map(|n| n.name.clone())
            .collect(),
    }
}

fn ready_names(health: &HashMap<String, NodeHealth>) -> impl Iterator<Item = &str> {
    health
        .iter()
        .filter(|(_, h)| **h == NodeHealth::Ready)
        .map(|(n, _)| n.as_str())
}

impl Services {
    pub fn new(
        store: Arc<Store>,
        placer: Placer,
        peers: Arc<PeerPool>,
        cfg: ServicesConfig,
    ) -> Self {
        Self {
            state: placer.state.clone(),
            runtime: placer.runtime.clone(),
            store,
            placer,
            peers,
            workers: Arc::new(Semaphore::new(cfg.workers.max(1))),
            cfg,
            memory: Mutex::default(),
            started: Instant::now(),
        }
    }

    fn me(&self) -> &str {
        self.runtime.node()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes fresh entries to up to [`WRITE_FANOUT`] ready peers and waits for them (bounded).
    /// Returns the peers that stored them and the newest competing entry any of them holds.
    pub async fn push(
        &self,
        entries: Vec<pb::ServiceEntry>,
    ) -> (Vec<String>, Vec<pb::ServiceEntry>) {
        let peers: Vec<pb::Node> = self
            .state
            .nodes()
            .into_iter()
            .filter(|n| n.name != self.me() && n.status == pb::NodeStatus::Alive as i32)
            .take(WRITE_FANOUT)
            .collect();
        let calls = peers.into_iter().filter_map(|node| {
            let mut client = self.peers.client(&node).ok()?;
            let mut req = forwarded(
                pb::SyncServicesRequest {
                    have: entries
                        .iter()
                        .map(|e| pb::ServiceVersion {
                            name: e.name.clone(),
                            stamp: e.stamp.clone(),
                        })
                        .collect(),
                    push: entries.clone(),
                },
                &MetadataMap::new(),
                self.me(),
            );
            req.set_timeout(SYNC_TIMEOUT);
            Some(async move {
                match client.sync_services(req).await {
                    Ok(r) => Some((node.name, r.into_inner().newer)),
                    Err(e) => {
                        tracing::info!(node = %node.name, error = %e.message(), "cannot push a service write");
                        None
                    }
                }
            })
        });
        let mut acked = Vec::new();
        let mut newer = Vec::new();
        for (node, n) in futures::future::join_all(calls).await.into_iter().flatten() {
            acked.push(node);
            newer.extend(n);
        }
        if !newer.is_empty()
            && let Err(e) = self.store.merge_off_thread(newer.clone()).await
        {
            tracing::warn!(error = %e, "cannot store a peer's newer service entries");
        }
        (acked, newer)
    }

    /// Pulls newer entries from peers whose digest differs from ours.
    pub async fn sync_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            round += 1;
            let mine = self.store.digest();
            let differ: Vec<pb::Node> = self
                .state
                .nodes()
                .into_iter()
                .filter(|n| {
                    n.name != self.me()
                        && n.status == pb::NodeStatus::Alive as i32
                        && !n.services_digest.is_empty()
                        && n.services_digest != mine
                })
                .collect();
            // One peer a round, a different one each time: the others pull from us too.
            let Some(node) = differ.get(round % differ.len().max(1)).cloned() else {
                if round.is_multiple_of(600) {
                    let store = self.store.clone();
                    let _ = tokio::task::spawn_blocking(move || store.collect_tombstones()).await;
                }
                continue;
            };
            let Ok(mut client) = self.peers.client(&node) else {
                continue;
            };
            let mut req = forwarded(
                pb::SyncServicesRequest {
                    have: self.store.have(),
                    push: Vec::new(),
                },
                &MetadataMap::new(),
                self.me(),
            );
            req.set_timeout(SYNC_TIMEOUT);
            match client.sync_services(req).await {
                Ok(r) => {
                    let newer = r.into_inner().newer;
                    match self.store.merge_off_thread(newer).await {
                        Ok(changed) if !changed.is_empty() => {
                            tracing::info!(from = %node.name, services = ?changed, "services synced")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot store synced services"),
                    }
                }
                Err(e) => {
                    tracing::debug!(node = %node.name, error = %e.message(), "service sync failed")
                }
            }
        }
    }

    /// Each round: for every service this node is responsible for, decide and act.
    pub async fn reconcile_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut digest = self.store.watch_digest();
        let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = digest.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            self.state
                .apply(Change::ServicesDigest(self.store.digest()));
            self.state
                .apply(Change::NodeRecords(self.store.node_records()));
            self.round();
        }
    }

    fn round(self: &Arc<Self>) {
        // A node this agent has not heard from yet is as good as down for it. Until it has
        // been up for `reschedule_after`, its peers (and their replicas) may simply not be in
        // its view yet: after a restart of every agent, acting at once would replace replicas
        // that are running fine on nodes it has not heard from.
        if self.cfg.gossip && self.started.elapsed() < self.cfg.reschedule_after {
            return;
        }
        let snapshot = self.state.snapshot();
        let health = health(&snapshot.nodes, self.cfg.reschedule_after);
        let all = replicas(&snapshot.containers);
        let shown: BTreeSet<&str> = snapshot.containers.iter().map(|c| c.id.as_str()).collect();
        {
            let mut mem = self.memory();
            mem.in_flight.retain(|_, f| {
                f.at.elapsed() < IN_FLIGHT_TTL
                    && !f
                        .placed
                        .as_ref()
                        .is_some_and(|(_, id)| shown.contains(id.as_str()))
            });
            mem.removing.retain(|id| shown.contains(id.as_str()));
            mem.errors
                .retain(|_, e| e.until.elapsed() < MAX_BACKOFF * 4);
        }
        for entry in self.store.all() {
            if !store::is_service(&entry) {
                continue;
            }
            let Some(owner) = reconcile::responsible(&entry.name, ready_names(&health)) else {
                continue;
            };
            if owner != self.me() {
                continue;
            }
            let spec = match entry.spec.as_ref().map(ServiceSpec::from_proto) {
                Some(Ok(s)) => Some(s),
                _ if entry.deleted => None,
                _ => continue,
            };
            let replicas = all.get(&entry.id).cloned().unwrap_or_default();
            let desired = self.desired(&entry, spec.as_ref(), &snapshot.nodes, &health);
            let decision = reconcile::reconcile(&desired, &replicas, &health, now_ms());
            {
                let mut mem = self.memory();
                if decision.outdated {
                    mem.rollouts.insert(entry.id.clone(), entry.version);
                } else if decision.settled {
                    mem.rollouts.remove(&entry.id);
                }
            }
            for action in decision.actions {
                self.act(&entry, spec.as_ref(), &replicas, action);
            }
        }
    }

    fn desired(
        &self,
        entry: &pb::ServiceEntry,
        spec: Option<&ServiceSpec>,
        nodes: &[pb::Node],
        health: &HashMap<String, NodeHealth>,
    ) -> Desired {
        let mem = self.memory();
        let slots = if entry.deleted {
            None
        } else {
            spec.map(|s| slots(s, nodes, health))
        };
        let in_flight = mem
            .in_flight
            .keys()
            .filter(|(id, _)| *id == entry.id)
            .map(|(_, s)| s.clone())
            .collect();
        let errors: Vec<(&String, &SlotError)> = mem
            .errors
            .iter()
            .filter(|((id, _), _)| *id == entry.id)
            .map(|((_, s), e)| (s, e))
            .collect();
        let backing_off = errors
            .iter()
            .filter(|(_, e)| e.until > Instant::now())
            .map(|(s, _)| (*s).clone())
            .collect();
        let placement_failed = errors
            .iter()
            .any(|(_, e)| e.placement && e.version == entry.version);
        let update = spec.map(|s| s.update).unwrap_or_default();
        Desired {
            slots,
            version: entry.version,
            parallelism: update.parallelism,
            settle_ms: (update.monitor + update.delay).as_millis() as u64,
            monitor_ms: update.monitor.as_millis() as u64,
            start_first: update.order == UpdateOrder::StartFirst,
            paused: entry.paused,
            in_flight,
            backing_off,
            placement_failed,
            updating: mem.rollouts.get(&entry.id) == Some(&entry.version),
        }
    }

    fn act(
        self: &Arc<Self>,
        entry: &pb::ServiceEntry,
        spec: Option<&ServiceSpec>,
        replicas: &[Replica],
        action: Action,
    ) {
        match action {
            Action::Place { slot } => {
                let Some(spec) = spec.cloned() else { return };
                let key = (entry.id.clone(), slot.clone());
                {
                    let mut mem = self.memory();
                    if mem.in_flight.contains_key(&key) {
                        return;
                    }
                    mem.in_flight.insert(
                        key.clone(),
                        InFlight {
                            at: Instant::now(),
                            planned: None,
                            placed: None,
                        },
                    );
                }
                // Replicas already in the view, and placements under way, count as siblings:
                // ranking here, one slot after the other, spreads the slots of one round.
                let mut siblings: HashMap<String, u32> = HashMap::new();
                // Nodes with another slot's replica: a volume there is that replica's.
                let mut others = std::collections::HashSet::new();
                for r in replicas {
                    *siblings.entry(r.node.clone()).or_default() += 1;
                    if r.slot != slot {
                        others.insert(r.node.clone());
                    }
                }
                for ((id, s), f) in &self.memory().in_flight {
                    if *id == entry.id
                        && let Some(n) = f.placed.as_ref().map(|p| &p.0).or(f.planned.as_ref())
                    {
                        *siblings.entry(n.clone()).or_default() += 1;
                        if *s != slot {
                            others.insert(n.clone());
                        }
                    }
                }
                let (container, mut request) = self.replica(entry, &spec, &slot, siblings);
                request.other_replicas_on = others;
                let ranked = match self.placer.rank(&request) {
                    Ok(r) => r,
                    Err(e) => {
                        // Told once a backoff: the slot is tried again after it.
                        self.placer.events.placement(
                            None,
                            container.name.as_deref().unwrap_or_default(),
                            &spec.container.image,
                            e.to_string(),
                        );
                        self.memory().in_flight.remove(&key);
                        self.slot_failed(entry, key, e.to_string(), true);
                        return;
                    }
                };
                if let Some(f) = self.memory().in_flight.get_mut(&key) {
                    f.planned = ranked.first().cloned();
                }
                let this = self.clone();
                let entry = entry.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = this.workers.clone().acquire_owned().await else {
                        return;
                    };
                    this.place(&entry, container, request, ranked, key).await;
                });
            }
            Action::Remove { id, node, why } => {
                if !self.memory().removing.insert(id.clone()) {
                    return;
                }
                let this = self.clone();
                let service = entry.name.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = this.workers.clone().acquire_owned().await else {
                        return;
                    };
                    tracing::info!(%service, container = %id, %node, reason = why, "removing a replica");
                    if let Err(e) = this.placer.remove(&id, &node).await {
                        tracing::info!(%service, container = %id, error = %e, "cannot remove a replica");
                        this.memory().removing.remove(&id);
                    }
                });
            }
            Action::Crashed { slot, why } => {
                self.slot_failed(entry, (entry.id.clone(), slot), why, false);
            }
            Action::UpdateFailed { why } => self.update_failed(entry, spec, why),
        }
    }

    /// The container of one slot, and where it may go.
    fn replica(
        &self,
        entry: &pb::ServiceEntry,
        spec: &ServiceSpec,
        slot: &str,
        siblings: HashMap<String, u32>,
    ) -> (berth_shared::spec::ContainerSpec, scheduler::Request) {
        let suffix: String = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(
                format!("{}\0{slot}\0{}\0{:?}", entry.id, now_ms(), Instant::now()).as_bytes(),
            );
            d.iter().take(3).map(|b| format!("{b:02x}")).collect()
        };
        let mut container = spec.container.clone();
        container.name = Some(format!("{}.{slot}.{suffix}", spec.name));
        container.slot = Some(SlotRef {
            service_id: entry.id.clone(),
            service: spec.name.clone(),
            slot: slot.to_owned(),
            version: entry.version,
        });
        let request = scheduler::Request {
            cpus: container.cpus,
            memory: container.memory_bytes,
            node: matches!(spec.mode, Mode::Global).then(|| slot.to_owned()),
            constraints: spec.constraints.clone(),
            strategy: if spec.binpack {
                Strategy::Binpack
            } else {
                Strategy::Spread
            },
            siblings,
            volumes: container
                .options
                .named_volumes()
                .map(str::to_owned)
                .collect(),
            other_replicas_on: Default::default(),
        };
        (container, request)
    }

    async fn place(
        &self,
        entry: &pb::ServiceEntry,
        container: berth_shared::spec::ContainerSpec,
        request: scheduler::Request,
        ranked: Vec<String>,
        key: (String, String),
    ) {
        let slot = key.1.clone();
        let service = entry.name.clone();
        let (progress, mut events) = tokio::sync::mpsc::channel(16);
        let drain = async move { while events.recv().await.is_some() {} };
        let place = async {
            let r = self
                .placer
                .offer(&container, &request, ranked, &MetadataMap::new(), &progress)
                .await;
            drop(progress);
            r
        };
        let (result, ()) = tokio::join!(place, drain);
        let mut mem = self.memory();
        match result {
            Ok(c) => {
                tracing::info!(%service, %slot, container = %c.name, node = %c.node, "replica placed");
                mem.errors.remove(&key);
                if let Some(f) = mem.in_flight.get_mut(&key) {
                    f.placed = Some((c.node.clone(), c.id.clone()));
                    f.at = Instant::now();
                }
            }
            Err(e) => {
                tracing::info!(%service, %slot, error = %e, "cannot place a replica");
                mem.in_flight.remove(&key);
                drop(mem);
                self.slot_failed(entry, key, e.to_string(), true);
            }
        }
    }

    /// Records why a slot failed and backs it off (doubling up to [`MAX_BACKOFF`]).
    fn slot_failed(
        &self,
        entry: &pb::ServiceEntry,
        key: (String, String),
        why: String,
        placement: bool,
    ) {
        let mut mem = self.memory();
        let backoff = mem
            .errors
            .get(&key)
            .filter(|e| e.until.elapsed() < MAX_BACKOFF * 2)
            .map(|e| (e.backoff * 2).min(MAX_BACKOFF))
            .unwrap_or(MIN_BACKOFF);
        tracing::info!(service = %entry.name, slot = %key.1, reason = %why, backoff_ms = backoff.as_millis() as u64, "replica failed; backing off");
        mem.errors.insert(
            key,
            SlotError {
                message: why,
                version: entry.version,
                until: Instant::now() + backoff,
                backoff,
                placement,
            },
        );
    }

    fn update_failed(
        self: &Arc<Self>,
        entry: &pb::ServiceEntry,
        spec: Option<&ServiceSpec>,
        why: String,
    ) {
        let Some(spec) = spec else { return };
        let rollback = spec.update.failure_action == berth_shared::service::FailureAction::Rollback
            && entry.previous.is_some()
            && !entry.rolled_back;
        let version = entry.version;
        let this = self.clone();
        let name = entry.name.clone();
        // Off the reconciler's round: the write fsyncs, then the result is pushed.
        tokio::spawn(async move {
            let written = this.store.write_off_thread(name, move |current| {
                let Some(current) = current.filter(|c| c.version == version && !c.deleted) else {
                    return Err(WriteSkipped);
                };
                let mut next = current.clone();
                if rollback {
                    next.previous = current.spec.clone();
                    next.spec = current.previous.clone();
                    next.version += 1;
                    next.rolled_back = true;
                    next.paused = false;
                    next.message = format!("rolled back from version {version}: {why}");
                } else {
                    next.paused = true;
                    next.message = format!("update to version {version} paused: {why}");
                }
                Ok(next)
            });
            if let Ok(e) = written.await {
                tracing::warn!(service = %e.name, message = %e.message, "service update failed");
                this.push(vec![e]).await;
            }
        });
    }

    /// Each service with its slots, as this agent sees them.
    pub fn status(&self, name: Option<&str>) -> Vec<pb::ServiceStatus> {
        let snapshot = self.state.snapshot();
        let health = health(&snapshot.nodes, self.cfg.reschedule_after);
        let all = replicas(&snapshot.containers);
        let by_id: HashMap<&str, &pb::ContainerSummary> = snapshot
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mem = self.memory();
        let mut out = Vec::new();
        for entry in self.store.all() {
            if entry.deleted || !store::is_service(&entry) || name.is_some_and(|n| n != entry.name)
            {
                continue;
            }
            let Some(Ok(spec)) = entry.spec.as_ref().map(ServiceSpec::from_proto) else {
                continue;
            };
            let wanted = slots(&spec, &snapshot.nodes, &health);
            let reps = all.get(&entry.id).cloned().unwrap_or_default();
            let mut rows = Vec::new();
            let mut running = 0u32;
            let mut outdated = false;
            for slot in &wanted {
                let mut copies: Vec<&Replica> = reps
                    .iter()
                    .filter(|r| {
                        &r.slot == slot
                            && health.get(&r.node).is_some_and(|h| *h != NodeHealth::Lost)
                    })
                    .collect();
                reconcile::best_first(&mut copies, entry.version);
                let error = mem
                    .errors
                    .get(&(entry.id.clone(), slot.clone()))
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                match copies.first() {
                    Some(r) => {
                        if r.state == "running" {
                            running += 1;
                        }
                        if r.version != entry.version {
                            outdated = true;
                        }
                        rows.push(pb::ServiceSlotStatus {
                            slot: slot.clone(),
                            container_id: r.id.clone(),
                            container_name: by_id
                                .get(r.id.as_str())
                                .map(|c| c.name.clone())
                                .unwrap_or_default(),
                            node: r.node.clone(),
                            state: r.state.clone(),
                            version: r.version,
                            error,
                        });
                    }
                    None => rows.push(pb::ServiceSlotStatus {
                        slot: slot.clone(),
                        state: "pending".into(),
                        version: entry.version,
                        error,
                        ..Default::default()
                    }),
                }
            }
            let desired = wanted.len() as u32;
            let state = if entry.paused {
                "paused"
            } else if outdated && entry.rolled_back {
                "rolling-back"
            } else if outdated {
                "updating"
            } else if running < desired {
                "converging"
            } else {
                "converged"
            };
            out.push(pb::ServiceStatus {
                responsible: reconcile::responsible(&entry.name, ready_names(&health))
                    .unwrap_or_default()
                    .to_owned(),
                entry: Some(entry),
                replicas_desired: desired,
                replicas_running: running,
                state: state.into(),
                slots: rows,
            });
        }
        out
    }
}

/// The entry changed under the reconciler's feet (a newer write): nothing to do.
struct WriteSkipped;

impl From<store::StoreError> for WriteSkipped {
    fn from(e: store::StoreError) -> Self {
        tracing::warn!(error = %e, "cannot record a service's update failure");
        WriteSkipped
    }
}
