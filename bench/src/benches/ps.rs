//! Listing: `berth ps -a` against `docker ps -a`, with 200 running containers (made through the
//! agent, so both list the same ones). Whole commands, spawn to exit, alternating which goes
//! first, after one warm-up round.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Local, docker, ms, start_fleet, wait_listed};
use crate::cleanup::LabelGuard;
use crate::procs;
use crate::report::{Row, Unit};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "ps";

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let count = ctx.opts.ps_containers;
    let rounds = ctx.rounds(ctx.opts.ps_rounds);
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let a = Local::start(ctx, "bench-ps", Ipv4Addr::LOCALHOST, &[]).await?;
    start_fleet(ctx, &a.client, &image, "ps", count, &[]).await?;
    wait_listed(ctx, &a.client, count, "running", Duration::from_secs(120)).await?;
    let rows = measure(ctx, &a, count, rounds).await?;
    Ok(rows)
}

/// The timed part, on an agent that already lists `count` containers of this run.
pub async fn measure(ctx: &Ctx, a: &Local, count: usize, rounds: usize) -> Result<Vec<Row>> {
    let berth_cmd = a.berth(ctx).args(["ps", "-a"]);
    let docker_cmd = docker().args(["ps", "-a"]);
    let (mut berth, mut base) = (Vec::new(), Vec::new());
    let (mut berth_lines, mut docker_lines) = (0, 0);
    for round in 0..=rounds {
        for k in 0..2 {
            let is_berth = (round + k) % 2 == 0;
            let cmd = if is_berth { &berth_cmd } else { &docker_cmd };
            let t = procs::time(cmd).await?;
            if is_berth {
                berth_lines = t.stdout_lines;
            } else {
                docker_lines = t.stdout_lines;
            }
            if round > 0 {
                let v = ms(t.elapsed);
                if is_berth {
                    berth.push(v)
                } else {
                    base.push(v)
                }
            }
        }
    }
    // The header line plus one per container, at least.
    if berth_lines < count as u64 + 1 {
        return Err(err(format!(
            "berth ps -a printed {berth_lines} lines for {count} containers"
        )));
    }
    Ok(vec![
        Row::samples(
            BENCH,
            format!("ps -a, {count} containers"),
            Unit::Ms,
            &berth,
        )
        .against("docker ps -a", &base)
        .note(format!(
            "whole command; berth printed {berth_lines} lines, docker {docker_lines} (every \
             container on the engine)"
        )),
    ])
}
