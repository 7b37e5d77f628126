//! Run latency: from spawning the client to the container running.
//!
//! - `berth run` returns once the container runs (pinned with `--node` to the agent it talks to,
//!   or to a peer agent, which the first one forwards to over gRPC);
//! - `docker run -d` returns once the container is started;
//! - `docker service create --detach` on a single-node swarm returns at once, so the time runs
//!   until the service's task is `running` (polled through the Docker API every 10 ms).
//!
//! Every round runs each variant once, in an order that rotates, after one warm-up round that
//! is not counted. Containers are removed between rounds (not timed).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListTasksOptions;

use super::{Local, docker, ms};
use crate::cleanup::{self, LabelGuard};
use crate::procs::{self, Cmdline};
use crate::report::{Row, Unit};
use crate::{Ctx, LABEL, Result, err};

const BENCH: &str = "run-latency";
const SWARM_TASK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Docker,
    BerthLocal,
    BerthPeer,
    Swarm,
}

const VARIANTS: [Variant; 4] = [
    Variant::Docker,
    Variant::BerthLocal,
    Variant::BerthPeer,
    Variant::Swarm,
];

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let image = ctx.image().await?;
    let rounds = ctx.rounds(ctx.opts.run_rounds);
    let _ours = LabelGuard::new(LABEL, &ctx.run_id);
    let a = Local::start(ctx, "bench-a", Ipv4Addr::LOCALHOST, &[]).await?;
    let b = Local::start(
        ctx,
        "bench-b",
        Ipv4Addr::new(127, 0, 0, 2),
        &["--join".into(), a.addr()],
    )
    .await?;
    wait_peer_alive(&a, &b.agent.name).await?;

    let swarm = Swarm::init().await;
    if let Err(reason) = &swarm {
        ctx.remark(format!("docker swarm: n/a ({reason})"));
    }

    let mut samples: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let docker_api = berth_testkit::docker()
        .await
        .map_err(|e| err(e.to_string()))?;
    for round in 0..=rounds {
        let warmup = round == 0;
        for k in 0..VARIANTS.len() {
            let v = VARIANTS[(round + k) % VARIANTS.len()];
            let name = berth_testkit::unique("bench-run");
            let took = match v {
                Variant::Docker => Some(
                    procs::time(&docker().args(["run", "-d", "--name", &name]).args([
                        "--label".to_owned(),
                        format!("{LABEL}={}", ctx.run_id),
                        image.clone(),
                    ]))
                    .await?
                    .elapsed,
                ),
                Variant::BerthLocal | Variant::BerthPeer => {
                    let node = if v == Variant::BerthLocal {
                        &a.agent.name
                    } else {
                        &b.agent.name
                    };
                    let cmd = a
                        .berth(ctx)
                        .args(["run", "--name", &name, "--node", node, "--label"])
                        .arg(format!("{LABEL}={}", ctx.run_id))
                        .arg(&image);
                    Some(procs::time(&cmd).await?.elapsed)
                }
                Variant::Swarm => match &swarm {
                    Ok(s) => Some(s.run(ctx, &docker_api, &name, &image).await?),
                    Err(_) => None,
                },
            };
            if let (Some(took), false) = (took, warmup) {
                samples.entry(key(v)).or_default().push(ms(took));
            }
        }
        // Not timed: services first (a removed task container would be replaced), then every
        // container of the run.
        if let Ok(s) = &swarm {
            s.remove_services().await;
        }
        cleanup::remove_labelled(&format!("{LABEL}={}", ctx.run_id)).await?;
        if !warmup {
            eprintln!("  round {round}/{rounds}");
        }
    }
    if let Ok(s) = swarm {
        s.leave().await;
    }

    let get = |v| samples.get(key(v)).cloned().unwrap_or_default();
    let swarm_base = |row: Row| match &get(Variant::Swarm)[..] {
        [] => row.against_unavailable("swarm service", "swarm unavailable"),
        s => row.against("docker service create (swarm)", s),
    };
    Ok(vec![
        Row::samples(
            BENCH,
            "run latency, local agent",
            Unit::Ms,
            &get(Variant::BerthLocal),
        )
        .against("docker run -d", &get(Variant::Docker))
        .note("berth run --node <the agent it talks to>, whole command, image present"),
        Row::samples(
            BENCH,
            "run latency, through a peer agent",
            Unit::Ms,
            &get(Variant::BerthPeer),
        )
        .against("docker run -d", &get(Variant::Docker))
        .note("berth run --node <the other agent>: forwarded over gRPC"),
        swarm_base(Row::samples(
            BENCH,
            "run latency, local agent vs swarm",
            Unit::Ms,
            &get(Variant::BerthLocal),
        ))
        .note("swarm: docker service create --detach, then until its task is running"),
    ])
}

fn key(v: Variant) -> &'static str {
    match v {
        Variant::Docker => "docker",
        Variant::BerthLocal => "berth-local",
        Variant::BerthPeer => "berth-peer",
        Variant::Swarm => "swarm",
    }
}

pub(super) async fn wait_peer_alive(a: &Local, peer: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut client = a.client.clone();
        if let Some(nodes) = crate::agent::node_statuses(&mut client).await
            && nodes
                .iter()
                .any(|(n, s)| n == peer && *s == berth_proto::v1::NodeStatus::Alive)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(err(format!("{} never saw {peer} alive", a.agent.name)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A single-node swarm on loopback that we created, left on `leave` (and by the cleanup
/// registry when interrupted).
pub(super) struct Swarm {
    services: std::sync::Mutex<Vec<String>>,
    made: cleanup::SwarmMade,
}

impl Swarm {
    pub(super) async fn init() -> std::result::Result<Self, String> {
        let state =
            procs::output(&docker().args(["info", "--format", "{{.Swarm.LocalNodeState}}"]))
                .await
                .map_err(|e| e.to_string())?;
        if state != "inactive" {
            return Err(format!(
                "this engine is already in a swarm ({state}); not touching it"
            ));
        }
        let had_gwbridge =
            procs::output(&docker().args(["network", "ls", "-q", "-f", "name=^docker_gwbridge$"]))
                .await
                .map(|s| !s.is_empty())
                .unwrap_or(true);
        let port = crate::agent::free_port(Ipv4Addr::LOCALHOST).map_err(|e| e.to_string())?;
        let made = cleanup::SwarmMade {
            made_gwbridge: !had_gwbridge,
        };
        cleanup::set_swarm(Some(made));
        let init = procs::output(&docker().args([
            "swarm".to_owned(),
            "init".to_owned(),
            "--advertise-addr".to_owned(),
            "127.0.0.1".to_owned(),
            "--listen-addr".to_owned(),
            format!("127.0.0.1:{port}"),
        ]))
        .await;
        if let Err(e) = init {
            cleanup::set_swarm(None);
            // A half-made swarm is left all the same.
            cleanup::leave_swarm(made).await;
            return Err(format!("docker swarm init failed: {e}"));
        }
        Ok(Self {
            services: std::sync::Mutex::new(Vec::new()),
            made,
        })
    }

    /// Creates a service of one task and waits for the task to run; returns the time taken.
    async fn run(
        &self,
        ctx: &Ctx,
        api: &bollard::Docker,
        name: &str,
        image: &str,
    ) -> Result<Duration> {
        self.run_replicas(ctx, api, name, image, 1, &[]).await
    }

    /// Creates a service of `replicas` tasks running `command` and waits until all of them run;
    /// returns the time taken.
    pub(super) async fn run_replicas(
        &self,
        ctx: &Ctx,
        api: &bollard::Docker,
        name: &str,
        image: &str,
        replicas: usize,
        command: &[&str],
    ) -> Result<Duration> {
        cleanup::track_service(name);
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
        let label = format!("{LABEL}={}", ctx.run_id);
        let cmd: Cmdline = docker()
            .args([
                "service",
                "create",
                "--detach",
                "--quiet",
                "--no-resolve-image",
                "--name",
                name,
                "--label",
                &label,
                "--container-label",
                &label,
                "--replicas",
                &replicas.to_string(),
            ])
            .arg(image)
            .args(command.iter().copied());
        let t0 = Instant::now();
        procs::time(&cmd).await?;
        let options = ListTasksOptions {
            filters: Some(HashMap::from([(
                "service".to_owned(),
                vec![name.to_owned()],
            )])),
        };
        loop {
            let tasks = api
                .list_tasks(Some(options.clone()))
                .await
                .map_err(|e| err(format!("cannot list the tasks of {name}: {e}")))?;
            let running = tasks
                .iter()
                .filter(|t| {
                    t.status
                        .as_ref()
                        .and_then(|s| s.state)
                        .is_some_and(|s| s == bollard::models::TaskState::RUNNING)
                })
                .count();
            if running >= replicas {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > SWARM_TASK_TIMEOUT {
                return Err(err(format!(
                    "swarm service {name}: {running} of {replicas} tasks running after {} s",
                    SWARM_TASK_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) async fn remove_services(&self) {
        let names: Vec<String> =
            std::mem::take(&mut *self.services.lock().unwrap_or_else(|p| p.into_inner()));
        if names.is_empty() {
            return;
        }
        let _ = procs::output(&docker().arg("service").arg("rm").args(names.iter())).await;
        for n in &names {
            cleanup::untrack_service(n);
        }
    }

    pub(super) async fn leave(self) {
        self.remove_services().await;
        cleanup::set_swarm(None);
        cleanup::leave_swarm(self.made).await;
    }
}
