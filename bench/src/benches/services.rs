//! Services: how fast replicas are declared into existence, and how fast the cluster restores
//! them after a node dies.
//!
//! - `service create --replicas 30` on one agent, from spawning the client until the agent
//!   reports 30 running (polled every 50 ms through the API), against `docker service create
//!   --detach --replicas 30` on a single-node swarm until its 30 tasks run (polled through the
//!   Docker API every 10 ms). Both create real containers of the workload on the same engine.
//! - `kill -9` of one of three agents, each holding one of a service's three replicas, until
//!   three run on the survivors, with the default `--reschedule-after` and with `0s`. There is
//!   no swarm of three machines here to measure against, so the figure is compared with what
//!   Swarm's defaults add up to (quoted below).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;

use super::run_latency::Swarm;
use super::{Local, ms};
use crate::cleanup::{self, LabelGuard};
use crate::procs;
use crate::report::{Row, Unit};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "services";
const REPLICAS: usize = 30;
const TIMEOUT: Duration = Duration::from_secs(120);
/// Swarm's defaults: a 5 s dispatcher heartbeat, and a node is down after three missed ones
/// (swarmkit's `DefaultHeartBeatPeriod` and grace multiplier), before its tasks are replaced.
const SWARM_NODE_DOWN_MS: f64 = 15_000.0;
const COMMAND: [&str; 3] = ["--interval-ms", "1000", "--forever"];

async fn running(client: &Client, name: &str, exclude: Option<&str>) -> usize {
    let mut c = client.clone();
    let Ok(r) = c
        .list_services(pb::ListServicesRequest { name: name.into() })
        .await
    else {
        return 0;
    };
    r.into_inner()
        .services
        .first()
        .map(|s| {
            s.slots
                .iter()
                .filter(|x| x.state == "running" && Some(x.node.as_str()) != exclude)
                .count()
        })
        .unwrap_or(0)
}

async fn until_running(client: &Client, name: &str, n: usize, exclude: Option<&str>) -> Result<()> {
    let t0 = Instant::now();
    while running(client, name, exclude).await < n {
        if t0.elapsed() > TIMEOUT {
            return Err(err(format!(
                "service {name}: not {n} running after {TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn spec(ctx: &Ctx, name: &str, image: &str, replicas: u32) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: name.into(),
        mode: pb::ServiceMode::Replicated as i32,
        replicas,
        container: Some(pb::ContainerSpec {
            image: image.into(),
            command: COMMAND.iter().map(|s| s.to_string()).collect(),
            labels: [(LABEL.to_owned(), ctx.run_id.clone())].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn remove(client: &Client, name: &str) {
    let mut c = client.clone();
    let _ = c
        .remove_service(pb::RemoveServiceRequest { name: name.into() })
        .await;
    let t0 = Instant::now();
    while running(client, name, None).await > 0 && t0.elapsed() < TIMEOUT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let mut rows = create_rows(ctx, &image).await?;
    for (label, flag) in [("default (10s)", None), ("0s", Some("0s"))] {
        rows.push(restore_row(ctx, &image, label, flag).await?);
    }
    Ok(rows)
}

async fn create_rows(ctx: &Ctx, image: &str) -> Result<Vec<Row>> {
    let rounds = ctx.rounds(3);
    // A single node has nobody to wait for: no start-up grace.
    let a = Local::start(
        ctx,
        "bench-svc",
        Ipv4Addr::LOCALHOST,
        &["--reschedule-after".into(), "0s".into()],
    )
    .await?;
    let swarm = Swarm::init().await;
    if let Err(reason) = &swarm {
        ctx.remark(format!("docker swarm: n/a ({reason})"));
    }
    let api = berth_testkit::docker()
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let name = berth_testkit::unique("bench-svc");
        let t0 = Instant::now();
        let mut c = a.client.clone();
        c.create_service(pb::CreateServiceRequest {
            spec: Some(spec(ctx, &name, image, REPLICAS as u32)),
        })
        .await
        .map_err(|s| err(format!("service create: {}", s.message())))?;
        until_running(&a.client, &name, REPLICAS, None).await?;
        let took = t0.elapsed();
        remove(&a.client, &name).await;
        if let Ok(s) = &swarm {
            let sname = berth_testkit::unique("bench-swarm");
            let t = s
                .run_replicas(ctx, &api, &sname, image, REPLICAS, &COMMAND)
                .await?;
            s.remove_services().await;
            cleanup::remove_labelled(&format!("{LABEL}={}", ctx.run_id)).await?;
            if round > 0 {
                theirs.push(ms(t));
            }
        }
        if round > 0 {
            ours.push(ms(took));
            eprintln!("  create round {round}/{rounds}");
        }
    }
    if let Ok(s) = swarm {
        s.leave().await;
    }
    let row = Row::samples(
        BENCH,
        format!("service create --replicas {REPLICAS} until all run, one node"),
        Unit::Ms,
        &ours,
    )
    .note("create through the API, then polled every 50 ms until 30 slots run");
    Ok(vec![match &theirs[..] {
        [] => row.against_unavailable("docker service create (swarm)", "swarm unavailable"),
        t => row.against(
            format!("docker service create --replicas {REPLICAS} (swarm)"),
            t,
        ),
    }])
}

async fn restore_row(ctx: &Ctx, image: &str, label: &str, flag: Option<&str>) -> Result<Row> {
    let rounds = ctx.rounds(2);
    let mut samples = Vec::new();
    for round in 1..=rounds {
        let extra: Vec<String> = flag
            .map(|f| vec!["--reschedule-after".to_owned(), f.to_owned()])
            .unwrap_or_default();
        let a = Local::start(ctx, "bench-r0", Ipv4Addr::new(127, 0, 0, 31), &extra).await?;
        let join = |mut v: Vec<String>| {
            v.extend(["--join".to_owned(), a.addr()]);
            v
        };
        let b = Local::start(
            ctx,
            "bench-r1",
            Ipv4Addr::new(127, 0, 0, 32),
            &join(extra.clone()),
        )
        .await?;
        let mut c = Local::start(
            ctx,
            "bench-r2",
            Ipv4Addr::new(127, 0, 0, 33),
            &join(extra.clone()),
        )
        .await?;
        let name = berth_testkit::unique("bench-restore");
        let mut client = a.client.clone();
        // Past the start-up grace of the default, so the service starts at once.
        let t_up = Instant::now();
        loop {
            let n = crate::agent::node_statuses(&mut client)
                .await
                .map(|n| {
                    n.iter()
                        .filter(|(_, s)| *s == pb::NodeStatus::Alive)
                        .count()
                })
                .unwrap_or(0);
            if n == 3 || t_up.elapsed() > TIMEOUT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client
            .create_service(pb::CreateServiceRequest {
                spec: Some(spec(ctx, &name, image, 3)),
            })
            .await
            .map_err(|s| err(format!("service create: {}", s.message())))?;
        until_running(&a.client, &name, 3, None).await?;
        // One replica per node: wait until the one on the agent to kill shows in A's view.
        let victim = c.agent.name.clone();
        let t0 = Instant::now();
        while running(&a.client, &name, Some(&victim)).await != 2 && t0.elapsed() < TIMEOUT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t0 = Instant::now();
        c.agent.kill9();
        until_running(&a.client, &name, 3, Some(&victim)).await?;
        samples.push(ms(t0.elapsed()));
        remove(&a.client, &name).await;
        drop((b, c));
        let _ = procs::output(&super::docker().args(["ps", "-q"])).await;
        eprintln!("  restore ({label}) round {round}/{rounds}");
    }
    Ok(Row::samples(
        BENCH,
        format!("kill -9 of a node until its replica runs elsewhere, --reschedule-after {label}"),
        Unit::Ms,
        &samples,
    )
    .against_reference(
        "swarm's defaults: node down after 3 × 5 s heartbeats",
        SWARM_NODE_DOWN_MS,
    )
    .note(
        "3 agents, 3 replicas, one per node. Quoted, not measured: Swarm marks a node down after \
         3 missed 5 s heartbeats (15 s) before it replaces its tasks; Nomad waits for a client's \
         heartbeat TTL (at least 10 s) plus heartbeat_grace (10 s), then reschedules a service \
         job's allocations after its reschedule delay (30 s by default)",
    ))
}
