//! Which agent the console talks to: the one named by --agent, the one on the default address, or
//! an embedded one started in this process when nothing answers there.

use crate::cli::DEFAULT_AGENT;
use crate::errors::connect_report;
use berth_shared::client::{self, Client};
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait for something on the default address before starting an embedded agent.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A connected client, and the embedded agent behind it when there is one.
pub struct Session {
    pub client: Client,
    /// The agent's address as the user should read it in messages.
    pub address: String,
    /// The token the session was opened with; `None` with an embedded agent (which takes none).
    pub token: Option<String>,
    embedded: Option<berth_agent::RunningAgent>,
}

impl Session {
    /// Connects to `agent` when given (an unreachable agent is an error naming it), else to the
    /// default address, else to a freshly started embedded agent.
    pub async fn open(agent: Option<&str>, token: Option<&str>) -> Result<Self> {
        if let Some(agent) = agent {
            return Self::connect(agent, token).await;
        }
        if default_agent_answers().await {
            return Self::connect(DEFAULT_AGENT, token).await;
        }
        let config = berth_agent::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            berth_agent::default_node_name(),
            default_data_dir()?,
        );
        let name = config.name.clone();
        let running = berth_agent::start(config)
            .await
            .wrap_err("cannot start an embedded agent")
            .suggestion("start one with `berthd`, or give --agent")?;
        eprintln!("no agent on {DEFAULT_AGENT}; started an embedded agent for node {name}");
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
                embedded: Some(running),
            }),
            Err(e) => {
                running.shutdown().await;
                Err(connect_report(e))
            }
        }
    }

    async fn connect(agent: &str, token: Option<&str>) -> Result<Self> {
        let client = client::connect(agent, token)
            .await
            .map_err(connect_report)?;
        Ok(Self {
            client,
            address: agent.to_owned(),
            token: token.map(str::to_owned),
            embedded: None,
        })
    }

    /// Stops the embedded agent, if any. Containers keep running: Docker owns them.
    pub async fn close(self) {
        if let Some(agent) = self.embedded {
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
