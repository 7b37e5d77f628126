//! Everything a benchmark leaves behind is registered here as it is made — child processes,
//! container labels, swarm services, the swarm itself — so that an interrupted run (Ctrl-C,
//! SIGTERM, a panic) cleans up as well as a normal one. The guards remove their part on `Drop`;
//! [`everything`] removes whatever is still registered, and runs on signals and at exit.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct Registry {
    pids: BTreeSet<u32>,
    /// Docker label filters (`key=value`) whose containers are ours.
    labels: BTreeSet<String>,
    services: BTreeSet<String>,
    /// We ran `docker swarm init` and have not left yet (and whether it made `docker_gwbridge`).
    swarm: Option<SwarmMade>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: BTreeSet::new(),
    labels: BTreeSet::new(),
    services: BTreeSet::new(),
    swarm: None,
});

/// A swarm we made, and whether `docker swarm init` also made the `docker_gwbridge` network.
#[derive(Debug, Clone, Copy)]
pub struct SwarmMade {
    pub made_gwbridge: bool,
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

pub fn track_pid(pid: u32) {
    with(|r| r.pids.insert(pid));
}

pub fn untrack_pid(pid: u32) {
    with(|r| r.pids.remove(&pid));
}

pub fn track_label(filter: &str) {
    with(|r| r.labels.insert(filter.to_owned()));
}

fn untrack_label(filter: &str) {
    with(|r| r.labels.remove(filter));
}

pub fn track_service(name: &str) {
    with(|r| r.services.insert(name.to_owned()));
}

pub fn untrack_service(name: &str) {
    with(|r| r.services.remove(name));
}

pub fn set_swarm(swarm: Option<SwarmMade>) {
    with(|r| r.swarm = swarm);
}

/// Sends `signal` to a process (ignoring one that is gone already).
pub fn kill(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Kills every registered process, removes every registered label's containers and service,
/// and leaves the swarm we created. Safe to call more than once.
pub async fn everything() {
    let (pids, labels, services, swarm) = with(|r| {
        (
            std::mem::take(&mut r.pids),
            std::mem::take(&mut r.labels),
            std::mem::take(&mut r.services),
            r.swarm.take(),
        )
    });
    for pid in pids {
        kill(pid, rustix::process::Signal::KILL);
    }
    for service in services {
        let _ = tokio::process::Command::new("docker")
            .args(["service", "rm", &service])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
    for filter in labels {
        match remove_labelled(&filter).await {
            Ok(0) => {}
            Ok(n) => eprintln!("cleanup: removed {n} containers labelled {filter}"),
            Err(e) => eprintln!("cleanup: cannot remove containers labelled {filter}: {e}"),
        }
    }
    if let Some(made) = swarm {
        leave_swarm(made).await;
    }
}

/// `docker swarm leave --force` (and removes `docker_gwbridge` when the swarm made it), saying
/// so when it fails.
pub async fn leave_swarm(made: SwarmMade) {
    let out = tokio::process::Command::new("docker")
        .args(["swarm", "leave", "--force"])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "cleanup: docker swarm leave --force failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("cleanup: cannot run docker swarm leave --force: {e}"),
    }
    if made.made_gwbridge {
        let _ = tokio::process::Command::new("docker")
            .args(["network", "rm", "docker_gwbridge"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
}

/// Force-removes every container with the label filter `key=value`; returns how many.
pub async fn remove_labelled(filter: &str) -> Result<usize, String> {
    berth_testkit::remove_labelled(filter)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// Removes the containers of one label filter when dropped (and registers it meanwhile).
pub struct LabelGuard {
    filter: String,
}

impl LabelGuard {
    pub fn new(key: &str, value: &str) -> Self {
        let filter = format!("{key}={value}");
        track_label(&filter);
        Self { filter }
    }
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        let filter = self.filter.clone();
        block_on_fresh_thread(async move {
            if let Err(e) = remove_labelled(&filter).await {
                eprintln!("cleanup: cannot remove containers labelled {filter}: {e}");
            }
        });
        untrack_label(&self.filter);
    }
}

/// Runs a future to completion on a fresh thread with its own runtime (for `Drop`, which may run
/// inside or outside a runtime and cannot be async). Gives up after a minute.
pub fn block_on_fresh_thread<F>(fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let spawned = std::thread::Builder::new()
        .name("bench-cleanup".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(async {
                    if tokio::time::timeout(Duration::from_secs(120), fut)
                        .await
                        .is_err()
                    {
                        eprintln!("cleanup: gave up after 120 s");
                    }
                }),
                Err(e) => eprintln!("cleanup: cannot start a runtime: {e}"),
            }
        });
    match spawned {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(e) => eprintln!("cleanup: cannot spawn a thread: {e}"),
    }
}
