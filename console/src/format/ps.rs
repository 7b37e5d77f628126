//! `ps --format` and `ps --filter`.

use berth_proto::v1 as pb;

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

    pub(crate) fn holds(&self, c: &pb::ContainerSummary, node: Option<pb::NodeStatus>) -> bool {
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

/// `ps --format`: [`super::Template`] over a container's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(super::Template);

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
        super::Template::parse(s, &FIELDS).map(Template)
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
