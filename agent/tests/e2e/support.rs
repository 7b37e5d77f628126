//! Helpers shared by the end-to-end tests: building specs, running to completion, reading the view.

use berth_proto::v1 as pb;
use berth_shared::client::Client;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);
pub const MIB: u64 = 1024 * 1024;

pub fn spec(image: &str, name: &str, command: &[&str]) -> pb::ContainerSpec {
    pb::ContainerSpec {
        image: image.into(),
        name: name.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A run request for `spec`, scheduled as the agent likes.
pub fn req(spec: pb::ContainerSpec) -> pb::RunRequest {
    pb::RunRequest {
        spec: Some(spec),
        ..Default::default()
    }
}

/// A spec (scheduled as the agent likes) or a whole run request.
pub trait IntoRun {
    fn into_run(self) -> pb::RunRequest;
}

impl IntoRun for pb::ContainerSpec {
    fn into_run(self) -> pb::RunRequest {
        req(self)
    }
}

impl IntoRun for pb::RunRequest {
    fn into_run(self) -> pb::RunRequest {
        self
    }
}

/// Runs to completion: every event, then the started container or the error status.
pub async fn run(
    client: &mut Client,
    req: impl IntoRun,
) -> (
    Vec<pb::RunEvent>,
    std::result::Result<pb::ContainerSummary, tonic::Status>,
) {
    let mut events = Vec::new();
    let mut stream = match client.run(req.into_run()).await {
        Ok(s) => s.into_inner(),
        Err(status) => return (events, Err(status)),
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                if let Some(pb::run_event::Event::Started(s)) = &ev.event {
                    let c = s.container.clone().unwrap_or_default();
                    events.push(ev);
                    return (events, Ok(c));
                }
                events.push(ev);
            }
            Err(status) => return (events, Err(status)),
        }
    }
    (
        events,
        Err(tonic::Status::unknown("run stream ended without Started")),
    )
}

pub async fn run_ok(client: &mut Client, req: impl IntoRun) -> pb::ContainerSummary {
    let (events, result) = run(client, req).await;
    match result {
        Ok(c) => c,
        Err(s) => panic!("run failed: {s:?}; events so far: {events:?}"),
    }
}

/// The nodes a run was offered to, in order.
pub fn placed(events: &[pb::RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::run_event::Event::Placed(p)) => Some(p.node.clone()),
            _ => None,
        })
        .collect()
}

pub async fn containers(client: &mut Client) -> Vec<pb::ContainerSummary> {
    client
        .cluster(pb::ClusterRequest {})
        .await
        .expect("cluster call")
        .into_inner()
        .containers
}

pub async fn find(client: &mut Client, name: &str) -> Option<pb::ContainerSummary> {
    containers(client)
        .await
        .into_iter()
        .find(|c| c.name == name)
}

/// Every node the agent lists, with its status; empty when the call fails.
pub async fn nodes(client: &mut Client) -> HashMap<String, pb::NodeStatus> {
    match client.cluster(pb::ClusterRequest {}).await {
        Ok(r) => r
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| {
                let s = pb::NodeStatus::try_from(n.status).unwrap_or(pb::NodeStatus::Unspecified);
                (n.name, s)
            })
            .collect(),
        Err(_) => HashMap::new(),
    }
}

/// This agent's own runtime status, as its `Cluster` answer says; `None` when the call fails.
pub async fn runtime(client: &mut Client) -> Option<pb::RuntimeStatus> {
    let snap = client
        .cluster(pb::ClusterRequest {})
        .await
        .ok()?
        .into_inner();
    snap.nodes.into_iter().next()?.runtime
}
