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
    hold: Arc<Hold>,
}

/// Requests the proxy holds back: a client-to-engine chunk that contains the pattern waits
/// (its connection stalls, neither forwarded nor closed) until [`DockerProxy::release`].
#[derive(Default)]
struct Hold {
    pattern: Mutex<Option<Vec<u8>>>,
    /// Bumped by `release`; a held chunk goes on when it changes.
    released: tokio::sync::Notify,
    /// How many chunks are held right now.
    held: std::sync::atomic::AtomicUsize,
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
            hold: Arc::default(),
        };
        proxy.resume().await?;
        Ok(proxy)
    }

    /// From now on, holds back every request whose bytes contain `pattern` (for example
    /// `"/start "` for Docker's container start): its connection stalls until
    /// [`release`](Self::release), so a test can act while the agent waits between two calls.
    pub fn hold(&self, pattern: &str) {
        *lock(&self.hold.pattern) = Some(pattern.as_bytes().to_vec());
    }

    /// Stops holding new requests; the ones already held stay held (they are dropped with the
    /// proxy, never forwarded, unless [`release`](Self::release) is called).
    pub fn unhold(&self) {
        *lock(&self.hold.pattern) = None;
    }

    /// Stops holding, and lets the held requests through to the engine.
    pub fn release(&self) {
        self.unhold();
        self.hold.released.notify_waiters();
    }

    /// How many requests are held back right now.
    pub fn held(&self) -> usize {
        self.hold.held.load(std::sync::atomic::Ordering::SeqCst)
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
            Arc::clone(&self.hold),
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

async fn accept_loop(
    listener: UnixListener,
    upstream: Arc<Upstream>,
    tasks: Arc<Mutex<Tasks>>,
    hold: Arc<Hold>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                eprintln!("testkit: docker proxy cannot accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = tokio::spawn(relay(client, Arc::clone(&upstream), Arc::clone(&hold)));
        let mut tasks = lock(&tasks);
        tasks.connections.retain(|h| !h.is_finished());
        tasks.connections.push(connection.abort_handle());
    }
}

async fn relay(client: UnixStream, upstream: Arc<Upstream>, hold: Arc<Hold>) {
    // Errors end the connection, which is what the client sees from a real engine too.
    let _ = match &*upstream {
        Upstream::Unix(path) => match UnixStream::connect(path).await {
            Ok(server) => pipe(client, server, &hold).await,
            Err(error) => Err(error),
        },
        Upstream::Tcp(addr) => match TcpStream::connect(addr).await {
            Ok(server) => pipe(client, server, &hold).await,
            Err(error) => Err(error),
        },
    };
}

/// Copies both ways; client-to-engine chunks that match the hold pattern wait for a release.
async fn pipe<S>(client: UnixStream, server: S, hold: &Hold) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut server_rx, mut server_tx) = tokio::io::split(server);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                return server_tx.shutdown().await;
            }
            let chunk = &buf[..n];
            let matches = lock(&hold.pattern)
                .as_ref()
                .is_some_and(|p| chunk.windows(p.len()).any(|w| w == p.as_slice()));
            if matches {
                // Made before counting, so a release right after the count still reaches it.
                let released = hold.released.notified();
                hold.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                released.await;
                hold.held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
            server_tx.write_all(chunk).await?;
        }
    };
    let down = async {
        tokio::io::copy(&mut server_rx, &mut client_tx).await?;
        client_tx.shutdown().await
    };
    tokio::try_join!(up, down).map(|_| ())
}

/// A TCP proxy on `127.0.0.1:<free port>` in front of one address (an agent's gRPC port), so
/// a test can cut a client's open connections, as a network that drops them would. New
/// connections are accepted as before.
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Arc<Mutex<Tasks>>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Result<TcpProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("testkit-tcp-proxy")
            .enable_all()
            .build()
            .context("cannot start the tcp proxy's runtime")?;
        let listener = {
            let _context = runtime.enter();
            let std =
                std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the tcp proxy")?;
            std.set_nonblocking(true)
                .context("cannot make the tcp proxy's socket non-blocking")?;
            tokio::net::TcpListener::from_std(std).context("cannot register the tcp proxy")?
        };
        let addr = listener
            .local_addr()
            .context("the tcp proxy has no address")?;
        let tasks: Arc<Mutex<Tasks>> = Arc::default();
        let for_loop = Arc::clone(&tasks);
        let accept = runtime.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut tasks = lock(&for_loop);
                tasks.connections.retain(|h| !h.is_finished());
                tasks.connections.push(connection.abort_handle());
            }
        });
        lock(&tasks).accept = Some(accept.abort_handle());
        Ok(TcpProxy {
            addr,
            runtime: Some(runtime),
            tasks,
        })
    }

    /// `http://127.0.0.1:<port>`, for `--agent`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every open connection (both sides see it closed); returns once they are.
    pub fn cut(&self) -> usize {
        let connections = std::mem::take(&mut lock(&self.tasks).connections);
        for connection in &connections {
            connection.abort();
        }
        wait_finished(&connections);
        connections.len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
