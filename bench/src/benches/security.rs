//! Security on against security off, in one run: the same commands through an open agent pair
//! (no secret: plaintext gRPC, plain gossip) and a secured pair (one secret: TLS 1.3 on every
//! connection, mutual between the agents, sealed gossip), round by round in alternating order;
//! then gossip bytes per node with N hollow agents, sealed and plain.
//!
//! - `run`: `berth run --node X` until running, on the agent asked and through its peer;
//! - `ps`: `berth ps -a`;
//! - follow: the delay of `berth logs -f -n 0` lines of a container on the peer (so each line
//!   crosses two connections: console → agent → owner), as the `follow` bench measures it;
//! - placements/s: 20 containers placed through the agent's gRPC API, 8 at a time.
//!
//! Every `berth` process makes a new connection, so the secured figures include a TLS
//! handshake and the certificate check each time.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::hollow::{self, Hollow, gossip_rates, sim_missing};
use super::{Local, ms, start_fleet};
use crate::cleanup::LabelGuard;
use crate::procs::{self, Cmdline};
use crate::report::{Row, Unit};
use crate::stats::percentile;
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "security";
/// Placements per round for the placements/s figure.
const FLEET: usize = 20;

/// One pair of agents, open or secured, and how `berth` reaches it.
struct Pair {
    a: Local,
    b: Local,
    token_file: Option<PathBuf>,
}

impl Pair {
    async fn start(ctx: &Ctx, word: &str, first_ip: u8, secret: Option<&str>) -> Result<Self> {
        let ip = |n: u8| Ipv4Addr::new(127, 0, 4, n);
        let a = Local::start_with(ctx, &format!("sec-{word}-a"), ip(first_ip), &[], secret).await?;
        let b = Local::start_with(
            ctx,
            &format!("sec-{word}-b"),
            ip(first_ip + 1),
            &["--join".into(), a.addr()],
            secret,
        )
        .await?;
        let token_file = match secret {
            None => None,
            Some(s) => {
                let path = a.agent.log_path().with_file_name("token");
                std::fs::write(&path, s)
                    .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
                Some(path)
            }
        };
        super::run_latency::wait_peer_alive(&a, &b.agent.name).await?;
        Ok(Self { a, b, token_file })
    }

    /// `berth --agent A [--token-file F] <args>`.
    fn berth(&self, ctx: &Ctx) -> Cmdline {
        let cmd = self.a.berth(ctx);
        match &self.token_file {
            Some(f) => cmd.arg("--token-file").arg(f.as_os_str()),
            None => cmd,
        }
    }
}

#[derive(Default)]
struct Samples {
    run_local: Vec<f64>,
    run_peer: Vec<f64>,
    ps: Vec<f64>,
    follow_p50: Vec<f64>,
    placements: Vec<f64>,
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let rounds = ctx.rounds(ctx.opts.security_rounds);
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let secret = berth_shared::trust::new_secret().map_err(|e| err(e.to_string()))?;
    let open = Pair::start(ctx, "open", 1, None).await?;
    let secured = Pair::start(ctx, "tls", 3, Some(&secret)).await?;
    let pairs = [&open, &secured];
    let tag = &ctx.run_id[ctx.run_id.len() - 8..];

    // A talker on each B, followed through A.
    let interval = ctx.opts.follow_interval_ms.to_string();
    let mut talkers = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let name = format!("sec-talk-{i}-{tag}");
        let mut client = p.a.client.clone();
        let req = crate::agent::run_request(
            &image,
            Some(&name),
            &["--forever", "--timestamp", "--interval-ms", &interval],
            (LABEL, &ctx.run_id),
            Some(&p.b.agent.name),
        );
        crate::agent::run(&mut client, req).await?;
        talkers.push(name);
    }
    let follow_secs = Duration::from_secs(ctx.opts.follow_secs.max(1));

    let mut samples = [Samples::default(), Samples::default()];
    for round in 0..=rounds {
        for k in 0..2 {
            let m = (round + k) % 2;
            let p = pairs[m];
            let s = &mut samples[m];
            let local = format!("sec-l-{m}-{round}-{tag}");
            let peer = format!("sec-p-{m}-{round}-{tag}");
            let run = |name: &str, node: &str| {
                p.berth(ctx)
                    .args(["run", "--name", name, "--node", node])
                    .args(["--label", &format!("{LABEL}={}", ctx.run_id)])
                    .arg(&image)
            };
            let t_local = procs::time(&run(&local, &p.a.agent.name)).await?;
            let t_peer = procs::time(&run(&peer, &p.b.agent.name)).await?;
            let t_ps = procs::time(&p.berth(ctx).args(["ps", "-a"])).await?;
            let follow = p.berth(ctx).args(["logs", "-f", "-n", "0", &talkers[m]]);
            let delays = super::follow::follow(&follow, follow_secs).await?;
            let t0 = Instant::now();
            let placed = start_fleet(
                ctx,
                &p.a.client,
                &image,
                &format!("sec-f-{m}-{round}"),
                FLEET,
                &[],
            )
            .await?;
            let rate = placed.len() as f64 / t0.elapsed().as_secs_f64();
            // Round 0 warms up.
            if round > 0 {
                s.run_local.push(ms(t_local.elapsed));
                s.run_peer.push(ms(t_peer.elapsed));
                s.ps.push(ms(t_ps.elapsed));
                s.follow_p50
                    .push(percentile(&delays, 50.0).unwrap_or(f64::NAN));
                s.placements.push(rate);
            }
            let mut rm = p.berth(ctx).args(["rm", "-f", &local, &peer]);
            for name in &placed {
                rm = rm.arg(name);
            }
            procs::time(&rm).await?;
        }
        if round > 0 {
            eprintln!("  round {round}/{rounds}");
        }
    }
    let [off, on] = samples;
    let mut rows = vec![
        Row::samples(
            BENCH,
            "run, on the agent asked, TLS",
            Unit::Ms,
            &on.run_local,
        )
        .against("the same, plaintext", &off.run_local)
        .note("berth run --node <the agent asked> until running; a new connection each"),
        Row::samples(BENCH, "run, through the peer, TLS", Unit::Ms, &on.run_peer)
            .against("the same, plaintext", &off.run_peer)
            .note("forwarded agent to agent over mutual TLS"),
        Row::samples(BENCH, "ps -a, TLS", Unit::Ms, &on.ps)
            .against("the same, plaintext", &off.ps)
            .note("the whole berth ps -a command, handshake included"),
        Row::samples(BENCH, "follow latency p50, TLS", Unit::Ms, &on.follow_p50)
            .against("the same, plaintext", &off.follow_p50)
            .note("berth logs -f of a container on the peer: console → agent → owner"),
        Row::samples(BENCH, "placements/s, TLS", Unit::PerSec, &on.placements)
            .higher_is_better()
            .against("the same, plaintext", &off.placements)
            .note(format!(
                "{FLEET} runs through the gRPC API, 8 at a time, spread over two nodes"
            )),
    ];
    drop(open);
    drop(secured);
    rows.extend(gossip(ctx, &secret).await);
    Ok(rows)
}

/// Gossip bytes sent per node with `--security-nodes` hollow agents, sealed and plain, one
/// cluster after the other.
async fn gossip(ctx: &Ctx, secret: &str) -> Vec<Row> {
    let n = ctx.opts.security_nodes;
    let figure = |word: &str| format!("N = {n}: gossip sent per node, idle, {word}");
    if let Some(reason) = sim_missing(ctx).await {
        return vec![Row::new(
            BENCH,
            figure("sealed"),
            Unit::BytesPerSec,
            crate::report::Measured::Unavailable { reason },
        )];
    }
    let window = Duration::from_secs(ctx.opts.hollow_gossip_secs.max(1));
    let mut sent: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for (i, token) in [None, Some(secret)].into_iter().enumerate() {
        let measured = async {
            let started = Hollow::start_with(ctx, n, &[], token).await?;
            let h = started.hollow;
            hollow::converge(&h, n).await?;
            // Let the first exchanges settle.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let everyone: Vec<usize> = (0..n).collect();
            let pids: Vec<u32> = h.agents.iter().filter_map(|a| a.pid()).collect();
            let before: Vec<_> = pids.iter().map(|p| crate::procs::cpu_time(*p)).collect();
            let t0 = Instant::now();
            let (s, _) = gossip_rates(&h, &everyone, window).await?;
            let wall = t0.elapsed().as_secs_f64();
            let c: Vec<f64> = pids
                .iter()
                .zip(before)
                .filter_map(|(p, b)| {
                    let after = crate::procs::cpu_time(*p)?;
                    Some(100.0 * after.saturating_sub(b?).as_secs_f64() / wall)
                })
                .collect();
            Ok::<_, crate::Error>((s, c))
        }
        .await;
        match measured {
            Ok((s, c)) => {
                sent[i] = s;
                cpu[i] = c;
            }
            Err(e) => ctx.remark(format!("security: gossip at N = {n}: {e}")),
        }
    }
    let p50 = |xs: &[f64]| percentile(xs, 50.0).unwrap_or(f64::NAN);
    vec![
        Row::samples(BENCH, figure("sealed"), Unit::BytesPerSec, &sent[1])
            .against("the same, plain", &sent[0])
            .note(format!(
                "median over nodes: sealed {:.0} B/s, plain {:.0} B/s; each datagram carries \
                 41 bytes of seal",
                p50(&sent[1]),
                p50(&sent[0])
            )),
        Row::samples(
            BENCH,
            format!("N = {n}: agent CPU per node, idle, sealed"),
            Unit::CpuPercent,
            &cpu[1],
        )
        .against("the same, plain", &cpu[0])
        .note(
            "each hollow agent's CPU over the gossip window (seal, open, bounds check, TLS idle)",
        ),
    ]
}
