//! The gRPC service `berth.v1.Berth`: request checking, token auth, forwarding, and the handlers.
//!
//! Handlers validate every request again (the client is never trusted) and resolve container
//! references against the cluster view. A container owned by this node is acted on through
//! the node's [`Runtime`], and the result written back into the view at once; one owned by a peer is
//! forwarded to it once, with the hop marker, the caller's deadline and the cluster token.

pub mod auth;
mod copy;
mod exec;
mod forward;
pub mod keyring;
pub mod listen;
mod nodes;
mod objects;
mod services;
pub mod tokens;

pub use auth::{ScopeGuard, TokenCheck};

use crate::cluster::peers::{PeerPool, forwarded, is_forwarded};
use crate::error::AgentError;
use crate::placement::ledger::{Ledger, Pending};
use crate::placement::placer::{PlaceError, Placer};
use crate::placement::requests::Turn;
use crate::placement::scheduler::{self, Constraint, Strategy};
use crate::runtime::{Progress, Runtime};
use crate::state::{Change, State};
use berth_proto::v1 as pb;
use berth_proto::v1::berth_server::Berth;
use berth_shared::spec::ContainerSpec;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The longest stop grace period a request may ask for.
pub use berth_shared::options::MAX_STOP_TIMEOUT_SECS;
/// At most this many constraints per run.
const MAX_CONSTRAINTS: usize = 32;
/// Buffered messages per server stream before the sender waits for the client.
const STREAM_BUFFER: usize = 256;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
type RunTx = mpsc::Sender<Result<pb::RunEvent, Status>>;

pub struct Service {
    pub state: Arc<State>,
    pub runtime: Arc<dyn Runtime>,
    /// Flips to `true` when the agent shuts down: long streams end, so shutdown is not held
    /// up by a console that keeps a `Watch` or `logs -f` open.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub peers: Arc<PeerPool>,
    pub ledger: Arc<Ledger>,
    pub pending: Arc<Pending>,
    pub requests: Arc<crate::placement::requests::Requests>,
    pub services: Arc<crate::services::Services>,
    /// The cluster secrets; the CA of the one in use is what scoped tokens carry.
    pub keyring: Arc<crate::keyring::Keyring>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub events: Arc<crate::events::EventLog>,
}

/// How long a caller of a client-streaming call (Exec, CopyTo) may take to send its start
/// message.
const START_WAIT: Duration = Duration::from_secs(10);

/// The first message of a caller's stream, which must come within [`START_WAIT`]; its
/// absence is the caller's error, named `start`.
async fn first_message<T>(input: &mut tonic::Streaming<T>) -> Result<T, Status> {
    tokio::time::timeout(START_WAIT, input.message())
        .await
        .map_err(|_| {
            Status::from(berth_shared::ValidationError::new(
                "start",
                format!("not sent within {}s of the call", START_WAIT.as_secs()),
            ))
        })??
        .ok_or_else(|| {
            berth_shared::ValidationError::new("start", "the stream ended before it").into()
        })
}

fn validated_reference(field: &str, r: &str) -> Result<(), Status> {
    Ok(berth_shared::spec::validate_reference(field, r)?)
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
                if let Some(s) = self.runtime.find(reference).await? {
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

    fn placer(&self) -> Placer {
        Placer {
            state: self.state.clone(),
            runtime: self.runtime.clone(),
            peers: self.peers.clone(),
            ledger: self.ledger.clone(),
            pending: self.pending.clone(),
            requests: self.requests.clone(),
            events: self.events.clone(),
        }
    }
}

/// Where a run stands after [`Service::take_turn`].
enum Turned {
    /// Go ahead, holding the turn of its request id (if it has one) until done.
    Go(Option<Turn>),
    /// An earlier try of its request id made this container.
    Done(Box<pb::ContainerSummary>),
}

impl Service {
    /// Waits (at most [`TURN_WAIT`]) for the turn of the run's request id, then looks for a
    /// container an earlier try made: in the whole view when `cluster`, else among this node's
    /// own (a forwarded run answers for its node only). A run without an id just goes.
    async fn take_turn(&self, spec: &ContainerSpec, cluster: bool) -> Result<Turned, Status> {
        let Some(id) = &spec.request else {
            return Ok(Turned::Go(None));
        };
        let turn = tokio::time::timeout(TURN_WAIT, self.requests.turn(id))
            .await
            .map_err(|_| {
                Status::from(PlaceError::Lost(format!(
                    "a run with request id {id} is still in progress on node {}",
                    self.me()
                )))
            })?;
        Ok(match self.state.by_request(id, cluster) {
            Some(c) => Turned::Done(Box::new(c)),
            None => Turned::Go(Some(turn)),
        })
    }
}

/// A run's constraints, parsed; at most [`MAX_CONSTRAINTS`].
fn run_constraints(list: &[String]) -> Result<Vec<Constraint>, Status> {
    if list.len() > MAX_CONSTRAINTS {
        return Err(berth_shared::ValidationError::new(
            "constraint",
            format!("at most {MAX_CONSTRAINTS}"),
        )
        .into());
    }
    Ok(list
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()?)
}

/// How long a run waits for an earlier try of its request id on this node. Bounded: two agents
/// each holding a turn of one id and forwarding it to the other would wait for each other.
const TURN_WAIT: Duration = Duration::from_secs(30);

/// The answer to a retry whose request id already made `c`: the placement and the container,
/// as the first try would have ended.
fn already_placed(c: pb::ContainerSummary) -> Response<BoxStream<pb::RunEvent>> {
    let events = [
        event(pb::run_event::Event::Placed(pb::Placed {
            node: c.node.clone(),
            reason: format!("already made by an earlier try of request {}", c.request_id),
        })),
        event(pb::run_event::Event::Started(pb::Started {
            container: Some(c),
        })),
    ];
    Response::new(Box::pin(futures::stream::iter(events.map(Ok))))
}

/// Whether a peer's row says it is alive (or only suspected), so an offer may reach it.
fn is_up(node: &pb::Node) -> bool {
    matches!(
        pb::NodeStatus::try_from(node.status),
        Ok(pb::NodeStatus::Alive | pb::NodeStatus::Suspect)
    )
}

/// Runs `place` with a progress sink relayed to the caller's stream as it comes, then sends
/// its error, if any, as the stream's last item. When the caller goes away, the relay ends and
/// the runtime sees its sink closed.
async fn relay_run<F>(tx: RunTx, place: impl FnOnce(Progress) -> F)
where
    F: std::future::Future<Output = Result<(), Status>>,
{
    let (progress, mut events) = mpsc::channel(STREAM_BUFFER);
    // The relay owns the receiving end, so once the caller is gone the sink is closed: the
    // runtime sees it, and no send waits for room that will never come.
    let relay_tx = tx.clone();
    let relay = async move {
        while let Some(ev) = events.recv().await {
            if relay_tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    };
    let (result, ()) = tokio::join!(place(progress), relay);
    if let Err(status) = result {
        let _ = tx.send(Err(status)).await;
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
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let gone = self.token_gone(&req);
        let (snapshot, mut rx) = self.state.subscribe();
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        let watching = self.metrics.watching();
        tokio::spawn(async move {
            let _watching = watching;
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
        Ok(Response::new(tokens::until_revoked(
            Box::pin(ReceiverStream::new(out)),
            gone,
        )))
    }

    type EventsStream = BoxStream<pb::ClusterEvent>;

    async fn events(
        &self,
        req: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let gone = self.token_gone(&req);
        let pb::EventsRequest {
            since_unix_ms,
            follow,
        } = req.into_inner();
        let (old, mut rx) = self.events.since(since_unix_ms);
        let mut shutdown = self.shutdown.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            for e in old {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            loop {
                let item = tokio::select! {
                    r = rx.recv() => r,
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let e = match item {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow to follow: say so rather than skip events silently.
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "{n} events were missed: the reader was too slow; ask again \
                                 with --since to read what is kept"
                            ))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(tokens::until_revoked(
            Box::pin(ReceiverStream::new(out)),
            gone,
        )))
    }

    type RunStream = BoxStream<pb::RunEvent>;

    async fn run(&self, req: Request<pb::RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        let (meta, _, req) = req.into_parts();
        let wire = req
            .spec
            .ok_or_else(|| berth_shared::ValidationError::new("spec", "is missing"))?;
        let mut spec = ContainerSpec::from_proto(&wire)?;
        if !req.request_id.is_empty() {
            berth_shared::request::check_request_id(&req.request_id)?;
            spec.request = Some(req.request_id.clone());
        }
        let placer = self.placer();
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
            let turn = match self.take_turn(&spec, false).await? {
                Turned::Go(turn) => turn,
                Turned::Done(c) => return Ok(already_placed(*c)),
            };
            // Constraints hold here too: the marker says who placed it, not that it may skip
            // them (an agent with the token could send the marker from anywhere).
            let own = self.state.node();
            for c in run_constraints(&req.constraints)? {
                if !c.holds(&me, &own.labels) {
                    return Err(Status::failed_precondition(format!(
                        "node {me} does not meet the constraint {c}"
                    )));
                }
            }
            self.runtime.ready()?;
            let from = from.to_str().unwrap_or("a peer").to_owned();
            tokio::spawn(relay_run(tx, move |progress| async move {
                let _turn = turn;
                let placed = pb::Placed {
                    node: me.clone(),
                    reason: format!("placed by {from}"),
                };
                let _ = progress
                    .send(event(pb::run_event::Event::Placed(placed)))
                    .await;
                placer
                    .run_here(&spec, &progress)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        tracing::info!(error = %e, image = %spec.image, "forwarded run failed");
                        Status::from(e)
                    })
            }));
            return Ok(Response::new(Box::pin(ReceiverStream::new(out))));
        }

        if spec.slot.is_some() {
            return Err(berth_shared::ValidationError::new(
                "slot",
                "is set by the cluster's reconciler; use `berth service create`",
            )
            .into());
        }
        let constraints = run_constraints(&req.constraints)?;
        if !req.node.is_empty() {
            berth_shared::constraint::validate_node_name("node", &req.node)?;
        }
        let strategy = match berth_shared::constraint::strategy_of(req.strategy)? {
            pb::Strategy::Binpack => Strategy::Binpack,
            _ => Strategy::Spread,
        };
        // One try of a request id at a time; a retry answers with what an earlier try made.
        let turn = match self.take_turn(&spec, true).await? {
            Turned::Go(turn) => turn,
            Turned::Done(c) => return Ok(already_placed(*c)),
        };
        // Names are unique in the cluster, not only on one Docker engine.
        if let Some(name) = &spec.name
            && let Ok(c) = self.state.resolve(name)
            && &c.name == name
        {
            let mut status = Status::already_exists(format!(
                "container name {name:?} is already in use on node {}",
                c.node
            ));
            berth_shared::reason::Reason::NameInUse.attach(&mut status);
            return Err(status);
        }
        let request = scheduler::Request {
            cpus: spec.cpus,
            memory: spec.memory_bytes,
            node: (!req.node.is_empty()).then(|| req.node.clone()),
            constraints,
            strategy,
            siblings: Default::default(),
            volumes: spec.options.named_volumes().map(str::to_owned).collect(),
            other_replicas_on: Default::default(),
        };
        // The node an earlier try was offered to goes first: it may hold the container, and
        // it answers for its own containers (the view here may not show it yet). It may also
        // count that container against itself, so it is tried even when ranking leaves it out.
        let earlier = turn
            .as_ref()
            .and_then(|t| t.offered_to.clone())
            .filter(|n| *n == me || self.state.peer(n).is_some_and(|p| is_up(&p)));
        let ranked = match (placer.rank(&request), earlier) {
            (Ok(mut ranked), Some(first)) => {
                ranked.retain(|n| *n != first);
                ranked.insert(0, first);
                ranked
            }
            (Ok(ranked), None) => ranked,
            (Err(_), Some(first)) => vec![first],
            (Err(e), None) => {
                let name = spec.name.as_deref().unwrap_or_default();
                placer
                    .events
                    .placement(None, name, &spec.image, e.to_string());
                return Err(e.into());
            }
        };
        tokio::spawn(relay_run(tx, move |progress| async move {
            let _turn = turn;
            placer
                .offer(&spec, &request, ranked, &meta, &progress)
                .await
                .map(|_| ())
                .map_err(Status::from)
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn stop(
        &self,
        req: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        let timeout = req.timeout_secs;
        if let Some(timeout) = timeout
            && timeout > MAX_STOP_TIMEOUT_SECS
        {
            return Err(berth_shared::ValidationError::new(
                "timeout",
                format!("{timeout}s is longer than the {MAX_STOP_TIMEOUT_SECS}s allowed"),
            )
            .into());
        }
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let fwd = pb::StopRequest {
                    container: c.id,
                    timeout_secs: req.timeout_secs,
                };
                return self
                    .hop(node, &meta)?
                    .unary(fwd, |mut peer, r| async move { peer.stop(r).await })
                    .await;
            }
        };
        let (after, was_running) = self.runtime.stop(&c.id, timeout).await?;
        tracing::info!(id = %c.id, name = %c.name, was_running, "container stopped");
        let container = match after {
            Some(fresh) => {
                self.state.apply(Change::Upsert(Box::new(fresh.clone())));
                self.state.container(&fresh.id).unwrap_or(fresh)
            }
            None => {
                self.state.apply(Change::Removed(c.id.clone()));
                c
            }
        };
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
                let fwd = pb::RemoveRequest {
                    container: c.id,
                    force: req.force,
                };
                return self
                    .hop(node, &meta)?
                    .unary(fwd, |mut peer, r| async move { peer.remove(r).await })
                    .await;
            }
        };
        self.runtime
            .remove(&c.id, req.force)
            .await
            .map_err(|e| match e {
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
                let fwd = pb::InspectRequest { container: c.id };
                return self
                    .hop(node, &meta)?
                    .unary(fwd, |mut peer, r| async move { peer.inspect(r).await })
                    .await;
            }
        };
        Ok(Response::new(self.runtime.inspect(&c).await?))
    }

    async fn create_service(
        &self,
        req: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::ServiceWriteResponse>, Status> {
        self.create_service_impl(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_service(
        &self,
        req: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::ServiceWriteResponse>, Status> {
        self.update_service_impl(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn remove_service(
        &self,
        req: Request<pb::RemoveServiceRequest>,
    ) -> Result<Response<pb::ServiceWriteResponse>, Status> {
        self.remove_service_impl(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        self.list_services_impl(req, &meta).await.map(Response::new)
    }

    async fn sync_services(
        &self,
        req: Request<pb::SyncServicesRequest>,
    ) -> Result<Response<pb::SyncServicesResponse>, Status> {
        self.sync_services_impl(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        self.create_token_impl(req).await.map(Response::new)
    }

    async fn list_tokens(
        &self,
        _req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        Ok(Response::new(self.list_tokens_impl()))
    }

    async fn keyring(
        &self,
        req: Request<pb::KeyringRequest>,
    ) -> Result<Response<pb::KeyringResponse>, Status> {
        self.keyring_impl(req).await.map(Response::new)
    }

    async fn update_node(
        &self,
        req: Request<pb::UpdateNodeRequest>,
    ) -> Result<Response<pb::UpdateNodeResponse>, Status> {
        self.update_node_impl(req).await.map(Response::new)
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        self.revoke_token_impl(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_objects(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ListObjectsResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        self.list_objects_impl(req, &meta).await.map(Response::new)
    }

    async fn remove_object(
        &self,
        req: Request<pb::RemoveObjectRequest>,
    ) -> Result<Response<pb::RemoveObjectResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        self.remove_object_impl(req, &meta).await.map(Response::new)
    }

    async fn container_stats(
        &self,
        req: Request<pb::ContainerStatsRequest>,
    ) -> Result<Response<pb::ContainerStatsResponse>, Status> {
        let (meta, _, req) = req.into_parts();
        self.container_stats_impl(req, &meta)
            .await
            .map(Response::new)
    }

    async fn stat_path(
        &self,
        req: Request<pb::StatPathRequest>,
    ) -> Result<Response<pb::PathStat>, Status> {
        self.stat_path_impl(req).await
    }

    type CopyFromStream = BoxStream<pb::CopyFromChunk>;

    async fn copy_from(
        &self,
        req: Request<pb::CopyFromRequest>,
    ) -> Result<Response<Self::CopyFromStream>, Status> {
        self.copy_from_impl(req).await
    }

    async fn copy_to(
        &self,
        req: Request<tonic::Streaming<pb::CopyToInput>>,
    ) -> Result<Response<pb::CopyToResponse>, Status> {
        self.copy_to_impl(req).await
    }

    type PullStream = BoxStream<pb::PullEvent>;

    async fn pull(
        &self,
        req: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let (meta, _, req) = req.into_parts();
        self.pull_impl(req, &meta).await.map(Response::new)
    }

    type ExecStream = BoxStream<pb::ExecOutput>;

    async fn exec(
        &self,
        req: Request<tonic::Streaming<pb::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        self.exec_impl(req).await
    }

    type LogsStream = BoxStream<pb::LogLine>;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let gone = self.token_gone(&req);
        let (meta, _, req) = req.into_parts();
        if req.since_unix_ms < 0 {
            return Err(berth_shared::ValidationError::new("since", "is before 1970").into());
        }
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let fwd = pb::LogsRequest {
                    container: c.id,
                    ..req
                };
                let lines = self
                    .hop(node, &meta)?
                    .stream(
                        fwd,
                        |mut peer, r| async move { peer.logs(r).await },
                        self.stopped(),
                    )
                    .await?;
                return Ok(Response::new(tokens::until_revoked(lines, gone)));
            }
        };
        let lines = self
            .runtime
            .logs(&c.id, &req)
            .await?
            .map(|line| line.map_err(Status::from))
            .take_until(self.stopped());
        Ok(Response::new(tokens::until_revoked(Box::pin(lines), gone)))
    }
}
