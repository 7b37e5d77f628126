//! Talking to other agents: the peer connection pool, and the hop marker that keeps forwarding
//! to one step.

use berth_proto::v1 as pb;
use berth_shared::client::{AuthInterceptor, Client, ClientTls};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Metadata key on a forwarded request: the node that forwarded it. A request that carries it is
/// served locally or refused, never forwarded again.
pub const HOP_HEADER: &str = "x-berth-hop";
/// How long connecting to a peer may take before it counts as unreachable.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Clients of other agents, one per node name and address, created lazily and kept. With TLS,
/// a peer is dialled as the node its gossip row names: its certificate must carry that
/// node's name (see `shared::trust`), so a row that points a node at another address gets
/// nothing from us, and our own certificate proves who we are (no token is sent).
pub struct PeerPool {
    tls: Option<Arc<crate::tls::AgentTls>>,
    clients: Mutex<HashMap<(String, String), Client>>,
}

impl PeerPool {
    pub fn new(tls: Option<Arc<crate::tls::AgentTls>>) -> Self {
        Self {
            tls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every cached client, so the next call to a peer connects with the TLS settings
    /// of now (after a keyring change). Calls in flight keep their connections.
    pub fn reset(&self) {
        lock(&self.clients).clear();
    }

    /// A client for `node`, or `UNAVAILABLE` at once when gossip says it is down or gone.
    pub fn client(&self, node: &pb::Node) -> Result<Client, Status> {
        let status = pb::NodeStatus::try_from(node.status).unwrap_or(pb::NodeStatus::Unspecified);
        if matches!(status, pb::NodeStatus::Down | pb::NodeStatus::Left) {
            let word = if status == pb::NodeStatus::Left {
                "left the cluster"
            } else {
                "down"
            };
            return Err(Status::unavailable(format!(
                "node {} is {word} (last heard from {}s ago); its containers cannot be reached",
                node.name,
                node.last_seen_ms_ago / 1000
            )));
        }
        let key = (node.name.clone(), node.address.clone());
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let endpoint = berth_shared::client::endpoint(&node.address)
            .map_err(|e| Status::internal(format!("node {} has a bad address: {e}", node.name)))?
            .connect_timeout(PEER_CONNECT_TIMEOUT);
        let channel = match &self.tls {
            None => endpoint.connect_lazy(),
            Some(tls) => ClientTls::new(
                tls.client(),
                &berth_shared::trust::node_server_name(&node.name),
                format!("node {}", node.name),
                &tls.clusters(),
            )
            .channel_lazy(&endpoint),
        };
        let client =
            pb::berth_client::BerthClient::with_interceptor(channel, AuthInterceptor::default())
                .max_decoding_message_size(crate::MAX_REQUEST_BYTES);
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Whether a request was forwarded by another agent.
pub fn is_forwarded(meta: &MetadataMap) -> bool {
    meta.get(HOP_HEADER).is_some()
}

/// A request to a peer carrying the hop marker and the caller's deadline.
pub fn forwarded<T>(msg: T, incoming: &MetadataMap, from_node: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = incoming.get("grpc-timeout") {
        req.metadata_mut().insert("grpc-timeout", t.clone());
    }
    if let Ok(v) = from_node.parse() {
        req.metadata_mut().insert(HOP_HEADER, v);
    }
    req
}

/// Turns a peer's failure to answer at all into a status that names it.
pub fn peer_error(node: &pb::Node, s: Status) -> Status {
    match berth_shared::client::transport_failure(&s) {
        Some(_) => Status::unavailable(format!(
            "node {} at {} did not answer: {}",
            node.name,
            node.address,
            s.message()
        )),
        _ => s,
    }
}
