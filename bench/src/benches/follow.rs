//! Follow latency: a workload prints `<unix ns> line <i>` every 10 ms; the delay from that
//! timestamp to the line arriving on the follower's stdout, for `berth logs -f -n 0` and
//! `docker logs -f --tail 0`. The followers run one after the other (alternating which goes
//! first) so they do not compete for the two cores; the first lines of each are dropped. A third
//! follower reads the agent's `Logs` stream inside the bench (no console process), to tell the
//! agent's share of the delay from the console's.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_proto::v1 as pb;
use berth_shared::client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Local, docker};
use crate::agent;
use crate::cleanup::{self, LabelGuard};
use crate::procs::Cmdline;
use crate::report::{Row, Unit};
use crate::stats::percentile;
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "follow";
/// Lines dropped at the start of each follow (connection set-up, first reads).
const SKIP_LINES: usize = 10;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let rounds = ctx.rounds(ctx.opts.follow_rounds);
    let secs = Duration::from_secs(ctx.opts.follow_secs.max(1));
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let a = Local::start(ctx, "bench-follow", Ipv4Addr::LOCALHOST, &[]).await?;
    let name = berth_testkit::unique("bench-follow");
    let interval = ctx.opts.follow_interval_ms.to_string();
    let mut client = a.client.clone();
    agent::run(
        &mut client,
        agent::run_request(
            &image,
            Some(&name),
            &["--forever", "--timestamp", "--interval-ms", &interval],
            (LABEL, &ctx.run_id),
            None,
        ),
    )
    .await?;

    let berth_cmd = a.berth(ctx).args(["logs", "-f", "-n", "0", &name]);
    let docker_cmd = docker().args(["logs", "-f", "--tail", "0", &name]);
    // 0: berth logs -f, 1: docker logs -f, 2: the agent's Logs stream read in-process (a
    // diagnostic: the agent's share of the delay, without the console process).
    let mut p50: [Vec<f64>; 3] = Default::default();
    let mut p99: [Vec<f64>; 3] = Default::default();
    let mut all: [Vec<f64>; 3] = Default::default();
    for round in 1..=rounds {
        for k in 0..3 {
            let v = (round + k) % 3;
            let delays = match v {
                0 => follow(&berth_cmd, secs).await?,
                1 => follow(&docker_cmd, secs).await?,
                _ => follow_grpc(&a.client, &name, secs).await?,
            };
            p50[v].push(percentile(&delays, 50.0).unwrap_or(f64::NAN));
            p99[v].push(percentile(&delays, 99.0).unwrap_or(f64::NAN));
            all[v].extend(delays);
        }
        eprintln!("  round {round}/{rounds}");
    }
    let pooled = |xs: &[f64], p| crate::report::sig(percentile(xs, p).unwrap_or(f64::NAN));
    let note = format!(
        "{} lines followed by berth, {} by docker; pooled p50/p99: berth {}/{} ms, docker {}/{} ms; \
         the figure is the median over rounds of each round's p50",
        all[0].len(),
        all[1].len(),
        pooled(&all[0], 50.0),
        pooled(&all[0], 99.0),
        pooled(&all[1], 50.0),
        pooled(&all[1], 99.0),
    );
    Ok(vec![
        Row::samples(BENCH, "follow latency p50", Unit::Ms, &p50[0])
            .against("docker logs -f", &p50[1])
            .note(note),
        Row::samples(BENCH, "follow latency p99", Unit::Ms, &p99[0])
            .against("docker logs -f", &p99[1])
            .note("p99 of each round's delays; median over rounds"),
        Row::samples(
            BENCH,
            "follow latency p50, agent only (diagnostic)",
            Unit::Ms,
            &p50[2],
        )
        .against("docker logs -f", &p50[1])
        .note(format!(
            "the agent's Logs stream read by a gRPC client inside the bench, no console process: \
             the agent's share of the delay; pooled p99 {} ms",
            pooled(&all[2], 99.0)
        )),
    ])
}

/// Follows through the agent's `Logs` stream in this process for `secs`; the delay (ms) of
/// every line after the first few.
async fn follow_grpc(client: &Client, name: &str, secs: Duration) -> Result<Vec<f64>> {
    let mut client = client.clone();
    let request = pb::LogsRequest {
        container: name.to_owned(),
        follow: true,
        tail: Some(0),
        since_unix_ms: 0,
    };
    let mut stream = client
        .logs(request)
        .await
        .map_err(|s| err(format!("Logs refused: {}", s.message())))?
        .into_inner();
    let mut delays = Vec::new();
    let mut seen = 0usize;
    let deadline = Instant::now() + secs;
    loop {
        let line = match tokio::time::timeout_at(deadline.into(), stream.message()).await {
            Err(_) => break,
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return Err(err("the Logs stream ended early")),
            Ok(Err(s)) => return Err(err(format!("Logs failed: {}", s.message()))),
        };
        let now = unix_nanos();
        seen += 1;
        if seen <= SKIP_LINES {
            continue;
        }
        if let Some(ts) = leading_nanos(&String::from_utf8_lossy(&line.line)) {
            delays.push(now.saturating_sub(ts) as f64 / 1e6);
        }
    }
    if delays.is_empty() {
        return Err(err("the Logs stream gave no line"));
    }
    Ok(delays)
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The workload's `--timestamp` prefix: unix nanoseconds, then a space.
fn leading_nanos(line: &str) -> Option<u128> {
    line.split_whitespace().next()?.parse().ok()
}

/// Runs a follower for `secs` and returns the delay (ms) of every line after the first few.
pub(super) async fn follow(cmd: &Cmdline, secs: Duration) -> Result<Vec<f64>> {
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("cannot run {}: {e}", cmd.shown())))?;
    let pid = child.id();
    if let Some(pid) = pid {
        cleanup::track_pid(pid);
    }
    let stdout = child.stdout.take().ok_or_else(|| err("no stdout pipe"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut delays = Vec::new();
    let mut seen = 0usize;
    let deadline = Instant::now() + secs;
    let outcome: Result<()> = loop {
        let line = match tokio::time::timeout_at(deadline.into(), lines.next_line()).await {
            Err(_) => break Ok(()),
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => break Err(err(format!("{} ended early", cmd.shown()))),
            Ok(Err(e)) => break Err(err(format!("cannot read {}: {e}", cmd.shown()))),
        };
        let now = unix_nanos();
        seen += 1;
        if seen <= SKIP_LINES {
            continue;
        }
        if let Some(ts) = leading_nanos(&line) {
            delays.push(now.saturating_sub(ts) as f64 / 1e6);
        }
    };
    let _ = child.kill().await;
    if let Some(pid) = pid {
        cleanup::untrack_pid(pid);
    }
    outcome?;
    if delays.is_empty() {
        return Err(err(format!("{} printed no line", cmd.shown())));
    }
    Ok(delays)
}
