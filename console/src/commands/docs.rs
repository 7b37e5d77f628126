//! What the console says about itself, with no agent asked: shell completions and man pages,
//! both generated from the clap definitions, so they cannot drift from the flags; and
//! `berth version`, which asks the agent for its own.

use super::print;
use crate::cli::{Cli, CompletionArgs, ManArgs, OutputFormat};
use crate::session::Session;
use clap::CommandFactory;
use color_eyre::eyre::{Result, WrapErr};

/// The console's version, with the commit it was built from when the build knew it.
pub fn console_version() -> String {
    match env!("BERTH_GIT_COMMIT") {
        "" => env!("CARGO_PKG_VERSION").to_owned(),
        c => format!("{} (commit {c})", env!("CARGO_PKG_VERSION")),
    }
}

/// `berth completion SHELL`: the script on stdout.
pub fn completion(args: &CompletionArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "berth", &mut out);
    print(&String::from_utf8_lossy(&out))
}

/// `berth man`: berth.1 on stdout, or every page (one a command) into `--dir`.
pub fn man(args: &ManArgs) -> Result<()> {
    let cmd = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .wrap_err_with(|| format!("cannot write man pages to {}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .wrap_err("cannot render the man page")?;
            print(&String::from_utf8_lossy(&out))
        }
    }
}

/// `berth version`: ours, then the agent's (the node that answered is the one that has been
/// heard from 0 ms ago: itself).
pub async fn version(session: &mut Session, output: OutputFormat) -> Result<()> {
    let snapshot = super::nodes::cluster(session).await?;
    let agent = snapshot.nodes.iter().find(|n| n.last_seen_ms_ago == 0);
    let (node, agent_version) = agent
        .map(|n| (n.name.clone(), n.agent_version.clone()))
        .unwrap_or_default();
    if output == OutputFormat::Json {
        let json = serde_json::json!({
            "console": console_version(),
            "agent": agent_version,
            "node": node,
            "address": session.address,
        });
        return print(&format!("{}\n", serde_json::to_string_pretty(&json)?));
    }
    print(&format!(
        "console: berth {}\nagent:   berthd {agent_version} (node {node} at {})\n",
        console_version(),
        session.address
    ))
}
