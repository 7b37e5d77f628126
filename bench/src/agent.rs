//! `berthd` processes started by the benchmarks: their own data dir and log file, a port chosen
//! here (so a seed's address is known before it starts), registered for cleanup, killed on `Drop`.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_proto::v1 as pb;
use berth_shared::client::Client;

use crate::cleanup;
use crate::{Result, err};

/// How long an agent may take to answer its first `Cluster` call.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start one agent.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub addr: SocketAddr,
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for the agent (its default level is `info`).
    pub rust_log: String,
    /// The cluster secret (`BERTH_TOKEN`), also what [`Agent::client`] connects with.
    pub token: Option<String>,
}

impl Spec {
    /// An agent named `name` on `ip` at a port free for both TCP and UDP there.
    pub fn new(name: &str, ip: Ipv4Addr) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            addr: SocketAddr::from((ip, free_port(ip)?)),
            extra_args: Vec::new(),
            rust_log: "info".into(),
            token: None,
        })
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A port on `ip` that was free for TCP and UDP a moment ago (the agent uses both).
pub fn free_port(ip: Ipv4Addr) -> Result<u16> {
    for _ in 0..64 {
        let Ok(tcp) = std::net::TcpListener::bind((ip, 0)) else {
            continue;
        };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(err(format!("no port free for both TCP and UDP on {ip}")))
}

/// True when `port` is free for TCP and UDP on every address in `ips`.
pub fn port_free_on_all(port: u16, ips: &[Ipv4Addr]) -> bool {
    ips.iter().all(|ip| {
        std::net::TcpListener::bind((*ip, port)).is_ok()
            && std::net::UdpSocket::bind((*ip, port)).is_ok()
    })
}

/// A running `berthd`.
pub struct Agent {
    pub name: String,
    pub addr: SocketAddr,
    token: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Agent {
    /// Starts the process and returns at once (see [`Agent::wait_up`]).
    pub fn start(berthd: &Path, spec: &Spec) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-")
            .tempdir()
            .map_err(|e| err(format!("cannot create a temp dir: {e}")))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| err(format!("cannot create {}: {e}", data.display())))?;
        let log_path = dir.path().join("berthd.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| err(format!("cannot open {}: {e}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err(format!("cannot reopen {}: {e}", log_path.display())))?;
        let mut command = Command::new(berthd);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--listen")
            .arg(spec.addr.to_string())
            .arg("--name")
            .arg(&spec.name)
            .arg("--data-dir")
            .arg(&data)
            .args(&spec.extra_args)
            .envs(spec.token.iter().map(|t| ("BERTH_TOKEN", t)))
            .env("RUST_LOG", &spec.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = command
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", berthd.display())))?;
        cleanup::track_pid(child.id());
        Ok(Self {
            name: spec.name.clone(),
            addr: spec.addr,
            token: spec.token.clone(),
            dir,
            child: Some(child),
        })
    }

    /// Starts it and waits until it answers.
    pub async fn spawn(berthd: &Path, spec: &Spec) -> Result<Self> {
        let mut agent = Self::start(berthd, spec)?;
        agent.wait_up(START_TIMEOUT).await?;
        Ok(agent)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("berthd.log")
    }

    /// The last `max` bytes of its log (for error messages).
    pub fn log_tail(&self, max: usize) -> String {
        let text = std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let start = text.len().saturating_sub(max);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    pub async fn client(&self) -> Result<Client> {
        berth_shared::client::connect(&self.url(), self.token.as_deref())
            .await
            .map_err(|e| {
                err(format!(
                    "cannot connect to {} at {}: {e}",
                    self.name, self.addr
                ))
            })
    }

    /// Polls until a `Cluster` call answers; fails when the process exits or after `timeout`.
    pub async fn wait_up(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                cleanup::untrack_pid(child.id());
                self.child = None;
                return Err(err(format!(
                    "berthd {} exited at start ({status}); log:\n{}",
                    self.name,
                    self.log_tail(4000)
                )));
            }
            if let Ok(mut client) = self.client().await
                && client.cluster(pb::ClusterRequest {}).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "berthd {} did not answer on {} within {} s; log:\n{}",
                    self.name,
                    self.addr,
                    timeout.as_secs(),
                    self.log_tail(4000)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and wait for it (no-op when not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            cleanup::untrack_pid(child.id());
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every node the agent lists, with its status.
pub async fn node_statuses(client: &mut Client) -> Option<Vec<(String, pb::NodeStatus)>> {
    let snapshot = client
        .cluster(pb::ClusterRequest {})
        .await
        .ok()?
        .into_inner();
    Some(
        snapshot
            .nodes
            .into_iter()
            .map(|n| {
                let s = pb::NodeStatus::try_from(n.status).unwrap_or(pb::NodeStatus::Unspecified);
                (n.name, s)
            })
            .collect(),
    )
}

/// Runs a container to completion of the `Run` stream: the started container, or the error.
pub async fn run(client: &mut Client, req: pb::RunRequest) -> Result<pb::ContainerSummary> {
    let mut stream = client
        .run(req)
        .await
        .map_err(|s| err(format!("run refused: {}", s.message())))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(pb::RunEvent {
                event: Some(pb::run_event::Event::Started(s)),
            })) => {
                return s
                    .container
                    .ok_or_else(|| err("Started without a container"));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(err("the run ended without Started")),
            Err(s) => return Err(err(format!("run failed: {}", s.message()))),
        }
    }
}

/// A `RunRequest` for `image` with `command`, a label, and optionally a name and a pinned node.
pub fn run_request(
    image: &str,
    name: Option<&str>,
    command: &[&str],
    label: (&str, &str),
    node: Option<&str>,
) -> pb::RunRequest {
    pb::RunRequest {
        spec: Some(pb::ContainerSpec {
            image: image.to_owned(),
            name: name.unwrap_or_default().to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            labels: [(label.0.to_owned(), label.1.to_owned())].into(),
            ..Default::default()
        }),
        node: node.unwrap_or_default().to_owned(),
        ..Default::default()
    }
}
