//! The scripted commands. Each has a `prepare` step (no network: every check that can be made
//! before connecting) and an `execute` step against a connected [`Session`].

pub mod containers;
pub mod context;
pub mod cp;
pub mod docs;
pub mod events;
pub mod exec;
pub mod inspect;
pub mod logs;
pub mod nodes;
pub mod objects;
pub mod ps;
pub mod run;
pub mod service;
pub mod stats;
pub mod tokens;

use crate::cli::{Command, OutputFormat};
use crate::session::Session;
use color_eyre::eyre::{Result, WrapErr};
use std::io::Write;

/// A command whose input has been checked, ready to send.
#[derive(Debug)]
pub enum Plan {
    Nodes(crate::cli::NodesArgs),
    Ps(crate::cli::PsArgs),
    Run(Box<run::RunPlan>),
    Stop(crate::cli::StopArgs),
    Rm(crate::cli::RmArgs),
    Inspect(String),
    Logs(logs::LogsPlan),
    Exec(exec::ExecPlan),
    Cp(cp::CpPlan),
    Objects(berth_proto::v1::ObjectKind, crate::cli::ObjectCommand),
    Pull(crate::cli::PullArgs),
    Images(crate::cli::ImagesArgs),
    Stats(stats::StatsPlan),
    Events(events::EventsPlan),
    Node(crate::cli::NodeCommand),
    Service(Box<service::ServicePlan>),
    Token(crate::cli::TokenCommand),
    Secret(crate::cli::SecretCommand),
    Version,
}

impl Plan {
    /// Everything that can be refused without an agent is refused here.
    pub fn prepare(command: Command) -> Result<Self> {
        Ok(match command {
            Command::Nodes(a) => Plan::Nodes(a),
            Command::Ps(a) => Plan::Ps(a),
            Command::Run(a) => Plan::Run(Box::new(run::prepare(*a, |k| std::env::var(k).ok())?)),
            Command::Stop(a) => Plan::Stop(a),
            Command::Rm(a) => Plan::Rm(a),
            Command::Inspect(a) => Plan::Inspect(a.container),
            Command::Logs(a) => Plan::Logs(logs::prepare(a, chrono::Utc::now())?),
            Command::Exec(a) => Plan::Exec(exec::prepare(a, |k| std::env::var(k).ok())?),
            Command::Cp(a) => Plan::Cp(cp::prepare(a)?),
            Command::Pull(a) => Plan::Pull(a),
            Command::Images(a) => Plan::Images(a),
            Command::Stats(a) => Plan::Stats(stats::prepare(a)?),
            Command::Events(a) => Plan::Events(events::prepare(a, chrono::Utc::now())?),
            Command::Node(c) => Plan::Node(c),
            Command::Volume(c) => Plan::Objects(berth_proto::v1::ObjectKind::Volume, c),
            Command::Network(c) => Plan::Objects(berth_proto::v1::ObjectKind::Network, c),
            Command::Service(c) => Plan::Service(Box::new(service::prepare(c)?)),
            Command::Token(c) => Plan::Token(c),
            Command::Secret(c) => Plan::Secret(c),
            Command::Version => Plan::Version,
            // Answered in `crate::run` without an agent.
            Command::Completion(_) | Command::Man(_) | Command::Context(_) => {
                return Err(color_eyre::eyre::eyre!("this command asks no agent"));
            }
        })
    }

    /// `token`: the one the session was opened with (a rotation removes it).
    pub async fn execute(
        self,
        session: &mut Session,
        output: OutputFormat,
        token: Option<&str>,
    ) -> Result<()> {
        match self {
            Plan::Nodes(a) => nodes::execute(session, output, a).await,
            Plan::Ps(a) => ps::execute(session, output, a).await,
            Plan::Run(p) => run::execute(session, output, *p).await,
            Plan::Stop(a) => containers::stop(session, output, a).await,
            Plan::Rm(a) => containers::remove(session, output, a).await,
            Plan::Inspect(c) => inspect::execute(session, &c).await,
            Plan::Logs(p) => logs::execute(session, p).await,
            Plan::Exec(p) => exec::execute(session, p).await,
            Plan::Objects(kind, c) => objects::execute(session, output, kind, c).await,
            Plan::Cp(p) => cp::execute(session, p).await,
            Plan::Pull(a) => objects::pull(session, a).await,
            Plan::Images(a) => objects::images(session, output, a).await,
            Plan::Stats(a) => stats::execute(session, output, a).await,
            Plan::Events(p) => events::execute(session, output, p).await,
            Plan::Node(c) => nodes::update(session, output, c).await,
            Plan::Service(p) => service::execute(session, output, *p).await,
            Plan::Token(c) => tokens::execute(session, output, c).await,
            Plan::Secret(c) => tokens::secret(session, output, c, token).await,
            Plan::Version => docs::version(session, output).await,
        }
    }
}

/// Writes all of `text` to stdout. A closed pipe comes back as an `io::Error` the caller (and
/// [`crate::run`]) recognises.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .wrap_err("cannot write to stdout")
}
