//! `berth ps`: containers across the cluster, running ones unless `-a`.

use super::nodes::cluster;
use super::print;
use crate::cli::{OutputFormat, PsArgs};
pub use crate::format::ps::{Filter, Template};
use crate::output::{container_json, node_statuses, ps_table, shown_by_default, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::eyre::Result;

pub async fn execute(session: &mut Session, output: OutputFormat, args: PsArgs) -> Result<()> {
    let snapshot = cluster(session).await?;
    let nodes = node_statuses(&snapshot.nodes);
    let containers = select(snapshot.containers, &args, &nodes);
    let now = chrono::Utc::now();
    if args.quiet {
        let ids: String = containers
            .iter()
            .map(|c| format!("{}\n", crate::output::short_id(&c.id)))
            .collect();
        return print(&ids);
    }
    if let Some(template) = &args.format {
        let lines: String = containers
            .iter()
            .map(|c| format!("{}\n", template.render(c, nodes.get(&c.node).copied(), now)))
            .collect();
        return print(&lines);
    }
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
    nodes: &crate::output::NodeStatuses,
) -> Vec<pb::ContainerSummary> {
    containers.retain(|c| {
        (args.all || shown_by_default(c))
            && args.node.as_ref().is_none_or(|n| &c.node == n)
            && args
                .filter
                .iter()
                .all(|f| f.holds(c, nodes.get(&c.node).copied()))
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
        let none = Default::default();
        let args = PsArgs::default();
        assert_eq!(names(&select(all.clone(), &args, &none)), ["d", "c", "a"]);
        let args = PsArgs {
            all: true,
            node: Some("n1".into()),
            ..Default::default()
        };
        assert_eq!(names(&select(all, &args, &none)), ["b", "a"]);
    }

    #[test]
    fn filters_keep_what_matches_all_of_them() {
        let mut all = vec![
            c("web-1", "n1", "running", 1),
            c("web-2", "n2", "exited", 2),
            c("db", "n2", "running", 3),
        ];
        all[2].labels.insert("tier".into(), "data".into());
        let nodes = [("n2".to_owned(), pb::NodeStatus::Down)].into();
        let pick = |filters: &[&str]| {
            let args = PsArgs {
                all: true,
                filter: filters
                    .iter()
                    .map(|f| Filter::parse(f).expect("filter"))
                    .collect(),
                ..Default::default()
            };
            names(&select(all.clone(), &args, &nodes))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&["name=web"]), ["web-2", "web-1"]);
        assert_eq!(pick(&["name=web", "node=n2"]), ["web-2"]);
        assert_eq!(pick(&["status=running"]), ["db", "web-1"]);
        assert_eq!(pick(&["label=tier"]), ["db"]);
        assert_eq!(pick(&["label=tier=web"]), Vec::<String>::new());
        assert_eq!(pick(&["node_status=down"]), ["db", "web-2"]);
        for bad in ["name", "colour=red", "label=", "node="] {
            assert_eq!(Filter::parse(bad).expect_err(bad).field, "filter", "{bad}");
        }
    }

    #[test]
    fn a_template_prints_the_fields_named() {
        let mut x = c("web", "n1", "running", 1);
        x.id = "0123456789abcdef".into();
        x.labels.insert("team".into(), "infra".into());
        let t = Template::parse(r#"{{.Name}}\t{{ .Node }} {{.ID}} {{.Label "team"}}"#).expect("ok");
        assert_eq!(
            t.render(&x, Some(pb::NodeStatus::Alive), chrono::Utc::now()),
            "web\tn1 0123456789ab infra"
        );
        assert_eq!(
            t.render(&x, Some(pb::NodeStatus::Down), chrono::Utc::now()),
            "web\tn1 0123456789ab infra"
        );
        let state = Template::parse("{{.State}}").expect("ok");
        assert_eq!(
            state.render(&x, Some(pb::NodeStatus::Down), chrono::Utc::now()),
            "running?"
        );
        for bad in ["{{.Nope}}", "{{Name}}", "{{.Name"] {
            assert_eq!(
                Template::parse(bad).expect_err(bad).field,
                "format",
                "{bad}"
            );
        }
    }
}
