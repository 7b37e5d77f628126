//! `berth events`: what happened in the cluster, as this agent saw it.
//!
//! [`follow`] turns the view's changes (the same stream `Watch` serves) into events by comparing
//! each container and node with what it was: created, started, died with its exit code,
//! removed; a node joining, going down, leaving. The placer adds its own decisions. The last
//! [`KEPT`] events are kept in memory (an agent that restarts starts afresh, and what the
//! cluster already was when it started is not news to it); every agent sees
//! every node's and container's changes through gossip, a second or so late, and only its own
//! placement decisions.

use crate::state::State;
use berth_proto::v1 as pb;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Events kept for `--since`.
pub const KEPT: usize = 1000;

/// The kept events and the stream of new ones.
pub struct EventLog {
    kept: Mutex<VecDeque<pb::ClusterEvent>>,
    tx: broadcast::Sender<pb::ClusterEvent>,
}

impl Default for EventLog {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(KEPT);
        Self {
            kept: Mutex::new(VecDeque::with_capacity(KEPT)),
            tx,
        }
    }
}

impl EventLog {
    /// Keeps `event` (stamped now if it has no time) and sends it to every follower.
    pub fn record(&self, mut event: pb::ClusterEvent) {
        if event.unix_ms == 0 {
            event.unix_ms = chrono::Utc::now().timestamp_millis();
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(event.clone());
        // Sent under the lock, so `since` never misses or repeats one.
        let _ = self.tx.send(event);
    }

    /// The kept events at or after `since_unix_ms`, and a receiver for every later one, taken
    /// together.
    pub fn since(
        &self,
        since_unix_ms: i64,
    ) -> (Vec<pb::ClusterEvent>, broadcast::Receiver<pb::ClusterEvent>) {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let old = kept
            .iter()
            .filter(|e| e.unix_ms >= since_unix_ms)
            .cloned()
            .collect();
        (old, self.tx.subscribe())
    }

    /// A placement decision: a node took it (`placed`), or none could (`unplaceable`; `name`
    /// is the container's name, if it was to have one).
    pub fn placement(
        &self,
        placed: Option<&pb::ContainerSummary>,
        name: &str,
        image: &str,
        message: String,
    ) {
        let mut e = pb::ClusterEvent {
            kind: "placement".into(),
            image: image.to_owned(),
            container_name: name.to_owned(),
            message,
            ..Default::default()
        };
        match placed {
            Some(c) => {
                e.action = "placed".into();
                e.node = c.node.clone();
                e.container_id = c.id.clone();
                e.container_name = c.name.clone();
            }
            None => e.action = "unplaceable".into(),
        }
        self.record(e);
    }
}

/// How long after the agent starts a node seen for the first time is what the cluster already
/// was, not a node that joined.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// What a container and a node were, to tell what changed.
#[derive(Default)]
struct Known {
    /// By id: the container as last seen (its state and health are what changes tell apart).
    containers: HashMap<String, pb::ContainerSummary>,
    nodes: HashMap<String, i32>,
    /// When following began (unix ms): a container first seen that was made before then is
    /// not news (Docker's resync and gossip bring what existed, after the first snapshot).
    since_ms: i64,
    /// Until then, a node first seen is not news either.
    settle_until: Option<std::time::Instant>,
}

fn container_event(c: &pb::ContainerSummary, action: &str) -> pb::ClusterEvent {
    pb::ClusterEvent {
        kind: "container".into(),
        action: action.into(),
        node: c.node.clone(),
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        image: c.image.clone(),
        ..Default::default()
    }
}

fn node_word(status: i32) -> &'static str {
    match pb::NodeStatus::try_from(status) {
        Ok(pb::NodeStatus::Alive) => "alive",
        Ok(pb::NodeStatus::Suspect) => "suspect",
        Ok(pb::NodeStatus::Down) => "down",
        Ok(pb::NodeStatus::Left) => "left",
        _ => "unknown",
    }
}

impl Known {
    /// Events for a container as it is now.
    fn container(&mut self, c: &pb::ContainerSummary) -> Vec<pb::ClusterEvent> {
        let mut out = Vec::new();
        let (was, was_health) = match self.containers.get(&c.id) {
            // Made before we looked: what was, not what happened.
            None if c.created_unix_ms != 0 && c.created_unix_ms < self.since_ms - 1_000 => {
                (c.state.clone(), c.health.clone())
            }
            None => {
                out.push(container_event(c, "created"));
                ("created".to_owned(), String::new())
            }
            Some(b) => (b.state.clone(), b.health.clone()),
        };
        if c.state != was {
            match c.state.as_str() {
                "running" if was == "paused" => out.push(container_event(c, "unpaused")),
                "running" => out.push(container_event(c, "started")),
                "exited" | "dead" => {
                    let mut e = container_event(c, "died");
                    e.exit_code = c.exit_code;
                    out.push(e);
                }
                "paused" => out.push(container_event(c, "paused")),
                "restarting" => out.push(container_event(c, "restarting")),
                _ => {}
            }
        }
        if !c.health.is_empty() && c.health != was_health {
            let mut e = container_event(c, "health");
            e.message = c.health.clone();
            out.push(e);
        }
        let mut seen = c.clone();
        // Only what events name is kept; not the figures or labels.
        seen.labels.clear();
        seen.ports.clear();
        self.containers.insert(c.id.clone(), seen);
        out
    }

    fn container_removed(&mut self, id: &str) -> Option<pb::ClusterEvent> {
        let c = self.containers.remove(id)?;
        // A node that is down or left and leaves the view takes its containers out of it:
        // they are no longer known, not removed.
        let away = self.nodes.get(&c.node).is_some_and(|s| {
            matches!(
                pb::NodeStatus::try_from(*s),
                Ok(pb::NodeStatus::Down | pb::NodeStatus::Left)
            )
        });
        (!away).then(|| container_event(&c, "removed"))
    }

    fn node(&mut self, n: &pb::Node) -> Option<pb::ClusterEvent> {
        let settling = self
            .settle_until
            .is_some_and(|t| std::time::Instant::now() < t);
        let action = match self.nodes.insert(n.name.clone(), n.status) {
            None if settling => return None,
            None => "joined",
            Some(was) if was == n.status => return None,
            Some(_) => node_word(n.status),
        };
        Some(pb::ClusterEvent {
            kind: "node".into(),
            action: action.into(),
            node: n.name.clone(),
            message: node_word(n.status).into(),
            ..Default::default()
        })
    }

    fn node_removed(&mut self, name: &str) -> Option<pb::ClusterEvent> {
        // Its containers leave the view with it: not removed, only no longer known.
        self.containers.retain(|_, c| c.node != name);
        self.nodes.remove(name)?;
        Some(pb::ClusterEvent {
            kind: "node".into(),
            action: "forgotten".into(),
            node: name.to_owned(),
            ..Default::default()
        })
    }

    /// Everything a snapshot says that differs from what is known: after a lag, the changes
    /// missed; the first time (`quiet`), nothing (what exists at start is not news).
    fn snapshot(&mut self, s: &pb::ClusterSnapshot, quiet: bool) -> Vec<pb::ClusterEvent> {
        let mut out = Vec::new();
        for n in &s.nodes {
            out.extend(self.node(n));
        }
        let seen: std::collections::HashSet<&str> =
            s.containers.iter().map(|c| c.id.as_str()).collect();
        for c in &s.containers {
            out.extend(self.container(c));
        }
        let gone: Vec<String> = self
            .containers
            .keys()
            .filter(|id| !seen.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            out.extend(self.container_removed(&id));
        }
        if quiet { Vec::new() } else { out }
    }

    fn change(&mut self, ev: &pb::watch_event::Event) -> Vec<pb::ClusterEvent> {
        use pb::watch_event::Event;
        match ev {
            Event::Snapshot(s) => self.snapshot(s, false),
            Event::NodeUpdated(n) => self.node(n).into_iter().collect(),
            Event::NodeRemoved(name) => self.node_removed(name).into_iter().collect(),
            Event::ContainerUpdated(c) => self.container(c),
            Event::ContainerRemoved(r) => self.container_removed(&r.id).into_iter().collect(),
        }
    }
}

/// Turns the view's changes into events until `shutdown` flips.
pub async fn follow(log: Arc<EventLog>, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let (snapshot, mut rx) = state.subscribe();
    let mut known = Known {
        since_ms: chrono::Utc::now().timestamp_millis(),
        settle_until: Some(std::time::Instant::now() + SETTLE),
        ..Default::default()
    };
    known.snapshot(&snapshot, true);
    loop {
        let item = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let events = match item {
            Ok(pb::WatchEvent { event: Some(ev) }) => known.change(&ev),
            Ok(_) => Vec::new(),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let (snapshot, fresh) = state.subscribe();
                rx = fresh;
                known.snapshot(&snapshot, false)
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for e in events {
            log.record(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, state: &str) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: id.into(),
            name: format!("n-{id}"),
            node: "a".into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn actions(events: &[pb::ClusterEvent]) -> Vec<&str> {
        events.iter().map(|e| e.action.as_str()).collect()
    }

    #[test]
    fn a_containers_life_is_told_once_per_change() {
        let mut k = Known::default();
        assert_eq!(actions(&k.container(&c("1", "created"))), ["created"]);
        assert_eq!(actions(&k.container(&c("1", "running"))), ["started"]);
        // A stats refresh changes nothing that is news.
        assert!(k.container(&c("1", "running")).is_empty());
        let mut healthy = c("1", "running");
        healthy.health = "healthy".into();
        let e = k.container(&healthy);
        assert_eq!(actions(&e), ["health"]);
        assert_eq!(e[0].message, "healthy");
        let mut died = c("1", "exited");
        died.exit_code = 3;
        let e = k.container(&died);
        assert_eq!(actions(&e), ["died"]);
        assert_eq!(e[0].exit_code, 3);
        assert_eq!(
            actions(&k.container_removed("1").into_iter().collect::<Vec<_>>()),
            ["removed"]
        );
        assert!(k.container_removed("1").is_none(), "removed once");
        // One seen first running was created and started.
        assert_eq!(
            actions(&k.container(&c("2", "running"))),
            ["created", "started"]
        );
    }

    /// What existed when the agent started is not news when resync and gossip bring it; a
    /// node that goes away takes its containers out of the view without "removed" for each.
    #[test]
    fn what_existed_before_and_what_leaves_with_its_node_is_not_news() {
        let mut k = Known {
            since_ms: 100_000,
            settle_until: Some(std::time::Instant::now() + SETTLE),
            ..Default::default()
        };
        let mut old = c("1", "running");
        old.created_unix_ms = 50_000;
        assert!(k.container(&old).is_empty(), "made before we looked");
        old.state = "exited".into();
        assert_eq!(
            actions(&k.container(&old)),
            ["died"],
            "but what it does next is"
        );
        let mut new = c("2", "running");
        new.created_unix_ms = 100_500;
        assert_eq!(actions(&k.container(&new)), ["created", "started"]);
        let mut n = pb::Node {
            name: "a".into(),
            status: pb::NodeStatus::Alive as i32,
            ..Default::default()
        };
        assert!(k.node(&n).is_none(), "the cluster as it was at start");
        n.status = pb::NodeStatus::Down as i32;
        assert_eq!(k.node(&n).map(|e| e.action), Some("down".into()));
        assert!(
            k.container_removed("2").is_none(),
            "its node is down: not removed"
        );
    }

    #[test]
    fn nodes_join_change_status_and_are_forgotten() {
        let mut k = Known::default();
        let mut n = pb::Node {
            name: "b".into(),
            status: pb::NodeStatus::Alive as i32,
            ..Default::default()
        };
        assert_eq!(k.node(&n).map(|e| e.action), Some("joined".into()));
        assert!(k.node(&n).is_none());
        n.status = pb::NodeStatus::Down as i32;
        assert_eq!(k.node(&n).map(|e| e.action), Some("down".into()));
        assert_eq!(
            k.node_removed("b").map(|e| e.action),
            Some("forgotten".into())
        );
    }

    #[test]
    fn the_first_snapshot_is_not_news_and_a_later_one_tells_what_was_missed() {
        let mut k = Known::default();
        let first = pb::ClusterSnapshot {
            containers: vec![c("1", "running"), c("2", "running")],
            ..Default::default()
        };
        assert!(k.snapshot(&first, true).is_empty());
        let later = pb::ClusterSnapshot {
            containers: vec![c("1", "exited")],
            ..Default::default()
        };
        let e = k.snapshot(&later, false);
        assert_eq!(actions(&e), ["died", "removed"]);
        assert_eq!(e[1].container_id, "2");
        assert_eq!(
            e[1].container_name, "n-2",
            "a removed container keeps its name"
        );
    }

    #[test]
    fn the_log_keeps_the_last_events_and_hands_over_without_a_gap() {
        let log = EventLog::default();
        for i in 0..(KEPT as i64 + 5) {
            log.record(pb::ClusterEvent {
                unix_ms: i + 1,
                action: "x".into(),
                ..Default::default()
            });
        }
        let (old, mut rx) = log.since(0);
        assert_eq!(old.len(), KEPT);
        assert_eq!(old[0].unix_ms, 6);
        let (recent, _) = log.since(KEPT as i64);
        assert_eq!(recent.len(), 6);
        log.record(pb::ClusterEvent::default());
        assert!(
            rx.try_recv().is_ok(),
            "an event after `since` reaches the receiver"
        );
    }
}
