//! Logs throughput: `berth logs` against `docker logs` of one exited container that printed
//! 1,000,000 lines. Whole commands, stdout read and counted by the bench (so both are checked to
//! print every line), alternating which goes first, after one warm-up round.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Local, docker, ms};
use crate::cleanup::LabelGuard;
use crate::procs;
use crate::report::{Row, Unit};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "logs";

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let lines = ctx.opts.logs_lines;
    let rounds = ctx.rounds(ctx.opts.logs_rounds);
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let a = Local::start(ctx, "bench-logs", Ipv4Addr::LOCALHOST, &[]).await?;
    let name = berth_testkit::unique("bench-logs");
    let n = lines.to_string();
    // Made with the docker CLI, not through the agent: the engine's default log options may rotate
    // the lines away (Debian's daemon.json keeps 3 × 10 MB, about 266,000 of them), and a Berth
    // spec has no log options. Berth's node label makes the agent adopt it like its own.
    let t0 = Instant::now();
    procs::output(
        &docker()
            .args(["run", "-d", "--name", &name, "--log-driver", "json-file"])
            .args([
                "--log-opt",
                "max-size=1g",
                "--log-opt",
                "max-file=1",
                "--label",
            ])
            .arg(format!("{}={}", berth_shared::labels::NODE, a.agent.name))
            .arg("--label")
            .arg(format!("{}=true", berth_shared::labels::MANAGED))
            .arg("--label")
            .arg(format!("{LABEL}={}", ctx.run_id))
            .args([image.as_str(), "--lines", &n, "--exit", "0"]),
    )
    .await?;
    wait_exited(&name, Duration::from_secs(600)).await?;
    super::wait_listed(ctx, &a.client, 1, "exited", Duration::from_secs(30)).await?;
    eprintln!(
        "  the container printed {lines} lines in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let berth_cmd = a.berth(ctx).args(["logs", &name]);
    let docker_cmd = docker().args(["logs", &name]);
    let (mut berth, mut base) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for round in 0..=rounds {
        for k in 0..2 {
            let is_berth = (round + k) % 2 == 0;
            if round == 0 && is_berth {
                // One warm-up read (the log file into the page cache) is enough for both.
                continue;
            }
            let t = procs::time(if is_berth { &berth_cmd } else { &docker_cmd }).await?;
            if t.stdout_lines != lines {
                return Err(err(format!(
                    "{} printed {} lines of {lines}",
                    if is_berth {
                        "berth logs"
                    } else {
                        "docker logs"
                    },
                    t.stdout_lines
                )));
            }
            bytes = t.stdout_bytes;
            if round > 0 {
                let v = ms(t.elapsed);
                if is_berth {
                    berth.push(v)
                } else {
                    base.push(v)
                }
            }
        }
        if round > 0 {
            eprintln!("  round {round}/{rounds}");
        }
    }
    let rate =
        |xs: &[f64]| crate::stats::median(xs).map_or(f64::NAN, |m| lines as f64 / (m / 1000.0));
    Ok(vec![
        Row::samples(
            BENCH,
            format!("logs, {} lines", crate::report::sig(lines as f64)),
            Unit::Ms,
            &berth,
        )
        .against("docker logs", &base)
        .note(format!(
            "whole command to the last line ({} MiB): berth {} lines/s, docker {} lines/s",
            crate::report::sig(bytes as f64 / 1_048_576.0),
            crate::report::sig(rate(&berth)),
            crate::report::sig(rate(&base))
        )),
    ])
}

/// Waits until Docker says the container has exited.
async fn wait_exited(name: &str, timeout: Duration) -> Result<()> {
    let docker = berth_testkit::docker()
        .await
        .map_err(|e| err(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        let state = docker
            .inspect_container(name, None)
            .await
            .map_err(|e| err(format!("cannot inspect {name}: {e}")))?
            .state
            .and_then(|s| s.status);
        if state == Some(bollard::models::ContainerStateStatusEnum::EXITED) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "{name} has not exited after {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
