//! Real `berthd` processes, each with its own port, data dir and log file.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use berth_proto::v1::ClusterRequest;

use crate::{Context, Result};

/// How long [`AgentProcess::spawn`] waits for the gRPC port to answer.
pub const AGENT_START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`AgentProcess::sigterm`] waits for the agent to exit before killing it.
pub const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many ports to try when the one we picked was taken before the agent bound it.
const SPAWN_ATTEMPTS: usize = 3;

/// How an [`AgentProcess`] is started; everything is optional.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// `--name`; default `unique("node")`.
    pub name: Option<String>,
    /// `--token`; also used by [`AgentProcess::client`] and the start-up probe.
    pub token: Option<String>,
    /// `--docker-host` (for example [`crate::DockerProxy::docker_host`]).
    pub docker_host: Option<String>,
    /// More arguments, appended last.
    pub extra_args: Vec<String>,
    /// The loopback address to listen on (`127.0.0.x`, one per simulated host); default
    /// 127.0.0.1.
    pub ip: Option<std::net::Ipv4Addr>,
}

/// A `berthd` child process listening on `127.0.0.1:<free port>`, with a data dir and a log
/// file (stdout and stderr, appended across restarts) in its own temp dir. `Drop` kills it.
#[derive(Debug)]
pub struct AgentProcess {
    /// The gRPC address it listens on.
    pub addr: SocketAddr,
    /// Its node name.
    pub name: String,
    options: AgentOptions,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl AgentProcess {
    /// Runs `berthd --listen 127.0.0.1:<free port> --name <name> --data-dir <dir> [--token T]
    /// [--docker-host H] <extra args>` with `RUST_LOG=info`, and waits (up to 20 s) until its
    /// gRPC port answers a `Cluster` call (`UNAUTHENTICATED` counts as up). Errors include the
    /// agent's log.
    pub async fn spawn(options: AgentOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("berthd-")
            .tempdir()
            .context("cannot create a temp dir for berthd")?;
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| crate::unique("node"));
        let mut agent = AgentProcess {
            addr: SocketAddr::from((
                options.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                crate::free_port(),
            )),
            name,
            options,
            dir,
            child: None,
        };
        for attempt in 1..=SPAWN_ATTEMPTS {
            let log_before = agent.log().len();
            match agent.start().await {
                Ok(()) => return Ok(agent),
                Err(error) => {
                    let new_log = agent
                        .log()
                        .get(log_before..)
                        .unwrap_or_default()
                        .to_string();
                    let port_taken = new_log.contains("in use");
                    if attempt == SPAWN_ATTEMPTS || !port_taken {
                        return Err(error);
                    }
                    agent.addr.set_port(crate::free_port());
                }
            }
        }
        Err(crate::error(format!("cannot start berthd {}", agent.name)))
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The options it was started with (its token, docker host…).
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// Its `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its log file (stdout and stderr of every run).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("berthd.log")
    }

    /// The contents of its log file.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL and waits for it (a no-op when it is not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit (killing it after 30 s, which is an error);
    /// returns its exit status.
    ///
    /// It is async so the caller's runtime keeps running meanwhile: a graceful shutdown waits for
    /// open connections, and the ones of dropped clients only close when their runtime polls them.
    pub async fn sigterm(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .with_context(|| format!("berthd {} is not running", self.name))?;
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        )
        .with_context(|| format!("cannot send SIGTERM to berthd {}", self.name))?;
        let deadline = Instant::now() + AGENT_STOP_TIMEOUT;
        loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("cannot wait for berthd {}", self.name))?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(crate::error(format!(
                    "berthd {} did not exit within {}s of SIGTERM (killed); log:\n{}",
                    self.name,
                    AGENT_STOP_TIMEOUT.as_secs(),
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts it again with the same name, port, data dir and options (after SIGTERM when it is
    /// still running), and waits until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.sigterm().await?;
        }
        self.start().await
    }

    /// A client of its API via `berth_shared::client::connect`, with its token.
    pub async fn client(&self) -> Result<berth_shared::client::Client> {
        berth_shared::client::connect(&self.url(), self.options.token.as_deref())
            .await
            .with_context(|| format!("cannot connect to berthd {} at {}", self.name, self.url()))
    }

    fn command(&self) -> Result<Command> {
        let bin = crate::bin_path("berthd")?;
        let data_dir = self.data_dir();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut command = Command::new(bin);
        command
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&data_dir);
        // Only what the options say: no `BERTH_*` setting from the developer's shell.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                command.env_remove(key);
            }
        }
        if let Some(token) = &self.options.token {
            command.arg("--token").arg(token);
        }
        if let Some(host) = &self.options.docker_host {
            command.arg("--docker-host").arg(host);
        }
        command
            .args(&self.options.extra_args)
            .env("RUST_LOG", "info")
            // Plain text in the log file, not terminal colours.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .with_context(|| format!("cannot reopen {}", log_path.display()))?,
            )
            .stderr(log);
        Ok(command)
    }

    /// Spawns the process and waits until it answers; on failure it is killed and the error
    /// carries the log.
    async fn start(&mut self) -> Result<()> {
        let mut command = self.command()?;
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {command:?}"))?;
        self.child = Some(child);
        match self.wait_up().await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.kill9();
                Err(crate::error(format!(
                    "{error}\ncommand: {command:?}\nberthd log:\n{}",
                    self.log()
                )))
            }
        }
    }

    async fn wait_up(&mut self) -> Result<()> {
        let deadline = Instant::now() + AGENT_START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("cannot wait for berthd")?
            {
                self.child = None;
                return Err(crate::error(format!(
                    "berthd {} exited at start ({status})",
                    self.name
                )));
            }
            if answers_cluster(&self.url(), self.options.token.as_deref()).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(crate::error(format!(
                    "timed out after {}s waiting for berthd {} to answer on {}",
                    AGENT_START_TIMEOUT.as_secs(),
                    self.name,
                    self.addr
                )));
            }
            tokio::time::sleep(crate::POLL_INTERVAL).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `true` when a `Cluster` call gets an answer from the server (`UNAUTHENTICATED` included).
async fn answers_cluster(url: &str, token: Option<&str>) -> bool {
    // Through the same connector as every client: with a token that is TLS, and the agent
    // must prove it is of the token's cluster.
    let probe = async {
        use berth_shared::client::{ConnectError, TlsFailure};
        let mut client = match berth_shared::client::connect(url, token).await {
            Ok(c) => c,
            // It answered, with a certificate of another cluster than the token's (after a
            // rotation, say): it is up.
            Err(ConnectError::Tls {
                failure: TlsFailure::WrongCluster { .. },
                ..
            }) => return Some(()),
            Err(_) => return None,
        };
        let mut request = tonic::Request::new(ClusterRequest::default());
        request.set_timeout(Duration::from_secs(2));
        match client.cluster(request).await {
            Ok(_) => Some(()),
            Err(status) if status.code() == tonic::Code::Unauthenticated => Some(()),
            Err(_) => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
        .is_some()
}

fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
