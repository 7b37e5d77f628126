//! The detail view (`d`/`enter`): a container's inspect as labelled lines, then Docker's own
//! inspect document.

use crate::output::{port_text, restart_word, rfc3339_ms};
use berth_proto::v1 as pb;
use berth_shared::quantity::format_bytes;
use berth_shared::time::status_text;
use chrono::{DateTime, Utc};

/// One line of the detail view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailLine {
    Section(String),
    Field(String, String),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailState {
    Loading,
    Loaded(Vec<DetailLine>),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct DetailView {
    pub container_id: String,
    pub name: String,
    pub state: DetailState,
    pub scroll: usize,
}

impl DetailView {
    pub fn lines(&self) -> &[DetailLine] {
        match &self.state {
            DetailState::Loaded(lines) => lines,
            _ => &[],
        }
    }
}

fn field(lines: &mut Vec<DetailLine>, key: &str, value: impl Into<String>) {
    lines.push(DetailLine::Field(key.to_owned(), value.into()));
}

fn limit_cpus(cpus: f64) -> String {
    if cpus == 0.0 {
        "unlimited".into()
    } else {
        format!("{cpus}")
    }
}

fn limit_memory(bytes: u64) -> String {
    if bytes == 0 {
        "unlimited".into()
    } else {
        format_bytes(bytes)
    }
}

/// The detail as lines: summary, state, limits, ports, spec, then Docker's inspect document.
pub fn detail_lines(d: &pb::ContainerDetail, now: DateTime<Utc>) -> Vec<DetailLine> {
    let mut lines = Vec::new();
    let time = |ms: i64| rfc3339_ms(ms).unwrap_or_else(|| "-".into());
    if let Some(c) = &d.summary {
        lines.push(DetailLine::Section("container".into()));
        field(&mut lines, "id", &c.id);
        field(&mut lines, "name", &c.name);
        field(&mut lines, "image", &c.image);
        field(&mut lines, "node", &c.node);
        lines.push(DetailLine::Section("state".into()));
        field(&mut lines, "state", &c.state);
        field(&mut lines, "status", status_text(c, now));
        field(&mut lines, "exit code", c.exit_code.to_string());
        field(&mut lines, "restart count", c.restart_count.to_string());
        field(
            &mut lines,
            "oom killed",
            if d.oom_killed { "yes" } else { "no" },
        );
        if !d.error.is_empty() {
            field(&mut lines, "error", &d.error);
        }
        field(&mut lines, "created", time(c.created_unix_ms));
        field(&mut lines, "started", time(c.started_unix_ms));
        field(&mut lines, "finished", time(c.finished_unix_ms));
        lines.push(DetailLine::Section("resources".into()));
        field(&mut lines, "cpu", format!("{:.1}%", c.cpu_percent));
        field(&mut lines, "memory", format_bytes(c.memory_bytes));
        field(&mut lines, "cpu limit", limit_cpus(c.cpus));
        field(
            &mut lines,
            "memory limit",
            limit_memory(c.memory_limit_bytes),
        );
        lines.push(DetailLine::Section("ports".into()));
        if c.ports.is_empty() {
            lines.push(DetailLine::Text("none".into()));
        }
        for p in &c.ports {
            lines.push(DetailLine::Text(port_text(p)));
        }
        if !c.labels.is_empty() {
            lines.push(DetailLine::Section("labels".into()));
            let mut labels: Vec<_> = c.labels.iter().collect();
            labels.sort();
            for (k, v) in labels {
                // The spec label is the spec below, as JSON: long and said better there.
                if k == berth_shared::labels::SPEC {
                    continue;
                }
                field(&mut lines, k, v);
            }
        }
    }
    if let Some(s) = &d.spec {
        lines.push(DetailLine::Section("spec".into()));
        field(&mut lines, "image", &s.image);
        if !s.entrypoint.is_empty() {
            field(&mut lines, "entrypoint", s.entrypoint.join(" "));
        }
        field(
            &mut lines,
            "command",
            if s.command.is_empty() {
                "(the image's)".to_owned()
            } else {
                s.command.join(" ")
            },
        );
        for e in &s.env {
            field(&mut lines, "env", format!("{}={}", e.key, e.value));
        }
        for p in &s.ports {
            field(&mut lines, "publish", port_text(p));
        }
        field(&mut lines, "cpus", limit_cpus(s.cpus));
        field(&mut lines, "memory", limit_memory(s.memory_bytes));
        field(&mut lines, "restart", restart_word(s.restart.as_ref()));
    }
    if !d.runtime_json.trim().is_empty() {
        lines.push(DetailLine::Section("docker inspect".into()));
        let pretty = serde_json::from_str::<serde_json::Value>(&d.runtime_json)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| d.runtime_json.clone());
        for line in pretty.lines() {
            lines.push(DetailLine::Text(
                crate::tui::model::logs::sanitize(line.as_bytes(), usize::MAX).into(),
            ));
        }
    }
    lines
}
