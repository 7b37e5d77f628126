//! Background tasks that keep the view true: the Docker connection (with reconnect and event
//! feed) and the stats ticker (node stats and per-container usage).

use crate::runtime::Runtime;
use crate::runtime::docker::{
    Conn, DockerRuntime, MAX_RECONNECT_BACKOFF, MIN_RECONNECT_BACKOFF, Sample,
};
use crate::state::{Change, State};
use crate::stats::NodeSampler;
use berth_proto::v1 as pb;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often node stats and container usage are refreshed (`--stats-interval`).
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(2);
/// At most this many `docker stats` calls run at once.
const STATS_CONCURRENCY: usize = 8;

pub struct Ctx {
    pub state: Arc<State>,
    /// The node's runtime, for its status in the node row.
    pub runtime: Arc<dyn Runtime>,
    /// The Docker connection behind it, when the runtime is Docker: the supervisor keeps it up
    /// and samples container usage through it.
    pub docker: Option<DockerRuntime>,
    pub base_node: pb::Node,
    pub data_dir: PathBuf,
    pub stats_interval: Duration,
    /// Gossip traffic counters, once gossip runs (it starts after this context).
    pub gossip_counters: Arc<std::sync::Mutex<Option<Arc<crate::cluster::gossip::GossipCounters>>>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Keeps a connection to Docker: connect, resync the view from Docker's labels, follow the
/// event stream; on any break, mark the runtime down and retry with backoff. Never returns
/// until `shutdown` fires.
pub async fn docker_loop(
    ctx: Arc<Ctx>,
    runtime: DockerRuntime,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = MIN_RECONNECT_BACKOFF;
    let mut last_error = String::new();
    let mut first = true;
    let mut connected_before = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match runtime.connect().await {
            Ok(conn) => {
                let Conn::Up {
                    docker, version, ..
                } = &conn
                else {
                    continue;
                };
                let docker = docker.clone();
                tracing::info!(docker_version = %version, "connected to docker");
                // Subscribe from a second before the listing, so nothing between the two is
                // missed; replays are harmless because every event is answered by an inspect.
                let since = chrono::Utc::now().timestamp() - 1;
                let events = runtime.events(&docker, since);
                // The runtime is "up" only once the view holds what Docker has, so no command
                // ever sees a half-built view.
                let reason = match runtime.list_owned(&docker).await {
                    Ok(mut list) => {
                        if std::mem::take(&mut first) {
                            list = undo_unfinished_runs(&runtime, &docker, list).await;
                        }
                        tracing::info!(containers = list.len(), "rebuilt state from docker");
                        ctx.state.apply(Change::Resync(list));
                        runtime.set_conn(conn);
                        if std::mem::replace(&mut connected_before, true) {
                            ctx.metrics.docker_reconnected();
                        }
                        publish_node(&ctx, None, None);
                        backoff = MIN_RECONNECT_BACKOFF;
                        last_error.clear();
                        tokio::select! {
                            r = follow(&ctx, &runtime, &docker, events) => r,
                            _ = shutdown.changed() => return,
                        }
                    }
                    Err(e) => e.to_string(),
                };
                tracing::warn!(error = %reason, "lost docker; reconnecting");
                runtime.set_conn(Conn::Down { error: reason });
                publish_node(&ctx, None, None);
            }
            Err(error) => {
                if error != last_error {
                    tracing::warn!(%error, "docker unreachable; retrying");
                    last_error = error.clone();
                }
                runtime.set_conn(Conn::Down { error });
                publish_node(&ctx, None, None);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
    }
}

/// Removes the containers a previous life of this agent created but never started: it was
/// killed between create and start, and its client got an error. Only at the first connection,
/// before the API serves, so no run of this life can be caught half-way.
async fn undo_unfinished_runs(
    runtime: &DockerRuntime,
    docker: &bollard::Docker,
    list: Vec<pb::ContainerSummary>,
) -> Vec<pb::ContainerSummary> {
    let mut kept = Vec::with_capacity(list.len());
    for c in list {
        if c.state == "created" && c.started_unix_ms == 0 {
            match runtime.remove_on(docker, &c.id, true).await {
                Ok(()) => {
                    tracing::info!(id = %c.id, name = %c.name, "removed a container a previous run created but never started");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(id = %c.id, error = %e, "cannot remove an unfinished run's container")
                }
            }
        }
        kept.push(c);
    }
    kept
}

/// Applies Docker's events until the stream breaks; returns why it broke.
async fn follow(
    ctx: &Ctx,
    runtime: &DockerRuntime,
    docker: &bollard::Docker,
    events: impl futures::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>>,
) -> String {
    let mut events = std::pin::pin!(events);
    while let Some(item) = events.next().await {
        let msg = match item {
            Ok(m) => m,
            Err(e) => return e.to_string(),
        };
        let Some(id) = msg.actor.and_then(|a| a.id) else {
            continue;
        };
        let action = msg.action.unwrap_or_default();
        // exec_* events change nothing we show (health_status does: it is inspected).
        if action.starts_with("exec_") {
            continue;
        }
        if action == "destroy" {
            ctx.state.apply(Change::Removed(id));
            continue;
        }
        match runtime.inspect_raw(docker, &id).await {
            Ok(Some(raw)) => ctx.state.apply(Change::Upsert(Box::new(
                crate::runtime::docker::summary_from_inspect(runtime.node(), &raw),
            ))),
            Ok(None) => ctx.state.apply(Change::Removed(id)),
            Err(e) => return e.to_string(),
        }
    }
    "docker closed the event stream".into()
}

/// Writes the node row: identity, runtime status, and the latest stats and volume names when
/// given (the row keeps the last ones otherwise).
fn publish_node(ctx: &Ctx, stats: Option<pb::NodeStats>, volumes: Option<Vec<String>>) {
    let mut node = ctx.state.node();
    node.name = ctx.base_node.name.clone();
    node.address = ctx.base_node.address.clone();
    node.labels = ctx.base_node.labels.clone();
    node.agent_version = ctx.base_node.agent_version.clone();
    node.allocatable_cpus = ctx.base_node.allocatable_cpus;
    node.allocatable_memory_bytes = ctx.base_node.allocatable_memory_bytes;
    node.status = pb::NodeStatus::Alive as i32;
    node.runtime = Some(ctx.runtime.status());
    if let Some(mut stats) = stats {
        let counters = ctx
            .gossip_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(c) = counters {
            use std::sync::atomic::Ordering;
            stats.gossip_sent_bytes = c.sent.load(Ordering::Relaxed);
            stats.gossip_received_bytes = c.received.load(Ordering::Relaxed);
            stats.gossip_rejected_datagrams = c.rejected_total();
        }
        node.stats = Some(stats);
    }
    if let Some(volumes) = volumes {
        node.volumes = volumes;
    }
    node.updated_unix_ms = now_ms();
    ctx.state.apply(Change::Node(Box::new(node)));
}

/// Every `stats_interval`: node stats, then one usage sample per running container.
pub async fn stats_loop(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let mut sampler = Some(NodeSampler::new());
    let mut prev: HashMap<String, Sample> = HashMap::new();
    let mut tick = tokio::time::interval(ctx.stats_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let disk_path = match ctx.docker.as_ref().map(DockerRuntime::conn) {
            Some(Conn::Up { root_dir, .. }) if !root_dir.is_empty() => PathBuf::from(root_dir),
            _ => ctx.data_dir.clone(),
        };
        let Some(mut s) = sampler.take() else { return };
        let (s, stats) = match tokio::task::spawn_blocking(move || {
            let stats = s.sample(&disk_path);
            (s, stats)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "node stats sampler failed");
                return;
            }
        };
        sampler = Some(s);
        let docker = ctx
            .docker
            .as_ref()
            .and_then(|r| Some((r, r.client().ok()?)));
        // The volumes go into the row for placement: a run that mounts one goes where it is.
        let volumes = match &docker {
            Some((runtime, docker)) => runtime.volume_names(docker).await.ok(),
            None => None,
        };
        publish_node(&ctx, Some(stats), volumes);

        let Some((runtime, docker)) = docker else {
            continue;
        };
        let running: Vec<String> = ctx
            .state
            .snapshot()
            .containers
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| c.id)
            .collect();
        let samples: Vec<(String, Option<Sample>)> = futures::stream::iter(running)
            .map(|id| {
                let docker = docker.clone();
                async move {
                    let s = runtime.sample(&docker, &id).await;
                    (id, s)
                }
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .collect()
            .await;
        let mut usage = Vec::new();
        let mut next = HashMap::new();
        for (id, sample) in samples {
            let Some(sample) = sample else { continue };
            let cpu = prev
                .get(&id)
                .map(|p| sample.cpu_percent_since(p))
                .unwrap_or(0.0);
            // Rounded as gossip rounds them, so every agent shows the owner's figures.
            usage.push(crate::state::Usage {
                id: id.clone(),
                cpu_percent: crate::cluster::gossip::round_container_cpu(cpu),
                memory_bytes: crate::cluster::gossip::round_container_memory(sample.memory_bytes),
                io: sample.io,
            });
            next.insert(id, sample);
        }
        prev = next;
        if !usage.is_empty() {
            ctx.state.apply(Change::Usage(usage));
        }
    }
}
