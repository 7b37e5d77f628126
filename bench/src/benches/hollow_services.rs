//! Services on hollow nodes (issue 9): N = 100 `berthd --runtime sim` agents (see
//! [`super::hollow`]) with 200 services of 5 replicas.
//!
//! 1. membership convergence, started as in `scale` (the N−1 others first, then the seed);
//! 2. gossip traffic per node with no service, from each agent's own counters over a window;
//! 3. the services from nothing: `CreateService` of every service, spread round-robin over all
//!    agents (8 calls in flight), and the time from the first call until `ListServices` on the
//!    polled agent (agent 0, the seed; every 250 ms) shows every service with all its slots
//!    running; the gossip traffic meanwhile;
//! 4. gossip traffic again once settled: every agent's services digest (in the polled agent's
//!    view) agrees;
//! 5. SIGKILL of 10 agents at once (evenly spread, never the polled one), and the time until the
//!    polled agent shows every service with all its slots running on live nodes (a slot whose
//!    node was killed does not count, whatever the view says of that node yet); also when the
//!    polled agent lists all 10 down.
//!
//! Every agent runs with `--reschedule-after` from `--hollow-reschedule-after` (0s by default):
//! the restore figure is then failure detection plus replacement, with no waiting on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;
use futures::StreamExt;

use super::hollow::{
    CALL_TIMEOUT, Counters, Hollow, SIM_IMAGE, converge, gossip_counters, rates, sim_missing,
};
use crate::agent;
use crate::report::{Measured, Row, Unit, sig};
use crate::stats::{median, percentile};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "hollow-services";
/// How long every service may take to run all its replicas, from nothing and after the kill.
const SERVICES_TIMEOUT: Duration = Duration::from_secs(180);
/// How long every agent may take to hold the same services (digests agree) once they run.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `CreateService` calls in flight.
const CREATE_INFLIGHT: usize = 8;
/// How often the polled agent is asked.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// The agent whose `ListServices` is polled (the seed); it is never killed.
const POLLED: usize = 0;

/// The figures, in order; a step that fails leaves the later ones unavailable.
struct Figures {
    n: usize,
    services: usize,
    replicas: usize,
    kill: usize,
}

impl Figures {
    fn names(&self) -> [String; 7] {
        let Figures {
            n,
            services,
            replicas,
            kill,
        } = self;
        let total = sig((services * replicas) as f64);
        [
            format!("N = {n}: convergence from one seed, before services"),
            format!("N = {n}: gossip sent per node, idle, no service"),
            format!(
                "N = {n}: {services} services × {replicas} replicas, from the first create until \
                 all {total} run"
            ),
            format!("N = {n}: gossip sent per node while the services converge"),
            format!(
                "N = {n}: gossip sent per node, {services} services ({total} replicas), settled"
            ),
            format!("N = {n}: kill -9 of {kill} nodes at once, all {kill} listed down"),
            format!(
                "N = {n}: kill -9 of {kill} nodes at once until every service has {replicas} \
                 running on live nodes"
            ),
        ]
    }
}

/// Rows for the figures from `from` on, unavailable with `reason`.
fn unavailable_from(f: &Figures, from: usize, reason: &str) -> Vec<Row> {
    f.names()
        .into_iter()
        .zip(UNITS)
        .skip(from)
        .map(|(name, unit)| {
            Row::new(
                BENCH,
                name,
                unit,
                Measured::Unavailable {
                    reason: reason.to_owned(),
                },
            )
        })
        .collect()
}

const UNITS: [Unit; 7] = [
    Unit::Secs,
    Unit::BytesPerSec,
    Unit::Secs,
    Unit::BytesPerSec,
    Unit::BytesPerSec,
    Unit::Secs,
    Unit::Secs,
];

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let o = &ctx.opts;
    let f = Figures {
        n: o.hollow_nodes,
        services: o.hollow_services,
        replicas: o.hollow_replicas,
        kill: o.hollow_kill,
    };
    if let Some(reason) = sim_missing(ctx).await {
        ctx.remark(format!("{BENCH}: skipped: {reason}"));
        return Ok(unavailable_from(&f, 0, &reason));
    }
    if f.n < 3 || f.kill == 0 || f.kill + 2 > f.n || f.services == 0 || f.replicas == 0 {
        let reason = format!(
            "needs 3 or more nodes, 1 to N − 2 killed, 1 or more services and replicas \
             (N = {}, {} killed, {} services, {} replicas)",
            f.n, f.kill, f.services, f.replicas
        );
        ctx.remark(format!("{BENCH}: skipped: {reason}"));
        return Ok(unavailable_from(&f, 0, &reason));
    }
    let mut rows = Vec::new();
    if let Err(e) = scenario(ctx, &f, &mut rows).await {
        ctx.remark(format!("{BENCH}: failed: {e}"));
        let done = rows.len();
        rows.extend(unavailable_from(&f, done, "failed, see notes"));
    }
    Ok(rows)
}

/// One service's spec: `replicas` of the hollow image, labelled with the run.
fn spec(ctx: &Ctx, name: &str, replicas: usize) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: name.into(),
        mode: pb::ServiceMode::Replicated as i32,
        replicas: replicas as u32,
        container: Some(pb::ContainerSpec {
            image: SIM_IMAGE.into(),
            labels: [(LABEL.to_owned(), ctx.run_id.clone())].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A call to an agent, bounded by [`CALL_TIMEOUT`].
async fn within<T>(
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(s)) => Err(s.message().to_owned()),
        Err(_) => Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
    }
}

/// What the polled agent's `ListServices` says of the services we made.
#[derive(Debug, Default)]
struct Tally {
    /// Services of ours it lists at all.
    listed: usize,
    /// Services with every slot running on a node not in `dead`.
    complete: usize,
    /// Slots running on a node not in `dead`.
    running: usize,
    /// A few slots that are not (yet) running, for the log.
    waiting: Vec<String>,
}

async fn tally(
    client: &Client,
    names: &BTreeSet<String>,
    replicas: usize,
    dead: &BTreeSet<String>,
) -> Result<Tally> {
    let mut c = client.clone();
    let answer = within(c.list_services(pb::ListServicesRequest::default()))
        .await
        .map_err(|e| err(format!("ListServices: {e}")))?
        .into_inner();
    let mut t = Tally::default();
    for s in &answer.services {
        let Some(name) = s.entry.as_ref().map(|e| e.name.as_str()) else {
            continue;
        };
        if !names.contains(name) {
            continue;
        }
        t.listed += 1;
        let mut live = 0;
        for slot in &s.slots {
            if slot.state == "running" && !dead.contains(&slot.node) {
                live += 1;
            } else if t.waiting.len() < 5 {
                t.waiting.push(format!(
                    "{name}.{} {} on {:?}{}",
                    slot.slot,
                    slot.state,
                    slot.node,
                    if slot.error.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", slot.error)
                    }
                ));
            }
        }
        t.running += live;
        if live >= replicas && s.slots.len() == replicas {
            t.complete += 1;
        }
    }
    Ok(t)
}

/// Polls the polled agent until every service of `names` has `replicas` slots running off
/// `dead`; also notes when it first lists every node of `dead` down. The time from `t0`, and
/// when all of `dead` were down (from `t0`), or why not.
async fn until_complete(
    h: &Hollow,
    names: &BTreeSet<String>,
    replicas: usize,
    dead: &BTreeSet<String>,
    t0: Instant,
) -> Progress {
    let client = &h.clients[POLLED];
    let mut trace = Vec::new();
    let mut down_at = None;
    let mut last_print = Instant::now();
    let mut last = Tally::default();
    let mut last_error = None;
    loop {
        if down_at.is_none() && !dead.is_empty() {
            let mut c = client.clone();
            if let Ok(Some(nodes)) =
                tokio::time::timeout(CALL_TIMEOUT, agent::node_statuses(&mut c)).await
            {
                let up = nodes.iter().any(|(name, s)| {
                    dead.contains(name) && !matches!(s, pb::NodeStatus::Down | pb::NodeStatus::Left)
                });
                if !up {
                    down_at = Some(t0.elapsed());
                }
            }
        }
        match tally(client, names, replicas, dead).await {
            Ok(t) => {
                if t.complete == names.len() {
                    return Progress {
                        result: Ok(t0.elapsed()),
                        down_at,
                        trace,
                    };
                }
                last = t;
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            // Nodes the polled agent does not list alive, killed ones aside: a false
            // suspicion there moves replicas at once with --reschedule-after 0s.
            let mut c = client.clone();
            let others_not_alive =
                match tokio::time::timeout(CALL_TIMEOUT, agent::node_statuses(&mut c)).await {
                    Ok(Some(nodes)) => nodes
                        .iter()
                        .filter(|(name, s)| !dead.contains(name) && *s != pb::NodeStatus::Alive)
                        .count()
                        .to_string(),
                    _ => "?".into(),
                };
            trace.push(format!(
                "{:.0} s {}/{} ({others_not_alive} not alive)",
                t0.elapsed().as_secs_f64(),
                last.complete,
                last.running
            ));
            eprintln!(
                "    {:.0} s: {}/{} services complete, {} replicas running on live nodes, \
                 {others_not_alive} live nodes not listed alive; waiting: {}",
                t0.elapsed().as_secs_f64(),
                last.complete,
                names.len(),
                last.running,
                last.waiting.first().map_or("-", String::as_str)
            );
        }
        if t0.elapsed() > SERVICES_TIMEOUT {
            eprintln!("    still waiting: {}", last.waiting.join("; "));
            let mut why = format!(
                "after {} s the polled agent lists {} of {} services, {} with all {replicas} \
                 running, {} replicas running on live nodes",
                SERVICES_TIMEOUT.as_secs(),
                last.listed,
                names.len(),
                last.complete,
                last.running
            );
            if let Some(e) = last_error {
                why.push_str(&format!("; last error: {e}"));
            }
            return Progress {
                result: Err(why),
                down_at,
                trace,
            };
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// What [`until_complete`] saw.
struct Progress {
    /// The time until every service was complete, or why not.
    result: std::result::Result<Duration, String>,
    /// When every node of `dead` was listed down.
    down_at: Option<Duration>,
    /// Every 5 s: seconds, services complete / replicas running on live nodes.
    trace: Vec<String>,
}

impl Progress {
    fn trace_note(&self) -> String {
        if self.trace.is_empty() {
            String::new()
        } else {
            format!(
                "; every 5 s the polled view had (services complete/replicas running on live \
                 nodes, and how many live nodes it did not list alive): {}",
                self.trace.join(", ")
            )
        }
    }
}

/// Running containers of our services in the polled agent's view, on nodes not in `dead`: how
/// many, and the most any one service has.
async fn replicas_in_view(h: &Hollow, dead: &BTreeSet<String>) -> Option<(usize, usize)> {
    let mut c = h.clients[POLLED].clone();
    let snap = within(c.cluster(pb::ClusterRequest {}))
        .await
        .ok()?
        .into_inner();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for ctr in &snap.containers {
        if let Some(slot) = &ctr.slot
            && ctr.state == "running"
            && !dead.contains(&ctr.node)
        {
            *per.entry(slot.service_id.clone()).or_default() += 1;
        }
    }
    Some((per.values().sum(), per.values().copied().max().unwrap_or(0)))
}

/// Time until every live node in the polled agent's view publishes the same services digest
/// as the polled agent itself.
async fn until_digests_agree(h: &Hollow, n_live: usize) -> std::result::Result<Duration, String> {
    let t0 = Instant::now();
    let me = h.agents[POLLED].name.clone();
    let mut last = String::new();
    while t0.elapsed() < SETTLE_TIMEOUT {
        let mut c = h.clients[POLLED].clone();
        if let Ok(snap) = within(c.cluster(pb::ClusterRequest {})).await {
            let nodes = snap.into_inner().nodes;
            let mine = nodes
                .iter()
                .find(|n| n.name == me)
                .map(|n| n.services_digest.clone())
                .unwrap_or_default();
            let alive: Vec<&pb::Node> = nodes
                .iter()
                .filter(|n| n.status == pb::NodeStatus::Alive as i32)
                .collect();
            let same = alive
                .iter()
                .filter(|n| !mine.is_empty() && n.services_digest == mine)
                .count();
            if alive.len() >= n_live && same == alive.len() {
                return Ok(t0.elapsed());
            }
            last = format!("{same} of {} alive nodes agree", alive.len());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Err(format!(
        "digests did not agree within {} s ({last})",
        SETTLE_TIMEOUT.as_secs()
    ))
}

/// Bytes/s sent per agent of `which` over `window`, with the median received (for a note).
async fn gossip_window(h: &Hollow, which: &[usize], window: Duration) -> Result<(Vec<f64>, f64)> {
    let (sent, received) = super::hollow::gossip_rates(h, which, window).await?;
    Ok((sent, median(&received).unwrap_or(f64::NAN)))
}

fn value_or(
    name: String,
    unit: Unit,
    r: std::result::Result<Vec<f64>, String>,
    note: String,
) -> Row {
    match r {
        Ok(samples) => Row::samples(BENCH, name, unit, &samples).note(note),
        Err(reason) => Row::new(BENCH, name, unit, Measured::Unavailable { reason }).note(note),
    }
}

async fn scenario(ctx: &Ctx, f: &Figures, rows: &mut Vec<Row>) -> Result<()> {
    let [
        f_converge,
        f_idle,
        f_create,
        f_during,
        f_settled,
        f_down,
        f_restore,
    ] = f.names();
    let n = f.n;
    let reschedule = ctx.opts.hollow_reschedule_after.clone();
    let extra = ["--reschedule-after".to_owned(), reschedule.clone()];
    eprintln!(
        "  N = {n}, {} services × {} replicas, --reschedule-after {reschedule}",
        f.services, f.replicas
    );
    let started = Hollow::start(ctx, n, &extra).await?;
    let t_start = started.t_start;
    let mut h = started.hollow;

    // 1. Membership.
    let converged = converge(&h, n).await;
    eprintln!(
        "    {n} agents up and converged at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    let conv_note = format!(
        "every agent with --reschedule-after {reschedule}; the {} other agents started in {:.1} \
         s (each alone, trying the seed), then the seed answered {} ms after its spawn",
        n - 1,
        started.others_up.as_secs_f64(),
        sig(started.seed_up.as_secs_f64() * 1000.0)
    );
    match converged {
        Ok(d) => rows
            .push(Row::samples(BENCH, f_converge, Unit::Secs, &[d.as_secs_f64()]).note(conv_note)),
        Err(e) => {
            rows.push(
                Row::new(
                    BENCH,
                    f_converge,
                    Unit::Secs,
                    Measured::Unavailable {
                        reason: e.to_string(),
                    },
                )
                .note(conv_note),
            );
            rows.extend(unavailable_from(f, 1, "the cluster did not converge"));
            return Ok(());
        }
    }

    // 2. Gossip, idle, no service.
    let window = Duration::from_secs(ctx.opts.hollow_gossip_secs.max(1));
    let everyone: Vec<usize> = (0..n).collect();
    let rss_idle = median(&h.rss_mib()).unwrap_or(f64::NAN);
    let idle = gossip_window(&h, &everyone, window).await;
    rows.push(match idle {
        Ok((sent, rx)) => Row::samples(BENCH, f_idle, Unit::BytesPerSec, &sent).note(format!(
            "{} s window; median over nodes, min–max across nodes; received: median {}; agent \
             RSS median {} MiB",
            window.as_secs(),
            Unit::BytesPerSec.show(rx),
            sig(rss_idle)
        )),
        Err(e) => Row::new(
            BENCH,
            f_idle,
            Unit::BytesPerSec,
            Measured::Unavailable {
                reason: e.to_string(),
            },
        ),
    });
    eprintln!(
        "    gossip (idle) measured at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );

    // 3. The services, from nothing.
    let names: Vec<String> = (0..f.services).map(|i| format!("hollow-{i:03}")).collect();
    let before: Vec<Counters> = gossip_counters(&h, &everyone).await;
    let t_before = Instant::now();
    let t0 = Instant::now();
    let created: Vec<(String, std::result::Result<Duration, String>)> =
        futures::stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let mut c = h.clients[i % n].clone();
                let req = pb::CreateServiceRequest {
                    spec: Some(spec(ctx, name, f.replicas)),
                };
                async move {
                    let t = Instant::now();
                    let r = within(c.create_service(req)).await.map(|_| t.elapsed());
                    (name.clone(), r)
                }
            })
            .buffer_unordered(CREATE_INFLIGHT)
            .collect()
            .await;
    let creates_done = t0.elapsed();
    let mut ok = BTreeSet::new();
    let mut create_ms = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in created {
        match r {
            Ok(d) => {
                create_ms.push(d.as_secs_f64() * 1000.0);
                ok.insert(name);
            }
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "    {} services created in {:.1} s ({} failed)",
        ok.len(),
        creates_done.as_secs_f64(),
        failed.len()
    );
    let none = BTreeSet::new();
    let progress = until_complete(&h, &ok, f.replicas, &none, t0).await;
    let after: Vec<Counters> = gossip_counters(&h, &everyone).await;
    let (during, _) = rates(&before, &after, t_before.elapsed().as_secs_f64());
    let in_view = replicas_in_view(&h, &none).await;
    let mut create_note = format!(
        "CreateService spread round-robin over all {n} agents, {CREATE_INFLIGHT} in flight: all \
         answered {:.1} s after the first (p50 {} ms, p99 {} ms each); then ListServices on one \
         agent (the seed) every {} ms until every slot of every service is running",
        creates_done.as_secs_f64(),
        sig(median(&create_ms).unwrap_or(f64::NAN)),
        sig(percentile(&create_ms, 99.0).unwrap_or(f64::NAN)),
        POLL_EVERY.as_millis()
    );
    if !failed.is_empty() {
        create_note.push_str(&format!(
            "; {} of {} creates FAILED and are left out (first: {})",
            failed.len(),
            names.len(),
            failed[0]
        ));
    }
    if let Some((running, most)) = in_view {
        create_note.push_str(&format!(
            "; then its view holds {running} running replicas (at most {most} of one service)"
        ));
    }
    create_note.push_str(&progress.trace_note());
    let converged_services = progress.result.is_ok();
    rows.push(value_or(
        f_create,
        Unit::Secs,
        progress.result.map(|d| vec![d.as_secs_f64()]),
        create_note,
    ));
    rows.push(value_or(
        f_during,
        Unit::BytesPerSec,
        if during.is_empty() {
            Err("no agent reported gossip counters".into())
        } else {
            Ok(during)
        },
        "from just before the first create until every service runs in the polled view (or the \
         time-out); every agent"
            .into(),
    ));
    eprintln!(
        "    services converged (or not) at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );

    // 4. Gossip once settled.
    let agreed = until_digests_agree(&h, n).await;
    let rss_loaded = median(&h.rss_mib()).unwrap_or(f64::NAN);
    let settled = gossip_window(&h, &everyone, window).await;
    let agreed_note = match &agreed {
        Ok(d) => format!(
            "measured once every agent's services digest agreed in the polled view ({} s after \
             the services ran)",
            sig(d.as_secs_f64())
        ),
        Err(e) => format!("measured anyway: {e}"),
    };
    rows.push(match settled {
        Ok((sent, rx)) => Row::samples(BENCH, f_settled, Unit::BytesPerSec, &sent).note(format!(
            "{agreed_note}; {} s window, every agent; received: median {}; agent RSS median {} MiB",
            window.as_secs(),
            Unit::BytesPerSec.show(rx),
            sig(rss_loaded)
        )),
        Err(e) => Row::new(
            BENCH,
            f_settled,
            Unit::BytesPerSec,
            Measured::Unavailable {
                reason: e.to_string(),
            },
        ),
    });
    eprintln!(
        "    gossip (services) measured at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    if !converged_services {
        rows.extend(unavailable_from(
            f,
            5,
            "not measured: the services never all ran",
        ));
        return Ok(());
    }

    // 5. Kill 10 at once, never the polled agent.
    let victims: Vec<usize> = (0..f.kill).map(|j| 1 + j * (n - 1) / f.kill).collect();
    let dead: BTreeSet<String> = victims.iter().map(|&i| h.agents[i].name.clone()).collect();
    let held = {
        let mut c = h.clients[POLLED].clone();
        match within(c.list_services(pb::ListServicesRequest::default())).await {
            Ok(r) => {
                let services = r.into_inner().services;
                let replicas = services
                    .iter()
                    .flat_map(|s| &s.slots)
                    .filter(|x| dead.contains(&x.node))
                    .count();
                let responsible = services
                    .iter()
                    .filter(|s| dead.contains(&s.responsible))
                    .count();
                format!(
                    "the killed nodes held {replicas} replicas and were responsible for \
                     {responsible} services"
                )
            }
            Err(e) => format!("ListServices before the kill failed: {e}"),
        }
    };
    // SIGKILL to all ten first, then reap them (reaping one at a time took 1.5 s under load).
    let t_kill = Instant::now();
    for &i in &victims {
        if let Some(pid) = h.agents[i].pid() {
            crate::cleanup::kill(pid, rustix::process::Signal::KILL);
        }
    }
    let kill_took = t_kill.elapsed();
    for &i in &victims {
        h.agents[i].kill9();
    }
    let progress = until_complete(&h, &ok, f.replicas, &dead, t_kill).await;
    let in_view = replicas_in_view(&h, &dead).await;
    eprintln!(
        "    restore done (or not) at {:.0} s",
        t_start.elapsed().as_secs_f64()
    );
    rows.push(
        match progress.down_at {
            Some(d) => Row::samples(BENCH, f_down, Unit::Secs, &[d.as_secs_f64()]),
            None => Row::new(
                BENCH,
                f_down,
                Unit::Secs,
                Measured::Unavailable {
                    reason: "the polled agent did not list them all down".into(),
                },
            ),
        }
        .note(format!(
            "in the polled agent's view (Cluster every {} ms, with each ListServices); default \
         --gossip-interval 500ms, --failure-threshold 6",
            POLL_EVERY.as_millis()
        )),
    );
    let mut restore_note = format!(
        "--reschedule-after {reschedule}; agents {} sent SIGKILL within {} ms; {held}; \
         ListServices on the seed every {} ms, a slot counting only when running on \
         a node that was not killed",
        victims
            .iter()
            .map(|i| format!("{i:03}"))
            .collect::<Vec<_>>()
            .join(", "),
        sig(kill_took.as_secs_f64() * 1000.0),
        POLL_EVERY.as_millis()
    );
    if let Some((running, most)) = in_view {
        restore_note.push_str(&format!(
            "; then its view holds {running} running replicas on live nodes (at most {most} of \
             one service)"
        ));
    }
    restore_note.push_str(&progress.trace_note());
    rows.push(value_or(
        f_restore,
        Unit::Secs,
        progress.result.map(|d| vec![d.as_secs_f64()]),
        restore_note,
    ));
    drop(h);
    Ok(())
}
