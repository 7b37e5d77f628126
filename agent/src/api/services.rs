//! The service RPCs: create, update (scale, new spec, rollback), remove, list, and the agents'
//! own anti-entropy sync. A write is validated, stamped and stored here, then pushed to a few
//! peers before it is answered.

use super::Service;
use crate::services::store::{self, StoreError};
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::service::{Mode, ServiceSpec, validate_service_name};
use tonic::Status;

/// A sync may carry at most this many pushed entries.
const MAX_PUSH: usize = 100;
/// How long `ListServices` waits for the responsible node's slot errors.
const PEER_ERRORS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// A peer's slot error is cut to this many bytes.
const MAX_PEER_ERROR: usize = 1024;

/// `e` cut to [`MAX_PEER_ERROR`] bytes at a character boundary.
fn bounded(e: &str) -> String {
    let mut end = e.len().min(MAX_PEER_ERROR);
    while !e.is_char_boundary(end) {
        end -= 1;
    }
    e[..end].to_owned()
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full { .. } => Status::resource_exhausted(e.to_string()),
            StoreError::Write { ref source, .. } => Status::internal(format!("{e}: {source}")),
            StoreError::Writer(_) => Status::internal(e.to_string()),
        }
    }
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("no service named {name:?}"))
}

fn new_id(name: &str, node: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(
        format!(
            "{name}\0{node}\0{}\0{:?}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            std::time::Instant::now()
        )
        .as_bytes(),
    );
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

impl Service {
    /// Pushes a write to peers and builds the answer: who stored it, and whether a newer write
    /// of the same service (taken elsewhere) won.
    async fn answer_write(&self, entry: pb::ServiceEntry) -> pb::ServiceWriteResponse {
        let (replicated_to, newer) = self.services.push(vec![entry.clone()]).await;
        let superseded_by = newer
            .iter()
            .filter(|n| n.name == entry.name)
            .filter(|n| store::newer(n.stamp.as_ref(), entry.stamp.as_ref()))
            .filter_map(|n| n.stamp.clone())
            .max_by_key(|s| (s.hlc, s.node.clone()));
        tracing::info!(service = %entry.name, version = entry.version, deleted = entry.deleted, peers = ?replicated_to, "service written");
        pb::ServiceWriteResponse {
            entry: Some(self.services.store.get(&entry.name).unwrap_or(entry)),
            replicated_to,
            superseded_by,
        }
    }

    pub(super) async fn create_service_impl(
        &self,
        req: pb::CreateServiceRequest,
    ) -> Result<pb::ServiceWriteResponse, Status> {
        let wire = req
            .spec
            .ok_or_else(|| ValidationError::new("spec", "is missing"))?;
        let spec = ServiceSpec::from_proto(&wire)?;
        let me = self.me().to_owned();
        let name = spec.name.clone();
        let entry = self
            .services
            .store
            .write_off_thread(name, move |current| {
                if let Some(c) = current.filter(|c| !c.deleted) {
                    return Err(Status::already_exists(format!(
                        "service {:?} already exists (id {})",
                        c.name, c.id
                    )));
                }
                let now = chrono::Utc::now().timestamp_millis();
                Ok(pb::ServiceEntry {
                    id: new_id(&spec.name, &me),
                    name: spec.name.clone(),
                    spec: Some(spec.to_proto()),
                    version: 1,
                    created_unix_ms: now,
                    ..Default::default()
                })
            })
            .await?;
        Ok(self.answer_write(entry).await)
    }

    pub(super) async fn update_service_impl(
        &self,
        req: pb::UpdateServiceRequest,
    ) -> Result<pb::ServiceWriteResponse, Status> {
        validate_service_name(&req.name)?;
        let changes = usize::from(req.spec.is_some())
            + usize::from(req.replicas.is_some())
            + usize::from(req.rollback);
        if changes == 0 {
            return Err(ValidationError::new("update", "names no change").into());
        }
        if changes > 1 {
            return Err(ValidationError::new(
                "update",
                "give one of a new spec, a replica count or rollback",
            )
            .into());
        }
        let spec = req.spec.as_ref().map(ServiceSpec::from_proto).transpose()?;
        if let Some(s) = &spec
            && s.name != req.name
        {
            return Err(ValidationError::new("name", "a service cannot be renamed").into());
        }
        if let Some(n) = req.replicas {
            berth_shared::service::parse_replicas(&n.to_string())?;
        }
        // Scaling to the count it has is not a write (as `docker service scale`).
        if let (Some(n), Some(current)) = (req.replicas, self.services.store.get(&req.name))
            && !current.deleted
            && current
                .spec
                .as_ref()
                .is_some_and(|s| s.mode != pb::ServiceMode::Global as i32 && s.replicas == n)
        {
            return Ok(pb::ServiceWriteResponse {
                entry: Some(current),
                ..Default::default()
            });
        }
        let name = req.name.clone();
        let entry = self
            .services
            .store
            .write_off_thread(name, move |current| {
                let current = current
                    .filter(|c| !c.deleted)
                    .ok_or_else(|| not_found(&req.name))?;
                let now_spec = current
                    .spec
                    .as_ref()
                    .map(ServiceSpec::from_proto)
                    .transpose()?
                    .ok_or_else(|| Status::internal("stored service has no spec"))?;
                let mut next = current.clone();
                if let Some(n) = req.replicas {
                    let Mode::Replicated(_) = now_spec.mode else {
                        return Err(ValidationError::new(
                            "replicas",
                            "a global service runs one replica per node; it cannot be scaled",
                        )
                        .into());
                    };
                    let mut s = now_spec;
                    s.mode = Mode::Replicated(n);
                    next.spec = Some(s.to_proto());
                } else if req.rollback {
                    let Some(prev) = current.previous.clone() else {
                        return Err(Status::failed_precondition(format!(
                            "service {:?} has no previous spec to roll back to",
                            current.name
                        )));
                    };
                    next.previous = current.spec.clone();
                    next.spec = Some(prev);
                    next.version += 1;
                    next.rolled_back = true;
                    next.paused = false;
                    next.message = "rolled back by request".into();
                } else if let Some(s) = &spec {
                    if *s == now_spec {
                        return Err(ValidationError::new("update", "names no change").into());
                    }
                    next.previous = current.spec.clone();
                    next.spec = Some(s.to_proto());
                    next.version += 1;
                    next.rolled_back = false;
                    next.paused = false;
                    next.message.clear();
                }
                Ok(next)
            })
            .await?;
        Ok(self.answer_write(entry).await)
    }

    pub(super) async fn remove_service_impl(
        &self,
        req: pb::RemoveServiceRequest,
    ) -> Result<pb::ServiceWriteResponse, Status> {
        validate_service_name(&req.name)?;
        let name = req.name.clone();
        let entry = self
            .services
            .store
            .write_off_thread(name, move |current| {
                let current = current
                    .filter(|c| !c.deleted)
                    .ok_or_else(|| not_found(&req.name))?;
                Ok::<_, Status>(pb::ServiceEntry {
                    id: current.id.clone(),
                    name: current.name.clone(),
                    version: current.version,
                    created_unix_ms: current.created_unix_ms,
                    deleted: true,
                    ..Default::default()
                })
            })
            .await?;
        Ok(self.answer_write(entry).await)
    }

    pub(super) async fn list_services_impl(
        &self,
        req: pb::ListServicesRequest,
        meta: &tonic::metadata::MetadataMap,
    ) -> Result<pb::ListServicesResponse, Status> {
        let name = (!req.name.is_empty()).then_some(req.name.as_str());
        if let Some(n) = name {
            validate_service_name(n)?;
        }
        let mut services = self.services.status(name);
        if let Some(n) = name
            && services.is_empty()
        {
            return Err(not_found(n));
        }
        // Why a slot failed is known to the node that tried to place it: ask it, once, unless
        // this call is itself such a question.
        if !crate::cluster::peers::is_forwarded(meta) {
            self.add_peer_errors(&mut services, meta).await;
        }
        Ok(pb::ListServicesResponse { services })
    }

    /// Fills the error of each slot that is not running from the node responsible for its
    /// service, when that is another node. A peer that does not answer within
    /// [`PEER_ERRORS_TIMEOUT`] leaves the errors empty; what it says is bounded.
    async fn add_peer_errors(
        &self,
        services: &mut [pb::ServiceStatus],
        meta: &tonic::metadata::MetadataMap,
    ) {
        let me = self.me().to_owned();
        let mut ask: std::collections::BTreeSet<String> = Default::default();
        for s in services.iter() {
            let waiting = s
                .slots
                .iter()
                .any(|x| x.state != "running" && x.error.is_empty());
            if waiting && !s.responsible.is_empty() && s.responsible != me {
                ask.insert(s.responsible.clone());
            }
        }
        let calls = ask.into_iter().filter_map(|node| {
            let peer = self.state.peer(&node)?;
            let mut client = self.peers.client(&peer).ok()?;
            let mut req =
                crate::cluster::peers::forwarded(pb::ListServicesRequest::default(), meta, &me);
            req.set_timeout(PEER_ERRORS_TIMEOUT);
            Some(async move {
                let answer =
                    tokio::time::timeout(PEER_ERRORS_TIMEOUT, client.list_services(req)).await;
                match answer {
                    Ok(Ok(r)) => Some((node, r.into_inner().services)),
                    Ok(Err(e)) => {
                        tracing::debug!(%node, error = %e.message(), "cannot ask for slot errors");
                        None
                    }
                    Err(_) => None,
                }
            })
        });
        let answers = futures::future::join_all(calls).await;
        for (node, theirs) in answers.into_iter().flatten() {
            for s in services.iter_mut().filter(|s| s.responsible == node) {
                let id = s.entry.as_ref().map(|e| e.id.as_str()).unwrap_or_default();
                let Some(t) = theirs
                    .iter()
                    .find(|t| t.entry.as_ref().is_some_and(|e| e.id == id))
                else {
                    continue;
                };
                for slot in s.slots.iter_mut().filter(|x| x.error.is_empty()) {
                    if let Some(e) = t.slots.iter().find(|x| x.slot == slot.slot) {
                        slot.error = bounded(&e.error);
                    }
                }
            }
        }
    }

    pub(super) async fn sync_services_impl(
        &self,
        req: pb::SyncServicesRequest,
    ) -> Result<pb::SyncServicesResponse, Status> {
        if req.push.len() > MAX_PUSH {
            return Err(ValidationError::new("push", format!("at most {MAX_PUSH} entries")).into());
        }
        if req.have.len() > store::MAX_SERVICES {
            return Err(ValidationError::new(
                "have",
                format!("at most {} entries", store::MAX_SERVICES),
            )
            .into());
        }
        if !req.push.is_empty() {
            self.services.store.merge_off_thread(req.push).await?;
        }
        Ok(pb::SyncServicesResponse {
            newer: self.services.store.newer_than(&req.have),
        })
    }
}
