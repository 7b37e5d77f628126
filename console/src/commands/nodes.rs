//! `berth nodes`: the cluster's nodes, their health and load.

use super::print;
use crate::cli::OutputFormat;
use crate::errors::status_report;
use crate::output::{node_json, nodes_table, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::Result;

pub async fn execute(session: &mut Session, output: OutputFormat) -> Result<()> {
    let snapshot = cluster(session).await?;
    let mut nodes = snapshot.nodes;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let text = match output {
        OutputFormat::Json => to_json(
            &nodes
                .iter()
                .map(|n| node_json(n, &snapshot.containers))
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Table | OutputFormat::Wide => {
            nodes_table(&nodes, &snapshot.containers, output == OutputFormat::Wide)
        }
    };
    print(&text)
}

/// One snapshot of the cluster.
pub async fn cluster(session: &mut Session) -> Result<pb::ClusterSnapshot> {
    session
        .client
        .cluster(pb::ClusterRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| status_report(s, &session.address))
}

/// `berth node drain|activate|rm NAME`: prints the node's name (its row with `-o json`).
pub async fn update(
    session: &mut Session,
    output: OutputFormat,
    command: crate::cli::NodeCommand,
) -> Result<()> {
    use crate::cli::NodeCommand;
    let (name, action) = match command {
        NodeCommand::Drain { name } => (name, pb::NodeAction::Drain),
        NodeCommand::Activate { name } => (name, pb::NodeAction::Activate),
        NodeCommand::Rm { name } => (name, pb::NodeAction::Forget),
    };
    let answer = session
        .client
        .update_node(pb::UpdateNodeRequest {
            name: name.clone(),
            action: action as i32,
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| status_report(s, &session.address))?;
    match (output, answer.node) {
        (OutputFormat::Json, Some(node)) => print(&to_json(&node_json(&node, &[]))?),
        _ => print(&format!("{name}\n")),
    }
}
