//! Berth's test harness, used by the integration tests of the other crates (dev only).
//!
//! It builds the workload image (a static `berth-workload` binary packed `FROM scratch`, so tests
//! need no image registry), cleans up labelled containers even when a test panics
//! ([`ContainerGuard`]), starts a local registry ([`Registry`]), a Docker socket proxy that can be
//! cut and restored ([`DockerProxy`]), real `berthd` processes ([`AgentProcess`]) and runs the real
//! `berth` binary ([`Cmd`]). Everything talks to the real Docker engine: this crate has no fakes,
//! and it is not meant for production code.

mod agent;
mod cmd;
mod errors;
mod guard;
mod image;
mod proxy;
mod registry;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use agent::{AGENT_START_TIMEOUT, AGENT_STOP_TIMEOUT, AgentOptions, AgentProcess};
pub use cmd::{Cmd, DEFAULT_CMD_TIMEOUT, Output};
pub use errors::{Context, Error, Result, error};
pub use guard::{ContainerGuard, list_labelled, remove_labelled};
pub use image::{WORKLOAD_BINARY, workload_image};
pub use proxy::{DockerProxy, TcpProxy};
pub use registry::{REGISTRY_BIN, Registry};

/// How often [`wait_for`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A Docker client connected the usual way (`DOCKER_HOST` or the local socket) and negotiated
/// down to the engine's API version.
pub async fn docker() -> Result<bollard::Docker> {
    let docker = bollard::Docker::connect_with_local_defaults()
        .context("cannot set up a docker client (DOCKER_HOST or /var/run/docker.sock)")?;
    docker
        .negotiate_version()
        .await
        .context("cannot reach the docker engine (DOCKER_HOST or /var/run/docker.sock)")
}

/// A Docker client for one explicit host (`unix:///path` or a bare socket path), negotiated.
pub async fn docker_at(host: &str) -> Result<bollard::Docker> {
    let path = host.strip_prefix("unix://").unwrap_or(host);
    let docker = bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        .with_context(|| format!("cannot set up a docker client for {host}"))?;
    docker
        .negotiate_version()
        .await
        .with_context(|| format!("cannot reach the docker engine at {host}"))
}

/// `prefix-<8 random hex>`, for names and label values that must not collide between tests.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    // Agents use the port twice, for gRPC (TCP) and gossip (UDP): find one free for both.
    for _ in 0..64 {
        let Ok(tcp) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("cannot find a port free for both TCP and UDP on 127.0.0.1")
}

/// Polls `f` every [`POLL_INTERVAL`] until it returns `Some`, or fails after `timeout` with
/// `timed out after Ns waiting for <what>`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(crate::error(format!(
                "timed out after {} waiting for {what}",
                seconds(timeout)
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `20s`, or `1.5s` when the duration is not whole seconds.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The path of a workspace binary (`berthd`, `berth`) in the directory of the running test
/// executable's profile (`target/<profile>/`, the parent of `deps/`).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the current test executable")?;
    let mut dir = exe
        .parent()
        .with_context(|| format!("test executable {} has no parent", exe.display()))?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(crate::error(format!(
            "binary {name} not found at {}: run cargo build --workspace first",
            path.display()
        )))
    }
}

/// Runs `make` (which builds a future) to completion on a fresh thread with its own
/// current-thread runtime and waits for it. `Drop` impls use it: they cannot be async, and
/// they may run inside or outside a runtime.
fn block_on_fresh_thread<F, Fut>(what: &str, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let spawned = std::thread::Builder::new()
        .name(format!("testkit-{what}"))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(make()),
                Err(error) => eprintln!("testkit: cannot start a runtime: {error}"),
            }
        });
    match spawned {
        Ok(handle) => {
            if handle.join().is_err() {
                eprintln!("testkit: {what} panicked");
            }
        }
        Err(error) => eprintln!("testkit: cannot spawn a thread for {what}: {error}"),
    }
}
