//! A runner for real binaries (mostly `berth`) whose failure report says what happened without
//! a rerun: the full command line, the exit status, stdout and stderr.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`Cmd::run`] lets a command run before killing it and failing the test.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// A command to run, built step by step; [`run`](Cmd::run) panics with a report when it cannot
/// run or times out.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: std::result::Result<PathBuf, String>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Cmd {
    /// Runs any program (found on `PATH` when not a path).
    pub fn new(program: impl Into<PathBuf>) -> Cmd {
        Cmd {
            program: Ok(program.into()),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            timeout: DEFAULT_CMD_TIMEOUT,
        }
    }

    /// The workspace's `berth` binary with `--agent <agent_url>`, and without `BERTH_AGENT`,
    /// `BERTH_TOKEN` or any other `BERTH_*` variable from the environment (set them with
    /// [`env`](Cmd::env) when a test needs them). A missing binary is reported when the command
    /// runs.
    pub fn berth(agent_url: &str) -> Cmd {
        Cmd::berth_without_agent().arg("--agent").arg(agent_url)
    }

    /// [`berth`](Cmd::berth) with no `--agent`: what the config file (contexts), the test's
    /// own `BERTH_*` variables or the defaults choose. Set `XDG_CONFIG_HOME`, or the
    /// developer's own contexts apply.
    pub fn berth_without_agent() -> Cmd {
        let mut cmd = Cmd::new("berth");
        cmd.program = crate::bin_path("berth").map_err(|e| e.to_string());
        // `BERTH_AGENT`, `BERTH_TOKEN` and every other setting of the developer's shell would
        // make the test depend on it.
        cmd.env_remove = std::env::vars_os()
            .map(|(key, _)| key)
            .filter(|key| key.to_string_lossy().starts_with("BERTH_"))
            .collect();
        cmd
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Feeds these bytes to the command's stdin (default: no stdin).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// Overrides the 60 s limit.
    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = timeout;
        self
    }

    /// The command line as a shell would show it (set variables first).
    pub fn command_line(&self) -> String {
        let program = match &self.program {
            Ok(path) => path.display().to_string(),
            Err(_) => "berth".to_string(),
        };
        let env = self
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), quote(v)));
        let args = self.args.iter().map(|a| quote(a));
        env.chain(std::iter::once(program))
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it to completion (blocking this thread) and returns what it did; panics with a
    /// report when it cannot start or outlives its timeout. Check the outcome with
    /// [`Output::ok`] or [`Output::fail`].
    #[track_caller]
    pub fn run(self) -> Output {
        let command_line = self.command_line();
        let program = match &self.program {
            Ok(program) => program,
            Err(error) => panic!("cannot run `{command_line}`: {error}"),
        };
        let mut command = Command::new(program);
        command.args(&self.args);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run `{command_line}`: {error}"));

        let stdin = child.stdin.take().zip(self.stdin).map(|(mut pipe, bytes)| {
            // A command that does not read its input is not an error of the harness.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })
        });
        let stdout = child.stdout.take().map(read_all);
        let stderr = child.stderr.take().map(read_all);

        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(error) => panic!("cannot wait for `{command_line}`: {error}"),
            }
        };
        if let Some(stdin) = stdin {
            let _ = stdin.join();
        }
        let stdout = stdout.map(join_output).unwrap_or_default();
        let stderr = stderr.map(join_output).unwrap_or_default();
        match status {
            Some(status) => Output {
                status,
                stdout,
                stderr,
                command_line,
            },
            None => panic!(
                "{}",
                report(
                    &format!("timed out after {}s", self.timeout.as_secs_f64()),
                    &command_line,
                    "killed",
                    &stdout,
                    &stderr
                )
            ),
        }
    }

    /// [`run`](Cmd::run) on a blocking-pool thread, for async tests that must keep their own
    /// runtime going meanwhile (for example an in-process agent the command talks to).
    pub async fn run_async(self) -> Output {
        let command_line = self.command_line();
        match tokio::task::spawn_blocking(move || self.run()).await {
            Ok(output) => output,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("`{command_line}` was cancelled: {error}"),
            },
        }
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout (lossy UTF-8).
    pub stdout: String,
    /// Its stderr (lossy UTF-8).
    pub stderr: String,
    command_line: String,
}

impl Output {
    /// Returns itself when the command succeeded; otherwise panics with the full report.
    #[track_caller]
    pub fn ok(self) -> Self {
        if !self.status.success() {
            panic!("{}", self.report("expected success"));
        }
        self
    }

    /// Returns itself when the command failed; otherwise panics with the full report.
    #[track_caller]
    pub fn fail(self) -> Self {
        if self.status.success() {
            panic!("{}", self.report("expected failure"));
        }
        self
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The command line it ran.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// A report of the run: the command line, status, stdout and stderr.
    pub fn report(&self, headline: &str) -> String {
        report(
            headline,
            &self.command_line,
            &self.status.to_string(),
            &self.stdout,
            &self.stderr,
        )
    }
}

fn report(headline: &str, command: &str, status: &str, stdout: &str, stderr: &str) -> String {
    format!(
        "{headline}\ncommand: {command}\nstatus: {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- end ---"
    )
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_output(handle: std::thread::JoinHandle<String>) -> String {
    handle
        .join()
        .unwrap_or_else(|_| "(reader thread panicked)".to_string())
}

/// Quotes an argument for display when a shell would need it.
fn quote(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
