//! Runs by request id on this agent: one at a time per id, and where each was offered.
//!
//! A client sends the same request id on every retry of one `run`. Two facts keep a retry from
//! making a second container. The container carries its id (in its spec label and its gossip
//! row), so once it is in the view any agent answers with it. And until it is, the agent that
//! took the run remembers which node it offered it to, so a retry goes to that node first,
//! which answers from its own view. Runs with one id are serialized here so a retry that
//! arrives while the first try is still running waits for it instead of racing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an id's node is remembered: longer than any client keeps retrying.
pub const REMEMBER_FOR: Duration = Duration::from_secs(10 * 60);
/// Ids remembered at most; past it, the oldest idle ones are forgotten first.
pub const MAX_REMEMBERED: usize = 16_384;

#[derive(Default)]
pub struct Requests {
    ids: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The node the latest try offered the run to.
    node: Option<String>,
    touched: Instant,
}

/// The turn of one run of an id: others with the same id wait until it is dropped.
pub struct Turn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    /// The node an earlier try offered it to, if any.
    pub offered_to: Option<String>,
}

impl Requests {
    fn ids(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Plain data: usable after a panic elsewhere.
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the turn of `id`.
    pub async fn turn(&self, id: &str) -> Turn {
        let turn = {
            let mut ids = self.ids();
            if ids.len() >= MAX_REMEMBERED && !ids.contains_key(id) {
                forget_old(&mut ids);
            }
            let entry = ids.entry(id.to_owned()).or_insert_with(|| Entry {
                turn: Arc::default(),
                node: None,
                touched: Instant::now(),
            });
            entry.touched = Instant::now();
            entry.turn.clone()
        };
        let guard = turn.lock_owned().await;
        let offered_to = self.ids().get(id).and_then(|e| e.node.clone());
        Turn {
            _turn: guard,
            offered_to,
        }
    }

    /// Remembers that `id` is being offered to `node`.
    pub fn offered(&self, id: &str, node: &str) {
        let mut ids = self.ids();
        if let Some(e) = ids.get_mut(id) {
            e.node = Some(node.to_owned());
            e.touched = Instant::now();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids().len()
    }
}

/// Forgets ids untouched for [`REMEMBER_FOR`] and, if that is not enough, the older half of the
/// idle ones. An id whose turn is held is never forgotten.
fn forget_old(ids: &mut HashMap<String, Entry>) {
    let idle = |e: &Entry| Arc::strong_count(&e.turn) == 1;
    ids.retain(|_, e| !idle(e) || e.touched.elapsed() < REMEMBER_FOR);
    if ids.len() >= MAX_REMEMBERED {
        let mut ages: Vec<Instant> = ids
            .values()
            .filter(|e| idle(e))
            .map(|e| e.touched)
            .collect();
        ages.sort_unstable();
        if let Some(&cut) = ages.get(ages.len() / 2) {
            ids.retain(|_, e| !idle(e) || e.touched > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_id_and_the_node_is_remembered() {
        let r = Arc::new(Requests::default());
        let first = r.turn("a").await;
        assert_eq!(first.offered_to, None);
        r.offered("a", "n1");
        // Another id is not held up.
        let other = tokio::time::timeout(Duration::from_millis(100), r.turn("b")).await;
        assert!(other.is_ok());
        // The same id waits for the first turn (a free turn is ready at its first poll, so a
        // broken lock fails here whatever the machine's speed), then sees where it went.
        let blocked = tokio::time::timeout(Duration::from_millis(20), r.turn("a")).await;
        assert!(
            blocked.is_err(),
            "a second turn of one id ran alongside the first"
        );
        let r2 = r.clone();
        let second = tokio::spawn(async move { r2.turn("a").await.offered_to });
        drop(first);
        let seen = second.await.unwrap();
        assert_eq!(seen.as_deref(), Some("n1"));
    }

    #[tokio::test]
    async fn memory_is_bounded_and_spares_held_turns() {
        let r = Requests::default();
        let held = r.turn("held").await;
        for i in 0..MAX_REMEMBERED + 10 {
            let _t = r.turn(&format!("id-{i}")).await;
        }
        assert!(r.len() <= MAX_REMEMBERED, "{}", r.len());
        assert!(r.ids().contains_key("held"));
        drop(held);
    }
}
