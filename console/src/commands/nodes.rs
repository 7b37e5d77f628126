//! `berth nodes`: the cluster's nodes, their health and load.

use super::print;
use crate::cli::OutputFormat;
use crate::errors::status_report;
pub use crate::format::nodes::Template;
use crate::output::{node_json, nodes_table, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::Result;

pub async fn execute(
    session: &mut Session,
    output: OutputFormat,
    args: crate::cli::NodesArgs,
) -> Result<()> {
    let snapshot = cluster(session).await?;
    let mut nodes = snapshot.nodes;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        return print(
            &nodes
                .iter()
                .map(|n| format!("{}\n", n.name))
                .collect::<String>(),
        );
    }
    if let Some(template) = &args.format {
        return print(
            &nodes
                .iter()
                .map(|n| format!("{}\n", template.render(n, &snapshot.containers)))
                .collect::<String>(),
        );
    }
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
        (OutputFormat::Json, Some(node)) => {
            let containers = cluster(session).await?.containers;
            print(&to_json(&node_json(&node, &containers))?)
        }
        _ => print(&format!("{name}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_template_prints_the_fields_named() {
        let n = pb::Node {
            name: "n1".into(),
            address: "10.0.0.1:7070".into(),
            status: pb::NodeStatus::Alive as i32,
            labels: [("zone".to_owned(), "a".to_owned())].into_iter().collect(),
            drained: true,
            ..Default::default()
        };
        let running = pb::ContainerSummary {
            node: "n1".into(),
            state: "running".into(),
            ..Default::default()
        };
        let t = Template::parse(
            r#"{{.Name}}\t{{.Status}} {{.Label "zone"}} {{.Containers}} {{.Drained}}"#,
        )
        .expect("valid");
        assert_eq!(t.render(&n, &[running]), "n1\talive a 1/1 true");
        let e = Template::parse("{{.Nope}}").expect_err("unknown field");
        assert_eq!(e.field, "format");
        assert!(e.message.contains("Address"), "{}", e.message);
    }
}
