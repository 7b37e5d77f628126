//! `Keyring`: the cluster secrets of every alive agent, listed or changed at once. The agent
//! asked changes its own keyring, then forwards the call once to each alive peer (with the hop
//! marker, as its own agent certificate) and answers with every node's result. A peer that
//! fails is named in the answer; the console stops a rotation there.

use super::Service;
use crate::cluster::peers::{forwarded, is_forwarded};
use crate::keyring::KeyringError;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use tonic::{Request, Status};

/// How long a peer may take to change its keyring.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Service {
    /// Changes this agent's keyring. A change writes and fsyncs the keyring file, so it runs
    /// on a blocking thread (the console's embedded agent runs on a single one).
    async fn keyring_here(&self, req: &pb::KeyringRequest) -> pb::NodeKeyring {
        let action = pb::KeyringAction::try_from(req.action).unwrap_or_default();
        let keyring = self.keyring.clone();
        let secret = req.secret.clone();
        let changed = tokio::task::spawn_blocking(move || match action {
            pb::KeyringAction::List => Ok(keyring.keys()),
            pb::KeyringAction::Install => keyring.install(&secret),
            pb::KeyringAction::Use => keyring.use_secret(&secret),
            pb::KeyringAction::Remove => keyring.remove(&secret),
            pb::KeyringAction::Unspecified => {
                Err(KeyringError::Refused("no keyring action".into()))
            }
        })
        .await;
        let keyring = &self.keyring;
        let done = changed.unwrap_or_else(|e| Err(KeyringError::Refused(e.to_string())));
        match done {
            Ok(keys) => {
                if action != pb::KeyringAction::List {
                    tracing::info!(action = ?action, keys = ?keys.fingerprints(), "keyring changed");
                }
                pb::NodeKeyring {
                    node: self.me().to_owned(),
                    keys: keys.fingerprints(),
                    error: String::new(),
                }
            }
            Err(e) => pb::NodeKeyring {
                node: self.me().to_owned(),
                keys: keyring.keys().fingerprints(),
                error: e.to_string(),
            },
        }
    }

    pub(super) async fn keyring_impl(
        &self,
        req: Request<pb::KeyringRequest>,
    ) -> Result<pb::KeyringResponse, Status> {
        let (meta, _, req) = req.into_parts();
        let action = pb::KeyringAction::try_from(req.action).unwrap_or_default();
        if action == pb::KeyringAction::Unspecified {
            return Err(
                ValidationError::new("action", "must be list, install, use or remove").into(),
            );
        }
        if action != pb::KeyringAction::List {
            berth_shared::token::check_agent_token(&req.secret)
                .map_err(|e| Status::from(ValidationError::new("secret", e.to_string())))?;
        }
        let mine = self.keyring_here(&req).await;
        if is_forwarded(&meta) {
            return Ok(pb::KeyringResponse { nodes: vec![mine] });
        }
        let all: Vec<pb::Node> = self
            .state
            .nodes()
            .into_iter()
            .filter(|n| n.name != self.me() && n.status != pb::NodeStatus::Left as i32)
            .collect();
        // A node that is not alive cannot be changed now: it is named as not done, so a
        // rotation stops there instead of leaving it behind on the old secret.
        let (peers, away): (Vec<pb::Node>, Vec<pb::Node>) = all
            .into_iter()
            .partition(|n| n.status == pb::NodeStatus::Alive as i32);
        let away: Vec<pb::NodeKeyring> = away
            .into_iter()
            .map(|n| pb::NodeKeyring {
                error: format!(
                    "node {} is not alive (last heard from {} s ago): not changed",
                    n.name,
                    n.last_seen_ms_ago / 1000
                ),
                node: n.name,
                keys: Vec::new(),
            })
            .collect();
        let calls = peers.into_iter().map(|node| {
            let req = req.clone();
            let client = self.peers.client(&node);
            let me = self.me().to_owned();
            async move {
                let failed = |error: String| pb::NodeKeyring {
                    node: node.name.clone(),
                    keys: Vec::new(),
                    error,
                };
                let mut client = match client {
                    Ok(c) => c,
                    Err(s) => return failed(s.message().to_owned()),
                };
                let mut call = forwarded(req, &tonic::metadata::MetadataMap::new(), &me);
                call.set_timeout(PEER_TIMEOUT);
                match client.keyring(call).await {
                    Ok(r) => r
                        .into_inner()
                        .nodes
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| failed("answered for no node".into())),
                    Err(s) => failed(
                        crate::cluster::peers::peer_error(&node, s)
                            .message()
                            .to_owned(),
                    ),
                }
            }
        });
        let mut nodes = vec![mine];
        nodes.extend(futures::future::join_all(calls).await);
        nodes.extend(away);
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(pb::KeyringResponse { nodes })
    }
}
