//! Hollow nodes, shared by the `scale` and `hollow-services` benchmarks: N `berthd --runtime sim`
//! processes (containers live in memory) on 127.0.1.x addresses, with real gossip and real gRPC,
//! started the same way (the N−1 others first, each alone and trying the seed, then the seed),
//! and what both ask of them: convergence, and each agent's own gossip counters.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;
use futures::StreamExt;

use crate::agent::{self, Agent, Spec};
use crate::procs::{self, Cmdline};
use crate::{Ctx, Result, err};

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
/// Agents started at once before waiting for them to answer.
const START_BATCH: usize = 10;
/// How long one call to a hollow agent may take: an agent that does not answer counts as
/// not (yet) there, and cannot stall the run.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The image hollow nodes "run" (never pulled).
pub const SIM_IMAGE: &str = "bench/hollow:1";

/// Why the agent cannot run hollow nodes, if it cannot.
pub async fn sim_missing(ctx: &Ctx) -> Option<String> {
    match procs::output(&Cmdline::new(&ctx.berthd).arg("--help")).await {
        Ok(help) if help.contains("--runtime") && help.contains("sim") => None,
        Ok(_) => Some("berthd has no `--runtime sim` (in-memory runtime) yet".into()),
        Err(e) => Some(format!("cannot run berthd --help: {e}")),
    }
}

/// 127.0.1.1, 127.0.1.2, … (250 a block, then 127.0.2.x).
fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

pub struct Hollow {
    pub agents: Vec<Agent>,
    pub clients: Vec<Client>,
}

/// A hollow cluster just started, with how long its start took.
pub struct Started {
    /// Agent 0 is the seed.
    pub hollow: Hollow,
    /// When the first agent was spawned.
    pub t_start: Instant,
    /// How long the N−1 others took to start and answer.
    pub others_up: Duration,
    /// From the seed's spawn until it answered.
    pub seed_up: Duration,
}

impl Hollow {
    /// Starts `n` hollow agents (with `extra` flags each): the N−1 others first, each alone and
    /// trying the seed, then the seed. Returns once every agent answers; see [`converge`].
    pub async fn start(ctx: &Ctx, n: usize, extra: &[String]) -> Result<Started> {
        Self::start_with(ctx, n, extra, None).await
    }

    /// [`Hollow::start`] with a cluster secret on every agent (sealed gossip, TLS).
    pub async fn start_with(
        ctx: &Ctx,
        n: usize,
        extra: &[String],
        token: Option<&str>,
    ) -> Result<Started> {
        let ips: Vec<Ipv4Addr> = (0..n).map(ip).collect();
        let port = common_port(&ips)?;
        let tag = &ctx.run_id[ctx.run_id.len() - 8..];
        let spec = |i: usize, join: Option<SocketAddr>| {
            let mut args = vec!["--runtime".to_owned(), "sim".to_owned()];
            if let Some(seed) = join {
                args.extend(["--join".to_owned(), seed.to_string()]);
            }
            args.extend(extra.iter().cloned());
            Spec {
                name: format!("hollow-{tag}-{i:03}"),
                addr: SocketAddr::from((ips[i], port)),
                extra_args: args,
                // Hollow nodes log warnings only: a hundred info logs would measure the disk.
                rust_log: "warn".into(),
                token: token.map(str::to_owned),
            }
        };
        let seed_addr = SocketAddr::from((ips[0], port));

        // The N−1 others first, each alone and trying the seed.
        let t_start = Instant::now();
        let mut agents: Vec<Agent> = Vec::with_capacity(n);
        let mut pending = Vec::new();
        for i in 1..n {
            pending.push(Agent::start(&ctx.berthd, &spec(i, Some(seed_addr)))?);
            if pending.len() == START_BATCH || i == n - 1 {
                for mut a in pending.drain(..) {
                    a.wait_up(agent::START_TIMEOUT).await?;
                    agents.push(a);
                }
            }
        }
        let others_up = t_start.elapsed();
        // Then the seed: the clock starts.
        let t0 = Instant::now();
        let mut seed = Agent::start(&ctx.berthd, &spec(0, None))?;
        seed.wait_up(agent::START_TIMEOUT).await?;
        let seed_up = t0.elapsed();
        agents.insert(0, seed);
        let mut clients = Vec::with_capacity(n);
        for a in &agents {
            clients.push(a.client().await?);
        }
        Ok(Started {
            hollow: Hollow { agents, clients },
            t_start,
            others_up,
            seed_up,
        })
    }

    /// Each live agent's RSS, in MiB.
    pub fn rss_mib(&self) -> Vec<f64> {
        self.agents
            .iter()
            .filter_map(|a| a.pid().and_then(procs::rss_kib))
            .map(|k| k as f64 / 1024.0)
            .collect()
    }
}

/// A port free for TCP and UDP on every one of `ips`.
fn common_port(ips: &[Ipv4Addr]) -> Result<u16> {
    for _ in 0..50 {
        let p = agent::free_port(ips[0])?;
        if agent::port_free_on_all(p, ips) {
            return Ok(p);
        }
    }
    Err(err("no port free on every hollow node's address"))
}

/// Time until every agent lists `n` nodes alive.
pub async fn converge(h: &Hollow, n: usize) -> Result<Duration> {
    let check = |mut c: Client| async move {
        agent::node_statuses(&mut c).await.is_some_and(|ns| {
            ns.iter()
                .filter(|(_, s)| *s == pb::NodeStatus::Alive)
                .count()
                >= n
        })
    };
    let all = (0..h.clients.len()).collect();
    until_all(
        h,
        all,
        16,
        Duration::from_millis(50),
        CONVERGE_TIMEOUT,
        check,
    )
    .await
    .map_err(|waiting| {
        err(format!(
            "{} of {n} agents did not list {n} nodes alive within {} s",
            waiting.len(),
            CONVERGE_TIMEOUT.as_secs()
        ))
    })
}

/// Asks each agent of `which` (`concurrency` at a time, every `every`) until `check` holds for
/// all of them: the time that took, or the agents still waiting at `timeout`.
pub async fn until_all<F, Fut>(
    h: &Hollow,
    mut waiting: Vec<usize>,
    concurrency: usize,
    every: Duration,
    timeout: Duration,
    check: F,
) -> std::result::Result<Duration, Vec<usize>>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !waiting.is_empty() {
        let done: Vec<usize> = futures::stream::iter(waiting.iter().copied())
            .map(|i| {
                let ok = check(h.clients[i].clone());
                async move {
                    tokio::time::timeout(CALL_TIMEOUT, ok)
                        .await
                        .unwrap_or(false)
                        .then_some(i)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .filter_map(|x| async move { x })
            .collect()
            .await;
        waiting.retain(|i| !done.contains(i));
        if waiting.is_empty() {
            break;
        }
        if t0.elapsed() > timeout {
            return Err(waiting);
        }
        tokio::time::sleep(every).await;
    }
    Ok(t0.elapsed())
}

/// One reading of an agent's own gossip counters: cumulative sent and received bytes, and when
/// they were taken (its row's `updated_unix_ms`).
pub type Counters = Option<(u64, u64, i64)>;

/// Each agent's own (cumulative sent, received, produced-at ms) gossip counters.
pub async fn gossip_counters(h: &Hollow, which: &[usize]) -> Vec<Counters> {
    futures::stream::iter(which.iter().copied())
        .map(|i| {
            let mut c = h.clients[i].clone();
            let name = h.agents[i].name.clone();
            async move {
                let snap = tokio::time::timeout(CALL_TIMEOUT, c.cluster(pb::ClusterRequest {}))
                    .await
                    .ok()?
                    .ok()?
                    .into_inner();
                let me = snap.nodes.into_iter().find(|n| n.name == name)?;
                let stats = me.stats?;
                Some((
                    stats.gossip_sent_bytes,
                    stats.gossip_received_bytes,
                    me.updated_unix_ms,
                ))
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// Sent and received bytes/s per agent between two readings of its counters; `wall` seconds
/// when the agent's own time stamps did not move.
pub fn rates(first: &[Counters], second: &[Counters], wall: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    for (a, b) in first.iter().zip(second) {
        let (Some((s1, r1, u1)), Some((s2, r2, u2))) = (a, b) else {
            continue;
        };
        let secs = if u2 > u1 {
            (u2 - u1) as f64 / 1000.0
        } else {
            wall
        };
        sent.push(s2.saturating_sub(*s1) as f64 / secs);
        received.push(r2.saturating_sub(*r1) as f64 / secs);
    }
    (sent, received)
}

/// Sent and received bytes/s per node over `window`. The time base is each row's own
/// `updated_unix_ms` (when its counters were taken), or the wall clock when it did not move.
pub async fn gossip_rates(
    h: &Hollow,
    which: &[usize],
    window: Duration,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let t1 = Instant::now();
    let first = gossip_counters(h, which).await;
    tokio::time::sleep(window).await;
    let second = gossip_counters(h, which).await;
    let wall = t1.elapsed().as_secs_f64();
    let (sent, received) = rates(&first, &second, wall);
    if sent.is_empty() {
        return Err(err("no agent reported gossip counters"));
    }
    Ok((sent, received))
}
