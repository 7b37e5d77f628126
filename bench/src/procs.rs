//! Timing whole commands (spawn → exit, and spawn → first byte of output), their peak memory
//! (`/usr/bin/time`), and sampling a running process's RSS and CPU time from `/proc`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::{Result, err};

/// The time-out for one timed command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// What one timed run of a command gave.
#[derive(Debug, Clone)]
pub struct Timed {
    /// From just before spawn to the exit being seen.
    pub elapsed: Duration,
    /// From just before spawn to the first byte on stdout.
    pub first_output: Option<Duration>,
    pub stdout_bytes: u64,
    pub stdout_lines: u64,
}

/// A command line: program and arguments.
#[derive(Debug, Clone)]
pub struct Cmdline {
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl Cmdline {
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn shown(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.args).kill_on_drop(true);
        c
    }
}

/// Runs `cmd` with stdout read (and counted) by us and stderr kept for errors; times it.
/// A non-zero exit is an error carrying stderr.
pub async fn time(cmd: &Cmdline) -> Result<Timed> {
    let mut command = cmd.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| err(format!("cannot run {}: {e}", cmd.shown())))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("no stdout pipe"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| err("no stderr pipe"))?;
    let work = async {
        let read_out = async {
            let mut buf = vec![0u8; 256 * 1024];
            let mut first = None;
            let (mut bytes, mut lines) = (0u64, 0u64);
            loop {
                let n = stdout.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                if first.is_none() {
                    first = Some(t0.elapsed());
                }
                bytes += n as u64;
                lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            }
            (first, bytes, lines)
        };
        let read_err = async {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            text
        };
        let ((first, bytes, lines), err_text) = tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (first, bytes, lines, err_text, status, t0.elapsed())
    };
    let (first, bytes, lines, err_text, status, elapsed) =
        tokio::time::timeout(COMMAND_TIMEOUT, work)
            .await
            .map_err(|_| err(format!("{} did not finish within 300 s", cmd.shown())))?;
    let status = status.map_err(|e| err(format!("cannot wait for {}: {e}", cmd.shown())))?;
    if !status.success() {
        return Err(err(format!(
            "{} failed ({status}): {}",
            cmd.shown(),
            String::from_utf8_lossy(&err_text).trim()
        )));
    }
    Ok(Timed {
        elapsed,
        first_output: first,
        stdout_bytes: bytes,
        stdout_lines: lines,
    })
}

/// Runs `cmd` and returns its stdout (trimmed); a failure is an error with stderr.
pub async fn output(cmd: &Cmdline) -> Result<String> {
    let out = cmd
        .command()
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| err(format!("cannot run {}: {e}", cmd.shown())))?;
    if !out.status.success() {
        return Err(err(format!(
            "{} failed ({}): {}",
            cmd.shown(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The program measuring peak memory, when the machine has it.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Peak RSS (KiB) of one run of `cmd`, by `/usr/bin/time -f %M`; `None` without GNU time.
pub async fn max_rss_kib(cmd: &Cmdline) -> Result<Option<u64>> {
    if !Path::new(GNU_TIME).is_file() {
        return Ok(None);
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| err(format!("temp file: {e}")))?;
    let wrapped = Cmdline::new(GNU_TIME)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(file.path())
        .arg(&cmd.program)
        .args(cmd.args.iter().cloned());
    let out = wrapped
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| err(format!("cannot run {}: {e}", wrapped.shown())))?;
    if !out.status.success() {
        return Err(err(format!(
            "{} failed: {}",
            wrapped.shown(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = std::fs::read_to_string(file.path()).unwrap_or_default();
    Ok(text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<u64>().ok()))
}

/// Resident memory of a process now (`VmRSS`, KiB).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Peak resident memory of a process since it started (`VmHWM`, KiB).
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time a process has used (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    let hz = rustix::param::clock_ticks_per_second();
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after the last `)`.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, i.e. index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Names of running cargo/rustc processes (other builds competing for the machine), with pids.
pub fn busy_processes() -> Vec<String> {
    let own = std::process::id();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let comm = comm.trim();
        if matches!(comm, "cargo" | "rustc" | "cc" | "ld" | "clippy-driver")
            && !descends_from(pid, own)
        {
            found.push(format!("{comm}[{pid}]"));
        }
    }
    found.sort();
    found
}

/// True when `ancestor` is `pid`'s parent, grandparent… (our own `cargo bench` is not "another
/// build").
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..32 {
        let Some(parent) = std::fs::read_to_string(format!("/proc/{current}/stat"))
            .ok()
            .and_then(|t| parse_stat_ppid(&t))
        else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        current = parent;
    }
    false
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
fn parse_stat_ppid(text: &str) -> Option<u32> {
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_after_a_name_with_spaces() {
        let line = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 \
                    100 1000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ppid(line), Some(1));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let text = "Name:\tberthd\nVmHWM:\t   12345 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS:"), Some(9876));
        assert_eq!(parse_status_kib(text, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_rss_and_cpu_time() {
        let pid = std::process::id();
        assert!(!descends_from(pid, pid));
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(cpu_time(pid).is_some());
    }
}
