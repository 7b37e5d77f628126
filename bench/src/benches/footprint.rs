//! Agent footprint: resident memory and CPU of an idle `berthd` (default flags, its stats loop
//! refreshing every 2 s) with 0, 100 and 500 running containers, sampled from `/proc` once a
//! second over 60 s after the fleet has settled. Containers are started through the agent.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Local, start_fleet, wait_listed};
use crate::cleanup::LabelGuard;
use crate::procs;
use crate::report::{Measured, Row, Unit, sig};
use crate::stats::Summary;
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "footprint";
/// Quiet time after the containers started, before sampling.
const SETTLE: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Serf's own figure, "5 to 10 MB of resident memory": the top of it, in MiB.
const SERF_MIB: f64 = 10_000_000.0 / 1_048_576.0;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    // The counts sampled, and in `all` also the count `ps` is measured at.
    let mut stops = ctx.opts.footprint_counts.clone();
    if ctx.ps_in_footprint {
        stops.push(ctx.opts.ps_containers);
    }
    stops.sort_unstable();
    stops.dedup();
    let image = if stops.iter().any(|c| *c > 0) {
        Some(ctx.image().await?)
    } else {
        None
    };
    let window = Duration::from_secs(ctx.opts.footprint_secs.max(1));
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let a = Local::start(ctx, "bench-fp", Ipv4Addr::LOCALHOST, &[]).await?;
    let pid = a
        .agent
        .pid()
        .ok_or_else(|| err("the agent is not running"))?;
    let mut rows = Vec::new();
    let mut running = 0;
    let ps_rounds = ctx.rounds(ctx.opts.ps_rounds);
    for count in stops {
        if count > running {
            let image = image.as_deref().unwrap_or_default();
            start_fleet(
                ctx,
                &a.client,
                image,
                &format!("fp{running}"),
                count - running,
                &[],
            )
            .await?;
            running = count;
            wait_listed(ctx, &a.client, count, "running", Duration::from_secs(300)).await?;
        }
        if !ctx.opts.footprint_counts.contains(&count) {
            // Only the ps stop.
            rows.extend(crate::benches::ps::measure(ctx, &a, count, ps_rounds).await?);
            continue;
        }
        eprintln!(
            "  {count} containers: settling {} s, sampling {} s",
            SETTLE.as_secs(),
            window.as_secs()
        );
        tokio::time::sleep(SETTLE).await;
        let w = sample(pid, window).await?;
        rows.push(
            Row::new(
                BENCH,
                format!(
                    "idle agent RSS, peak over {} s, {count} containers",
                    window.as_secs()
                ),
                Unit::Mib,
                Measured::Value(Summary::with_bounds(
                    w.rss_peak, w.rss_min, w.rss_peak, w.samples,
                )),
            )
            .against_reference("Serf, 5–10 MB", SERF_MIB)
            .note(format!("mean {} MiB", sig(w.rss_mean))),
        );
        rows.push(
            Row::new(
                BENCH,
                format!(
                    "idle agent CPU, mean over {} s, {count} containers",
                    window.as_secs()
                ),
                Unit::CpuPercent,
                Measured::Value(Summary::with_bounds(
                    w.cpu_mean, w.cpu_min, w.cpu_peak, w.samples,
                )),
            )
            .note(format!(
                "% of one core; peak 1-s sample {} %",
                sig(w.cpu_peak)
            )),
        );
        if ctx.ps_in_footprint && count == ctx.opts.ps_containers {
            rows.extend(crate::benches::ps::measure(ctx, &a, count, ps_rounds).await?);
        }
    }
    if let Some(hwm) = procs::hwm_kib(pid) {
        ctx.remark(format!(
            "footprint: the agent's peak RSS over its whole life (VmHWM, container starts \
             included) was {} MiB",
            sig(hwm as f64 / 1024.0)
        ));
    }
    Ok(rows)
}

struct Window {
    samples: usize,
    rss_min: f64,
    rss_peak: f64,
    rss_mean: f64,
    cpu_min: f64,
    cpu_peak: f64,
    cpu_mean: f64,
}

/// Samples RSS (MiB) and CPU (% of one core, per interval) every second for `window`.
async fn sample(pid: u32, window: Duration) -> Result<Window> {
    let gone = || err("the agent exited while being sampled");
    let t0 = Instant::now();
    let cpu0 = procs::cpu_time(pid).ok_or_else(gone)?;
    let (mut rss, mut cpu) = (Vec::new(), Vec::new());
    let (mut last_t, mut last_cpu) = (t0, cpu0);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.tick().await;
    while t0.elapsed() < window {
        tick.tick().await;
        let now = Instant::now();
        let c = procs::cpu_time(pid).ok_or_else(gone)?;
        let r = procs::rss_kib(pid).ok_or_else(gone)?;
        let dt = now.duration_since(last_t).as_secs_f64();
        if dt > 0.0 {
            cpu.push(100.0 * c.saturating_sub(last_cpu).as_secs_f64() / dt);
        }
        rss.push(r as f64 / 1024.0);
        (last_t, last_cpu) = (now, c);
    }
    let total = t0.elapsed().as_secs_f64();
    let cpu_mean = 100.0 * last_cpu.saturating_sub(cpu0).as_secs_f64() / total;
    let rs = Summary::of(&rss).ok_or_else(|| err("no RSS sample"))?;
    let cs = Summary::of(&cpu).ok_or_else(|| err("no CPU sample"))?;
    Ok(Window {
        samples: rss.len(),
        rss_min: rs.min,
        rss_peak: rs.max,
        rss_mean: rs.mean,
        cpu_min: cs.min,
        cpu_peak: cs.max,
        cpu_mean,
    })
}
