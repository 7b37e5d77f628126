//! Scale simulation with hollow nodes: N `berthd --runtime sim` processes (containers live in
//! memory) on 127.0.1.x addresses, with real gossip and real gRPC. For each N:
//!
//! 1. convergence from one seed: the N−1 other agents are started first, each with `--join
//!    <seed>` (the seed is not up yet, so each is alone); then the seed starts, and the time runs
//!    until every agent's `Cluster` lists N nodes alive;
//! 2. gossip traffic per node, from each agent's own cumulative counters over a window;
//! 3. failure detection: one agent is killed with SIGKILL, and the time runs until every other
//!    agent lists it down;
//! 4. placements on the N−1 left: 10,000 `Run` calls through one entry agent (16 in flight), then
//!    10,000 through all agents at once (2 in flight per agent), each phase stopped at a time
//!    limit (30 s) so a slow cluster cannot stall the run; each call's latency to `Started`;
//! 5. the time until every placed container is in every view (20 agents sampled), with the
//!    gossip traffic meanwhile, then gossip traffic again once it has settled.
//!
//! The quoted references come from other hardware and other systems: context, not a baseline.

use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;
use futures::StreamExt;

use super::hollow::{
    Hollow, SIM_IMAGE, converge, gossip_counters, gossip_rates, rates, sim_missing, until_all,
};
use crate::agent;
use crate::report::{Measured, Row, Unit, sig};
use crate::stats::{Summary, median, percentile};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "scale";
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long placed containers may take to reach every view.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Agents asked for their gossip counters once the view holds every placed container.
const LOADED_SAMPLE: usize = 20;

/// Nomad's C1M: one million containers in under 5 minutes, ≈3,750 placements/s.
const NOMAD_C1M: f64 = 3_750.0;
/// Swarm's 1,000-node test: scheduling delay p50.
const SWARM_P50_MS: f64 = 230.0;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    if let Some(reason) = sim_missing(ctx).await {
        ctx.remark(format!("scale: skipped: {reason}"));
        return Ok(vec![Row::new(
            BENCH,
            "scale simulation",
            Unit::Secs,
            Measured::Unavailable { reason },
        )]);
    }
    let mut rows = Vec::new();
    for &n in &ctx.opts.scale_nodes {
        if n < 2 {
            ctx.remark(format!("scale: N = {n} skipped (needs 2 or more)"));
            continue;
        }
        eprintln!("  N = {n}");
        match scenario(ctx, n).await {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => {
                ctx.remark(format!("scale: N = {n} failed: {e}"));
                rows.push(Row::new(
                    BENCH,
                    format!("N = {n}"),
                    Unit::Secs,
                    Measured::Unavailable {
                        reason: "failed, see notes".into(),
                    },
                ));
            }
        }
    }
    Ok(rows)
}

async fn scenario(ctx: &Ctx, n: usize) -> Result<Vec<Row>> {
    let started = Hollow::start(ctx, n, &[]).await?;
    let (t_start, others_up, seed_up) = (started.t_start, started.others_up, started.seed_up);
    let mut h = started.hollow;
    let converged = converge(&h, n).await;
    eprintln!(
        "    {n} agents up and converged at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    let conv_note = format!(
        "the {} other agents started in {:.1} s (each alone, trying the seed), then the seed \
         answered {} ms after its spawn",
        n - 1,
        others_up.as_secs_f64(),
        sig(seed_up.as_secs_f64() * 1000.0)
    );
    match converged {
        Ok(d) => rows.push(
            Row::samples(
                BENCH,
                format!("N = {n}: convergence from one seed"),
                Unit::Secs,
                &[d.as_secs_f64()],
            )
            .note(conv_note),
        ),
        Err(e) => {
            rows.push(
                Row::new(
                    BENCH,
                    format!("N = {n}: convergence from one seed"),
                    Unit::Secs,
                    Measured::Unavailable {
                        reason: e.to_string(),
                    },
                )
                .note(conv_note),
            );
            return Ok(rows);
        }
    }
    let rss = h.rss_mib();

    // Gossip, idle.
    let window = Duration::from_secs(ctx.opts.scale_gossip_secs.max(1));
    let everyone: Vec<usize> = (0..n).collect();
    let (sent, received) = gossip_rates(&h, &everyone, window).await?;
    eprintln!(
        "    gossip (idle) measured at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    rows.push(
        Row::samples(
            BENCH,
            format!("N = {n}: gossip sent per node, idle"),
            Unit::BytesPerSec,
            &sent,
        )
        .note(format!(
            "median over nodes, min–max across nodes; received: median {}; agent RSS median {} MiB",
            Unit::BytesPerSec.show(median(&received).unwrap_or(f64::NAN)),
            sig(median(&rss).unwrap_or(f64::NAN))
        )),
    );

    // Failure detection on the calm cluster: the last agent dies. (Under a placement storm the
    // phi-accrual detector adapts to the slower heartbeats and takes much longer.)
    let victim = n - 1;
    let victim_name = h.agents[victim].name.clone();
    let t_kill = Instant::now();
    h.agents[victim].kill9();
    let down = until_marked_down(&h, victim, &victim_name).await;
    eprintln!(
        "    failure detection done at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    rows.push(match down {
        Ok(d) => Row::samples(
            BENCH,
            format!("N = {n}: killed node marked down everywhere"),
            Unit::Secs,
            &[d.as_secs_f64()],
        )
        .note("SIGKILL, until every other agent lists it down; default --gossip-interval 500ms, --failure-threshold 6"),
        Err(e) => Row::new(
            BENCH,
            format!("N = {n}: killed node marked down everywhere"),
            Unit::Secs,
            Measured::Unavailable {
                reason: format!("{e} ({} s)", t_kill.elapsed().as_secs()),
            },
        ),
    });
    // Placements, on the N−1 agents left.
    let total = ctx.opts.scale_placements;
    let limit = Duration::from_secs(ctx.opts.scale_placement_secs.max(1));
    let live = &h.clients[..victim];
    let one = place(
        ctx,
        &live[..1],
        total,
        ctx.opts.scale_inflight.max(1),
        limit,
    )
    .await;
    rows.extend(placement_rows(n, "through one agent", &one, limit));
    let inflight_all = (ctx.opts.scale_inflight_per_agent.max(1) * live.len()).max(16);
    let all = place(ctx, live, total, inflight_all, limit).await;
    rows.extend(placement_rows(n, "through all agents", &all, limit));

    // The placed containers spreading to every view, then gossip once they are there. Each
    // `Cluster` answer now holds every container, so at most 20 agents (evenly spread) are asked.
    let placed = one.ok + all.ok;
    let step = victim.div_ceil(LOADED_SAMPLE).max(1);
    let some: Vec<usize> = (0..victim).step_by(step).collect();
    let before = gossip_counters(&h, &some).await;
    let t_spread = Instant::now();
    let spread = views_hold(&h, &some, placed).await;
    let spread_secs = t_spread.elapsed().as_secs_f64();
    let after = gossip_counters(&h, &some).await;
    let figure = format!("N = {n}: every placed container in every view, after the last placement");
    match spread {
        Ok(d) => {
            rows.push(
                Row::samples(BENCH, figure, Unit::Secs, &[d.as_secs_f64()]).note(format!(
                    "{placed} containers; {} agents sampled, each asked every 0.5 s",
                    some.len()
                )),
            );
            let (sent, _) = rates(&before, &after, spread_secs);
            rows.push(
                Row::samples(
                    BENCH,
                    format!("N = {n}: gossip sent per node while placements spread"),
                    Unit::BytesPerSec,
                    &sent,
                )
                .note(
                    "from the last placement until every sampled view holds them: chitchat \
                     fills each message up to its MTU while there is news to send",
                ),
            );
        }
        Err(e) => rows.push(Row::new(
            BENCH,
            figure,
            Unit::Secs,
            Measured::Unavailable {
                reason: e.to_string(),
            },
        )),
    }
    let (sent, received) = gossip_rates(&h, &some, window).await?;
    eprintln!(
        "    gossip (loaded) measured at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    rows.push(
        Row::samples(
            BENCH,
            format!("N = {n}: gossip sent per node, {placed} containers, settled"),
            Unit::BytesPerSec,
            &sent,
        )
        .note(format!(
            "{} agents sampled; received: median {}",
            some.len(),
            Unit::BytesPerSec.show(median(&received).unwrap_or(f64::NAN))
        )),
    );

    drop(h);
    Ok(rows)
}

/// Time until each agent of `which` lists at least `placed` containers.
async fn views_hold(h: &Hollow, which: &[usize], placed: usize) -> Result<Duration> {
    // One at a time: each answer holds every container in the cluster.
    let check = |mut c: Client| async move {
        c.cluster(pb::ClusterRequest {})
            .await
            .is_ok_and(|snap| snap.into_inner().containers.len() >= placed)
    };
    match until_all(
        h,
        which.to_vec(),
        1,
        Duration::from_millis(500),
        SPREAD_TIMEOUT,
        check,
    )
    .await
    {
        Ok(d) => Ok(d),
        Err(waiting) => {
            explain_missing(h, which).await;
            Err(err(format!(
                "{} of {} sampled agents did not hold all {placed} containers within {} s",
                waiting.len(),
                which.len(),
                SPREAD_TIMEOUT.as_secs()
            )))
        }
    }
}

/// On stderr: which nodes' containers each sampled view lacks against the fullest one, and
/// those nodes' status there.
async fn explain_missing(h: &Hollow, which: &[usize]) {
    use std::collections::BTreeMap;
    let mut views = Vec::new();
    for &i in which {
        let mut c = h.clients[i].clone();
        let Ok(snap) = c.cluster(pb::ClusterRequest {}).await else {
            continue;
        };
        let snap = snap.into_inner();
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for ctr in &snap.containers {
            *per.entry(ctr.node.clone()).or_default() += 1;
        }
        let status: BTreeMap<String, i32> = snap
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.status))
            .collect();
        views.push((h.agents[i].name.clone(), per, status));
    }
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for (_, per, _) in &views {
        for (n, k) in per {
            let m = most.entry(n.clone()).or_default();
            *m = (*m).max(*k);
        }
    }
    for (name, per, status) in &views {
        let lacking: Vec<String> = most
            .iter()
            .filter(|(n, k)| per.get(*n).copied().unwrap_or(0) < **k)
            .map(|(n, k)| {
                format!(
                    "{n} {}/{k} (status {})",
                    per.get(n).copied().unwrap_or(0),
                    status.get(n).copied().unwrap_or(-1)
                )
            })
            .collect();
        if !lacking.is_empty() {
            eprintln!("    {name} lacks: {}", lacking.join(", "));
        }
    }
}

struct Placed {
    ok: usize,
    failed: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
    timed_out: bool,
    /// When each thousandth placement finished (seconds from the start).
    marks: Vec<f64>,
}

/// `total` Run calls spread round-robin over `clients`, `inflight` at a time.
async fn place(
    ctx: &Ctx,
    clients: &[Client],
    total: usize,
    inflight: usize,
    limit: Duration,
) -> Placed {
    let t0 = Instant::now();
    let run_id = ctx.run_id.clone();
    let stream = futures::stream::iter(0..total)
        .map(|i| {
            let mut c = clients[i % clients.len()].clone();
            let req = agent::run_request(SIM_IMAGE, None, &[], (LABEL, &run_id), None);
            async move {
                let t = Instant::now();
                let r = agent::run(&mut c, req).await;
                (r.map(|_| ()), t.elapsed())
            }
        })
        .buffer_unordered(inflight);
    tokio::pin!(stream);
    let mut p = Placed {
        ok: 0,
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_ms: Vec::with_capacity(total),
        timed_out: false,
        marks: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                p.timed_out = true;
                break;
            }
            Ok(None) => break,
            Ok(Some((Ok(()), d))) => {
                p.ok += 1;
                p.latencies_ms.push(d.as_secs_f64() * 1000.0);
                if p.ok.is_multiple_of(1000) {
                    let secs = t0.elapsed().as_secs_f64();
                    p.marks.push(secs);
                    eprintln!("    {} placed in {secs:.1} s", p.ok);
                }
            }
            Ok(Some((Err(e), _))) => {
                p.failed += 1;
                p.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    p.elapsed = t0.elapsed();
    p
}

fn placement_rows(n: usize, how: &str, p: &Placed, limit: Duration) -> Vec<Row> {
    let rate = p.ok as f64 / p.elapsed.as_secs_f64().max(1e-9);
    let mut note = format!(
        "{} placed in {:.1} s{}{}",
        p.ok,
        p.elapsed.as_secs_f64(),
        if p.failed > 0 {
            format!(
                ", {} failed (first: {})",
                p.failed,
                p.first_error.as_deref().unwrap_or("?")
            )
        } else {
            String::new()
        },
        if p.timed_out {
            format!(", stopped at the {} s limit", limit.as_secs())
        } else {
            String::new()
        }
    );
    note.push_str("; Nomad's figure is from other hardware (C2M ≈1,500/s)");
    let latency = Summary::of(&p.latencies_ms);
    let p99 = percentile(&p.latencies_ms, 99.0).unwrap_or(f64::NAN);
    vec![
        Row::samples(
            BENCH,
            format!("N = {n}: placements/s {how}"),
            Unit::PerSec,
            &[rate],
        )
        .higher_is_better()
        .against_reference("Nomad C1M", NOMAD_C1M)
        .note(note),
        Row::new(
            BENCH,
            format!("N = {n}: scheduling delay p50 {how}"),
            Unit::Ms,
            match latency {
                Some(s) => Measured::Value(Summary {
                    median: median(&p.latencies_ms).unwrap_or(f64::NAN),
                    ..s
                }),
                None => Measured::Unavailable {
                    reason: "no placement".into(),
                },
            },
        )
        .against_reference("Swarm 1,000 nodes p50", SWARM_P50_MS)
        .note(format!(
            "each Run call until Started; p99 {} ms; Swarm's figure is from other hardware",
            sig(p99)
        )),
    ]
}

/// Time until every agent but the victim lists the victim as down (or gone).
async fn until_marked_down(h: &Hollow, victim: usize, victim_name: &str) -> Result<Duration> {
    let check = |mut c: Client| async move {
        let Some(nodes) = agent::node_statuses(&mut c).await else {
            return false;
        };
        let status = nodes
            .iter()
            .find(|(name, _)| name == victim_name)
            .map(|(_, s)| *s);
        matches!(
            status,
            None | Some(pb::NodeStatus::Down | pb::NodeStatus::Left)
        )
    };
    let others = (0..h.clients.len()).filter(|i| *i != victim).collect();
    until_all(
        h,
        others,
        16,
        Duration::from_millis(50),
        DOWN_TIMEOUT,
        check,
    )
    .await
    .map_err(|waiting| {
        err(format!(
            "{} agents still list {victim_name} up after {} s",
            waiting.len(),
            DOWN_TIMEOUT.as_secs()
        ))
    })
}
