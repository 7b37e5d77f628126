//! `berth exec`: a command in a running container on any node, as `docker exec`.
//!
//! One `Exec` stream: the start message, then (with `-i`) stdin as it is read, a resize on
//! every SIGWINCH (with `-t`), and the close of stdin at its end. The command's stdout and
//! stderr go to ours, byte for byte; its exit status becomes ours ([`Exited`]). With `-t` from
//! a terminal the terminal is put in raw mode, so ctrl-c and ctrl-d reach the command, and a
//! guard puts it back however the session ends.

use crate::cli::ExecArgs;
use crate::errors::status_report;
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::exec::ExecSpec;
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::io::{IsTerminal, Read, Write};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Input = pb::exec_input::Input;

/// The most stdin one message carries.
const STDIN_CHUNK: usize = 32 * 1024;

#[derive(Debug)]
pub struct ExecPlan {
    pub spec: ExecSpec,
}

/// The command exited with a status other than 0: `berth exec` exits with it too, printing
/// nothing (the command said what it had to).
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct Exited(pub i32);

/// Checks every flag; `lookup` reads this environment for `-e KEY`.
pub fn prepare(args: ExecArgs, lookup: impl Fn(&str) -> Option<String>) -> Result<ExecPlan> {
    let spec = ExecSpec {
        container: args.container,
        command: args.command,
        tty: args.tty,
        stdin: args.interactive,
        user: args.user,
        workdir: args.workdir,
        env: ExecSpec::env_from_args(&args.env, lookup),
        size: None,
    };
    spec.validate().map_err(|e| eyre!("{e}"))?;
    if spec.tty && spec.stdin && !std::io::stdin().is_terminal() {
        return Err(eyre!("the input device is not a terminal: -it needs one"))
            .suggestion("drop -t to pipe stdin to the command");
    }
    Ok(ExecPlan { spec })
}

/// The terminal's size as (rows, cols), when stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .filter(|(cols, rows)| *cols > 0 && *rows > 0)
        .map(|(cols, rows)| (rows, cols))
}

fn resize(rows: u16, cols: u16) -> pb::ExecInput {
    pb::ExecInput {
        input: Some(Input::Resize(pb::TerminalSize {
            rows: rows.into(),
            cols: cols.into(),
        })),
    }
}

/// Raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn enable() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

pub async fn execute(session: &mut Session, plan: ExecPlan) -> Result<()> {
    let mut spec = plan.spec;
    let terminal = spec.tty && std::io::stdin().is_terminal();
    if spec.tty {
        spec.size = terminal_size();
    }
    let (tx, rx) = mpsc::channel::<pb::ExecInput>(16);
    let start = pb::ExecInput {
        input: Some(Input::Start(spec.to_proto())),
    };
    tx.send(start)
        .await
        .map_err(|_| eyre!("the exec session closed before it started"))?;
    let mut output = session
        .client
        .exec(ReceiverStream::new(rx))
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();

    let raw = if terminal && spec.stdin {
        Some(RawMode::enable()?)
    } else {
        None
    };
    if spec.stdin {
        spawn_stdin_reader(tx.clone());
    }
    let resizer = spec.tty.then(|| tokio::spawn(follow_resizes(tx.clone())));
    // Without -i the request stream stays open, so the agent sees no early end of input.
    let _keep_open = tx;

    let result = relay_output(&mut output, &session.address).await;
    if let Some(r) = resizer {
        r.abort();
    }
    drop(raw);
    match result? {
        0 => Ok(()),
        code => Err(Exited(code).into()),
    }
}

/// Writes the command's output to ours until its exit code arrives, and returns that.
async fn relay_output(output: &mut tonic::Streaming<pb::ExecOutput>, address: &str) -> Result<i32> {
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        let message = match output.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(eyre!(
                    "the exec session ended without the command's exit status"
                ))
                .suggestion("the agent's log may say why");
            }
            Err(s) => {
                let _ = stdout.flush();
                return Err(status_report(s, address))
                    .wrap_err("the exec session ended before the command did");
            }
        };
        match message.output {
            Some(pb::exec_output::Output::Stdout(b)) => {
                stdout
                    .write_all(&b)
                    .and_then(|()| stdout.flush())
                    .wrap_err("cannot write the command's output")?;
            }
            Some(pb::exec_output::Output::Stderr(b)) => {
                stderr
                    .write_all(&b)
                    .and_then(|()| stderr.flush())
                    .wrap_err("cannot write the command's output")?;
            }
            Some(pb::exec_output::Output::ExitCode(code)) => return Ok(code),
            None => {}
        }
    }
}

/// Reads stdin on a thread of its own (a blocking read) and sends it as it comes; its end is
/// sent as the close of stdin. In raw mode ctrl-c and ctrl-d are bytes like any other.
fn spawn_stdin_reader(tx: mpsc::Sender<pb::ExecInput>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            let input = match stdin.read(&mut buf) {
                Ok(0) => Input::CloseStdin(true),
                Ok(n) => Input::Stdin(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => Input::CloseStdin(true),
            };
            let last = matches!(input, Input::CloseStdin(_));
            if tx
                .blocking_send(pb::ExecInput { input: Some(input) })
                .is_err()
                || last
            {
                return;
            }
        }
    });
}

/// Sends the terminal's size on every SIGWINCH.
async fn follow_resizes(tx: mpsc::Sender<pb::ExecInput>) {
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Some((rows, cols)) = terminal_size()
            && tx.send(resize(rows, cols)).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(line: &[&str]) -> ExecArgs {
        let cli = Cli::try_parse_from(std::iter::once("berth").chain(line.iter().copied()))
            .expect("parses");
        match cli.command {
            Some(Command::Exec(a)) => a,
            other => panic!("not exec: {other:?}"),
        }
    }

    #[test]
    fn the_command_takes_everything_after_the_container() {
        let a = args(&["exec", "-u", "1000", "web", "ls", "-l", "/data"]);
        assert_eq!(a.container, "web");
        assert_eq!(a.command, ["ls", "-l", "/data"]);
        assert_eq!(a.user.as_deref(), Some("1000"));
        let a = args(&["exec", "web", "--", "sh", "-c", "exit 3"]);
        assert_eq!(a.command, ["sh", "-c", "exit 3"]);
    }

    #[test]
    fn env_inherits_from_here_and_skips_unset() {
        crate::test_error_hook();
        let a = args(&[
            "exec", "-e", "A=1", "-e", "HOMEDIR", "-e", "UNSET", "web", "env",
        ]);
        let plan = prepare(a, |k| (k == "HOMEDIR").then(|| "/home/x".to_owned())).expect("ok");
        assert_eq!(
            plan.spec.env,
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("HOMEDIR".to_owned(), "/home/x".to_owned())
            ]
        );
    }

    #[test]
    fn bad_flags_are_refused_naming_them() {
        for (line, field) in [
            (&["exec", "-w", "relative", "web", "sh"][..], "workdir"),
            (&["exec", "-u", "a b", "web", "sh"][..], "user"),
        ] {
            let e = Cli::try_parse_from(std::iter::once("berth").chain(line.iter().copied()))
                .expect_err("refused");
            assert!(e.to_string().contains(&format!("invalid {field}")), "{e}");
        }
        assert!(
            Cli::try_parse_from(["berth", "exec", "web"]).is_err(),
            "a command is required"
        );
    }
}
