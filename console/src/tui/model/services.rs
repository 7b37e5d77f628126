//! The services views' data: the last `ListServices` answer. Services are not in the `Watch`
//! stream (they are desired state, not the cluster's view), so the model asks for them again
//! every [`POLL_MS`] while a services view is on screen.

use berth_proto::v1 as pb;

/// How often the services list is asked for while it is shown.
pub const POLL_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
pub struct Services {
    /// Sorted by name.
    rows: Vec<pb::ServiceStatus>,
    /// An answer has arrived (the list may still be empty).
    pub loaded: bool,
    /// The last call failed: why. The last good list stays.
    pub error: Option<String>,
    /// A call is out; no other is sent until it answers.
    pub in_flight: bool,
    /// When the last call answered (the model's monotonic clock): the next is due
    /// [`POLL_MS`] later, so a slow agent is not asked again the moment it answers.
    pub answered_at_ms: Option<u64>,
}

impl Services {
    /// Whether it is time to ask again.
    pub fn due(&self, now_ms: u64) -> bool {
        !self.in_flight
            && self
                .answered_at_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= POLL_MS)
    }

    /// Marks the list as asked for.
    pub fn asked(&mut self) {
        self.in_flight = true;
    }

    /// Asks again at the next chance (a write just changed something).
    pub fn invalidate(&mut self) {
        self.answered_at_ms = None;
    }

    pub fn answered(&mut self, result: Result<Vec<pb::ServiceStatus>, String>, now_ms: u64) {
        self.in_flight = false;
        self.answered_at_ms = Some(now_ms);
        match result {
            Ok(mut rows) => {
                rows.retain(|s| !name(s).is_empty());
                rows.sort_by(|a, b| name(a).cmp(name(b)));
                self.rows = rows;
                self.loaded = true;
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn rows(&self, offset: usize, n: usize) -> impl Iterator<Item = &pb::ServiceStatus> {
        self.rows.iter().skip(offset).take(n)
    }

    pub fn at(&self, i: usize) -> Option<&pb::ServiceStatus> {
        self.rows.get(i)
    }

    pub fn position(&self, service: &str) -> Option<usize> {
        self.rows.iter().position(|s| name(s) == service)
    }

    pub fn get(&self, service: &str) -> Option<&pb::ServiceStatus> {
        self.rows.iter().find(|s| name(s) == service)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(name)
    }
}

pub fn name(s: &pb::ServiceStatus) -> &str {
    s.entry.as_ref().map_or("", |e| e.name.as_str())
}

pub fn spec(s: &pb::ServiceStatus) -> Option<&pb::ServiceSpec> {
    s.entry.as_ref().and_then(|e| e.spec.as_ref())
}

pub fn image(s: &pb::ServiceStatus) -> &str {
    spec(s)
        .and_then(|x| x.container.as_ref())
        .map_or("", |c| c.image.as_str())
}

pub fn is_global(s: &pb::ServiceStatus) -> bool {
    spec(s).is_some_and(|x| x.mode == pb::ServiceMode::Global as i32)
}

/// `replicated` or `global`.
pub fn mode_word(s: &pb::ServiceStatus) -> &'static str {
    if is_global(s) { "global" } else { "replicated" }
}

/// The slots that have a container, for logs.
pub fn replicas(s: &pb::ServiceStatus) -> impl Iterator<Item = &pb::ServiceSlotStatus> {
    s.slots.iter().filter(|x| !x.container_id.is_empty())
}

/// `web.2@node-a | `: what each line of a service's merged logs starts with, as `berth service
/// logs` prints it.
pub fn log_prefix(service: &str, slot: &pb::ServiceSlotStatus) -> String {
    format!("{service}.{}@{} | ", slot.slot, slot.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str) -> pb::ServiceStatus {
        pb::ServiceStatus {
            entry: Some(pb::ServiceEntry {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn polls_once_a_second_and_never_two_at_once() {
        let mut s = Services::default();
        assert!(s.due(0));
        s.asked();
        assert!(!s.due(5_000), "one call at a time");
        s.answered(Ok(vec![status("web"), status("db")]), 5_000);
        assert!(!s.due(5_999), "a second after the answer");
        assert!(s.due(6_000));
        s.invalidate();
        assert!(s.due(1));
        assert_eq!(s.names().collect::<Vec<_>>(), ["db", "web"], "sorted");
    }

    #[test]
    fn a_failed_call_keeps_the_last_list() {
        let mut s = Services::default();
        s.asked();
        s.answered(Ok(vec![status("web")]), 0);
        s.asked();
        s.answered(Err("agent unreachable".into()), 1_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.error.as_deref(), Some("agent unreachable"));
        s.asked();
        s.answered(Ok(vec![]), 2_000);
        assert!(s.error.is_none() && s.is_empty() && s.loaded);
    }
}
