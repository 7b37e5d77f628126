//! The benchmarks, one module each, and what they share: agents with a guard on their
//! containers, command lines for `berth` and `docker`, and a fleet of running containers.

pub mod console;
pub mod follow;
pub mod footprint;
pub mod hollow;
pub mod hollow_services;
pub mod logs;
pub mod ps;
pub mod run_latency;
pub mod scale;
pub mod security;
pub mod services;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;

use crate::agent::{self, Agent, Spec};
use crate::cleanup::LabelGuard;
use crate::procs::Cmdline;
use crate::{Ctx, LABEL, Result, err};

/// One agent for a benchmark, on the Docker runtime, with a guard removing its node's containers.
pub struct Local {
    pub agent: Agent,
    pub client: Client,
    _node: LabelGuard,
}

impl Local {
    /// Starts an agent named `<prefix>-<random>` on `ip`, with `extra` flags.
    pub async fn start(ctx: &Ctx, prefix: &str, ip: Ipv4Addr, extra: &[String]) -> Result<Self> {
        Self::start_with(ctx, prefix, ip, extra, None).await
    }

    /// [`Local::start`] with a cluster secret (TLS, sealed gossip), given in `BERTH_TOKEN`.
    pub async fn start_with(
        ctx: &Ctx,
        prefix: &str,
        ip: Ipv4Addr,
        extra: &[String],
        secret: Option<&str>,
    ) -> Result<Self> {
        let mut spec = Spec::new(&berth_testkit::unique(prefix), ip)?.args(extra.iter().cloned());
        spec.token = secret.map(str::to_owned);
        // The guard first: it covers the containers of an agent that fails half-way.
        let node = LabelGuard::new(berth_shared::labels::NODE, &spec.name);
        let agent = Agent::spawn(&ctx.berthd, &spec).await?;
        let client = agent.client().await?;
        Ok(Self {
            agent,
            client,
            _node: node,
        })
    }

    pub fn addr(&self) -> String {
        self.agent.addr.to_string()
    }

    /// `berth --agent <this agent> <args>`.
    pub fn berth(&self, ctx: &Ctx) -> Cmdline {
        Cmdline::new(&ctx.berth).arg("--agent").arg(self.addr())
    }
}

/// `docker <args>`.
pub fn docker() -> Cmdline {
    Cmdline::new("docker")
}

/// Starts `count` containers of the workload through `client`, `inflight` at a time, each
/// labelled with the run id and running `command`; returns their names.
pub async fn start_fleet(
    ctx: &Ctx,
    client: &Client,
    image: &str,
    prefix: &str,
    count: usize,
    command: &[&str],
) -> Result<Vec<String>> {
    use futures::StreamExt;
    let t0 = Instant::now();
    let names: Vec<String> = (0..count)
        .map(|i| format!("{prefix}-{i}-{}", &ctx.run_id[ctx.run_id.len() - 8..]))
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let mut client = client.clone();
            let req = agent::run_request(image, Some(&name), command, (LABEL, &ctx.run_id), None);
            async move { agent::run(&mut client, req).await.map(|_| ()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if let Some(first) = failed.first() {
        return Err(err(format!(
            "{} of {count} containers failed to start; first: {first}",
            failed.len()
        )));
    }
    if count > 0 {
        eprintln!(
            "  started {count} containers in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(names)
}

/// Waits until the agent lists at least `count` containers with the run's label in `state`.
pub async fn wait_listed(
    ctx: &Ctx,
    client: &Client,
    count: usize,
    state: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut c = client.clone();
        let n = match c.cluster(pb::ClusterRequest {}).await {
            Ok(r) => r
                .into_inner()
                .containers
                .iter()
                .filter(|c| {
                    c.state == state && c.labels.get(LABEL).is_some_and(|v| v == &ctx.run_id)
                })
                .count(),
            Err(_) => 0,
        };
        if n >= count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "the agent lists {n} of {count} containers {state} after {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
