//! What the run happened on: CPU, memory, kernel, Docker, compiler, commit, and how busy it was.

use crate::procs::{self, Cmdline};
use crate::report::Machine;

pub async fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "unknown OS".into());
    let (docker, storage_driver) = match berth_testkit::docker().await {
        Ok(d) => match d.info().await {
            Ok(info) => (
                info.server_version.unwrap_or_default(),
                info.driver.unwrap_or_default(),
            ),
            Err(e) => (format!("unreachable ({e})"), String::new()),
        },
        Err(e) => (format!("unreachable ({e})"), String::new()),
    };
    let ws = crate::workspace_dir();
    let commit = procs::output(&Cmdline::new("git").arg("-C").arg(&ws).args([
        "rev-parse",
        "--short",
        "HEAD",
    ]))
    .await
    .unwrap_or_else(|_| "unknown".into());
    let dirty = procs::output(&Cmdline::new("git").arg("-C").arg(&ws).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))
    .await
    .map(|s| !s.is_empty())
    .unwrap_or(false);
    let rustc = procs::output(&Cmdline::new("rustc").arg("-V"))
        .await
        .unwrap_or_else(|_| "rustc unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: memory_kib / (1024.0 * 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        os,
        docker,
        storage_driver,
        rustc,
        commit: if dirty {
            format!("{commit} with uncommitted changes")
        } else {
            commit
        },
        load_at_start: procs::load1(),
        load_at_end: f64::NAN,
        busy_at_start: procs::busy_processes(),
        busy_during: Vec::new(),
    }
}
