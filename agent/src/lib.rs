//! `berthd`, Berth's agent, as a library: the Docker runtime, node stats, and the gRPC server.
//!
//! `main.rs` is a thin wrapper around [`start`]; the console embeds the same [`start`] when no
//! agent answers, and tests start it in-process. The agent is not a client: it never draws,
//! and it owns only the containers whose `berth.node` label is its own name.

pub mod api;
pub mod cluster;
pub mod error;
pub mod events;
mod files;
pub mod identity;
pub mod keyring;
pub mod metrics;
pub mod placement;
pub mod runtime;
pub mod services;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod tls;

use berth_proto::v1 as pb;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The largest request the agent decodes; larger ones are refused before any handler runs.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// How long shutdown waits for calls in flight (a `run` mid-pull, say) before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What an agent needs to start. `Config::local` gives the embedded defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where gRPC listens. Non-loopback addresses require a token.
    pub listen: SocketAddr,
    /// This node's name; the agent manages only containers labelled with it.
    pub name: String,
    pub data_dir: PathBuf,
    pub token: Option<String>,
    /// Docker endpoint (`unix:///…`, `tcp://…`); `None`: Docker's defaults (`DOCKER_HOST`).
    pub docker_host: Option<String>,
    /// Labels of this node (`--label`), for scheduling constraints.
    pub labels: std::collections::HashMap<String, String>,
    /// How often node stats and container usage are refreshed.
    pub stats_interval: Duration,
    /// Cluster membership; `None` runs a single node that gossips with nobody (the console's
    /// embedded agent).
    pub gossip: Option<GossipSettings>,
    /// Docker (the real one) or the in-memory runtime of hollow nodes.
    pub runtime: RuntimeKind,
    /// What the scheduler may place here; `None`: the machine's cores and memory.
    pub allocatable_cpus: Option<f64>,
    pub allocatable_memory: Option<u64>,
    /// Rescheduling and reconciler tuning.
    pub services: services::ServicesConfig,
    /// Connections served at once (half of them from one address); see [`api::listen`].
    pub max_connections: usize,
    /// What containers on this node may have beyond the defaults (bind mounts, privileged,
    /// capabilities): nothing unless told.
    pub allowed: berth_shared::options::Allowed,
    /// Where to serve Prometheus metrics (`--metrics-listen`); `None`: not at all.
    pub metrics_listen: Option<SocketAddr>,
}

/// `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    #[default]
    Docker,
    /// Containers in memory only, for scale simulations (see [`runtime::sim`]).
    Sim,
}

/// `--join`, `--advertise` and the gossip tuning knobs.
#[derive(Debug, Clone)]
pub struct GossipSettings {
    /// The address peers use for gRPC and gossip; `None`: the listen address.
    pub advertise: Option<SocketAddr>,
    pub join: Vec<String>,
    pub interval: Duration,
    pub phi_threshold: f64,
    pub dead_node_grace: Duration,
    /// `--join mdns`: find peers on the LAN by mDNS (needs a secret).
    pub mdns: bool,
}

impl Default for GossipSettings {
    fn default() -> Self {
        Self {
            advertise: None,
            join: Vec::new(),
            interval: cluster::DEFAULT_GOSSIP_INTERVAL,
            phi_threshold: cluster::DEFAULT_PHI_THRESHOLD,
            dead_node_grace: cluster::DEFAULT_DEAD_NODE_GRACE,
            mdns: false,
        }
    }
}

impl Config {
    /// An agent for this machine on `listen`, with defaults for everything else.
    pub fn new(listen: SocketAddr, name: String, data_dir: PathBuf) -> Self {
        Self {
            listen,
            name,
            data_dir,
            token: None,
            docker_host: None,
            labels: Default::default(),
            stats_interval: supervisor::DEFAULT_STATS_INTERVAL,
            gossip: None,
            runtime: RuntimeKind::Docker,
            allocatable_cpus: None,
            allocatable_memory: None,
            services: Default::default(),
            max_connections: api::listen::DEFAULT_MAX_CONNECTIONS,
            allowed: Default::default(),
            metrics_listen: None,
        }
    }
}

/// A running agent. Dropping it does not stop it; call [`RunningAgent::shutdown`].
pub struct RunningAgent {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    gossip: Option<cluster::Gossip>,
    /// Released when the agent is dropped (or the process ends).
    _data_dir: identity::DataDirLock,
}

impl RunningAgent {
    /// `http://<local_addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }
    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(self) {
        // Tell the cluster first, so peers show "left", not "down".
        if let Some(g) = self.gossip {
            g.leave().await;
        }
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        match tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "grpc server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = DEFAULT_SHUTDOWN_GRACE.as_secs(),
                    "calls still in flight after the grace period; dropping them"
                );
                server.abort();
            }
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Resolves when the server stops by itself (it should not) or after [`Self::shutdown`].
    pub async fn wait(&mut self) -> Result<(), String> {
        match (&mut self.server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Binds, starts the runtime supervisor and the server, and returns once it is listening.
pub async fn start(config: Config) -> Result<RunningAgent, StartError> {
    cluster::wire::check_node_name(&config.name).map_err(StartError::Name)?;
    if !config.listen.ip().is_loopback() && config.token.is_none() {
        return Err(StartError::TokenRequired(config.listen));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // First: nothing of the data dir is read before it is ours.
    let data_dir_lock = identity::lock_data_dir(&config.data_dir)?;
    let node_id = identity::node_id(&config.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    let advertise = match config.gossip.as_ref().and_then(|g| g.advertise) {
        Some(a) => a,
        None if local_addr.ip().is_unspecified() => {
            return Err(StartError::AdvertiseRequired(local_addr));
        }
        None => local_addr,
    };
    let (cores, memory) = stats::machine_capacity();
    let base_node = pb::Node {
        name: config.name.clone(),
        address: advertise.to_string(),
        allocatable_cpus: config.allocatable_cpus.unwrap_or(cores),
        allocatable_memory_bytes: config.allocatable_memory.unwrap_or(memory),
        status: pb::NodeStatus::Alive as i32,
        labels: config.labels.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        updated_unix_ms: chrono::Utc::now().timestamp_millis(),
        node_id: node_id.clone(),
        ..Default::default()
    };
    let keyring = Arc::new(keyring::Keyring::load(
        &config.data_dir,
        config.token.as_deref(),
    )?);
    let secrets: Vec<String> = keyring.keys().secrets.clone();
    // Before Docker is touched (its first resync removes what this node's name left half
    // made) and before gossip says our name: is it alive as another agent already?
    if let Some(g) = &config.gossip {
        identity::check_name(
            &g.join,
            secrets.first().map(String::as_str),
            &config.name,
            &node_id,
            &[advertise, local_addr],
        )
        .await?;
    }
    let state = Arc::new(state::State::new(base_node.clone()));
    let docker = match config.runtime {
        RuntimeKind::Docker => Some(
            runtime::docker::DockerRuntime::new(config.name.clone(), config.docker_host.clone())
                .with_allowed(config.allowed.clone()),
        ),
        RuntimeKind::Sim => None,
    };
    let runtime: Arc<dyn runtime::Runtime> = match &docker {
        Some(d) => Arc::new(d.clone()),
        None => Arc::new(runtime::sim::SimRuntime::new(&config.name)),
    };
    let ctx_counters = Arc::new(std::sync::Mutex::new(None));
    let metrics = Arc::new(metrics::Metrics::new(state.clone(), ctx_counters.clone()));
    // Bound now, so a taken port fails the start rather than the first scrape.
    let metrics_listener = match config.metrics_listen {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::MetricsBind { addr, source })?;
            Some(listener)
        }
    };
    let ctx = Arc::new(supervisor::Ctx {
        state: state.clone(),
        runtime: runtime.clone(),
        docker: docker.clone(),
        base_node,
        data_dir: config.data_dir.clone(),
        stats_interval: config.stats_interval,
        gossip_counters: ctx_counters.clone(),
        metrics: metrics.clone(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(supervisor::stats_loop(
        ctx.clone(),
        shutdown_rx.clone(),
    ))];
    if let Some(docker) = &docker {
        let mut conn = docker.watch();
        tasks.push(tokio::spawn(supervisor::docker_loop(
            ctx,
            docker.clone(),
            shutdown_rx.clone(),
        )));
        // Serve only once the first attempt to reach Docker is over (up with the view rebuilt,
        // or down with a reason), so the first call sees the truth, not "connecting". The
        // socket is already bound: early callers wait in the backlog.
        let first_attempt = conn.wait_for(|c| !matches!(c, runtime::docker::Conn::Connecting));
        let _ =
            tokio::time::timeout(runtime::docker::DEFAULT_CONNECT_TIMEOUT * 2, first_attempt).await;
    }
    let gossip = match &config.gossip {
        None => None,
        Some(g) => {
            let cfg = cluster::GossipConfig {
                advertise,
                listen: local_addr,
                seeds: g.join.clone(),
                interval: g.interval,
                phi_threshold: g.phi_threshold,
                dead_node_grace: g.dead_node_grace,
                cluster_id: cluster::cluster_id(!secrets.is_empty()),
                keys: secrets
                    .iter()
                    .map(|t| cluster::seal::GossipKey::derive(t))
                    .collect(),
                rekey: Some(keyring.subscribe()),
                mdns: g.mdns,
            };
            let gossip =
                cluster::Gossip::start(cfg, &config.name, state.clone(), shutdown_rx.clone())
                    .await
                    .map_err(|e| StartError::Gossip(local_addr, format!("{e:#}")))?;
            *ctx_counters.lock().unwrap_or_else(|p| p.into_inner()) = Some(gossip.counters.clone());
            Some(gossip)
        }
    };
    let tls = if secrets.is_empty() {
        None
    } else {
        let tls = tls::AgentTls::load(&config.data_dir, &config.name, &secrets)?;
        tracing::info!(
            cluster = %tls.clusters()[0].fingerprint(),
            expires = %tls.not_after(),
            "TLS on: this node's certificate is signed by the cluster CA"
        );
        let tls = Arc::new(tls);
        tasks.push(tokio::spawn(tls.clone().renew_loop(shutdown_rx.clone())));
        Some(tls)
    };
    let peers = Arc::new(cluster::peers::PeerPool::new(tls.clone()));
    if let Some(tls) = &tls {
        tasks.push(tokio::spawn(keyring::follow(
            keyring.subscribe(),
            tls.clone(),
            peers.clone(),
            shutdown_rx.clone(),
        )));
    }
    let events = Arc::new(events::EventLog::default());
    tasks.push(tokio::spawn(events::follow(
        events.clone(),
        state.clone(),
        shutdown_rx.clone(),
    )));
    let placer = placement::placer::Placer {
        state: state.clone(),
        runtime: runtime.clone(),
        peers: peers.clone(),
        ledger: Arc::default(),
        pending: Arc::default(),
        requests: Arc::default(),
        events: events.clone(),
    };
    let store = Arc::new(services::store::Store::open(
        &config.data_dir,
        &config.name,
        config.services.tombstone_ttl,
    ));
    state.apply(state::Change::ServicesDigest(store.digest()));
    state.apply(state::Change::NodeRecords(store.node_records()));
    let services = Arc::new(services::Services::new(
        store,
        placer.clone(),
        peers.clone(),
        services::ServicesConfig {
            gossip: config.gossip.is_some(),
            ..config.services.clone()
        },
    ));
    tasks.push(tokio::spawn(
        services.clone().reconcile_loop(shutdown_rx.clone()),
    ));
    tasks.push(tokio::spawn(
        services.clone().sync_loop(shutdown_rx.clone()),
    ));
    let store = services.store.clone();
    let service = tonic::service::interceptor::InterceptedService::new(
        api::ScopeGuard::new(
            pb::berth_server::BerthServer::new(api::Service {
                state,
                runtime,
                shutdown: shutdown_rx.clone(),
                peers,
                ledger: placer.ledger,
                requests: placer.requests,
                pending: placer.pending,
                services,
                keyring: keyring.clone(),
                metrics: metrics.clone(),
                events,
            })
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        ),
        api::TokenCheck::new(keyring.subscribe(), Some(store)),
    );
    if let Some(listener) = metrics_listener {
        let addr = listener.local_addr().ok();
        if addr.is_some_and(|a| !a.ip().is_loopback()) {
            tracing::warn!(listen = ?addr, "metrics are served without authentication off loopback");
        }
        tracing::info!(listen = ?addr, "serving metrics at /metrics");
        tasks.push(tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            shutdown_rx.clone(),
        )));
    }
    let mut stop = shutdown_rx;
    let incoming = api::listen::incoming(
        listener,
        api::listen::Limits::new(config.max_connections),
        tls,
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            // A peer that stops answering pings is dropped: 30 s between pings, 20 s to answer.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(metrics::CallsLayer(metrics))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
    );
    tracing::info!(node = %config.name, listen = %local_addr, auth = config.token.is_some(), tls = config.token.is_some(), "agent listening");
    Ok(RunningAgent {
        local_addr,
        shutdown,
        server,
        tasks,
        gossip,
        _data_dir: data_dir_lock,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up TLS")]
    Tls(#[from] tls::TlsError),
    #[error("cannot load the keyring")]
    Keyring(#[from] keyring::KeyringError),
    #[error("bad node name")]
    Name(#[source] berth_shared::ValidationError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("refusing to listen on {0} without a token: set --token, BERTH_TOKEN or --token-file")]
    TokenRequired(SocketAddr),
    #[error("cannot advertise {0} to peers: give the address they reach this node at")]
    AdvertiseRequired(SocketAddr),
    #[error("cannot start gossip on {0}/udp: {1}")]
    Gossip(SocketAddr, String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}")]
    MetricsBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The default node name: the machine's hostname.
pub fn default_node_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "berth".to_owned())
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    /// Without `TCP_NODELAY` on the server's side, small replies stall ~40 ms on the client's
    /// delayed ACK. tonic's builder flag does not reach a listener we bind ourselves.
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = super::api::listen::guarded(listener, super::api::listen::Limits::new(4));
        let mut incoming = std::pin::pin!(incoming);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "accepted socket must have TCP_NODELAY"
        );
    }
}
