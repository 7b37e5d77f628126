//! `berth ps`: containers across the cluster, running ones unless `-a`.

use super::nodes::cluster;
use super::print;
use super::template;
use crate::cli::{OutputFormat, PsArgs};
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

/// `-f KEY=VALUE`, as `docker ps --filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The name contains it.
    Name(String),
    Node(String),
    /// Docker's state word (`status=` is Docker's spelling).
    State(String),
    /// A label set (to a value, when given).
    Label(String, Option<String>),
    /// The id starts with it.
    Id(String),
    Health(String),
    NodeStatus(String),
}

impl Filter {
    pub fn parse(s: &str) -> Result<Self, berth_shared::ValidationError> {
        let bad = |m: String| berth_shared::ValidationError::new("filter", m);
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| bad(format!("{s:?} is not KEY=VALUE")))?;
        let value = value.to_owned();
        if value.is_empty() && key != "label" {
            return Err(bad(format!("{key}= needs a value")));
        }
        Ok(match key {
            "name" => Filter::Name(value),
            "node" => Filter::Node(value),
            "state" | "status" => Filter::State(value),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_owned(), Some(v.to_owned())),
                None if value.is_empty() => return Err(bad("label= needs a key".into())),
                None => Filter::Label(value, None),
            },
            "id" => Filter::Id(value),
            "health" => Filter::Health(value),
            "node_status" => Filter::NodeStatus(value),
            other => {
                return Err(bad(format!(
                    "unknown key {other:?}: name, node, state, label, id, health or node_status"
                )));
            }
        })
    }

    fn holds(&self, c: &pb::ContainerSummary, node: Option<pb::NodeStatus>) -> bool {
        match self {
            Filter::Name(v) => c.name.contains(v.as_str()),
            Filter::Node(v) => &c.node == v,
            Filter::State(v) => &c.state == v,
            Filter::Label(k, v) => c
                .labels
                .get(k)
                .is_some_and(|got| v.as_ref().is_none_or(|v| got == v)),
            Filter::Id(v) => c.id.starts_with(v.as_str()),
            Filter::Health(v) => &c.health == v,
            Filter::NodeStatus(v) => berth_shared::time::node_status_word(node) == v,
        }
    }
}

/// `ps --format`: [`template::Template`] over a container's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(template::Template);

const FIELDS: [&str; 12] = [
    "ID",
    "Name",
    "Image",
    "Node",
    "State",
    "Status",
    "CPU",
    "Memory",
    "Ports",
    "Created",
    "NodeStatus",
    "Health",
];

impl Template {
    pub fn parse(s: &str) -> Result<Self, berth_shared::ValidationError> {
        template::Template::parse(s, &FIELDS).map(Template)
    }

    pub fn render(
        &self,
        c: &pb::ContainerSummary,
        node: Option<pb::NodeStatus>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        self.0.render(
            |f| match f {
                "ID" => crate::output::short_id(&c.id).to_owned(),
                "Name" => c.name.clone(),
                "Image" => c.image.clone(),
                "Node" => c.node.clone(),
                "State" => berth_shared::time::state_word(c, node),
                "Status" => berth_shared::time::status_on(c, node, now),
                "CPU" => format!("{:.1}%", c.cpu_percent),
                "Memory" => berth_shared::quantity::format_bytes(c.memory_bytes),
                "Ports" => c
                    .ports
                    .iter()
                    .map(crate::output::port_text)
                    .collect::<Vec<_>>()
                    .join(", "),
                "Created" => crate::output::rfc3339_ms(c.created_unix_ms).unwrap_or_default(),
                "NodeStatus" => berth_shared::time::node_status_word(node).to_owned(),
                _ => c.health.clone(),
            },
            |k| c.labels.get(k).cloned().unwrap_or_default(),
        )
    }
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
