//! Every container of the cluster, keyed by id, and the sorted, filtered list the table shows.
//!
//! Rows live in a slab (`Vec<Option<Row>>`) found through `by_id`; two index vectors of slot
//! numbers hold the order: `sorted` (every row, in the sort order) and `visible` (the rows of
//! `sorted` that pass the node scope and the filter). They are recomputed only when an input
//! changed ([`Containers::refresh`]), never per frame, and always into the same vectors, so a
//! filter keystroke allocates nothing: a longer filter narrows `visible` in place, any other
//! change refilters `sorted` without sorting again.

use crate::output::{port_text, short_id};
pub use crate::tui::types::SortKey;
use berth_proto::v1 as pb;
use std::cmp::Ordering;
use std::collections::HashMap;

/// One container and what is derived from it once per change rather than per frame.
#[derive(Debug, Clone)]
pub struct Row {
    pub summary: pb::ContainerSummary,
    /// Lower-case `name \n image \n node \n state`: what the filter searches.
    haystack: String,
    /// Docker's PORTS text.
    pub ports: String,
}

impl Row {
    fn new(summary: pb::ContainerSummary) -> Self {
        let mut row = Self {
            summary,
            haystack: String::new(),
            ports: String::new(),
        };
        row.derive();
        row
    }

    fn derive(&mut self) {
        let s = &self.summary;
        self.haystack.clear();
        for (i, part) in [&s.name, &s.image, &s.node, &s.state]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                self.haystack.push('\n');
            }
            self.haystack
                .extend(part.chars().flat_map(char::to_lowercase));
        }
        self.ports.clear();
        for (i, p) in s.ports.iter().enumerate() {
            if i > 0 {
                self.ports.push_str(", ");
            }
            self.ports.push_str(&port_text(p));
        }
    }

    pub fn short_id(&self) -> &str {
        short_id(&self.summary.id)
    }

    fn matches(&self, needle: &str, scope: Option<&str>) -> bool {
        scope.is_none_or(|node| self.summary.node == node)
            && (needle.is_empty() || self.haystack.contains(needle))
    }

    pub fn is_running(&self) -> bool {
        self.summary.state == "running"
    }
}

fn compare(a: &Row, b: &Row, key: SortKey, descending: bool) -> Ordering {
    let (x, y) = (&a.summary, &b.summary);
    let primary = match key {
        SortKey::Id => x.id.cmp(&y.id),
        SortKey::Name => x.name.cmp(&y.name),
        SortKey::Image => x.image.cmp(&y.image),
        SortKey::Node => x.node.cmp(&y.node),
        SortKey::State => x.state.cmp(&y.state),
        SortKey::Age => x.created_unix_ms.cmp(&y.created_unix_ms),
        SortKey::Cpu => x.cpu_percent.total_cmp(&y.cpu_percent),
        SortKey::Memory => x.memory_bytes.cmp(&y.memory_bytes),
        SortKey::Ports => a.ports.cmp(&b.ports),
    };
    let primary = if descending {
        primary.reverse()
    } else {
        primary
    };
    // Ties in a stable, total order (always A to Z), so equal rows do not swap places between
    // refreshes.
    primary
        .then_with(|| x.name.cmp(&y.name))
        .then_with(|| x.id.cmp(&y.id))
}

/// Whether the field `key` sorts by differs between two versions of a container.
fn sort_field_changed(old: &Row, new: &pb::ContainerSummary, key: SortKey) -> bool {
    let o = &old.summary;
    let changed = match key {
        SortKey::Id => false,
        SortKey::Name => o.name != new.name,
        SortKey::Image => o.image != new.image,
        SortKey::Node => o.node != new.node,
        SortKey::State => o.state != new.state,
        SortKey::Age => o.created_unix_ms != new.created_unix_ms,
        SortKey::Cpu => o.cpu_percent.to_bits() != new.cpu_percent.to_bits(),
        SortKey::Memory => o.memory_bytes != new.memory_bytes,
        SortKey::Ports => o.ports != new.ports,
    };
    // The tie-breakers: a renamed container moves too.
    changed || o.name != new.name
}

/// Running and total containers of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub running: u32,
    pub total: u32,
}

#[derive(Debug, Clone)]
pub struct Containers {
    slots: Vec<Option<Row>>,
    free: Vec<u32>,
    by_id: HashMap<String, u32>,
    sorted: Vec<u32>,
    visible: Vec<u32>,
    sort: SortKey,
    descending: bool,
    /// Lower-case filter text.
    needle: String,
    /// The previous needle's buffer, reused for the next one.
    spare: String,
    scope: Option<String>,
    sorted_dirty: bool,
    visible_dirty: bool,
    /// Bumped whenever `visible` changes order or content.
    generation: u64,
    per_node: HashMap<String, Counts>,
}

impl Default for Containers {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            sorted: Vec::new(),
            visible: Vec::new(),
            sort: SortKey::Name,
            descending: false,
            needle: String::new(),
            spare: String::new(),
            scope: None,
            sorted_dirty: false,
            visible_dirty: false,
            generation: 0,
            per_node: HashMap::new(),
        }
    }
}

impl Containers {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Row> {
        self.by_id.get(id).and_then(|&slot| self.slot(slot))
    }

    fn slot(&self, slot: u32) -> Option<&Row> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The rows shown, in order (after the last [`Self::refresh`]).
    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The `index`-th shown row.
    pub fn visible_row(&self, index: usize) -> Option<&Row> {
        self.visible.get(index).and_then(|&slot| self.slot(slot))
    }

    /// Shown rows from `start`, at most `count` of them.
    pub fn visible_rows(&self, start: usize, count: usize) -> impl Iterator<Item = &Row> + '_ {
        self.visible
            .iter()
            .skip(start)
            .take(count)
            .filter_map(|&slot| self.slot(slot))
    }

    /// Where the container `id` is among the shown rows.
    pub fn position(&self, id: &str) -> Option<usize> {
        let slot = *self.by_id.get(id)?;
        self.visible.iter().position(|&s| s == slot)
    }

    pub fn sort(&self) -> (SortKey, bool) {
        (self.sort, self.descending)
    }

    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn filter(&self) -> &str {
        &self.needle
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn counts(&self, node: &str) -> Counts {
        self.per_node.get(node).copied().unwrap_or_default()
    }

    fn count(&mut self, s: &pb::ContainerSummary, add: bool) {
        let counts = match self.per_node.get_mut(&s.node) {
            Some(c) => c,
            None if add => self.per_node.entry(s.node.clone()).or_default(),
            None => return,
        };
        let running = u32::from(s.state == "running");
        if add {
            counts.total += 1;
            counts.running += running;
        } else {
            counts.total = counts.total.saturating_sub(1);
            counts.running = counts.running.saturating_sub(running);
        }
    }

    /// Adds or updates one container. The shown order is updated by the next
    /// [`Self::refresh`], and only when something it depends on changed.
    pub fn upsert(&mut self, summary: pb::ContainerSummary) {
        if summary.id.is_empty() {
            return;
        }
        let Some(&slot) = self.by_id.get(&summary.id) else {
            self.count(&summary, true);
            let id = summary.id.clone();
            let row = Some(Row::new(summary));
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.slots[slot as usize] = row;
                    slot
                }
                None => {
                    self.slots.push(row);
                    u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                }
            };
            self.by_id.insert(id, slot);
            self.sorted_dirty = true;
            return;
        };
        let Some(old) = self.slots.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let resort = sort_field_changed(old, &summary, self.sort);
        let refilter = old.summary.name != summary.name
            || old.summary.image != summary.image
            || old.summary.node != summary.node
            || old.summary.state != summary.state;
        let recount = old.summary.node != summary.node || old.summary.state != summary.state;
        let reports = old.summary.ports != summary.ports;
        if recount {
            let previous = old.summary.clone();
            self.count(&previous, false);
            self.count(&summary, true);
        }
        let Some(row) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        row.summary = summary;
        if refilter || reports {
            row.derive();
        }
        self.sorted_dirty |= resort;
        self.visible_dirty |= refilter;
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(row) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.count(&row.summary, false);
        }
        self.free.push(slot);
        self.sorted.retain(|&s| s != slot);
        let before = self.visible.len();
        self.visible.retain(|&s| s != slot);
        if self.visible.len() != before {
            self.generation += 1;
        }
        true
    }

    /// Replaces everything (a fresh snapshot).
    pub fn replace_all(&mut self, all: impl IntoIterator<Item = pb::ContainerSummary>) {
        self.slots.clear();
        self.free.clear();
        self.by_id.clear();
        self.sorted.clear();
        self.visible.clear();
        self.per_node.clear();
        for summary in all {
            self.upsert(summary);
        }
        self.sorted_dirty = true;
    }

    /// Sorts by `key`; the same key again reverses the order.
    pub fn set_sort(&mut self, key: SortKey) {
        if self.sort == key {
            self.descending = !self.descending;
        } else {
            self.sort = key;
            self.descending = key.descending_by_default();
        }
        self.sorted_dirty = true;
    }

    /// Shows only one node's containers, or every node's.
    pub fn set_scope(&mut self, node: Option<String>) {
        if self.scope != node {
            self.scope = node;
            self.visible_dirty = true;
        }
    }

    /// Sets the filter text (case-insensitive substring of name, image, node and state). A
    /// filter that contains the previous one narrows the shown rows in place.
    pub fn set_filter(&mut self, text: &str) {
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        next.extend(text.chars().flat_map(char::to_lowercase));
        if next == self.needle {
            self.spare = next;
            return;
        }
        let narrows = !self.sorted_dirty && !self.visible_dirty && next.contains(&self.needle);
        self.spare = std::mem::replace(&mut self.needle, next);
        if narrows {
            let (slots, needle, scope) = (&self.slots, &self.needle, self.scope.as_deref());
            self.visible.retain(|&slot| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|row| row.matches(needle, scope))
            });
            self.generation += 1;
        } else {
            self.visible_dirty = true;
        }
    }

    /// Whether [`Self::refresh`] has work to do.
    pub fn is_dirty(&self) -> bool {
        self.sorted_dirty || self.visible_dirty
    }

    /// Brings `sorted` and `visible` up to date. Returns whether `visible` changed.
    pub fn refresh(&mut self) -> bool {
        if !self.is_dirty() {
            return false;
        }
        if self.sorted_dirty {
            self.sorted.clear();
            self.sorted.extend(self.by_id.values().copied());
            let (slots, key, descending) = (&self.slots, self.sort, self.descending);
            self.sorted.sort_unstable_by(|&a, &b| {
                match (
                    slots.get(a as usize).and_then(Option::as_ref),
                    slots.get(b as usize).and_then(Option::as_ref),
                ) {
                    (Some(a), Some(b)) => compare(a, b, key, descending),
                    _ => a.cmp(&b),
                }
            });
            self.sorted_dirty = false;
        }
        self.visible.clear();
        let (slots, needle, scope) = (&self.slots, &self.needle, self.scope.as_deref());
        self.visible
            .extend(self.sorted.iter().copied().filter(|&slot| {
                slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|row| row.matches(needle, scope))
            }));
        self.visible_dirty = false;
        self.generation += 1;
        true
    }

    /// Every container (any order).
    pub fn iter(&self) -> impl Iterator<Item = &Row> + '_ {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn summary(
        id: &str,
        name: &str,
        node: &str,
        state: &str,
        cpu: f64,
    ) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: id.into(),
            name: name.into(),
            image: format!("img/{name}:1"),
            node: node.into(),
            state: state.into(),
            cpu_percent: cpu,
            ..Default::default()
        }
    }

    fn names(c: &Containers) -> Vec<String> {
        c.visible_rows(0, usize::MAX)
            .map(|r| r.summary.name.clone())
            .collect()
    }

    fn fixture() -> Containers {
        let mut c = Containers::default();
        c.replace_all([
            summary("3", "web", "alpha", "running", 5.0),
            summary("1", "db", "beta", "running", 50.0),
            summary("2", "cache", "alpha", "exited", 0.0),
        ]);
        c.refresh();
        c
    }

    #[test]
    fn sorts_by_name_then_by_other_columns_and_reverses() {
        let mut c = fixture();
        assert_eq!(names(&c), ["cache", "db", "web"]);
        c.set_sort(SortKey::Cpu);
        c.refresh();
        assert_eq!(names(&c), ["db", "web", "cache"], "cpu: biggest first");
        c.set_sort(SortKey::Cpu);
        c.refresh();
        assert_eq!(names(&c), ["cache", "web", "db"]);
        c.upsert(summary("4", "aaa", "beta", "exited", 0.0));
        c.set_sort(SortKey::Cpu);
        c.refresh();
        assert_eq!(names(&c), ["db", "web", "aaa", "cache"], "ties stay A to Z");
        c.remove("4");
        c.set_sort(SortKey::Node);
        c.refresh();
        assert_eq!(names(&c), ["cache", "web", "db"], "node, then name");
    }

    #[test]
    fn filter_matches_name_image_node_and_state_case_insensitively() {
        let mut c = fixture();
        c.set_filter("ALPHA");
        c.refresh();
        assert_eq!(names(&c), ["cache", "web"]);
        c.set_filter("exit");
        c.refresh();
        assert_eq!(names(&c), ["cache"]);
        c.set_filter("img/d");
        c.refresh();
        assert_eq!(names(&c), ["db"]);
        c.set_filter("");
        c.refresh();
        assert_eq!(names(&c), ["cache", "db", "web"]);
    }

    #[test]
    fn a_longer_filter_narrows_in_place_without_refiltering() {
        let mut c = fixture();
        c.set_filter("a");
        c.refresh();
        let capacity = c.visible.capacity();
        c.set_filter("al");
        assert!(!c.is_dirty(), "narrowing needs no refresh");
        assert_eq!(names(&c), ["cache", "web"]);
        c.set_filter("alp");
        assert_eq!(c.visible.capacity(), capacity, "same buffer");
        c.set_filter("db");
        assert!(c.is_dirty(), "a different filter refilters");
        c.refresh();
        assert_eq!(names(&c), ["db"]);
    }

    #[test]
    fn updates_resort_only_when_the_sort_field_changes() {
        let mut c = fixture();
        c.upsert(summary("3", "web", "alpha", "running", 99.0));
        assert!(!c.is_dirty(), "cpu does not matter to a sort by name");
        c.set_sort(SortKey::Cpu);
        c.refresh();
        c.upsert(summary("2", "cache", "alpha", "exited", 0.0));
        assert!(!c.is_dirty(), "nothing changed");
        c.upsert(summary("2", "cache", "alpha", "running", 100.0));
        assert!(c.is_dirty());
        c.refresh();
        assert_eq!(names(&c), ["cache", "web", "db"]);
    }

    #[test]
    fn scope_and_counts_follow_changes_and_removals() {
        let mut c = fixture();
        c.set_scope(Some("alpha".into()));
        c.refresh();
        assert_eq!(names(&c), ["cache", "web"]);
        assert_eq!(
            c.counts("alpha"),
            Counts {
                running: 1,
                total: 2
            }
        );
        c.upsert(summary("2", "cache", "alpha", "running", 0.0));
        assert_eq!(
            c.counts("alpha"),
            Counts {
                running: 2,
                total: 2
            }
        );
        assert!(c.remove("3"));
        assert_eq!(names(&c), ["cache"], "removal shows at once");
        assert_eq!(
            c.counts("alpha"),
            Counts {
                running: 1,
                total: 1
            }
        );
        assert!(!c.remove("3"));
        c.upsert(summary("4", "new", "alpha", "created", 0.0));
        c.refresh();
        assert_eq!(names(&c), ["cache", "new"]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.position("4"), Some(1));
    }
}
