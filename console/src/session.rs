//! Which agent the console talks to: the one named by --agent, the one on the default address, or
//! an embedded one started in this process when nothing answers there.

use crate::context::Target;
use crate::errors::{connect_report, connect_report_via};
use berth_shared::client::{self, Client};
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The address `berth` tries when neither --agent nor BERTH_AGENT is given.
pub const DEFAULT_AGENT: &str = berth_shared::defaults::DEFAULT_LISTEN;

/// The embedded agent's node name and data dir (`--embedded-name`, `--embedded-data-dir`);
/// `None`: the hostname, and `$XDG_DATA_HOME/berth`.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    pub name: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Where an embedded agent leaves its address in its data dir, for other consoles.
const EMBEDDED_ADDRESS_FILE: &str = "embedded-agent";
/// How many times (100 ms apart) a console looks for that address while another console's
/// agent starts (it reaches Docker first, up to 10 s).
const EMBEDDED_ADDRESS_WAIT_TRIES: u32 = 120;

/// How long to wait for something on the default address before starting an embedded agent.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A connected client, and the embedded agent behind it when there is one.
pub struct Session {
    pub client: Client,
    /// The agent's address as the user should read it in messages.
    pub address: String,
    /// The token the session was opened with; `None` with an embedded agent (which takes none).
    pub token: Option<String>,
    /// The context that named the agent, if one did.
    pub context: Option<String>,
    /// The embedded agent and the file in its data dir that gives its address.
    embedded: Option<(berth_agent::RunningAgent, PathBuf)>,
}

impl Session {
    /// Connects to `--agent` when given (an unreachable agent is an error naming it), else to
    /// the default address, else to a freshly started embedded agent — or, when another
    /// console's embedded agent holds that data dir, to that one.
    pub async fn open(embedded: &Embedded, target: &Target) -> Result<Self> {
        let token = target.token.as_deref();
        if let Some(agent) = target.agent.as_deref() {
            let client = client::connect(agent, token)
                .await
                .map_err(|e| connect_report_via(e, target.context.as_deref()))?;
            return Ok(Self {
                client,
                address: agent.to_owned(),
                token: token.map(str::to_owned),
                context: target.context.clone(),
                embedded: None,
            });
        }
        if default_agent_answers().await {
            return Self::connect(DEFAULT_AGENT, token).await;
        }
        let data_dir = match &embedded.data_dir {
            Some(d) => d.clone(),
            None => default_data_dir()?,
        };
        let config = berth_agent::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            embedded
                .name
                .clone()
                .unwrap_or_else(berth_agent::default_node_name),
            data_dir.clone(),
        );
        let name = config.name.clone();
        let running = match berth_agent::start(config).await {
            Ok(running) => running,
            Err(berth_agent::StartError::Identity(
                berth_agent::identity::IdentityError::DataDirInUse(_),
            )) => return Self::join_embedded(&data_dir).await,
            Err(e) => {
                return Err(e)
                    .wrap_err("cannot start an embedded agent")
                    .suggestion("start one with `berthd`, or give --agent");
            }
        };
        eprintln!("no agent on {DEFAULT_AGENT}; started an embedded agent for node {name}");
        // For another console started meanwhile: this data dir's agent is here (written whole,
        // removed when this console closes).
        let file = data_dir.join(EMBEDDED_ADDRESS_FILE);
        let tmp = data_dir.join(format!("{EMBEDDED_ADDRESS_FILE}.tmp"));
        if std::fs::write(&tmp, running.url()).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
        let address = running.local_addr.to_string();
        // The embedded agent has no secret and speaks plaintext on loopback, in this process:
        // a token (say BERTH_TOKEN, meant for a cluster) has nothing to open there.
        let _ = token;
        match client::connect(&running.url(), None).await {
            // `start` returns once the agent has reached Docker (or failed to), so a command can
            // go ahead at once.
            Ok(client) => Ok(Self {
                client,
                address,
                token: None,
                context: None,
                embedded: Some((running, file)),
            }),
            Err(e) => {
                running.shutdown().await;
                Err(connect_report(e))
            }
        }
    }

    /// Another agent has `data_dir`: when it is another console's embedded agent (the
    /// address it left there answers, as the node whose id the dir keeps), talk to it.
    async fn join_embedded(data_dir: &std::path::Path) -> Result<Self> {
        let in_use = || {
            eyre!(
                "the data dir {} is in use by another agent that is not a console's embedded \
                 agent (a berthd?)",
                data_dir.display()
            )
            .suggestion("give that agent's address with --agent, or another --embedded-data-dir")
        };
        // The other console may still be starting its agent: its address comes once it runs.
        let file = data_dir.join(EMBEDDED_ADDRESS_FILE);
        let mut url = None;
        for _ in 0..EMBEDDED_ADDRESS_WAIT_TRIES {
            if let Ok(s) = std::fs::read_to_string(&file) {
                url = Some(s.trim().to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(url) = url else {
            return Err(in_use());
        };
        let id = std::fs::read_to_string(data_dir.join(berth_agent::identity::ID_FILE))
            .unwrap_or_default();
        let id = id.trim();
        let Ok(mut session) = Self::connect(&url, None).await else {
            return Err(in_use());
        };
        let nodes = match session
            .client
            .cluster(berth_proto::v1::ClusterRequest {})
            .await
        {
            Ok(r) => r.into_inner().nodes,
            Err(_) => return Err(in_use()),
        };
        if id.is_empty() || !nodes.iter().any(|n| n.node_id == id) {
            return Err(in_use());
        }
        eprintln!(
            "another berth console's embedded agent has {}: using it (it stops when that \
             console exits)",
            data_dir.display()
        );
        session.address = url;
        Ok(session)
    }

    async fn connect(agent: &str, token: Option<&str>) -> Result<Self> {
        let client = client::connect(agent, token)
            .await
            .map_err(connect_report)?;
        Ok(Self {
            client,
            address: agent.to_owned(),
            token: token.map(str::to_owned),
            context: None,
            embedded: None,
        })
    }

    /// Stops the embedded agent, if any. Containers keep running: Docker owns them.
    pub async fn close(self) {
        if let Some((agent, file)) = self.embedded {
            let _ = std::fs::remove_file(file);
            agent.shutdown().await;
        }
    }
}

async fn default_agent_answers() -> bool {
    matches!(
        tokio::time::timeout(
            DEFAULT_PROBE_TIMEOUT,
            tokio::net::TcpStream::connect(DEFAULT_AGENT)
        )
        .await,
        Ok(Ok(_))
    )
}

/// `$XDG_DATA_HOME/berth`, else `~/.local/share/berth`.
fn default_data_dir() -> Result<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = from_env("XDG_DATA_HOME") {
        return Ok(xdg.join("berth"));
    }
    if let Some(home) = from_env("HOME") {
        return Ok(home.join(".local/share/berth"));
    }
    Err(eyre!(
        "cannot choose a data dir for the embedded agent: neither XDG_DATA_HOME nor HOME is set"
    ))
    .suggestion("set HOME, or start `berthd` yourself and give --agent")
}
