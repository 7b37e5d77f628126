//! Placement: filter the nodes a container may run on, then rank them. Pure: no Docker, no gRPC,
//! no clock. The entry agent ranks from its gossiped view (plus its own recent placements); the
//! chosen node admits against its own ledger and may still refuse, and then the next one is tried
//! (optimistic, shared-state scheduling, as in Omega).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// Alive and its runtime reachable: anything else is rejected.
    pub schedulable: Result<(), String>,
    pub labels: HashMap<String, String>,
    pub allocatable_cpus: f64,
    pub allocatable_memory: u64,
    pub reserved_cpus: f64,
    pub reserved_memory: u64,
    pub containers: u32,
    /// The named volumes Berth made on the node, as its row says.
    pub volumes: Vec<String>,
    /// Drained (`berth node drain`): unschedulable, though it may well be up.
    pub drained: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Spread,
    Binpack,
}

pub use berth_shared::constraint::Constraint;

/// Whether `k` holds for `c`; the pseudo-label `node` is the node's name.
fn holds(k: &Constraint, c: &Candidate) -> bool {
    k.holds(&c.name, &c.labels)
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub cpus: f64,
    pub memory: u64,
    pub node: Option<String>,
    pub constraints: Vec<Constraint>,
    pub strategy: Strategy,
    /// Replicas of the same service already on each node: a service's replicas spread across
    /// nodes first (fewest of them first), whatever the strategy, then by the strategy.
    pub siblings: HashMap<String, u32>,
    /// The named volumes the container mounts. One that exists on some node pins the
    /// container to the nodes that hold it, unless the request names its node (`node`, or a
    /// constraint `node==NAME`): its data is there.
    pub volumes: Vec<String>,
    /// Nodes where another slot of the same service has a replica: a volume there belongs to
    /// that replica and pins nothing, so a replicated service's slots spread, each with its
    /// own volume, while one slot's new copy follows its data.
    pub other_replicas_on: std::collections::HashSet<String>,
}

impl Request {
    /// The volumes of the request that some candidate holds: they decide where it may go.
    fn pinning_volumes<'a>(&'a self, candidates: &[Candidate]) -> Vec<&'a str> {
        // Naming the node is saying where; excluding one (`node!=x`) is not.
        let names_its_node = self.node.is_some()
            || self
                .constraints
                .iter()
                .any(|k| matches!(k, Constraint::Eq(key, _) if key == "node"));
        if names_its_node {
            return Vec::new();
        }
        self.volumes
            .iter()
            .map(String::as_str)
            .filter(|v| candidates.iter().any(|c| self.pinned_by(c, v)))
            .collect()
    }

    /// Whether `c`'s copy of `volume` pins this request (it is not another replica's).
    fn pinned_by(&self, c: &Candidate, volume: &str) -> bool {
        c.holds(volume) && !self.other_replicas_on.contains(&c.name)
    }
}

impl Candidate {
    fn holds(&self, volume: &str) -> bool {
        self.volumes.iter().any(|v| v == volume)
    }
}

/// The nodes that hold `volume`, for a reason: at most three named.
fn holders(candidates: &[Candidate], req: &Request, volume: &str) -> String {
    let names: Vec<&str> = candidates
        .iter()
        .filter(|c| req.pinned_by(c, volume))
        .map(|c| c.name.as_str())
        .collect();
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// Why no node could take the container: one reason per node.
#[derive(Debug, Clone, PartialEq)]
pub struct NoPlacement {
    pub rejected: Vec<Rejection>,
}

/// One node that cannot take it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub node: String,
    pub why: String,
    /// Short of CPU or memory (and nothing else stood in the way).
    pub short_of_room: bool,
}

impl Rejection {
    pub fn new(node: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            why: why.into(),
            short_of_room: false,
        }
    }
}

impl NoPlacement {
    /// Why, as the console's hint needs it: room when every node is only short of room.
    pub fn reason(&self) -> berth_shared::reason::Reason {
        use berth_shared::reason::Reason;
        if !self.rejected.is_empty() && self.rejected.iter().all(|r| r.short_of_room) {
            Reason::NoRoom
        } else {
            Reason::NoMatch
        }
    }
}

impl fmt::Display for NoPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rejected.is_empty() {
            return f.write_str("no node can run it: the cluster has no nodes");
        }
        f.write_str("no node can run it: ")?;
        for (i, r) in self.rejected.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", r.node, r.why)?;
        }
        Ok(())
    }
}

/// Whether `req` fits on `c` by resources alone; the reason when it does not.
pub fn fits(c: &Candidate, req: &Request) -> Result<(), String> {
    if req.cpus > 0.0 {
        let free = (c.allocatable_cpus - c.reserved_cpus).max(0.0);
        if req.cpus > free + 1e-9 {
            return Err(format!(
                "needs {} CPUs, {} of {} free",
                trim(req.cpus),
                trim(free),
                trim(c.allocatable_cpus)
            ));
        }
    }
    if req.memory > 0 {
        let free = c.allocatable_memory.saturating_sub(c.reserved_memory);
        if req.memory > free {
            return Err(format!(
                "needs {} of memory, {} of {} free",
                berth_shared::quantity::format_bytes(req.memory),
                berth_shared::quantity::format_bytes(free),
                berth_shared::quantity::format_bytes(c.allocatable_memory)
            ));
        }
    }
    Ok(())
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The share of the node already reserved, after adding `req` (the larger of CPU and memory).
fn load_after(c: &Candidate, req: &Request) -> f64 {
    let frac = |used: f64, total: f64| if total > 0.0 { used / total } else { 0.0 };
    let cpu = frac(c.reserved_cpus + req.cpus, c.allocatable_cpus);
    let mem = frac(
        (c.reserved_memory + req.memory) as f64,
        c.allocatable_memory as f64,
    );
    cpu.max(mem)
}

/// The candidates that can take `req`, best first; or why none can.
pub fn rank(candidates: &[Candidate], req: &Request) -> Result<Vec<String>, NoPlacement> {
    let mut ok: Vec<&Candidate> = Vec::new();
    let mut rejected = Vec::new();
    let pinning = req.pinning_volumes(candidates);
    for c in candidates {
        let verdict = (|| {
            if let Some(pin) = &req.node
                && pin != &c.name
            {
                return Err((format!("not the requested node {pin}"), false));
            }
            if let Some(v) = pinning.iter().find(|v| !req.pinned_by(c, v)) {
                return Err((
                    format!(
                        "volume {v} is on {} (to start afresh on another node, pin it there: \
                         --node NAME, or the constraint node==NAME)",
                        holders(candidates, req, v)
                    ),
                    false,
                ));
            }
            c.schedulable.clone().map_err(|why| (why, false))?;
            if let Some(k) = req.constraints.iter().find(|k| !holds(k, c)) {
                return Err((format!("constraint {k} not met"), false));
            }
            fits(c, req).map_err(|why| (why, true))
        })();
        match verdict {
            Ok(()) => ok.push(c),
            Err((why, short_of_room)) => rejected.push(Rejection {
                node: c.name.clone(),
                why,
                short_of_room,
            }),
        }
    }
    if ok.is_empty() {
        if let Some(pin) = &req.node
            && !candidates.iter().any(|c| &c.name == pin)
        {
            return Err(NoPlacement {
                rejected: vec![Rejection::new(pin.clone(), "no such node in the cluster")],
            });
        }
        // Only the pinned node's reason matters when one was pinned.
        if let Some(pin) = &req.node {
            rejected.retain(|r| &r.node == pin);
        }
        return Err(NoPlacement { rejected });
    }
    ok.sort_by(|a, b| {
        let (la, lb) = (load_after(a, req), load_after(b, req));
        let by_load = match req.strategy {
            Strategy::Spread => la.partial_cmp(&lb),
            Strategy::Binpack => lb.partial_cmp(&la),
        }
        .unwrap_or(Ordering::Equal);
        let by_count = match req.strategy {
            Strategy::Spread => a.containers.cmp(&b.containers),
            Strategy::Binpack => b.containers.cmp(&a.containers),
        };
        let siblings = |c: &Candidate| req.siblings.get(&c.name).copied().unwrap_or(0);
        siblings(a)
            .cmp(&siblings(b))
            .then(by_load)
            .then(by_count)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(ok.into_iter().map(|c| c.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn node(name: &str) -> Candidate {
        Candidate {
            name: name.into(),
            schedulable: Ok(()),
            labels: HashMap::new(),
            allocatable_cpus: 4.0,
            allocatable_memory: 8 * GIB,
            reserved_cpus: 0.0,
            reserved_memory: 0,
            containers: 0,
            volumes: Vec::new(),
            drained: false,
        }
    }

    #[test]
    fn a_named_volume_pins_the_container_to_the_node_that_holds_it() {
        let mut holder = node("b");
        holder.volumes = vec!["pgdata".into()];
        holder.containers = 5;
        holder.reserved_memory = 4 * GIB;
        let nodes = [node("a"), holder.clone(), node("c")];
        let req = Request {
            volumes: vec!["pgdata".into(), "fresh".into()],
            ..Default::default()
        };
        // b is the busiest, but the data is there; a volume no node has yet pins nothing.
        assert_eq!(rank(&nodes, &req).expect("placed"), ["b"]);

        // The holder down: the container waits for it rather than starting empty elsewhere.
        let mut down = holder.clone();
        down.schedulable = Err("down".into());
        let e = rank(&[node("a"), down], &req).expect_err("pinned");
        let text = e.to_string();
        assert!(text.contains("b: down"), "{text}");
        assert!(text.contains("a: volume pgdata is on b"), "{text}");

        // Told otherwise: a node named, or a constraint on the node.
        let told = Request {
            node: Some("a".into()),
            ..req.clone()
        };
        assert_eq!(rank(&nodes, &told).expect("placed"), ["a"]);
        let told = Request {
            constraints: vec![Constraint::Eq("node".into(), "c".into())],
            ..req.clone()
        };
        assert_eq!(rank(&nodes, &told).expect("placed"), ["c"]);
        // Excluding a node is not naming one: the data still decides.
        let not_a = Request {
            constraints: vec![Constraint::Ne("node".into(), "a".into())],
            ..req.clone()
        };
        assert_eq!(rank(&nodes, &not_a).expect("placed"), ["b"]);
        // A volume that is another replica's pins nothing: the slots spread.
        let other_slot = Request {
            other_replicas_on: ["b".to_owned()].into(),
            ..req.clone()
        };
        assert_eq!(rank(&nodes, &other_slot).expect("placed").len(), 3);

        // Without a volume, b is last.
        let free = Request::default();
        assert_eq!(
            rank(&nodes, &free)
                .expect("placed")
                .last()
                .map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn replicas_of_one_service_spread_before_load() {
        let mut busy = node("a");
        busy.reserved_memory = GIB;
        let (idle, other) = (node("b"), node("c"));
        let req = Request {
            siblings: HashMap::from([("b".to_owned(), 1)]),
            ..Default::default()
        };
        // b is the least loaded but already holds a sibling: a and c come first.
        let ranked = rank(&[busy, idle, other], &req).expect("placeable");
        assert_eq!(ranked, vec!["c", "a", "b"]);
    }

    #[test]
    fn spread_prefers_the_least_reserved_then_the_fewest_containers() {
        let mut a = node("a");
        a.reserved_memory = 4 * GIB;
        let mut b = node("b");
        b.containers = 3;
        let c = node("c");
        let order = rank(&[a, b, c], &Request::default()).expect("placeable");
        assert_eq!(order, ["c", "b", "a"]);
    }

    #[test]
    fn binpack_prefers_the_fullest_node_that_still_fits() {
        let mut a = node("a");
        a.reserved_memory = 6 * GIB;
        let mut b = node("b");
        b.reserved_memory = 7 * GIB;
        let c = node("c");
        let req = Request {
            memory: 2 * GIB,
            strategy: Strategy::Binpack,
            ..Default::default()
        };
        // b is fullest but 2 GiB no longer fits there.
        assert_eq!(rank(&[a, b, c], &req).expect("placeable"), ["a", "c"]);
    }

    #[test]
    fn constraints_and_pins_filter() {
        let mut a = node("a");
        a.labels.insert("zone".into(), "east".into());
        let mut b = node("b");
        b.labels.insert("zone".into(), "west".into());
        let c = node("c");
        let eq = Request {
            constraints: vec![Constraint::parse("zone==east").expect("valid")],
            ..Default::default()
        };
        assert_eq!(
            rank(&[a.clone(), b.clone(), c.clone()], &eq).expect("a"),
            ["a"]
        );
        let ne = Request {
            constraints: vec![Constraint::parse("zone!=east").expect("valid")],
            ..Default::default()
        };
        assert_eq!(
            rank(&[a.clone(), b.clone(), c.clone()], &ne).expect("b and c"),
            ["b", "c"]
        );
        let by_name = Request {
            constraints: vec![Constraint::parse("node!=b").expect("valid")],
            ..Default::default()
        };
        assert_eq!(
            rank(&[a.clone(), b.clone(), c.clone()], &by_name).expect("a and c"),
            ["a", "c"]
        );
        let pin = Request {
            node: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(rank(&[a, b, c], &pin).expect("b"), ["b"]);
    }

    #[test]
    fn no_placement_says_why_for_each_node() {
        let mut down = node("a");
        down.schedulable = Err("down".into());
        let mut west = node("b");
        west.labels.insert("zone".into(), "west".into());
        let mut full = node("c");
        full.labels.insert("zone".into(), "east".into());
        full.reserved_cpus = 3.5;
        let req = Request {
            cpus: 1.0,
            constraints: vec![Constraint::parse("zone==east").expect("valid")],
            ..Default::default()
        };
        let err = rank(&[down, west, full], &req).expect_err("nothing fits");
        let text = err.to_string();
        assert!(text.contains("a: down"), "{text}");
        assert!(text.contains("b: constraint zone==east not met"), "{text}");
        assert!(text.contains("c: needs 1 CPUs, 0.5 of 4 free"), "{text}");
        // Mixed reasons: lowering --cpus would not help a and b.
        assert_eq!(err.reason(), berth_shared::reason::Reason::NoMatch);
    }

    #[test]
    fn no_room_is_the_reason_only_when_every_node_is_short_of_room() {
        use berth_shared::reason::Reason;
        let mut a = node("a");
        a.reserved_cpus = 3.5;
        let mut b = node("b");
        b.reserved_memory = 8 * GIB;
        let req = Request {
            cpus: 1.0,
            memory: GIB,
            ..Default::default()
        };
        let err = rank(&[a.clone(), b.clone()], &req).expect_err("full");
        assert_eq!(err.reason(), Reason::NoRoom, "{err}");
        let mut down = node("c");
        down.schedulable = Err("down".into());
        let err = rank(&[a, b, down], &req).expect_err("full or down");
        assert_eq!(err.reason(), Reason::NoMatch, "{err}");
        let err = rank(&[], &req).expect_err("no nodes");
        assert_eq!(err.reason(), Reason::NoMatch, "{err}");
    }

    #[test]
    fn a_pin_to_an_unknown_or_full_node_names_it() {
        let err = rank(
            &[node("a")],
            &Request {
                node: Some("zz".into()),
                ..Default::default()
            },
        )
        .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "no node can run it: zz: no such node in the cluster"
        );
        let mut a = node("a");
        a.reserved_memory = 8 * GIB;
        let err = rank(
            &[a, node("b")],
            &Request {
                node: Some("a".into()),
                memory: GIB,
                ..Default::default()
            },
        )
        .expect_err("full");
        assert!(
            err.to_string()
                .starts_with("no node can run it: a: needs 1.0GiB"),
            "{err}"
        );
        // Only the pinned node counts: it is short of room.
        assert_eq!(err.reason(), berth_shared::reason::Reason::NoRoom);
    }
}
