//! The gRPC service `berth.v1.Berth`: request checking, token auth, forwarding, and the handlers.
//!
//! Handlers validate every request again (the client is never trusted) and resolve container
//! references against the cluster view. A container owned by this node is acted on through
//! [`DockerRuntime`], and the result written back into the view at once; one owned by a peer is
//! forwarded to it once, with the hop marker, the caller's deadline and the cluster token.

use crate::cluster::peers::{PeerPool, forwarded, is_forwarded, peer_error};
use crate::error::AgentError;
use crate::placement::ledger::{Ledger, Pending};
use crate::placement::scheduler::{self, Constraint, Strategy};
use crate::runtime::docker::{DockerRuntime, owned_by, spec_from_inspect, summary_from_inspect};
use crate::runtime::logs::log_lines;
use crate::runtime::sim::SimRuntime;
use crate::state::{Change, State};
use berth_proto::v1 as pb;
use berth_proto::v1::berth_server::Berth;
use berth_shared::defaults::DEFAULT_STOP_TIMEOUT_SECS;
use berth_shared::spec::ContainerSpec;
use bollard::query_parameters::LogsOptions;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The longest stop grace period a request may ask for.
pub const MAX_STOP_TIMEOUT_SECS: u32 = 3600;
/// At most this many constraints per run.
const MAX_CONSTRAINTS: usize = 32;
/// Buffered messages per server stream before the sender waits for the client.
const STREAM_BUFFER: usize = 256;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
type RunTx = mpsc::Sender<Result<pb::RunEvent, Status>>;

pub struct Service {
    pub state: Arc<State>,
    pub runtime: DockerRuntime,
    /// Flips to `true` when the agent shuts down: long streams end, so shutdown is not held
    /// up by a console that keeps a `Watch` or `logs -f` open.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub peers: Arc<PeerPool>,
    pub ledger: Arc<Ledger>,
    pub pending: Arc<Pending>,
    /// Set on a hollow node: containers live in memory instead of Docker.
    pub sim: Option<Arc<SimRuntime>>,
}

/// Checks `authorization: Bearer <token>` in constant time. The token is never logged.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
        }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(subtle::ConstantTimeEq::ct_eq(given, &expected[..])) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong cluster token (authorization: Bearer …)",
            ))
        }
    }
}

fn validated_reference(field: &str, r: &str) -> Result<(), Status> {
    const MAX: usize = 256;
    if r.is_empty() {
        return Err(berth_shared::ValidationError::new(field, "is empty").into());
    }
    if r.len() > MAX {
        return Err(berth_shared::ValidationError::new(
            field,
            format!("is {} bytes long; at most {MAX}", r.len()),
        )
        .into());
    }
    Ok(())
}

/// Where a container lives, as far as this agent can tell.
enum Owner {
    Local(pb::ContainerSummary),
    Peer(pb::ContainerSummary, Box<pb::Node>),
}

fn event(e: pb::run_event::Event) -> pb::RunEvent {
    pb::RunEvent { event: Some(e) }
}

impl Service {
    fn me(&self) -> &str {
        self.runtime.node()
    }

    /// Resolves when the agent starts shutting down: long streams end with it.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut shutdown = self.shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        }
    }

    /// Finds a container: in the cluster view (only this node's when the request was forwarded),
    /// then in Docker itself (the view may lag a just-created container by one event).
    async fn locate(&self, reference: &str, meta: &MetadataMap) -> Result<Owner, Status> {
        validated_reference("container", reference)?;
        let hop = is_forwarded(meta);
        let found = if hop {
            self.state.resolve_local(reference)
        } else {
            self.state.resolve(reference)
        };
        match found {
            Ok(c) if c.node == self.me() => Ok(Owner::Local(c)),
            Ok(c) => {
                let node = self.state.peer(&c.node).ok_or_else(|| {
                    Status::unavailable(format!("node {} is no longer in the cluster", c.node))
                })?;
                Ok(Owner::Peer(c, Box::new(node)))
            }
            Err(AgentError::ContainerNotFound(..)) => {
                if self.sim.is_none()
                    && let Some(raw) = self
                        .runtime
                        .inspect_raw(&self.runtime.client()?, reference)
                        .await?
                    && owned_by(&raw, self.me())
                {
                    let s = summary_from_inspect(self.me(), &raw);
                    self.state.apply(Change::Upsert(Box::new(s.clone())));
                    return Ok(Owner::Local(s));
                }
                if !hop && let Some(found) = self.ask_peers(reference, meta).await? {
                    return Ok(found);
                }
                Err(AgentError::ContainerNotFound(
                    reference.chars().take(64).collect(),
                    if hop {
                        format!("node {}", self.me())
                    } else {
                        "the cluster".to_owned()
                    },
                )
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The view may not show a container yet (gossip lags a run by a round or two): asks every
    /// live peer at once whether it owns `reference`, so a command right after a run works
    /// through any agent.
    async fn ask_peers(
        &self,
        reference: &str,
        meta: &MetadataMap,
    ) -> Result<Option<Owner>, Status> {
        let peers: Vec<pb::Node> = self
            .state
            .nodes()
            .into_iter()
            .filter(|n| n.name != self.me() && n.status == pb::NodeStatus::Alive as i32)
            .collect();
        let asks = peers.into_iter().filter_map(|node| {
            let mut client = self.peers.client(&node).ok()?;
            let mut req = forwarded(
                pb::InspectRequest {
                    container: reference.to_owned(),
                },
                meta,
                self.me(),
            );
            req.set_timeout(crate::cluster::peers::PEER_CONNECT_TIMEOUT * 2);
            Some(async move {
                let detail = client.inspect(req).await.ok()?.into_inner();
                Some((detail.summary?, node))
            })
        });
        let found: Vec<(pb::ContainerSummary, pb::Node)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found
                .into_iter()
                .next()
                .map(|(c, n)| Owner::Peer(c, Box::new(n)))),
            _ => Err(AgentError::Ambiguous {
                reference: reference.chars().take(64).collect(),
                matches: found
                    .iter()
                    .map(|(c, n)| {
                        format!(
                            "{} ({} on {})",
                            crate::state::short_id(&c.id),
                            c.name,
                            n.name
                        )
                    })
                    .collect(),
            }
            .into()),
        }
    }

    /// Re-reads a container from Docker into the view; returns the fresh summary.
    async fn refresh(&self, id: &str) -> Result<Option<pb::ContainerSummary>, Status> {
        let docker = self.runtime.client()?;
        match self.runtime.inspect_raw(&docker, id).await? {
            Some(raw) => {
                let s = summary_from_inspect(self.me(), &raw);
                self.state.apply(Change::Upsert(Box::new(s.clone())));
                Ok(self.state.container(id).or(Some(s)))
            }
            None => {
                self.state.apply(Change::Removed(id.to_owned()));
                Ok(None)
            }
        }
    }

    fn run_ctx(&self) -> RunCtx {
        RunCtx {
            state: self.state.clone(),
            runtime: self.runtime.clone(),
            peers: self.peers.clone(),
            ledger: self.ledger.clone(),
            pending: self.pending.clone(),
            sim: self.sim.clone(),
        }
    }
}

/// What a run needs, owned, so it can go on in its own task while events stream out.
struct RunCtx {
    state: Arc<State>,
    runtime: DockerRuntime,
    peers: Arc<PeerPool>,
    ledger: Arc<Ledger>,
    pending: Arc<Pending>,
    sim: Option<Arc<SimRuntime>>,
}

/// How one attempt on one node ended.
enum Attempt {
    Started,
    /// The node refused before creating anything: try the next one.
    Refused(String),
    /// A failure the caller must see (sent already).
    Failed,
}

impl RunCtx {
    /// Admits against this node's ledger, then pulls, creates and starts.
    async fn run_here(&self, spec: &ContainerSpec, tx: &RunTx) -> Result<(), AgentError> {
        let admission = self
            .ledger
            .admit(&self.state, spec.cpus, spec.memory_bytes)
            .map_err(AgentError::Exhausted)?;
        let summary = match &self.sim {
            Some(sim) => {
                let c = sim.run(spec)?;
                let created = pb::Created {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    warnings: Vec::new(),
                };
                let _ = tx
                    .send(Ok(event(pb::run_event::Event::Created(created))))
                    .await;
                c
            }
            None => self.runtime.run(spec, tx).await?,
        };
        tracing::info!(id = %summary.id, name = %summary.name, image = %summary.image, "container started");
        self.state.apply(Change::Upsert(Box::new(summary.clone())));
        drop(admission);
        let _ = tx
            .send(Ok(event(pb::run_event::Event::Started(pb::Started {
                container: Some(summary),
            }))))
            .await;
        Ok(())
    }

    async fn attempt_local(&self, spec: &ContainerSpec, tx: &RunTx, key: u64) -> Attempt {
        match self.run_here(spec, tx).await {
            Ok(()) => {
                self.pending.remove(key);
                Attempt::Started
            }
            Err(AgentError::Exhausted(why)) => Attempt::Refused(why),
            Err(e) => {
                tracing::info!(error = %e, image = %spec.image, "run failed");
                let _ = tx.send(Err(e.into())).await;
                Attempt::Failed
            }
        }
    }

    async fn attempt_peer(
        &self,
        node: &pb::Node,
        wire: &pb::ContainerSpec,
        meta: &MetadataMap,
        tx: &RunTx,
        key: u64,
    ) -> Attempt {
        let mut client = match self.peers.client(node) {
            Ok(c) => c,
            Err(s) => return Attempt::Refused(s.message().to_owned()),
        };
        let req = pb::RunRequest {
            spec: Some(wire.clone()),
            node: node.name.clone(),
            constraints: Vec::new(),
            strategy: pb::Strategy::Unspecified as i32,
        };
        let mut stream = match client.run(forwarded(req, meta, self.runtime.node())).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                let s = peer_error(node, s);
                return match s.code() {
                    tonic::Code::ResourceExhausted | tonic::Code::Unavailable => {
                        Attempt::Refused(s.message().to_owned())
                    }
                    _ => {
                        let _ = tx.send(Err(s)).await;
                        Attempt::Failed
                    }
                };
            }
        };
        let mut created = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => match &ev.event {
                    // We announced the placement ourselves.
                    Some(pb::run_event::Event::Placed(_)) => {}
                    Some(pb::run_event::Event::Created(_)) => {
                        created = true;
                        let _ = tx.send(Ok(ev)).await;
                    }
                    Some(pb::run_event::Event::Started(s)) => {
                        if let Some(c) = &s.container {
                            self.pending.started(key, &c.id);
                        }
                        let _ = tx.send(Ok(ev)).await;
                        return Attempt::Started;
                    }
                    _ => {
                        let _ = tx.send(Ok(ev)).await;
                    }
                },
                Err(s) => {
                    let s = peer_error(node, s);
                    if !created
                        && matches!(
                            s.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                        )
                    {
                        return Attempt::Refused(s.message().to_owned());
                    }
                    let _ = tx.send(Err(s)).await;
                    return Attempt::Failed;
                }
            }
        }
        let _ = tx
            .send(Err(Status::unavailable(format!(
                "node {} ended the run without an answer",
                node.name
            ))))
            .await;
        Attempt::Failed
    }
}

#[tonic::async_trait]
impl Berth for Service {
    async fn cluster(
        &self,
        _req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterSnapshot>, Status> {
        Ok(Response::new(self.state.snapshot()))
    }

    type WatchStream = BoxStream<pb::WatchEvent>;

    async fn watch(
        &self,
        _req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (snapshot, mut rx) = self.state.subscribe();
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let snap = pb::WatchEvent {
                event: Some(pb::watch_event::Event::Snapshot(snapshot)),
            };
            if tx.send(Ok(snap)).await.is_err() {
                return;
            }
            loop {
                let item = tokio::select! {
                    r = rx.recv() => r,
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let ev = match item {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow to follow change by change: start again from a snapshot.
                        tracing::debug!(skipped = n, "watcher lagged; sending a new snapshot");
                        let (snapshot, fresh) = state.subscribe();
                        rx = fresh;
                        pb::WatchEvent {
                            event: Some(pb::watch_event::Event::Snapshot(snapshot)),
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type RunStream = BoxStream<pb::RunEvent>;

    async fn run(&self, req: Request<pb::RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        let (meta, _, req) = req.into_parts();
        let wire = req
            .spec
            .ok_or_else(|| berth_shared::ValidationError::new("spec", "is missing"))?;
        let spec = ContainerSpec::from_proto(&wire)?;
        let ctx = self.run_ctx();
        let me = self.me().to_owned();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);

        if let Some(from) = meta.get(crate::cluster::peers::HOP_HEADER) {
            // Placed by another agent: run here or refuse; never forward again.
            if !req.node.is_empty() && req.node != me {
                return Err(Status::failed_precondition(format!(
                    "forwarded run for node {} reached node {me}",
                    req.node
                )));
            }
            if self.sim.is_none() {
                self.runtime.client()?;
            }
            let from = from.to_str().unwrap_or("a peer").to_owned();
            tokio::spawn(async move {
                let placed = pb::Placed {
                    node: me.clone(),
                    reason: format!("placed by {from}"),
                };
                let _ = tx
                    .send(Ok(event(pb::run_event::Event::Placed(placed))))
                    .await;
                if let Err(e) = ctx.run_here(&spec, &tx).await {
                    tracing::info!(error = %e, image = %spec.image, "forwarded run failed");
                    let _ = tx.send(Err(e.into())).await;
                }
            });
            return Ok(Response::new(Box::pin(ReceiverStream::new(out))));
        }

        if req.constraints.len() > MAX_CONSTRAINTS {
            return Err(berth_shared::ValidationError::new(
                "constraint",
                format!("at most {MAX_CONSTRAINTS}"),
            )
            .into());
        }
        let constraints = req
            .constraints
            .iter()
            .map(|c| Constraint::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        if req.node.len() > 256 {
            return Err(berth_shared::ValidationError::new("node", "too long").into());
        }
        let strategy = match pb::Strategy::try_from(req.strategy) {
            Ok(pb::Strategy::Binpack) => Strategy::Binpack,
            Ok(_) => Strategy::Spread,
            Err(_) => {
                return Err(berth_shared::ValidationError::new("strategy", "unknown").into());
            }
        };
        // Names are unique in the cluster, not only on one Docker engine.
        if let Some(name) = &spec.name
            && let Ok(c) = self.state.resolve(name)
            && &c.name == name
        {
            return Err(Status::already_exists(format!(
                "container name {name:?} is already in use on node {}",
                c.node
            )));
        }
        let request = scheduler::Request {
            cpus: spec.cpus,
            memory: spec.memory_bytes,
            node: (!req.node.is_empty()).then(|| req.node.clone()),
            constraints,
            strategy,
        };
        let candidates = self.pending.candidates(&self.state);
        let ranked = scheduler::rank(&candidates, &request).map_err(|e| {
            let unknown_pin = request
                .node
                .as_ref()
                .is_some_and(|pin| !candidates.iter().any(|c| &c.name == pin));
            if unknown_pin {
                Status::not_found(e.to_string())
            } else if candidates.iter().all(|c| c.schedulable.is_err()) {
                // Nothing is up to run it (not "full"): a retry later may work.
                Status::unavailable(e.to_string())
            } else {
                Status::resource_exhausted(e.to_string())
            }
        })?;
        let strategy_word = match strategy {
            Strategy::Spread => "spread",
            Strategy::Binpack => "binpack",
        };
        tokio::spawn(async move {
            let mut refused: Vec<(String, String)> = Vec::new();
            let total = ranked.len();
            for (i, name) in ranked.into_iter().enumerate() {
                let reason = if request.node.is_some() {
                    "pinned with --node".to_owned()
                } else {
                    format!("{strategy_word}: candidate {} of {total}", i + 1)
                };
                let placed = pb::Placed {
                    node: name.clone(),
                    reason,
                };
                if tx
                    .send(Ok(event(pb::run_event::Event::Placed(placed))))
                    .await
                    .is_err()
                {
                    return;
                }
                let key = ctx.pending.add(&name, spec.cpus, spec.memory_bytes);
                let outcome = if name == me {
                    ctx.attempt_local(&spec, &tx, key).await
                } else {
                    match ctx.state.peer(&name) {
                        Some(node) => ctx.attempt_peer(&node, &wire, &meta, &tx, key).await,
                        None => Attempt::Refused("left the view".into()),
                    }
                };
                match outcome {
                    Attempt::Started => return,
                    Attempt::Failed => {
                        ctx.pending.remove(key);
                        return;
                    }
                    Attempt::Refused(why) => {
                        ctx.pending.remove(key);
                        tracing::info!(node = %name, reason = %why, "node refused the container; trying the next");
                        refused.push((name, why));
                    }
                }
            }
            let msg = scheduler::NoPlacement { rejected: refused }.to_string();
            let _ = tx.send(Err(Status::resource_exhausted(msg))).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn stop(
        &self,
        req: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        let timeout = req.timeout_secs.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
        if timeout > MAX_STOP_TIMEOUT_SECS {
            return Err(berth_shared::ValidationError::new(
                "timeout",
                format!("{timeout}s is longer than the {MAX_STOP_TIMEOUT_SECS}s allowed"),
            )
            .into());
        }
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let mut client = self.peers.client(&node)?;
                let fwd = pb::StopRequest {
                    container: c.id,
                    timeout_secs: req.timeout_secs,
                };
                return client
                    .stop(forwarded(fwd, &meta, self.me()))
                    .await
                    .map_err(|s| peer_error(&node, s));
            }
        };
        if let Some(sim) = &self.sim {
            let (container, was_running) = sim
                .stop(&c.id)
                .ok_or_else(|| AgentError::ContainerNotFound(c.name.clone(), self.me().into()))?;
            self.state
                .apply(Change::Upsert(Box::new(container.clone())));
            return Ok(Response::new(pb::StopResponse {
                container: Some(container),
                was_running,
            }));
        }
        // Docker answers 304 or 204 for a container that is not running, depending on its
        // version; ask it for the state instead of guessing from the answer.
        let c = self.refresh(&c.id).await?.unwrap_or(c);
        let was_running = matches!(c.state.as_str(), "running" | "restarting" | "paused")
            && self.runtime.stop(&c.id, timeout).await?;
        tracing::info!(id = %c.id, name = %c.name, was_running, "container stopped");
        let container = self.refresh(&c.id).await?.unwrap_or(c);
        Ok(Response::new(pb::StopResponse {
            container: Some(container),
            was_running,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let mut client = self.peers.client(&node)?;
                let fwd = pb::RemoveRequest {
                    container: c.id,
                    force: req.force,
                };
                return client
                    .remove(forwarded(fwd, &meta, self.me()))
                    .await
                    .map_err(|s| peer_error(&node, s));
            }
        };
        let removed = match &self.sim {
            Some(sim) => sim.remove(&c.id, req.force),
            None => self.runtime.remove(&c.id, req.force).await,
        };
        removed.map_err(|e| match e {
            AgentError::Running(_) => AgentError::Running(c.name.clone()),
            other => other,
        })?;
        tracing::info!(id = %c.id, name = %c.name, "container removed");
        self.state.apply(Change::Removed(c.id.clone()));
        Ok(Response::new(pb::RemoveResponse {
            id: c.id,
            name: c.name,
        }))
    }

    async fn inspect(
        &self,
        req: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::ContainerDetail>, Status> {
        let (meta, _, req) = req.into_parts();
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let mut client = self.peers.client(&node)?;
                let fwd = pb::InspectRequest { container: c.id };
                return client
                    .inspect(forwarded(fwd, &meta, self.me()))
                    .await
                    .map_err(|s| peer_error(&node, s));
            }
        };
        if let Some(sim) = &self.sim {
            return sim.inspect(&c.id).map(Response::new).ok_or_else(|| {
                AgentError::ContainerNotFound(c.name.clone(), self.me().into()).into()
            });
        }
        let docker = self.runtime.client()?;
        let raw = self
            .runtime
            .inspect_raw(&docker, &c.id)
            .await?
            .ok_or_else(|| {
                AgentError::ContainerNotFound(c.name.clone(), format!("node {}", self.me()))
            })?;
        let mut summary = summary_from_inspect(self.me(), &raw);
        summary.cpu_percent = c.cpu_percent;
        summary.memory_bytes = c.memory_bytes;
        let state = raw.state.clone().unwrap_or_default();
        let runtime_json = serde_json::to_string(&raw)
            .map_err(|e| Status::internal(format!("cannot encode docker's inspect: {e}")))?;
        Ok(Response::new(pb::ContainerDetail {
            summary: Some(summary),
            spec: spec_from_inspect(&raw).map(|s| s.to_proto()),
            runtime_json,
            error: state.error.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
        }))
    }

    type LogsStream = BoxStream<pb::LogLine>;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let (meta, _, req) = req.into_parts();
        if req.since_unix_ms < 0 {
            return Err(berth_shared::ValidationError::new("since", "is before 1970").into());
        }
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let mut client = self.peers.client(&node)?;
                let fwd = pb::LogsRequest {
                    container: c.id,
                    ..req
                };
                let upstream = client
                    .logs(forwarded(fwd, &meta, self.me()))
                    .await
                    .map_err(|s| peer_error(&node, s))?
                    .into_inner();
                // Relayed as it comes: no task or channel between the peer's stream and ours.
                let lines = upstream
                    .map(move |item| item.map_err(|s| peer_error(&node, s)))
                    .take_until(self.stopped());
                return Ok(Response::new(Box::pin(lines)));
            }
        };
        if let Some(sim) = &self.sim {
            let lines = sim.logs(&c.id).into_iter().map(Ok);
            return Ok(Response::new(Box::pin(tokio_stream::iter(lines))));
        }
        let docker = self.runtime.client()?;
        let since_secs = i32::try_from(req.since_unix_ms / 1000).unwrap_or(i32::MAX);
        let since_ns = req.since_unix_ms.saturating_mul(1_000_000);
        let opts = LogsOptions {
            follow: req.follow,
            stdout: true,
            stderr: true,
            since: since_secs,
            until: 0,
            timestamps: true,
            tail: req
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let frames = docker.logs(&c.id, Some(opts));
        let lines = log_lines(frames, self.me().to_owned(), since_ns).take_until(self.stopped());
        Ok(Response::new(Box::pin(lines)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn token_check_accepts_only_the_exact_bearer() {
        let mut check = TokenCheck::new(Some("s3cret"));
        let with = |v: &str| {
            let mut r = Request::new(());
            r.metadata_mut()
                .insert("authorization", v.parse().expect("ascii header"));
            r
        };
        assert!(check.call(with("Bearer s3cret")).is_ok());
        let err = check.call(with("Bearer s3cre")).expect_err("wrong token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("s3cret"), "never echo the token");
        assert!(check.call(with("s3cret")).is_err());
        assert!(check.call(Request::new(())).is_err());
        let mut open = TokenCheck::new(None);
        assert!(open.call(Request::new(())).is_ok());
    }
}
