//! `berth`, Berth's console, as a library: the scripted commands (`nodes`, `ps`, `run`, `stop`,
//! `rm`, `inspect`, `logs`) and the interactive TUI ([`tui`], `berth` with no command), all
//! clients of any agent's gRPC API through [`session::Session`].
//!
//! `main.rs` only installs the error hook, parses the command line and calls [`run`].
//!
//! Order of work for a command: parse and validate every flag ([`cli`], with `berth-shared`'s
//! validators), prepare the request ([`commands::Plan::prepare`], which may still refuse, e.g. an
//! unset `-e KEY`), and only then connect. A refused flag never reaches an agent.
//!
//! It is not an agent: the embedded agent it may start ([`session`]) is `berth-agent`'s.

pub mod cli;
pub mod commands;
pub mod context;
pub mod errors;
pub mod format;
pub mod output;
pub mod session;
pub mod tui;

use cli::{Cli, GlobalArgs};
use color_eyre::Section;
use color_eyre::eyre::Result;
use std::io::IsTerminal;

/// Runs one command line to completion; with no command, the TUI until the user quits.
pub async fn run(cli: Cli) -> Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    // The commands that ask no agent, and so need no target.
    let local = match &cli.command {
        Some(cli::Command::Secret(cli::SecretCommand::New)) => {
            Some(commands::tokens::new_secret(cli.global.output))
        }
        Some(cli::Command::Completion(a)) => Some(commands::docs::completion(a)),
        Some(cli::Command::Man(a)) => Some(commands::docs::man(a)),
        Some(cli::Command::Context(c)) => Some(commands::context::run(c, &cli.global, &env)),
        _ => None,
    };
    if let Some(result) = local {
        return result;
    }
    let target = context::resolve(&flags(&cli.global), &env)?;
    let embedded = session::Embedded {
        name: cli.global.embedded_name.clone(),
        data_dir: cli.global.embedded_data_dir.clone(),
    };
    let token = target.token.clone();
    let Some(command) = cli.command else {
        let options = tui::Options {
            color: !tui::monochrome(cli.tui.no_color),
            mouse: !cli.tui.no_mouse,
            log_lines: cli.tui.log_lines,
        };
        let session = session::Session::open(&embedded, &target).await?;
        let result = tui::run(&session, options).await;
        session.close().await;
        return result;
    };
    let plan = commands::Plan::prepare(command)?;
    let mut session = session::Session::open(&embedded, &target).await?;
    let result = plan
        .execute(&mut session, cli.global.output, token.as_deref())
        .await;
    session.close().await;
    match result {
        // `berth logs web | head`: the reader left; that is not our failure.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// What the command line says about the agent and the token; [`context::resolve`] adds the
/// environment and the config file.
fn flags(global: &GlobalArgs) -> context::Flags {
    context::Flags {
        agent: global.agent.clone(),
        token: global.token.clone(),
        token_file: global.token_file.clone(),
        context: global.context.clone(),
    }
}

/// Whether the failure is only a closed stdout pipe.
pub fn is_broken_pipe(report: &color_eyre::eyre::Report) -> bool {
    report.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Installs color-eyre's report handler: no env section (these are messages for people, not
/// crash reports), colours only when stderr is a terminal.
pub fn install_error_hook() -> Result<()> {
    let theme = if std::io::stderr().is_terminal() {
        color_eyre::config::Theme::dark()
    } else {
        color_eyre::config::Theme::new()
    };
    color_eyre::config::HookBuilder::blank()
        .theme(theme)
        .display_env_section(false)
        .install()
}

/// A failed command's report as the user should see it: without a backtrace, even under
/// `RUST_BACKTRACE=1` (a refused flag or an unknown container is not a crash). Set
/// `RUST_LIB_BACKTRACE=1` to see where an error was made.
pub fn user_facing(report: color_eyre::eyre::Report) -> color_eyre::eyre::Report {
    let wanted = std::env::var("RUST_LIB_BACKTRACE").is_ok_and(|v| v != "0");
    report.suppress_backtrace(!wanted)
}

#[cfg(test)]
pub(crate) fn test_error_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The eyre hook only: the test harness keeps its own panic output.
        let (_, eyre_hook) = color_eyre::config::HookBuilder::blank()
            .display_env_section(false)
            .into_hooks();
        let _ = eyre_hook.install();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn target(args: &[&str]) -> Result<context::Target> {
        let global = Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .expect("parses")
            .global;
        // No environment: the flags alone.
        context::resolve(&flags(&global), &|_| None)
    }

    #[test]
    fn token_file_wins_and_is_trimmed() {
        crate::test_error_hook();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").expect("written");
        let path = path.to_str().expect("utf-8 path");
        let t = target(&["--token", "other", "--token-file", path, "nodes"]);
        assert_eq!(t.expect("read").token.as_deref(), Some("s3cret"));
        let t = target(&["--token", "given", "nodes"]);
        assert_eq!(t.expect("read").token.as_deref(), Some("given"));
    }

    #[test]
    fn missing_or_empty_token_file_is_an_error_naming_it() {
        crate::test_error_hook();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").expect("written");
        let path = path.to_str().expect("utf-8 path");
        let e = target(&["--token-file", path, "nodes"]).expect_err("refused");
        assert!(e.to_string().contains("is empty"), "{e}");
        let e =
            target(&["--token-file", "/nonexistent/berth-token", "nodes"]).expect_err("refused");
        assert!(e.to_string().contains("/nonexistent/berth-token"), "{e}");
    }
}
