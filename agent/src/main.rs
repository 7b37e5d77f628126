//! `berthd`: flags, logging and signals around [`berth_agent::start`].

use berth_agent::{Config, default_node_name};
use clap::{Parser, ValueEnum};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Runtime {
    Docker,
    Sim,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Berth's agent: runs Docker containers on this machine and serves the cluster API.
#[derive(Parser, Debug)]
#[command(name = "berthd", version, about, long_about = None)]
struct Args {
    /// Address for the gRPC API. Anything but loopback needs a token.
    #[arg(long, env = "BERTH_LISTEN", default_value = berth_shared::defaults::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// This node's name; the agent manages only containers labelled with it [default: hostname].
    #[arg(long, env = "BERTH_NAME")]
    name: Option<String>,

    /// Where the agent keeps its files [default: /var/lib/berth as root, else
    /// $XDG_DATA_HOME/berth or ~/.local/share/berth].
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Cluster token every client and peer must present. Prefer BERTH_TOKEN or --token-file:
    /// command lines are visible to every user of the machine.
    #[arg(
        long,
        env = "BERTH_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,

    /// File holding the cluster token (surrounding whitespace is ignored).
    #[arg(long, env = "BERTH_TOKEN_FILE")]
    token_file: Option<PathBuf>,

    /// Docker endpoint (unix:///var/run/docker.sock, tcp://host:2375) [default: Docker's own,
    /// DOCKER_HOST honoured].
    #[arg(long, env = "BERTH_DOCKER_HOST")]
    docker_host: Option<String>,

    /// A label of this node, for scheduling constraints (repeatable): --label zone=a
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_node_label)]
    labels: Vec<(String, String)>,

    /// How often node stats and container usage are refreshed, e.g. 2s, 500ms.
    #[arg(long, env = "BERTH_STATS_INTERVAL", value_parser = humantime_duration,
          default_value = DEFAULT_STATS_INTERVAL_TEXT)]
    stats_interval: Duration,

    /// Join the cluster through these members (host:port, comma-separated or repeated), and/or
    /// `mdns` to find them on the LAN by mDNS (needs a secret). With none, this node starts a
    /// cluster of its own.
    #[arg(
        long,
        env = "BERTH_JOIN",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    join: Vec<String>,

    /// The address peers reach this node at (gRPC over TCP and gossip over UDP, same port)
    /// [default: the listen address].
    #[arg(long, env = "BERTH_ADVERTISE")]
    advertise: Option<SocketAddr>,

    /// One gossip round.
    #[arg(long, env = "BERTH_GOSSIP_INTERVAL", value_parser = humantime_duration,
          default_value = "500ms")]
    gossip_interval: Duration,

    /// Phi-accrual threshold above which a silent peer is marked down (higher: slower but
    /// fewer false alarms). With the default interval, 6 marks a dead node down in about 3 s.
    #[arg(long, env = "BERTH_FAILURE_THRESHOLD", default_value_t = berth_agent::cluster::DEFAULT_PHI_THRESHOLD,
          value_parser = parse_threshold)]
    failure_threshold: f64,

    /// How long a down node keeps its row before it is forgotten.
    #[arg(long, env = "BERTH_DEAD_NODE_GRACE", value_parser = humantime_duration,
          default_value = "1h")]
    dead_node_grace: Duration,

    /// How long a node must be down before its service replicas are placed elsewhere (0s: at
    /// once). A node that left gracefully is rescheduled at once whatever this says.
    #[arg(long, env = "BERTH_RESCHEDULE_AFTER", value_parser = wait_duration,
          default_value = "10s")]
    reschedule_after: Duration,

    /// Placements and removals the service reconciler carries out at once.
    #[arg(long, env = "BERTH_PLACEMENT_WORKERS", default_value_t = berth_agent::services::DEFAULT_PLACEMENT_WORKERS as u64,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    placement_workers: u64,

    /// Connections served at once, half of them at most from one address; more are closed at
    /// once. A connection that sends nothing for 10 s is closed.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", default_value_t = berth_agent::api::listen::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    max_connections: u64,

    /// Let containers bind-mount host paths under PREFIX (repeatable; whole path components,
    /// symlinks followed). None by default: a bind mount of / is root on this machine
    #[arg(long = "allow-bind", env = "BERTH_ALLOW_BIND", value_name = "PREFIX", value_delimiter = ',',
          value_parser = parse_bind_prefix)]
    allow_bind: Vec<PathBuf>,

    /// Let containers run --privileged, and with --network host
    #[arg(long, env = "BERTH_ALLOW_PRIVILEGED")]
    allow_privileged: bool,

    /// Let containers --cap-add CAP beyond Docker's default set (repeatable; ALL for any)
    #[arg(long = "allow-cap", env = "BERTH_ALLOW_CAP", value_name = "CAP", value_delimiter = ',',
          value_parser = parse_allow_cap)]
    allow_cap: Vec<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics (no authentication: keep it on
    /// loopback or a private network). Off unless given; alone, it listens on
    /// 127.0.0.1:9470.
    #[arg(long, env = "BERTH_METRICS_LISTEN", value_name = "ADDR", num_args = 0..=1,
          default_missing_value = berth_agent::metrics::DEFAULT_METRICS_LISTEN)]
    metrics_listen: Option<SocketAddr>,

    /// CPUs the scheduler may reserve on this node [default: its cores].
    #[arg(long, env = "BERTH_ALLOCATABLE_CPUS", value_parser = parse_cpus)]
    allocatable_cpus: Option<f64>,

    /// Memory the scheduler may reserve on this node, e.g. 12g [default: its memory].
    #[arg(long, env = "BERTH_ALLOCATABLE_MEMORY", value_parser = parse_memory)]
    allocatable_memory: Option<u64>,

    /// docker, or sim: containers in memory only (hollow nodes for scale simulations; never
    /// for real work).
    #[arg(long, env = "BERTH_RUNTIME", value_enum, default_value_t = Runtime::Docker)]
    runtime: Runtime,

    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn parse_node_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = berth_shared::labels::parse_label(s).map_err(|e| e.to_string())?;
    Ok((k, v))
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (1.0..=100.0).contains(&x) => Ok(x),
        _ => Err("must be a number from 1 to 100".into()),
    }
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    berth_shared::quantity::parse_cpus(s).map_err(|e| e.to_string())
}

fn parse_memory(s: &str) -> Result<u64, String> {
    berth_shared::quantity::parse_memory(s).map_err(|e| e.to_string())
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// A wait that may be zero (`--reschedule-after 0s`), at most a day.
fn wait_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(24 * 3600) {
        return Err("must be at most 24h".into());
    }
    Ok(d)
}

/// [`DEFAULT_STATS_INTERVAL`] as the flag shows it.
const DEFAULT_STATS_INTERVAL_TEXT: &str = "2s";

fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").is_ok_and(|u| u == "root")
        || std::env::var_os("HOME").is_some_and(|h| h == "/root");
    if is_root {
        return PathBuf::from("/var/lib/berth");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/berth"),
        None => PathBuf::from(".berth"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn read_token(args: &Args) -> Result<Option<String>> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .wrap_err_with(|| format!("cannot read token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(t) = &token {
        berth_shared::token::check_agent_token(t)
            .map_err(|e| eyre!("{e}"))
            .wrap_err("the cluster token is not usable")?;
    }
    Ok(token)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A failure as the user reads it: one line, and what to do next when we know.
struct Failure {
    error: color_eyre::Report,
    hint: Option<&'static str>,
}

impl From<color_eyre::Report> for Failure {
    fn from(error: color_eyre::Report) -> Self {
        Self { error, hint: None }
    }
}

fn main() -> std::process::ExitCode {
    // Panics get color-eyre's report; errors are printed as one line below, without a
    // backtrace, because they are the user's to fix, not ours.
    let _ = color_eyre::config::HookBuilder::default()
        .display_env_section(false)
        .install();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("berthd: {:#}", f.error);
            if let Some(h) = f.hint {
                eprintln!("hint: {h}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse();
    init_logging(args.log_format);
    let token = read_token(&args)?;

    let mut config = Config::new(
        args.listen,
        args.name.clone().unwrap_or_else(default_node_name),
        args.data_dir.clone().unwrap_or_else(default_data_dir),
    );
    config.token = token;
    config.docker_host = args.docker_host.clone();
    config.labels = args.labels.iter().cloned().collect::<HashMap<_, _>>();
    config.stats_interval = args.stats_interval;
    config.runtime = match args.runtime {
        Runtime::Docker => berth_agent::RuntimeKind::Docker,
        Runtime::Sim => berth_agent::RuntimeKind::Sim,
    };
    config.allocatable_cpus = args.allocatable_cpus;
    config.allocatable_memory = args.allocatable_memory;
    config.services.reschedule_after = args.reschedule_after;
    config.services.workers = args.placement_workers as usize;
    config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    config.metrics_listen = args.metrics_listen;
    config.allowed = berth_shared::options::Allowed {
        bind_prefixes: args.allow_bind.clone(),
        privileged: args.allow_privileged,
        caps: args.allow_cap.clone(),
    };
    let mdns = args.join.iter().any(|j| j.eq_ignore_ascii_case("mdns"));
    config.gossip = Some(berth_agent::GossipSettings {
        advertise: args.advertise,
        mdns,
        join: args
            .join
            .iter()
            .filter(|j| !j.eq_ignore_ascii_case("mdns"))
            .cloned()
            .collect(),
        interval: args.gossip_interval,
        phi_threshold: args.failure_threshold,
        dead_node_grace: args.dead_node_grace,
    });

    let mut agent = berth_agent::start(config).await.map_err(|e| {
        let hint = match &e {
            berth_agent::StartError::TokenRequired(_) => Some(
                "make a cluster secret with `berth secret new > /etc/berth/token` and pass \
                 --token-file /etc/berth/token (or set BERTH_TOKEN)",
            ),
            berth_agent::StartError::Name(_) => Some("give another --name (or BERTH_NAME)"),
            berth_agent::StartError::Keyring(_) => {
                Some("the keyring is <data dir>/keyring: one secret a line, the one in use first")
            }
            berth_agent::StartError::Tls(_) => {
                Some("the agent keeps its TLS key and certificate in <data dir>/tls")
            }
            berth_agent::StartError::Bind { .. } => {
                Some("is another berthd already running? pick another port with --listen")
            }
            berth_agent::StartError::DataDir { .. } => Some("choose a writable --data-dir"),
            berth_agent::StartError::MetricsBind { .. } => {
                Some("is something else on that port? pick another with --metrics-listen")
            }
            berth_agent::StartError::AdvertiseRequired(_) => Some(
                "listening on every interface: set --advertise to this node's reachable address",
            ),
            berth_agent::StartError::Gossip(..) => {
                Some("gossip uses UDP on the --listen port: is that UDP port free?")
            }
            // The message says what to do.
            berth_agent::StartError::Identity(_) => None,
        };
        Failure {
            error: color_eyre::Report::new(e),
            hint,
        }
    })?;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            agent.shutdown().await;
        }
        r = agent.wait() => {
            if let Err(e) = r {
                return Err(eyre!("the gRPC server stopped: {e}").into());
            }
        }
    }
    Ok(())
}

/// `--allow-bind`: an absolute path that exists, kept as its real path (symlinks followed), so
/// a bind source is compared with what it really is.
fn parse_bind_prefix(s: &str) -> Result<PathBuf, String> {
    let path = std::path::Path::new(s);
    if !path.is_absolute() {
        return Err(format!("{s:?} is not an absolute path"));
    }
    std::fs::canonicalize(path).map_err(|e| format!("{s}: {e}"))
}

fn parse_allow_cap(s: &str) -> Result<String, String> {
    berth_shared::options::parse_capability("allow-cap", s).map_err(|e| e.to_string())
}
