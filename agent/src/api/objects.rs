//! `ListObjects` and `RemoveObject`: the volumes and networks Berth made, across the cluster.
//! The agent asked answers for itself and asks each alive peer once (with the hop marker, so
//! the peer answers for itself only); a peer that does not answer in time is listed as failed.

use super::{BoxStream, Service};
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::options::validate_object_name;
use futures::StreamExt;
use std::time::Duration;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// How long a peer may take to answer for its objects.
const PEER_WAIT: Duration = Duration::from_secs(5);

fn kind_of(kind: i32, image: bool) -> Result<pb::ObjectKind, Status> {
    match pb::ObjectKind::try_from(kind) {
        Ok(k @ (pb::ObjectKind::Volume | pb::ObjectKind::Network)) => Ok(k),
        Ok(k @ pb::ObjectKind::Image) if image => Ok(k),
        _ if image => Err(ValidationError::new("kind", "is not volume, network or image").into()),
        _ => Err(ValidationError::new("kind", "is not volume or network").into()),
    }
}

fn failure(node: &str, s: &Status) -> pb::NodeFailure {
    pb::NodeFailure {
        node: node.to_owned(),
        error: s.message().chars().take(1024).collect(),
    }
}

impl Service {
    /// Asks `node` once, with the hop marker, for at most [`PEER_WAIT`]: its answer, or why
    /// there is none.
    async fn ask_peer<M, R, F, Fut>(
        &self,
        node: pb::Node,
        meta: &MetadataMap,
        msg: M,
        call: F,
    ) -> Result<R, Status>
    where
        F: FnOnce(berth_shared::client::Client, tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let hop = self.hop(Box::new(node), meta)?;
        match tokio::time::timeout(PEER_WAIT, hop.unary(msg, call)).await {
            Ok(answer) => answer.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("did not answer in 5s")),
        }
    }

    /// The nodes a call is for: this one only when forwarded, else the named one or every
    /// alive node. `None` stands for this node.
    fn object_targets(
        &self,
        node: &str,
        meta: &MetadataMap,
    ) -> Result<Vec<Option<pb::Node>>, Status> {
        if node.len() > 256 {
            return Err(ValidationError::new("node", "too long").into());
        }
        if crate::cluster::peers::is_forwarded(meta) || node == self.me() {
            return Ok(vec![None]);
        }
        if !node.is_empty() {
            let peer = self.state.peer(node).ok_or_else(|| {
                Status::not_found(format!("no node named {node:?} in the cluster"))
            })?;
            return Ok(vec![Some(peer)]);
        }
        let mut targets = vec![None];
        targets.extend(
            self.state
                .nodes()
                .into_iter()
                .filter(|n| n.name != self.me() && n.status == pb::NodeStatus::Alive as i32)
                .map(Some),
        );
        Ok(targets)
    }

    /// The nodes a cluster-wide ask leaves out because gossip has not heard from them lately
    /// (suspect or down; a node that left is gone on purpose), named so that what they hold
    /// does not vanish from the answer without a word.
    fn unasked(&self, node: &str, meta: &MetadataMap) -> Vec<pb::NodeFailure> {
        if crate::cluster::peers::is_forwarded(meta) || !node.is_empty() {
            return Vec::new();
        }
        self.state
            .nodes()
            .into_iter()
            .filter_map(|n| {
                let why = match pb::NodeStatus::try_from(n.status).ok()? {
                    pb::NodeStatus::Suspect => "suspect",
                    pb::NodeStatus::Down => "down",
                    _ => return None,
                };
                Some(pb::NodeFailure {
                    node: n.name,
                    error: format!("not asked: the node is {why}"),
                })
            })
            .collect()
    }

    pub(super) async fn list_objects_impl(
        &self,
        req: pb::ListObjectsRequest,
        meta: &MetadataMap,
    ) -> Result<pb::ListObjectsResponse, Status> {
        let kind = kind_of(req.kind, true)?;
        let asks = self
            .object_targets(&req.node, meta)?
            .into_iter()
            .map(|target| async move {
                match target {
                    None => self
                        .runtime
                        .list_objects(kind)
                        .await
                        .map_err(|e| failure(self.me(), &e.into())),
                    Some(node) => {
                        let name = node.name.clone();
                        let msg = pb::ListObjectsRequest {
                            kind: kind as i32,
                            node: name.clone(),
                        };
                        self.ask_peer(node, meta, msg, |mut p, r| async move {
                            p.list_objects(r).await
                        })
                        .await
                        .map(|r| r.objects)
                        .map_err(|s| failure(&name, &s))
                    }
                }
            });
        let mut out = pb::ListObjectsResponse {
            failed: self.unasked(&req.node, meta),
            ..Default::default()
        };
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(objects) => out.objects.extend(objects),
                Err(f) => out.failed.push(f),
            }
        }
        out.objects
            .sort_by(|a, b| (&a.name, &a.node).cmp(&(&b.name, &b.node)));
        Ok(out)
    }

    pub(super) async fn remove_object_impl(
        &self,
        req: pb::RemoveObjectRequest,
        meta: &MetadataMap,
    ) -> Result<pb::RemoveObjectResponse, Status> {
        let kind = kind_of(req.kind, false)?;
        let word = if kind == pb::ObjectKind::Volume {
            "volume"
        } else {
            "network"
        };
        validate_object_name("name", word, &req.name)?;
        let name = req.name.as_str();
        let asks = self
            .object_targets(&req.node, meta)?
            .into_iter()
            .map(|target| async move {
                match target {
                    None => self
                        .runtime
                        .remove_object(kind, name)
                        .await
                        .map(|removed| removed.then(|| self.me().to_owned()))
                        .map_err(|e| failure(self.me(), &e.into())),
                    Some(node) => {
                        let peer = node.name.clone();
                        let msg = pb::RemoveObjectRequest {
                            kind: kind as i32,
                            name: name.to_owned(),
                            node: peer.clone(),
                        };
                        let answer = self
                            .ask_peer(node, meta, msg, |mut p, r| async move {
                                p.remove_object(r).await
                            })
                            .await;
                        match answer {
                            Ok(r) => Ok(r.removed_from.into_iter().next()),
                            // "none here" from a peer is not a failure.
                            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                            Err(s) => Err(failure(&peer, &s)),
                        }
                    }
                }
            });
        let mut out = pb::RemoveObjectResponse::default();
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(Some(node)) => out.removed_from.push(node),
                Ok(None) => {}
                Err(f) => out.failed.push(f),
            }
        }
        if out.removed_from.is_empty() && out.failed.is_empty() {
            let place = if req.node.is_empty() {
                "any node".to_owned()
            } else {
                format!("node {}", req.node)
            };
            return Err(Status::not_found(format!(
                "no {word} named {name} made by berth on {place}"
            )));
        }
        if !out.removed_from.is_empty() {
            tracing::info!(%word, %name, nodes = ?out.removed_from, "removed across the cluster");
        }
        Ok(out)
    }
}

impl Service {
    /// `Pull`: on this node, one node, or every alive node (`all`), each node's progress
    /// tagged with its name; a node that fails says why in its last event, and the others
    /// go on.
    pub(super) async fn pull_impl(
        &self,
        req: pb::PullRequest,
        meta: &MetadataMap,
    ) -> Result<BoxStream<pb::PullEvent>, Status> {
        let image = berth_shared::image::ImageRef::parse(&req.image)?;
        let targets = if !req.all && req.node.is_empty() {
            vec![None]
        } else {
            let node = if req.all { "" } else { req.node.as_str() };
            self.object_targets(node, meta)?
        };
        let mut streams: Vec<BoxStream<pb::PullEvent>> = Vec::new();
        for target in targets {
            let Some(peer) = target else {
                streams.push(self.pull_here(image.clone()));
                continue;
            };
            let name = peer.name.clone();
            let msg = pb::PullRequest {
                image: req.image.clone(),
                node: name.clone(),
                all: false,
            };
            let upstream = match self.hop(Box::new(peer), meta) {
                Ok(hop) => {
                    hop.stream(
                        msg,
                        |mut p, r| async move { p.pull(r).await },
                        self.stopped(),
                    )
                    .await
                }
                Err(s) => Err(s),
            };
            let events: BoxStream<pb::PullEvent> =
                match upstream {
                    Ok(s) => Box::pin(s.map(move |item| {
                        Ok(item.unwrap_or_else(|s| pull_error(&name, s.message())))
                    })),
                    Err(s) => Box::pin(futures::stream::iter([Ok(pull_error(&name, s.message()))])),
                };
            streams.push(events);
        }
        Ok(Box::pin(futures::stream::select_all(streams)))
    }

    /// This node's pull as events, relayed as they come.
    fn pull_here(&self, image: berth_shared::image::ImageRef) -> BoxStream<pb::PullEvent> {
        let runtime = self.runtime.clone();
        let me = self.me().to_owned();
        let (tx, rx) = tokio::sync::mpsc::channel(super::STREAM_BUFFER);
        tokio::spawn(async move {
            let (progress, mut events) = tokio::sync::mpsc::channel(super::STREAM_BUFFER);
            let relay_tx = tx.clone();
            let node = me.clone();
            let relay = async move {
                while let Some(ev) = events.recv().await {
                    if let pb::RunEvent {
                        event: Some(pb::run_event::Event::Pull(p)),
                    } = ev
                    {
                        let out = pb::PullEvent {
                            node: node.clone(),
                            event: Some(pb::pull_event::Event::Progress(p)),
                        };
                        if relay_tx.send(Ok(out)).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let shown = image.to_string();
            let pull = async move { runtime.pull_image(&image, &progress).await };
            let (result, ()) = tokio::join!(pull, relay);
            let last = match result {
                Ok(id) => {
                    tracing::info!(image = %shown, "image pulled");
                    pb::PullEvent {
                        node: me,
                        event: Some(pb::pull_event::Event::Done(id)),
                    }
                }
                Err(e) => pull_error(&me, &e.to_string()),
            };
            let _ = tx.send(Ok(last)).await;
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

fn pull_error(node: &str, message: &str) -> pb::PullEvent {
    pb::PullEvent {
        node: node.to_owned(),
        event: Some(pb::pull_event::Event::Error(
            message.chars().take(1024).collect(),
        )),
    }
}

impl Service {
    /// `ContainerStats`: the running containers of this node (their usage as the stats loop
    /// measured it) and, once each, of every alive peer, so every figure is its owner's.
    pub(super) async fn container_stats_impl(
        &self,
        req: pb::ContainerStatsRequest,
        meta: &MetadataMap,
    ) -> Result<pb::ContainerStatsResponse, Status> {
        let asks = self
            .object_targets(&req.node, meta)?
            .into_iter()
            .map(|target| async move {
                match target {
                    None => Ok(self
                        .state
                        .snapshot()
                        .containers
                        .into_iter()
                        .filter(|c| c.node == self.me() && c.state == "running")
                        .collect::<Vec<_>>()),
                    Some(node) => {
                        let name = node.name.clone();
                        let msg = pb::ContainerStatsRequest { node: name.clone() };
                        self.ask_peer(node, meta, msg, |mut p, r| async move {
                            p.container_stats(r).await
                        })
                        .await
                        .map(|r| r.containers)
                        .map_err(|s| failure(&name, &s))
                    }
                }
            });
        let mut out = pb::ContainerStatsResponse {
            failed: self.unasked(&req.node, meta),
            ..Default::default()
        };
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(c) => out.containers.extend(c),
                Err(f) => out.failed.push(f),
            }
        }
        out.containers
            .sort_by(|a, b| (&a.name, &a.node).cmp(&(&b.name, &b.node)));
        Ok(out)
    }
}
