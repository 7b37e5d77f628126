//! The cluster's nodes by name, each with the CPU samples of the last minute for its sparkline.

use berth_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};

/// How much CPU history a node keeps for its sparkline.
pub const CPU_HISTORY_MS: i64 = 60_000;
/// At most this many samples, whatever the agents' stats interval.
pub const CPU_HISTORY_MAX_SAMPLES: usize = 120;

#[derive(Debug, Clone)]
pub struct NodeRow {
    pub node: pb::Node,
    /// `(updated_unix_ms, cpu %)`, oldest first, within [`CPU_HISTORY_MS`] of the newest.
    pub cpu: VecDeque<(i64, f64)>,
    /// When this row arrived, on the model's monotonic clock.
    pub received_mono_ms: u64,
}

impl NodeRow {
    fn record(&mut self) {
        let at = self.node.updated_unix_ms;
        let cpu = self.node.stats.as_ref().map_or(0.0, |s| s.cpu_percent);
        if self.cpu.back().is_some_and(|&(last, _)| last >= at) {
            return;
        }
        self.cpu.push_back((at, cpu));
        while self.cpu.len() > CPU_HISTORY_MAX_SAMPLES
            || self
                .cpu
                .front()
                .is_some_and(|&(t, _)| t < at - CPU_HISTORY_MS)
        {
            self.cpu.pop_front();
        }
    }

    /// How old the row's data is: what the answering agent said when it sent it (how long
    /// since it last heard from the node), plus how long ago that was. One clock, no skew.
    pub fn age_ms(&self, now_mono_ms: u64) -> i64 {
        let since = now_mono_ms.saturating_sub(self.received_mono_ms);
        i64::try_from(self.node.last_seen_ms_ago.saturating_add(since)).unwrap_or(i64::MAX)
    }

    pub fn status(&self) -> pb::NodeStatus {
        pb::NodeStatus::try_from(self.node.status).unwrap_or(pb::NodeStatus::Unspecified)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Nodes {
    map: BTreeMap<String, NodeRow>,
    /// The names in order, for positions.
    order: Vec<String>,
}

impl Nodes {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&NodeRow> {
        self.map.get(name)
    }

    pub fn name_at(&self, index: usize) -> Option<&str> {
        self.order.get(index).map(String::as_str)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.order.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// Rows from `start`, at most `count`.
    pub fn rows(&self, start: usize, count: usize) -> impl Iterator<Item = &NodeRow> + '_ {
        self.order
            .iter()
            .skip(start)
            .take(count)
            .filter_map(|name| self.map.get(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &NodeRow> + '_ {
        self.map.values()
    }

    pub fn upsert(&mut self, node: pb::Node, now_mono_ms: u64) {
        if node.name.is_empty() {
            return;
        }
        match self.map.get_mut(&node.name) {
            Some(row) => {
                row.node = node;
                row.received_mono_ms = now_mono_ms;
                row.record();
            }
            None => {
                let name = node.name.clone();
                let mut row = NodeRow {
                    node,
                    cpu: VecDeque::new(),
                    received_mono_ms: now_mono_ms,
                };
                row.record();
                self.map.insert(name.clone(), row);
                if let Err(at) = self.order.binary_search(&name) {
                    self.order.insert(at, name);
                }
            }
        }
    }

    pub fn remove(&mut self, name: &str) {
        if self.map.remove(name).is_some()
            && let Ok(at) = self.order.binary_search_by(|n| n.as_str().cmp(name))
        {
            self.order.remove(at);
        }
    }

    /// Replaces the set of nodes, keeping the CPU history of those that stay.
    pub fn replace_all(&mut self, nodes: Vec<pb::Node>, now_mono_ms: u64) {
        let mut old = std::mem::take(&mut self.map);
        self.order.clear();
        for node in nodes {
            if node.name.is_empty() {
                continue;
            }
            let name = node.name.clone();
            let mut row = old.remove(&name).unwrap_or(NodeRow {
                node: node.clone(),
                cpu: VecDeque::new(),
                received_mono_ms: now_mono_ms,
            });
            row.node = node;
            row.received_mono_ms = now_mono_ms;
            row.record();
            self.map.insert(name, row);
        }
        self.order.extend(self.map.keys().cloned());
    }

    /// How many nodes are in each status: alive, suspect, down, left, unknown.
    pub fn status_counts(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for row in self.map.values() {
            let i = match row.status() {
                pb::NodeStatus::Alive => 0,
                pb::NodeStatus::Suspect => 1,
                pb::NodeStatus::Down => 2,
                pb::NodeStatus::Left => 3,
                pb::NodeStatus::Unspecified => 4,
            };
            counts[i] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, at: i64, cpu: f64) -> pb::Node {
        pb::Node {
            name: name.into(),
            status: pb::NodeStatus::Alive as i32,
            stats: Some(pb::NodeStats {
                cpu_percent: cpu,
                ..Default::default()
            }),
            updated_unix_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn keeps_a_minute_of_cpu_samples_and_ignores_repeats() {
        let mut nodes = Nodes::default();
        for i in 0..40 {
            nodes.upsert(node("a", i * 2_000, i as f64), 0);
            nodes.upsert(node("a", i * 2_000, 999.0), 0);
        }
        let row = nodes.get("a").expect("there");
        assert_eq!(row.cpu.len(), 31, "60 s of 2 s samples, both ends included");
        assert_eq!(row.cpu.back(), Some(&(78_000, 39.0)));
        assert!(row.cpu.iter().all(|&(_, c)| c < 100.0));
    }

    #[test]
    fn age_is_what_the_agent_said_plus_time_since() {
        let mut nodes = Nodes::default();
        nodes.upsert(
            pb::Node {
                last_seen_ms_ago: 4_000,
                ..node("a", 1, 0.0)
            },
            10_000,
        );
        assert_eq!(nodes.get("a").map(|r| r.age_ms(12_500)), Some(6_500));
    }

    #[test]
    fn order_follows_names_through_changes() {
        let mut nodes = Nodes::default();
        nodes.replace_all(vec![node("b", 1, 0.0), node("a", 1, 0.0)], 0);
        nodes.upsert(node("c", 1, 0.0), 0);
        assert_eq!(nodes.position("c"), Some(2));
        nodes.remove("a");
        assert_eq!(nodes.name_at(0), Some("b"));
        assert_eq!(nodes.len(), 2);
        nodes.upsert(
            pb::Node {
                status: 42,
                ..node("d", 1, 0.0)
            },
            0,
        );
        assert_eq!(
            nodes.status_counts(),
            [2, 0, 0, 0, 1],
            "unknown status counted apart"
        );
    }
}
