//! The placer: rank the nodes, then offer a container to each in turn until one starts it.
//!
//! Both `berth run` (through the API) and the service reconciler place through here. The
//! entry agent ranks from its view; each offer goes to this node's own runtime (after its
//! ledger admits) or to a peer as a forwarded `Run` pinned to it, with its constraints. A
//! refusal before anything was created (`RESOURCE_EXHAUSTED`, `UNAVAILABLE`,
//! `FAILED_PRECONDITION`) or a peer never connected to moves on to the next candidate; for a run
//! with a request id, an answer lost once the peer may have started it is [`PlaceError::Lost`]
//! (the client retries the same id). Any other failure is the caller's. Progress goes to a
//! [`Progress`] sink as plain events.

use crate::cluster::peers::{PeerPool, forwarded, peer_error};
use crate::error::AgentError;
use crate::placement::ledger::{Ledger, Pending};
use crate::placement::requests::Requests;
use crate::placement::scheduler::{self, NoPlacement, Rejection, Strategy};
use crate::runtime::{Progress, Runtime};
use crate::state::{Change, State};
use berth_proto::v1 as pb;
use berth_shared::client::{Transport, transport_failure};
use berth_shared::reason::Reason;
use berth_shared::spec::ContainerSpec;
use futures::StreamExt;
use std::sync::Arc;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Why a placement did not start a container.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// `--node` names a node the view does not know.
    #[error("{0}")]
    UnknownNode(NoPlacement),
    /// No node is up to run it (not "full"): a retry later may work.
    #[error("{0}")]
    NothingUp(NoPlacement),
    /// Every candidate was rejected, or refused when offered.
    #[error("{0}")]
    Exhausted(NoPlacement),
    /// This node failed to run it.
    #[error(transparent)]
    Local(AgentError),
    /// A peer failed to run it, with the status it answered.
    #[error("{message}")]
    Peer {
        code: tonic::Code,
        message: String,
        /// The reason the peer's status carried, passed on.
        reason: Option<Reason>,
    },
    /// The connection to the node it was offered to broke once the request may have been
    /// sent: it may have started there. A retry with the same request id asks that node first.
    #[error("{0}")]
    Lost(String),
    /// The caller stopped listening.
    #[error("the caller went away")]
    Cancelled,
}

impl From<PlaceError> for Status {
    fn from(e: PlaceError) -> Self {
        let msg = e.to_string();
        match e {
            PlaceError::UnknownNode(_) => Status::not_found(msg),
            PlaceError::NothingUp(_) => Status::unavailable(msg),
            PlaceError::Exhausted(np) => {
                let mut s = Status::resource_exhausted(msg);
                np.reason().attach(&mut s);
                s
            }
            PlaceError::Local(e) => e.into(),
            PlaceError::Peer {
                code,
                message,
                reason,
            } => {
                let mut s = Status::new(code, message);
                if let Some(r) = reason {
                    r.attach(&mut s);
                }
                s
            }
            PlaceError::Lost(_) => {
                let mut s = Status::unavailable(msg);
                s.metadata_mut().insert(
                    berth_shared::request::RETRY_METADATA,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                s
            }
            PlaceError::Cancelled => Status::cancelled(msg),
        }
    }
}

/// How one offer to one node ended.
enum Offer {
    Started(Box<pb::ContainerSummary>),
    /// The node refused before creating anything: try the next one. True when it was only
    /// short of room.
    Refused(String, bool),
    Failed(PlaceError),
}

fn event(e: pb::run_event::Event) -> pb::RunEvent {
    pb::RunEvent { event: Some(e) }
}

/// What a forwarded `Run` carries besides the node: the same for every peer offered.
struct Forward<'a> {
    spec: pb::ContainerSpec,
    constraints: Vec<String>,
    request_id: Option<&'a str>,
}

/// Everything a placement needs; cheap to clone into a task.
#[derive(Clone)]
pub struct Placer {
    pub state: Arc<State>,
    pub runtime: Arc<dyn Runtime>,
    pub peers: Arc<PeerPool>,
    pub ledger: Arc<Ledger>,
    pub pending: Arc<Pending>,
    pub requests: Arc<Requests>,
    /// Where placement decisions are told (`berth events`).
    pub events: Arc<crate::events::EventLog>,
}

impl Placer {
    fn me(&self) -> &str {
        self.runtime.node()
    }

    /// The nodes that may take `request`, best first, from the view plus this agent's pending
    /// placements; or why none may.
    pub fn rank(&self, request: &scheduler::Request) -> Result<Vec<String>, PlaceError> {
        let candidates = self.pending.candidates(&self.state);
        scheduler::rank(&candidates, request).map_err(|e| {
            let unknown_pin = request
                .node
                .as_ref()
                .is_some_and(|pin| !candidates.iter().any(|c| &c.name == pin));
            if unknown_pin {
                PlaceError::UnknownNode(e)
            } else if candidates
                .iter()
                .all(|c| c.schedulable.is_err() && !c.drained)
            {
                // Nothing up. Drained nodes are up: their reason (and the way back) is the
                // answer, not "no node is up".
                PlaceError::NothingUp(e)
            } else {
                PlaceError::Exhausted(e)
            }
        })
    }

    /// Offers the container to each ranked node in turn; announces each offer as `Placed`.
    pub async fn offer(
        &self,
        spec: &ContainerSpec,
        request: &scheduler::Request,
        ranked: Vec<String>,
        meta: &MetadataMap,
        events: &Progress,
    ) -> Result<pb::ContainerSummary, PlaceError> {
        let strategy_word = match request.strategy {
            Strategy::Spread => "spread",
            Strategy::Binpack => "binpack",
        };
        let forward = Forward {
            spec: spec.to_proto(),
            // The peer checks them against itself: its labels may have changed since the view
            // here was taken, and a run marked as forwarded is not exempt from them.
            constraints: request.constraints.iter().map(|c| c.to_string()).collect(),
            request_id: spec.request.as_deref(),
        };
        let mut refused: Vec<Rejection> = Vec::new();
        let total = ranked.len();
        for (i, name) in ranked.into_iter().enumerate() {
            let reason = if request.node.is_some() {
                "pinned with --node".to_owned()
            } else {
                format!("{strategy_word}: candidate {} of {total}", i + 1)
            };
            let placed = pb::Placed {
                node: name.clone(),
                reason: reason.clone(),
            };
            if events
                .send(event(pb::run_event::Event::Placed(placed)))
                .await
                .is_err()
            {
                return Err(PlaceError::Cancelled);
            }
            if let Some(id) = &spec.request {
                self.requests.offered(id, &name);
            }
            let key = self.pending.add(&name, spec.cpus, spec.memory_bytes);
            let outcome = if name == self.me() {
                self.offer_here(spec, events).await
            } else {
                match self.state.peer(&name) {
                    Some(node) => self.offer_peer(&node, &forward, meta, events, key).await,
                    None => Offer::Refused("left the view".into(), false),
                }
            };
            match outcome {
                Offer::Started(c) => {
                    if name == self.me() {
                        self.pending.remove(key);
                    }
                    let mut why = reason;
                    for r in &refused {
                        why.push_str(&format!("; {} refused: {}", r.node, r.why));
                    }
                    self.events.placement(Some(&c), "", &spec.image, why);
                    return Ok(*c);
                }
                Offer::Failed(e) => {
                    self.pending.remove(key);
                    return Err(e);
                }
                Offer::Refused(why, short_of_room) => {
                    self.pending.remove(key);
                    tracing::info!(node = %name, reason = %why, "node refused the container; trying the next");
                    refused.push(Rejection {
                        node: name,
                        why,
                        short_of_room,
                    });
                }
            }
        }
        let e = PlaceError::Exhausted(NoPlacement { rejected: refused });
        let name = spec.name.as_deref().unwrap_or_default();
        self.events
            .placement(None, name, &spec.image, e.to_string());
        Err(e)
    }

    /// Admits against this node's ledger, then pulls, creates and starts; announces `Started`.
    pub async fn run_here(
        &self,
        spec: &ContainerSpec,
        events: &Progress,
    ) -> Result<pb::ContainerSummary, AgentError> {
        let admission = self
            .ledger
            .admit(&self.state, spec.cpus, spec.memory_bytes)
            .map_err(AgentError::Exhausted)?;
        let summary = self.runtime.run(spec, events).await?;
        tracing::info!(id = %summary.id, name = %summary.name, image = %summary.image, "container started");
        self.state.apply(Change::Upsert(Box::new(summary.clone())));
        drop(admission);
        let _ = events
            .send(event(pb::run_event::Event::Started(pb::Started {
                container: Some(summary.clone()),
            })))
            .await;
        Ok(summary)
    }

    async fn offer_here(&self, spec: &ContainerSpec, events: &Progress) -> Offer {
        match self.run_here(spec, events).await {
            Ok(c) => Offer::Started(Box::new(c)),
            Err(AgentError::Exhausted(why)) => Offer::Refused(why, true),
            Err(e) => {
                tracing::info!(error = %e, image = %spec.image, "run failed");
                Offer::Failed(PlaceError::Local(e))
            }
        }
    }

    /// Offers to a peer. The peer's own refusals before it created anything move on to the
    /// next node, and so does a connection never made. A connection lost once the request may
    /// have been sent is a failure for a run with a request id: the peer may have started it,
    /// and the client's retry (same id) asks that peer first instead of making a second copy.
    async fn offer_peer(
        &self,
        node: &pb::Node,
        forward: &Forward<'_>,
        meta: &MetadataMap,
        events: &Progress,
        key: u64,
    ) -> Offer {
        let request_id = forward.request_id;
        let failed = |s: Status| {
            Offer::Failed(PlaceError::Peer {
                code: s.code(),
                message: s.message().to_owned(),
                reason: Reason::of(&s),
            })
        };
        let lost = || {
            Offer::Failed(PlaceError::Lost(format!(
                "lost the connection to node {} while it ran the container, which may have \
                 started there; a retry with the same request id asks node {} first",
                node.name, node.name
            )))
        };
        // How a failure before `Created` ends this offer.
        let before_created = |s: Status| match transport_failure(&s) {
            Some(Transport::NotConnected) => {
                Offer::Refused(peer_error(node, s).message().to_owned(), false)
            }
            Some(Transport::Lost) if request_id.is_some() => lost(),
            // The node is busy with an earlier try of this id: the retry asks it again.
            None if request_id.is_some() && berth_shared::request::asks_for_retry(&s) => lost(),
            _ => {
                let reason = Reason::of(&s);
                let s = peer_error(node, s);
                match s.code() {
                    tonic::Code::ResourceExhausted
                    | tonic::Code::Unavailable
                    | tonic::Code::FailedPrecondition => {
                        Offer::Refused(s.message().to_owned(), reason == Some(Reason::NoRoom))
                    }
                    _ => failed(s),
                }
            }
        };
        let mut client = match self.peers.client(node) {
            Ok(c) => c,
            Err(s) => return Offer::Refused(s.message().to_owned(), false),
        };
        let req = pb::RunRequest {
            spec: Some(forward.spec.clone()),
            node: node.name.clone(),
            constraints: forward.constraints.clone(),
            strategy: pb::Strategy::Unspecified as i32,
            request_id: request_id.unwrap_or_default().to_owned(),
        };
        let mut stream = match client.run(forwarded(req, meta, self.me())).await {
            Ok(s) => s.into_inner(),
            Err(s) => return before_created(s),
        };
        let mut created = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => match &ev.event {
                    // We announced the placement ourselves.
                    Some(pb::run_event::Event::Placed(_)) => {}
                    Some(pb::run_event::Event::Created(_)) => {
                        created = true;
                        let _ = events.send(ev).await;
                    }
                    Some(pb::run_event::Event::Started(s)) => {
                        let Some(c) = s.container.clone() else {
                            return failed(Status::internal(format!(
                                "node {} said started without the container",
                                node.name
                            )));
                        };
                        self.pending.started(key, &c.id);
                        let _ = events.send(ev).await;
                        return Offer::Started(Box::new(c));
                    }
                    _ => {
                        let _ = events.send(ev).await;
                    }
                },
                // Once the run is under way, only an admission refusal says for sure that
                // nothing was made; with a request id anything else may have left a container
                // there, so the retry asks that node instead of making one elsewhere.
                Err(s)
                    if request_id.is_some()
                        && s.code() != tonic::Code::ResourceExhausted
                        && (transport_failure(&s).is_some()
                            || matches!(
                                s.code(),
                                tonic::Code::Unavailable | tonic::Code::FailedPrecondition
                            )) =>
                {
                    return lost();
                }
                Err(s) if !created => return before_created(s),
                // Lost once created, too: the retry asks the node, which knows.
                Err(s)
                    if request_id.is_some() && transport_failure(&s) == Some(Transport::Lost) =>
                {
                    return lost();
                }
                Err(s) => return failed(peer_error(node, s)),
            }
        }
        failed(Status::unavailable(format!(
            "node {} ended the run without an answer",
            node.name
        )))
    }

    /// Removes a container wherever it runs (killing it first): through this node's runtime,
    /// or forwarded once to its owner. A container already gone is not an error.
    pub async fn remove(&self, id: &str, node: &str) -> Result<(), Status> {
        if node == self.me() {
            self.runtime.remove(id, true).await?;
            self.state.apply(Change::Removed(id.to_owned()));
            return Ok(());
        }
        let peer = self
            .state
            .peer(node)
            .ok_or_else(|| Status::unavailable(format!("node {node} left the view")))?;
        let mut client = self.peers.client(&peer)?;
        let req = pb::RemoveRequest {
            container: id.to_owned(),
            force: true,
        };
        match client
            .remove(forwarded(req, &MetadataMap::new(), self.me()))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }
}
