//! `berth ps`: containers across the cluster, running ones unless `-a`.

use super::nodes::cluster;
use super::print;
use crate::cli::{OutputFormat, PsArgs};
use crate::output::{container_json, node_statuses, ps_table, shown_by_default, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::Result;

pub async fn execute(session: &mut Session, output: OutputFormat, args: PsArgs) -> Result<()> {
    let snapshot = cluster(session).await?;
    let nodes = node_statuses(&snapshot.nodes);
    let containers = select(snapshot.containers, &args);
    let now = chrono::Utc::now();
    let text = match output {
        OutputFormat::Json => to_json(
            &containers
                .iter()
                .map(|c| container_json(c, nodes.get(&c.node).copied(), now))
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Table | OutputFormat::Wide => {
            ps_table(&containers, &nodes, output == OutputFormat::Wide, now)
        }
    };
    print(&text)
}

/// The containers `ps` shows, newest first as `docker ps`.
pub fn select(
    mut containers: Vec<pb::ContainerSummary>,
    args: &PsArgs,
) -> Vec<pb::ContainerSummary> {
    containers.retain(|c| {
        (args.all || shown_by_default(c)) && args.node.as_ref().is_none_or(|n| &c.node == n)
    });
    containers.sort_by(|a, b| {
        b.created_unix_ms
            .cmp(&a.created_unix_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    containers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, node: &str, state: &str, created: i64) -> pb::ContainerSummary {
        pb::ContainerSummary {
            name: name.into(),
            node: node.into(),
            state: state.into(),
            created_unix_ms: created,
            ..Default::default()
        }
    }

    fn names(v: &[pb::ContainerSummary]) -> Vec<&str> {
        v.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn default_shows_live_containers_newest_first() {
        let all = vec![
            c("a", "n1", "running", 1),
            c("b", "n1", "exited", 2),
            c("c", "n2", "paused", 3),
            c("d", "n2", "restarting", 4),
            c("e", "n2", "created", 5),
        ];
        let args = PsArgs {
            all: false,
            node: None,
        };
        assert_eq!(names(&select(all.clone(), &args)), ["d", "c", "a"]);
        let args = PsArgs {
            all: true,
            node: Some("n1".into()),
        };
        assert_eq!(names(&select(all, &args)), ["b", "a"]);
    }
}
