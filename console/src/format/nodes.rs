//! `nodes --format`.

use berth_proto::v1 as pb;

/// `nodes --format`: [`super::Template`] over a node's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(super::Template);

const FIELDS: [&str; 12] = [
    "Name",
    "Address",
    "Status",
    "CPU",
    "Memory",
    "Containers",
    "Labels",
    "ID",
    "Version",
    "Docker",
    "Age",
    "Drained",
];

impl Template {
    pub fn parse(s: &str) -> Result<Self, berth_shared::ValidationError> {
        super::Template::parse(s, &FIELDS).map(Template)
    }

    pub fn render(&self, n: &pb::Node, containers: &[pb::ContainerSummary]) -> String {
        let stats = n.stats.clone().unwrap_or_default();
        self.0.render(
            |f| match f {
                "Name" => n.name.clone(),
                "Address" => n.address.clone(),
                "Status" => crate::output::node_status_word(n.status).to_owned(),
                "CPU" => format!("{:.1}%", stats.cpu_percent),
                "Memory" => format!(
                    "{}/{}",
                    berth_shared::quantity::format_bytes(stats.memory_used_bytes),
                    berth_shared::quantity::format_bytes(stats.memory_total_bytes)
                ),
                "Containers" => {
                    let mine = containers.iter().filter(|c| c.node == n.name);
                    let running = mine.clone().filter(|c| c.state == "running").count();
                    format!("{running}/{}", mine.count())
                }
                "Labels" => crate::output::node_labels(&n.labels),
                "ID" => n.node_id.clone(),
                "Version" => n.agent_version.clone(),
                "Docker" => match &n.runtime {
                    Some(r) if r.available => r.version.clone(),
                    _ => "unavailable".to_owned(),
                },
                "Age" => crate::output::age(n.last_seen_ms_ago),
                _ => n.drained.to_string(),
            },
            |k| n.labels.get(k).cloned().unwrap_or_default(),
        )
    }
}
