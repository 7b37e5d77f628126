//! The reconciler's decisions, from plain data: a service's desired slots and the replicas the
//! view shows, in; the actions that close the gap, out. No clock, no I/O, no gRPC: the driver
//! (`services/mod.rs`) gathers the inputs and carries the actions out through the placer and the
//! runtime.
//!
//! The rules, for one service at spec version V:
//! - A replica on an alive node counts when it is running (or restarting, paused, or created
//!   less than [`STUCK_CREATED_MS`] ago). An exited, dead or stuck one is removed, and its slot
//!   refilled: a `berth stop` of a replica is undone, as in Swarm.
//! - A replica on a node that is suspect, or down for less than `reschedule_after`, still counts
//!   (a flapping node does not cause churn). One on a node down for longer, or gone, does not:
//!   its slot is refilled elsewhere.
//! - **Duplicates** (two copies of one slot, after two reconcilers acted at once or a partition
//!   healed): the copy that survives is the best by, in order, running spec version V, running,
//!   created last, then the greater container id. "Created last" makes the replacement survive
//!   when a node comes back with its stale copy. Copies on nodes that cannot be reached are
//!   left until they can.
//! - **Updates** replace `parallelism` slots at a time; a new replica must run for the monitor
//!   period (plus the update delay) before the next batch. A new replica that fails within its
//!   monitor period, or a placement of V that fails, triggers the failure action.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A container in `created` for longer than this is taken as a run that never finished (its
/// agent died between create and start) and is removed.
pub const STUCK_CREATED_MS: u64 = 60_000;

/// How a node looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Alive and its runtime reachable: replicas on it can be placed, counted and removed.
    Ready,
    /// Ready, but drained (`berth node drain`): its replicas count until a copy elsewhere has
    /// settled, then they are removed; nothing new is placed there.
    Drained,
    /// Alive but its runtime is down, or suspect, or down for less than `reschedule_after`:
    /// its replicas still count, but nothing is done to them.
    Unsure,
    /// Down for longer than `reschedule_after`, left, or not in the view: its replicas do not
    /// count.
    Lost,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub id: String,
    pub node: String,
    pub slot: String,
    pub version: u64,
    /// Docker's words.
    pub state: String,
    pub created_ms: i64,
    /// How long it has been running (0 when not running).
    pub running_ms: u64,
    pub restart_count: u32,
    /// Docker's health status (`starting`, `healthy`, `unhealthy`), empty without a check.
    pub health: String,
}

/// One service to reconcile.
#[derive(Debug, Clone)]
pub struct Desired {
    /// `None`: the service was removed; every replica goes.
    pub slots: Option<Vec<String>>,
    pub version: u64,
    pub parallelism: u32,
    /// Monitor period plus update delay, in ms.
    pub settle_ms: u64,
    pub monitor_ms: u64,
    pub start_first: bool,
    pub paused: bool,
    /// Slots whose placement is under way (or just done and not yet in the view).
    pub in_flight: BTreeSet<String>,
    /// Slots whose last placement at this version failed, still backing off.
    pub backing_off: BTreeSet<String>,
    /// A placement of this version failed (during an update: a failure).
    pub placement_failed: bool,
    /// A rolling update to this version is under way (the driver remembers it from the round
    /// that first saw an older replica until every slot settled).
    pub updating: bool,
}

/// What one round decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Some slot still runs an older version.
    pub outdated: bool,
    /// Every slot runs this version and has settled.
    pub settled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Place {
        slot: String,
    },
    Remove {
        id: String,
        node: String,
        why: &'static str,
    },
    /// A replica of `slot` died: back off before the slot is filled again, so a container that
    /// exits at once does not turn into a placement a second.
    Crashed {
        slot: String,
        why: String,
    },
    /// The update failed: apply the service's failure action.
    UpdateFailed {
        why: String,
    },
}

fn live_state(r: &Replica) -> bool {
    matches!(
        r.state.as_str(),
        "running" | "restarting" | "paused" | "created"
    )
}

/// The decisions for one service. `health` says how each node looks; `now_ms` is only used for
/// the age of `created` containers.
pub fn reconcile(
    desired: &Desired,
    replicas: &[Replica],
    health: &HashMap<String, NodeHealth>,
    now_ms: i64,
) -> Decision {
    let mut out = Vec::new();
    let health_of = |n: &str| health.get(n).copied().unwrap_or(NodeHealth::Lost);
    // Whether what runs on a node can be acted on (removed) from here.
    let reachable = |h: NodeHealth| matches!(h, NodeHealth::Ready | NodeHealth::Drained);
    let drained = |r: &Replica| health_of(&r.node) == NodeHealth::Drained;
    let Some(slots) = &desired.slots else {
        for r in replicas {
            if reachable(health_of(&r.node)) {
                out.push(Action::Remove {
                    id: r.id.clone(),
                    node: r.node.clone(),
                    why: "the service was removed",
                });
            }
        }
        return Decision {
            actions: out,
            ..Default::default()
        };
    };
    let wanted: BTreeSet<&str> = slots.iter().map(String::as_str).collect();
    let mut by_slot: BTreeMap<&str, Vec<&Replica>> = BTreeMap::new();
    let mut failed_new = false;
    let mut crashed: BTreeSet<&str> = BTreeSet::new();
    for r in replicas {
        let h = health_of(&r.node);
        if h == NodeHealth::Lost {
            continue;
        }
        if !wanted.contains(r.slot.as_str()) {
            if reachable(h) {
                out.push(Action::Remove {
                    id: r.id.clone(),
                    node: r.node.clone(),
                    why: "its slot is no longer wanted",
                });
            }
            continue;
        }
        let stuck =
            r.state == "created" && now_ms.saturating_sub(r.created_ms) > STUCK_CREATED_MS as i64;
        let unhealthy = r.health == "unhealthy";
        if reachable(h) && (!live_state(r) || stuck || unhealthy) {
            // A replica of the current version that died soon after it was made: during an
            // update, the update's failure.
            let young = now_ms.saturating_sub(r.created_ms)
                <= (desired.monitor_ms + STUCK_CREATED_MS) as i64;
            if r.version == desired.version && young {
                failed_new = true;
            }
            out.push(Action::Remove {
                id: r.id.clone(),
                node: r.node.clone(),
                why: if stuck {
                    "it was never started"
                } else if unhealthy {
                    "it is unhealthy"
                } else {
                    "it is not running"
                },
            });
            if !stuck && crashed.insert(r.slot.as_str()) {
                out.push(Action::Crashed {
                    slot: r.slot.clone(),
                    why: format!(
                        "container {} {} on {}",
                        short(&r.id),
                        if unhealthy {
                            "unhealthy"
                        } else {
                            r.state.as_str()
                        },
                        r.node
                    ),
                });
            }
            continue;
        }
        if h == NodeHealth::Ready
            && r.version == desired.version
            && r.restart_count > 0
            && r.running_ms < desired.monitor_ms
        {
            failed_new = true;
        }
        by_slot.entry(r.slot.as_str()).or_default().push(r);
    }

    // With a health check, a replica proves itself by being healthy, not only by running.
    let healthy = |r: &Replica| r.health.is_empty() || r.health == "healthy";
    let settled =
        |r: &Replica| r.state == "running" && healthy(r) && r.running_ms >= desired.settle_ms;
    let proven =
        |r: &Replica| r.state == "running" && healthy(r) && r.running_ms >= desired.monitor_ms;
    let mut outdated: Vec<(&str, &Replica)> = Vec::new();
    let mut in_progress = 0u32;
    for slot in slots {
        let slot = slot.as_str();
        let mut copies = by_slot.remove(slot).unwrap_or_default();
        if copies.is_empty() {
            if !desired.in_flight.contains(slot)
                && !desired.backing_off.contains(slot)
                && !crashed.contains(slot)
            {
                out.push(Action::Place {
                    slot: slot.to_owned(),
                });
            }
            if desired.in_flight.contains(slot) {
                in_progress += 1;
            }
            continue;
        }
        best_first(&mut copies, desired.version);
        // Copies on drained nodes last (the sort is stable): they stay only until another runs.
        copies.sort_by_key(|r| drained(r));
        let best = copies[0];
        if drained(best) {
            // Every copy is on a drained node: a new one goes elsewhere first, as a rolling
            // update with start-first would.
            if !desired.in_flight.contains(slot)
                && !desired.backing_off.contains(slot)
                && !crashed.contains(slot)
            {
                out.push(Action::Place {
                    slot: slot.to_owned(),
                });
            }
            in_progress += 1;
            continue;
        }
        // An update with start-first keeps the old copy until the new one has proven itself.
        let keep_old = best.version == desired.version && !proven(best);
        for extra in &copies[1..] {
            if drained(extra) {
                if settled(best) {
                    out.push(Action::Remove {
                        id: extra.id.clone(),
                        node: extra.node.clone(),
                        why: "its node is drained and a copy runs elsewhere",
                    });
                }
                continue;
            }
            if health_of(&extra.node) != NodeHealth::Ready {
                continue;
            }
            if keep_old && extra.version != desired.version {
                continue;
            }
            out.push(Action::Remove {
                id: extra.id.clone(),
                node: extra.node.clone(),
                why: "another copy of its slot survives",
            });
        }
        if best.version != desired.version {
            if !desired.in_flight.contains(slot) {
                outdated.push((slot, best));
            } else {
                in_progress += 1;
            }
        } else if !settled(best) {
            in_progress += 1;
        }
    }

    let any_outdated = !outdated.is_empty()
        || replicas
            .iter()
            .any(|r| r.version < desired.version && health_of(&r.node) != NodeHealth::Lost);
    let settled = !any_outdated && in_progress == 0 && crashed.is_empty();
    let decision = |actions| Decision {
        actions,
        outdated: any_outdated,
        settled,
    };
    let updating = desired.updating || any_outdated;
    if updating && (failed_new || desired.placement_failed) && !desired.paused {
        // No more replicas of the failing version: the failure action decides what next.
        out.retain(|a| !matches!(a, Action::Place { .. }));
        out.push(Action::UpdateFailed {
            why: if desired.placement_failed {
                "a new replica could not be placed".into()
            } else {
                "a new replica stopped running within its monitor period".into()
            },
        });
        return decision(out);
    }
    if desired.paused {
        return decision(out);
    }
    let budget = desired.parallelism.saturating_sub(in_progress) as usize;
    for (slot, old) in outdated.into_iter().take(budget) {
        if !desired.start_first && health_of(&old.node) == NodeHealth::Ready {
            out.push(Action::Remove {
                id: old.id.clone(),
                node: old.node.clone(),
                why: "it runs an older version of the spec",
            });
        }
        if desired.start_first || health_of(&old.node) == NodeHealth::Ready {
            out.push(Action::Place {
                slot: slot.to_owned(),
            });
        }
    }
    decision(out)
}

/// Orders the copies of one slot best first: the one that survives a duplicate is the one
/// that runs `version`, then a running one, then the one created last, then the greater id.
pub fn best_first(copies: &mut [&Replica], version: u64) {
    copies.sort_by(|a, b| {
        let key = |r: &Replica| (r.version == version, r.state == "running", r.created_ms);
        key(b).cmp(&key(a)).then_with(|| b.id.cmp(&a.id))
    });
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The node responsible for a service: the one of `ready` nodes with the highest rendezvous
/// hash of (service, node). Every agent whose view agrees on `ready` agrees on the answer, and
/// when a node goes, only its services move.
pub fn responsible<'a>(service: &str, ready: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    use sha2::Digest;
    ready.into_iter().max_by_key(|node| {
        let d = sha2::Sha256::digest(format!("{service}\0{node}").as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(b), node.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000;

    fn desired(n: u32, version: u64) -> Desired {
        Desired {
            slots: Some((1..=n).map(|i| i.to_string()).collect()),
            version,
            parallelism: 1,
            settle_ms: 5_000,
            monitor_ms: 5_000,
            start_first: false,
            paused: false,
            in_flight: BTreeSet::new(),
            backing_off: BTreeSet::new(),
            placement_failed: false,
            updating: false,
        }
    }

    fn rep(id: &str, node: &str, slot: &str, version: u64, state: &str, created: i64) -> Replica {
        Replica {
            id: id.into(),
            node: node.into(),
            slot: slot.into(),
            version,
            state: state.into(),
            created_ms: created,
            running_ms: if state == "running" { 60_000 } else { 0 },
            restart_count: 0,
            health: String::new(),
        }
    }

    fn ready(nodes: &[&str]) -> HashMap<String, NodeHealth> {
        nodes
            .iter()
            .map(|n| (n.to_string(), NodeHealth::Ready))
            .collect()
    }

    fn places(a: &[Action]) -> Vec<&str> {
        a.iter()
            .filter_map(|a| match a {
                Action::Place { slot } => Some(slot.as_str()),
                _ => None,
            })
            .collect()
    }

    fn removes(a: &[Action]) -> Vec<&str> {
        a.iter()
            .filter_map(|a| match a {
                Action::Remove { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn missing_slots_are_placed_once() {
        let mut d = desired(3, 1);
        let reps = [rep("a", "n1", "1", 1, "running", 0)];
        assert_eq!(
            places(&reconcile(&d, &reps, &ready(&["n1"]), NOW).actions),
            ["2", "3"]
        );
        d.in_flight.insert("2".into());
        assert_eq!(
            places(&reconcile(&d, &reps, &ready(&["n1"]), NOW).actions),
            ["3"]
        );
    }

    /// A drained node's replicas move as a start-first update would: a copy elsewhere first,
    /// the drained one removed once that copy has settled; a global slot there goes.
    #[test]
    fn replicas_leave_a_drained_node_once_a_copy_runs_elsewhere() {
        let d = desired(1, 1);
        let mut health = ready(&["n1", "n2"]);
        health.insert("n1".into(), NodeHealth::Drained);
        let on_drained = rep("old", "n1", "1", 1, "running", 100);
        let a = reconcile(&d, std::slice::from_ref(&on_drained), &health, NOW);
        assert_eq!(places(&a.actions), ["1"]);
        assert!(removes(&a.actions).is_empty(), "kept until another runs");
        assert!(!a.settled);
        // In flight: not placed twice.
        let mut busy = d.clone();
        busy.in_flight.insert("1".into());
        let a = reconcile(&busy, std::slice::from_ref(&on_drained), &health, NOW);
        assert!(places(&a.actions).is_empty());
        // The new copy runs but has not settled: both stay.
        let mut young = rep("new", "n2", "1", 1, "running", 200);
        young.running_ms = 1_000;
        let a = reconcile(&d, &[on_drained.clone(), young], &health, NOW);
        assert!(removes(&a.actions).is_empty(), "{:?}", a.actions);
        // Settled: the drained copy goes, and nothing new is placed.
        let settled = rep("new", "n2", "1", 1, "running", 200);
        let a = reconcile(&d, &[on_drained.clone(), settled], &health, NOW);
        assert_eq!(removes(&a.actions), ["old"]);
        assert!(places(&a.actions).is_empty());

        // Global: the drained node is no longer one of the slots; its replica goes.
        let global = Desired {
            slots: Some(vec!["n2".into()]),
            ..desired(0, 1)
        };
        let reps = [
            rep("g1", "n1", "n1", 1, "running", 100),
            rep("g2", "n2", "n2", 1, "running", 100),
        ];
        assert_eq!(
            removes(&reconcile(&global, &reps, &health, NOW).actions),
            ["g1"]
        );
    }

    #[test]
    fn a_duplicate_slot_keeps_the_newest_copy() {
        let d = desired(1, 1);
        let reps = [
            rep("old", "n1", "1", 1, "running", 100),
            rep("new", "n2", "1", 1, "running", 200),
        ];
        let a = reconcile(&d, &reps, &ready(&["n1", "n2"]), NOW).actions;
        assert_eq!(removes(&a), ["old"]);
        assert!(places(&a).is_empty());
        // The same answer whatever order the view lists them in.
        let swapped = [reps[1].clone(), reps[0].clone()];
        assert_eq!(
            removes(&reconcile(&d, &swapped, &ready(&["n1", "n2"]), NOW).actions),
            ["old"]
        );
    }

    #[test]
    fn a_flapping_node_keeps_its_replicas_until_lost() {
        let d = desired(1, 1);
        let reps = [rep("a", "n1", "1", 1, "running", 0)];
        let mut h = ready(&["n2"]);
        h.insert("n1".into(), NodeHealth::Unsure);
        assert!(
            reconcile(&d, &reps, &h, NOW).actions.is_empty(),
            "no churn while unsure"
        );
        h.insert("n1".into(), NodeHealth::Lost);
        assert_eq!(places(&reconcile(&d, &reps, &h, NOW).actions), ["1"]);
        // Back with its stale copy while the replacement runs: the replacement survives.
        let back = [
            rep("a", "n1", "1", 1, "running", 0),
            rep("b", "n2", "1", 1, "running", 500),
        ];
        assert_eq!(
            removes(&reconcile(&d, &back, &ready(&["n1", "n2"]), NOW).actions),
            ["a"]
        );
    }

    #[test]
    fn stopped_replicas_and_extra_slots_go() {
        let mut d = desired(1, 1);
        let reps = [
            rep("a", "n1", "1", 1, "exited", 0),
            rep("b", "n1", "2", 1, "running", 0),
        ];
        let a = reconcile(&d, &reps, &ready(&["n1"]), NOW).actions;
        assert_eq!(removes(&a), ["a", "b"]);
        // The dead replica's slot backs off instead of being refilled at once.
        assert!(places(&a).is_empty(), "{a:?}");
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Crashed { slot, .. } if slot == "1"))
        );
        d.backing_off.insert("1".into());
        assert!(places(&reconcile(&d, &[], &ready(&["n1"]), NOW).actions).is_empty());
        d.backing_off.clear();
        assert_eq!(
            places(&reconcile(&d, &[], &ready(&["n1"]), NOW).actions),
            ["1"]
        );
    }

    #[test]
    fn a_removed_service_loses_every_reachable_replica() {
        let mut d = desired(2, 1);
        d.slots = None;
        let reps = [
            rep("a", "n1", "1", 1, "running", 0),
            rep("b", "n2", "2", 1, "running", 0),
        ];
        let mut h = ready(&["n1"]);
        h.insert("n2".into(), NodeHealth::Unsure);
        assert_eq!(removes(&reconcile(&d, &reps, &h, NOW).actions), ["a"]);
    }

    #[test]
    fn an_update_replaces_one_slot_at_a_time() {
        let d = desired(3, 2);
        let mut reps: Vec<Replica> = (1..=3)
            .map(|i| rep(&format!("o{i}"), "n1", &i.to_string(), 1, "running", 0))
            .collect();
        let a = reconcile(&d, &reps, &ready(&["n1"]), NOW).actions;
        assert_eq!(removes(&a), ["o1"]);
        assert_eq!(places(&a), ["1"]);
        // Slot 1 is new but not settled yet: nothing more.
        reps[0] = rep("n1x", "n1", "1", 2, "running", NOW);
        reps[0].running_ms = 1_000;
        assert!(
            reconcile(&d, &reps, &ready(&["n1"]), NOW)
                .actions
                .is_empty()
        );
        // Settled: the next one.
        reps[0].running_ms = 10_000;
        assert_eq!(
            places(&reconcile(&d, &reps, &ready(&["n1"]), NOW).actions),
            ["2"]
        );
    }

    #[test]
    fn a_failing_new_replica_fails_the_update() {
        let d = desired(2, 2);
        let reps = [
            rep("new", "n1", "1", 2, "exited", NOW - 1_000),
            rep("o2", "n1", "2", 1, "running", 0),
        ];
        let a = reconcile(&d, &reps, &ready(&["n1"]), NOW).actions;
        assert!(
            a.iter().any(|a| matches!(a, Action::UpdateFailed { .. })),
            "{a:?}"
        );
        assert!(places(&a).is_empty(), "no more slots once it failed");
    }

    #[test]
    fn an_unhealthy_new_replica_fails_the_update_and_a_starting_one_holds_it() {
        let d = desired(2, 2);
        let mut new = rep("new", "n1", "1", 2, "running", NOW - 1_000);
        new.health = "starting".into();
        new.running_ms = 60_000;
        let old = rep("o2", "n1", "2", 1, "running", 0);
        // Running for long, but not healthy yet: the next slot waits.
        let a = reconcile(&d, &[new.clone(), old.clone()], &ready(&["n1"]), NOW).actions;
        assert!(a.is_empty(), "{a:?}");
        new.health = "unhealthy".into();
        let a = reconcile(&d, &[new.clone(), old.clone()], &ready(&["n1"]), NOW).actions;
        assert_eq!(removes(&a), ["new"]);
        assert!(
            a.iter().any(|a| matches!(a, Action::UpdateFailed { .. })),
            "{a:?}"
        );
        new.health = "healthy".into();
        let a = reconcile(&d, &[new, old], &ready(&["n1"]), NOW).actions;
        assert_eq!(places(&a), ["2"]);
    }

    #[test]
    fn start_first_keeps_the_old_copy_until_the_new_one_proves_itself() {
        let mut d = desired(1, 2);
        d.start_first = true;
        let old = rep("old", "n1", "1", 1, "running", 0);
        let a = reconcile(&d, std::slice::from_ref(&old), &ready(&["n1"]), NOW).actions;
        assert_eq!(places(&a), ["1"]);
        assert!(removes(&a).is_empty());
        let mut new = rep("new", "n2", "1", 2, "running", NOW);
        new.running_ms = 1_000;
        let both = [old.clone(), new.clone()];
        assert!(removes(&reconcile(&d, &both, &ready(&["n1", "n2"]), NOW).actions).is_empty());
        new.running_ms = 6_000;
        let both = [old, new];
        assert_eq!(
            removes(&reconcile(&d, &both, &ready(&["n1", "n2"]), NOW).actions),
            ["old"]
        );
    }

    #[test]
    fn every_view_picks_the_same_responsible_node() {
        let a = responsible("web", ["n1", "n2", "n3"]);
        let b = responsible("web", ["n3", "n1", "n2"]);
        assert_eq!(a, b);
        assert!(a.is_some());
        // Removing a node that is not responsible changes nothing.
        let keep = a.expect("some");
        let others: Vec<&str> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|n| *n == keep || *n != "n1")
            .collect();
        if keep != "n1" {
            assert_eq!(responsible("web", others), Some(keep));
        }
        assert_eq!(responsible("web", std::iter::empty()), None);
    }
}
