//! A Unix-socket proxy in front of the Docker engine, so a test can make Docker "go away" and
//! "come back" for one agent only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::AbortHandle;

use crate::{Context, Result};

/// How long [`DockerProxy::pause`] waits for the cut connections' tasks to end.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `<dir>/docker.sock` and copies bytes both ways to the real engine (the unix path of
/// `DOCKER_HOST`, a `tcp://` `DOCKER_HOST`, or `/var/run/docker.sock`).
///
/// It runs on a runtime of its own, so it keeps serving while the test's thread blocks (for
/// example in [`crate::Cmd::run`] waiting for a `berth` that waits for an agent that waits
/// for Docker).
pub struct DockerProxy {
    socket: PathBuf,
    upstream: Arc<Upstream>,
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Arc<Mutex<Tasks>>,
}

#[derive(Debug)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

/// The accept loop and every open connection, so `pause` can cut them all.
#[derive(Default)]
struct Tasks {
    accept: Option<AbortHandle>,
    connections: Vec<AbortHandle>,
}

impl DockerProxy {
    /// Starts the proxy on `dir/docker.sock` (`dir` must exist; keep the path short, unix
    /// socket paths are limited to about 100 bytes).
    pub async fn start(dir: &Path) -> Result<DockerProxy> {
        let upstream = Arc::new(upstream()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("testkit-docker-proxy")
            .enable_all()
            .build()
            .context("cannot start the docker proxy's runtime")?;
        let proxy = DockerProxy {
            socket: dir.join("docker.sock"),
            upstream,
            runtime: Some(runtime),
            tasks: Arc::default(),
        };
        proxy.resume().await?;
        Ok(proxy)
    }

    /// `unix://<dir>/docker.sock`, for `DOCKER_HOST` or an agent's `--docker-host`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// A Docker client that goes through this proxy.
    pub async fn docker(&self) -> Result<bollard::Docker> {
        crate::docker_at(&self.docker_host()).await
    }

    /// Stops accepting, removes the socket file and cuts every open connection; returns once
    /// they are closed.
    pub fn pause(&self) {
        // The accept loop first: once it has ended, every connection it spawned is in the list.
        let accept = lock(&self.tasks).accept.take();
        if let Some(accept) = &accept {
            accept.abort();
        }
        if let Err(error) = std::fs::remove_file(&self.socket)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "testkit: cannot remove proxy socket {}: {error}",
                self.socket.display()
            );
        }
        wait_finished(accept.as_slice());
        let connections = std::mem::take(&mut lock(&self.tasks).connections);
        for connection in &connections {
            connection.abort();
        }
        wait_finished(&connections);
    }

    /// Listens again (after [`pause`](Self::pause); a no-op when already listening).
    pub async fn resume(&self) -> Result<()> {
        let runtime = self.runtime.as_ref().context("docker proxy is shut down")?;
        let mut tasks = lock(&self.tasks);
        if tasks.accept.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        if let Err(error) = std::fs::remove_file(&self.socket)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            return Err(error)
                .with_context(|| format!("cannot remove stale socket {}", self.socket.display()));
        }
        let listener = {
            let _context = runtime.enter();
            UnixListener::bind(&self.socket)
                .with_context(|| format!("cannot listen on {}", self.socket.display()))?
        };
        let accept = runtime.spawn(accept_loop(
            listener,
            Arc::clone(&self.upstream),
            Arc::clone(&self.tasks),
        ));
        tasks.accept = Some(accept.abort_handle());
        Ok(())
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so it is fine inside another runtime too.
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl std::fmt::Debug for DockerProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerProxy")
            .field("socket", &self.socket)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// Waits until aborted tasks have ended, which is when their sockets are closed (the proxy's
/// runtime gets to them a moment after the abort).
fn wait_finished(handles: &[AbortHandle]) {
    let deadline = Instant::now() + PAUSE_TIMEOUT;
    while handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn lock(tasks: &Mutex<Tasks>) -> MutexGuard<'_, Tasks> {
    // A panic while holding the lock leaves plain handles behind: still usable.
    tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn upstream() -> Result<Upstream> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => {
            if let Some(path) = host.strip_prefix("unix://") {
                Ok(Upstream::Unix(PathBuf::from(path)))
            } else if let Some(addr) = host.strip_prefix("tcp://") {
                Ok(Upstream::Tcp(addr.to_string()))
            } else {
                Err(crate::error(format!(
                    "docker proxy: unsupported DOCKER_HOST {host:?} (unix:// or tcp://)"
                )))
            }
        }
        _ => Ok(Upstream::Unix(PathBuf::from("/var/run/docker.sock"))),
    }
}

async fn accept_loop(listener: UnixListener, upstream: Arc<Upstream>, tasks: Arc<Mutex<Tasks>>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                eprintln!("testkit: docker proxy cannot accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = tokio::spawn(relay(client, Arc::clone(&upstream)));
        let mut tasks = lock(&tasks);
        tasks.connections.retain(|h| !h.is_finished());
        tasks.connections.push(connection.abort_handle());
    }
}

async fn relay(mut client: UnixStream, upstream: Arc<Upstream>) {
    // Errors end the connection, which is what the client sees from a real engine too.
    let _ = match &*upstream {
        Upstream::Unix(path) => match UnixStream::connect(path).await {
            Ok(mut server) => tokio::io::copy_bidirectional(&mut client, &mut server).await,
            Err(error) => Err(error),
        },
        Upstream::Tcp(addr) => match TcpStream::connect(addr).await {
            Ok(mut server) => tokio::io::copy_bidirectional(&mut client, &mut server).await,
            Err(error) => Err(error),
        },
    };
}
