//! `UpdateNode`: `berth node drain|activate|rm`. A node's availability is a record in the
//! service store (`node/<name>`), so it reaches every agent the way services do, and holds for
//! a node that is down (and for it when it comes back).

use super::Service;
use crate::services::store::node_key;
use crate::state::Change;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use tonic::{Request, Status};

impl Service {
    pub(super) async fn update_node_impl(
        &self,
        req: Request<pb::UpdateNodeRequest>,
    ) -> Result<pb::UpdateNodeResponse, Status> {
        let req = req.into_inner();
        berth_shared::constraint::validate_node_name("name", &req.name)?;
        let action = match pb::NodeAction::try_from(req.action) {
            Ok(a @ (pb::NodeAction::Drain | pb::NodeAction::Activate | pb::NodeAction::Forget)) => {
                a
            }
            _ => {
                return Err(
                    ValidationError::new("action", "must be drain, activate or forget").into(),
                );
            }
        };
        let node = self
            .state
            .nodes()
            .into_iter()
            .find(|n| n.name == req.name)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no node named {:?} in the cluster (`berth nodes` lists them)",
                    req.name
                ))
            })?;
        if action == pb::NodeAction::Forget {
            let status = pb::NodeStatus::try_from(node.status).unwrap_or_default();
            if node.name == self.me()
                || !matches!(status, pb::NodeStatus::Down | pb::NodeStatus::Left)
            {
                return Err(Status::failed_precondition(format!(
                    "node {} is {}: only a node that is down or has left can be forgotten (stop \
                     its berthd first; `berth node drain {}` stops placing on it)",
                    node.name,
                    berth_shared::time::node_status_word(Some(status)),
                    node.name
                )));
            }
        }
        let node_id = node.node_id.clone();
        let generation = node.generation;
        let entry = self
            .services
            .store
            .write_off_thread::<Status, _>(node_key(&node.name), move |current| {
                let mut record = current
                    .and_then(|c| c.node_record.clone())
                    .unwrap_or_default();
                record.node_id = node_id;
                match action {
                    pb::NodeAction::Drain => record.drained = true,
                    pb::NodeAction::Activate => {
                        record.drained = false;
                        record.forgotten_unix_ms = 0;
                        record.generation = 0;
                    }
                    _ => {
                        record.forgotten_unix_ms = chrono::Utc::now().timestamp_millis();
                        record.generation = generation;
                    }
                }
                Ok(pb::ServiceEntry {
                    created_unix_ms: current.map_or(0, |c| c.created_unix_ms),
                    node_record: Some(record),
                    ..Default::default()
                })
            })
            .await?;
        self.services.push(vec![entry]).await;
        self.state
            .apply(Change::NodeRecords(self.services.store.node_records()));
        tracing::info!(node = %req.name, action = action.as_str_name(), "node availability changed");
        let row = self
            .state
            .nodes()
            .into_iter()
            .find(|n| n.name == req.name)
            .unwrap_or(node);
        Ok(pb::UpdateNodeResponse { node: Some(row) })
    }
}
