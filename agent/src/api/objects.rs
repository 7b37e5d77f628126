//! `ListObjects` and `RemoveObject`: the volumes and networks Berth made, across the cluster.
//! The agent asked answers for itself and asks each alive peer once (with the hop marker, so
//! the peer answers for itself only); a peer that does not answer in time is listed as failed.

use super::Service;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::options::validate_object_name;
use std::time::Duration;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// How long a peer may take to answer for its objects.
const PEER_WAIT: Duration = Duration::from_secs(5);

fn kind_of(kind: i32) -> Result<pb::ObjectKind, Status> {
    match pb::ObjectKind::try_from(kind) {
        Ok(k @ (pb::ObjectKind::Volume | pb::ObjectKind::Network)) => Ok(k),
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

    pub(super) async fn list_objects_impl(
        &self,
        req: pb::ListObjectsRequest,
        meta: &MetadataMap,
    ) -> Result<pb::ListObjectsResponse, Status> {
        let kind = kind_of(req.kind)?;
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
                        let hop = self
                            .hop(Box::new(node), meta)
                            .map_err(|s| failure(&name, &s))?;
                        let call =
                            hop.unary(msg, |mut p, r| async move { p.list_objects(r).await });
                        match tokio::time::timeout(PEER_WAIT, call).await {
                            Ok(Ok(r)) => Ok(r.into_inner().objects),
                            Ok(Err(s)) => Err(failure(&name, &s)),
                            Err(_) => Err(failure(
                                &name,
                                &Status::deadline_exceeded("did not answer in 5s"),
                            )),
                        }
                    }
                }
            });
        let mut out = pb::ListObjectsResponse::default();
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
        let kind = kind_of(req.kind)?;
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
                        let hop = self
                            .hop(Box::new(node), meta)
                            .map_err(|s| failure(&peer, &s))?;
                        let call =
                            hop.unary(msg, |mut p, r| async move { p.remove_object(r).await });
                        match tokio::time::timeout(PEER_WAIT, call).await {
                            Ok(Ok(r)) => Ok(r.into_inner().removed_from.into_iter().next()),
                            // "none here" from a peer is not a failure.
                            Ok(Err(s)) if s.code() == tonic::Code::NotFound => Ok(None),
                            Ok(Err(s)) => Err(failure(&peer, &s)),
                            Err(_) => Err(failure(
                                &peer,
                                &Status::deadline_exceeded("did not answer in 5s"),
                            )),
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
