//! The console: the TUI's frame time on a synthetic 1,000-node, 20,000-container cluster (the
//! criterion bench `console/benches/frame.rs`, run with short times and read back), and `berth`'s
//! start-to-first-output and peak memory for `berth ps` and `berth nodes` against `docker ps`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Local, docker, ms};
use crate::procs::{self, Cmdline};
use crate::report::{Measured, Row, Unit};
use crate::stats::Summary;
use crate::{Ctx, Result, err};

const BENCH: &str = "console";
/// One frame at 60 Hz, in ms.
const FRAME_BUDGET_MS: f64 = 1000.0 / 60.0;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if ctx.opts.no_criterion {
        rows.push(unavailable_frame("skipped with --no-criterion"));
    } else {
        rows.extend(criterion(ctx).await);
    }
    rows.extend(cli(ctx).await?);
    Ok(rows)
}

fn unavailable_frame(reason: &str) -> Row {
    Row::new(
        BENCH,
        "TUI frame, 1,000 nodes / 20,000 containers",
        Unit::Ms,
        Measured::Unavailable {
            reason: reason.to_owned(),
        },
    )
}

/// Runs the criterion bench when it exists and turns its estimates into rows.
async fn criterion(ctx: &Ctx) -> Vec<Row> {
    let ws = crate::workspace_dir();
    if !ws.join("console/benches/frame.rs").is_file() {
        return vec![unavailable_frame("bench missing")];
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cmd = Cmdline::new(cargo)
        .args([
            "bench",
            "--locked",
            "-p",
            "berth-console",
            "--bench",
            "frame",
            "--",
        ])
        .args(["--warm-up-time", "1", "--measurement-time", "3"]);
    eprintln!("  {} (builds the bench first if needed)", cmd.shown());
    let out = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .current_dir(&ws)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            ctx.remark(format!("console: `{}` failed: {last}", cmd.shown()));
            return vec![unavailable_frame("criterion bench failed")];
        }
        Err(e) => {
            ctx.remark(format!("console: cannot run `{}`: {e}", cmd.shown()));
            return vec![unavailable_frame("cannot run cargo")];
        }
    };
    let estimates = parse_criterion(&String::from_utf8_lossy(&out.stdout));
    if estimates.is_empty() {
        return vec![unavailable_frame("no estimate in criterion's output")];
    }
    estimates
        .into_iter()
        .map(|e| {
            Row::new(
                BENCH,
                format!("TUI {} (criterion), 1,000 nodes / 20,000 containers", e.id),
                Unit::Ms,
                Measured::Value(Summary::with_bounds(e.mid_ms, e.low_ms, e.high_ms, 1)),
            )
            .against_reference("one frame at 60 Hz", FRAME_BUDGET_MS)
            .note("criterion's estimate; min–max is its 95 % confidence interval")
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Estimate {
    id: String,
    low_ms: f64,
    mid_ms: f64,
    high_ms: f64,
}

/// Reads criterion's `id  time:   [1.2 ms 1.3 ms 1.4 ms]` lines (the id may be on the line
/// before when it is long).
fn parse_criterion(text: &str) -> Vec<Estimate> {
    let mut out = Vec::new();
    let mut last_id: Option<String> = None;
    for line in text.lines() {
        let (head, rest) = match line.split_once("time:") {
            Some((h, r)) => (h.trim(), Some(r)),
            None => (line.trim(), None),
        };
        let Some(rest) = rest else {
            // A line that is only an id (criterion puts long ids on their own line).
            if !head.is_empty()
                && !line.starts_with(' ')
                && !head.contains(' ')
                && !head.starts_with("Benchmarking")
            {
                last_id = Some(head.to_owned());
            }
            continue;
        };
        let id = if head.is_empty() {
            last_id.take()
        } else {
            Some(head.to_owned())
        };
        let Some(id) = id else { continue };
        let inner = rest
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let parts: Vec<&str> = inner.split_whitespace().collect();
        let value = |i: usize| -> Option<f64> {
            let n: f64 = parts.get(2 * i)?.parse().ok()?;
            let scale = match *parts.get(2 * i + 1)? {
                "ps" => 1e-9,
                "ns" => 1e-6,
                "µs" | "us" => 1e-3,
                "ms" => 1.0,
                "s" => 1e3,
                _ => return None,
            };
            Some(n * scale)
        };
        if let (Some(low_ms), Some(mid_ms), Some(high_ms)) = (value(0), value(1), value(2)) {
            out.push(Estimate {
                id,
                low_ms,
                mid_ms,
                high_ms,
            });
        }
    }
    out
}

/// `berth ps` and `berth nodes` against `docker ps`: time to the first byte of output and to
/// exit, and peak RSS.
async fn cli(ctx: &Ctx) -> Result<Vec<Row>> {
    let rounds = ctx.rounds(ctx.opts.console_rounds);
    // A short node name: the TUI's NAME column must show it whole, it is the first-frame marker.
    let a = Local::start(ctx, "bc", Ipv4Addr::LOCALHOST, &[]).await?;
    let cmds: [(&str, Cmdline); 3] = [
        ("berth ps", a.berth(ctx).arg("ps")),
        ("berth nodes", a.berth(ctx).arg("nodes")),
        ("docker ps", docker().arg("ps")),
    ];
    let mut first: [Vec<f64>; 3] = Default::default();
    let mut whole: [Vec<f64>; 3] = Default::default();
    let mut rss: [Vec<f64>; 3] = Default::default();
    for round in 0..=rounds {
        for k in 0..cmds.len() {
            let i = (round + k) % cmds.len();
            let t = procs::time(&cmds[i].1).await?;
            let f = t
                .first_output
                .ok_or_else(|| err(format!("{} printed nothing", cmds[i].0)))?;
            if round > 0 {
                first[i].push(ms(f));
                whole[i].push(ms(t.elapsed));
            }
        }
    }
    let mut have_rss = true;
    for _ in 0..rounds.min(5) {
        for (i, (_, cmd)) in cmds.iter().enumerate() {
            match procs::max_rss_kib(cmd).await? {
                Some(kib) => rss[i].push(kib as f64 / 1024.0),
                None => have_rss = false,
            }
        }
    }
    let mut rows = Vec::new();
    rows.extend(tui(ctx, &a, rounds.min(5)).await);
    for i in 0..2 {
        rows.push(
            Row::samples(
                BENCH,
                format!("`{}` start to first output", cmds[i].0),
                Unit::Ms,
                &first[i],
            )
            .against("docker ps", &first[2])
            .note(format!(
                "whole command: {} ms vs docker ps {} ms (medians)",
                crate::report::sig(crate::stats::median(&whole[i]).unwrap_or(f64::NAN)),
                crate::report::sig(crate::stats::median(&whole[2]).unwrap_or(f64::NAN)),
            )),
        );
    }
    for i in 0..2 {
        let row = Row::samples(
            BENCH,
            format!("`{}` peak RSS", cmds[i].0),
            Unit::Mib,
            &rss[i],
        );
        rows.push(if have_rss {
            row.against("docker ps", &rss[2])
                .note("/usr/bin/time -f %M")
        } else {
            row.against_unavailable("docker ps", "/usr/bin/time missing")
        });
    }
    Ok(rows)
}

/// `berth` with no command (the TUI) under a pseudo-terminal (`script`): the time from spawn to
/// the first frame showing the agent's node, and its peak RSS (GNU time, inside the terminal).
/// The bench plays the terminal: it answers the cursor-position query and types `q`.
async fn tui(ctx: &Ctx, a: &Local, rounds: usize) -> Vec<Row> {
    let figure = "`berth` (TUI) start to first frame with the cluster";
    let rss_figure = "`berth` (TUI) peak RSS";
    let missing = |why: String| {
        vec![
            Row::new(
                BENCH,
                figure,
                Unit::Ms,
                Measured::Unavailable {
                    reason: why.clone(),
                },
            ),
            Row::new(
                BENCH,
                rss_figure,
                Unit::Mib,
                Measured::Unavailable { reason: why },
            ),
        ]
    };
    if !std::path::Path::new(SCRIPT).is_file() {
        return missing(format!("{SCRIPT} (util-linux) missing"));
    }
    let (mut first, mut rss) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        match tui_once(ctx, a).await {
            Ok((t, kib)) => {
                if round > 0 {
                    first.push(ms(t));
                    rss.extend(kib.map(|k| k as f64 / 1024.0));
                }
            }
            Err(e) => {
                ctx.remark(format!("console: the TUI measurement failed: {e}"));
                return missing("failed, see notes".into());
            }
        }
    }
    vec![
        Row::samples(BENCH, figure, Unit::Ms, &first)
            .note("200×50 pseudo-terminal; until the node's name is on screen (Watch snapshot drawn); docker has no TUI to compare with"),
        Row::samples(BENCH, rss_figure, Unit::Mib, &rss)
            .note("/usr/bin/time -f %M around berth in the pseudo-terminal, quit with q after the first frame"),
    ]
}

const SCRIPT: &str = "/usr/bin/script";
const TUI_TIMEOUT: Duration = Duration::from_secs(20);

async fn tui_once(ctx: &Ctx, a: &Local) -> Result<(Duration, Option<u64>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rss_file = tempfile::NamedTempFile::new().map_err(|e| err(format!("temp file: {e}")))?;
    let quote =
        |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let time = if std::path::Path::new(procs::GNU_TIME).is_file() {
        format!("{} -f %M -o {} ", procs::GNU_TIME, quote(rss_file.path()))
    } else {
        String::new()
    };
    let inner = format!(
        "stty cols 200 rows 50; exec {time}{} --agent {} --no-mouse",
        quote(&ctx.berth),
        a.addr()
    );
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new(SCRIPT)
        .args(["-qfec", &inner, "/dev/null"])
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("cannot run {SCRIPT}: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| err("no stdin pipe"))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("no stdout pipe"))?;
    let node = a.agent.name.as_bytes();
    let mut seen: Vec<u8> = Vec::new();
    let mut answered = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + TUI_TIMEOUT;
    let first = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, stdout.read(&mut buf)).await {
            Ok(Ok(0)) => {
                return Err(err(format!(
                    "berth exited before drawing its node: {}",
                    String::from_utf8_lossy(&seen)
                        .chars()
                        .rev()
                        .take(300)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>()
                )));
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(err(format!("cannot read the terminal: {e}"))),
            Err(_) => {
                let _ = std::fs::write(std::env::temp_dir().join("berth-bench-tui.out"), &seen);
                return Err(err(format!(
                    "no frame with the node within 20 s (what the terminal got is in {})",
                    std::env::temp_dir().join("berth-bench-tui.out").display()
                )));
            }
        };
        seen.extend_from_slice(&buf[..n]);
        // Answer every cursor-position query (ESC [ 6 n) as a terminal would.
        let queries = count(&seen, b"\x1b[6n");
        while answered < queries {
            stdin
                .write_all(b"\x1b[1;1R")
                .await
                .map_err(|e| err(format!("cannot answer the terminal query: {e}")))?;
            answered += 1;
        }
        if count(&seen, node) > 0 {
            break t0.elapsed();
        }
    };
    let _ = stdin.write_all(b"q").await;
    let _ = stdin.flush().await;
    // Drain until it exits (or give up and kill it).
    let drain = async {
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        child.wait().await
    };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    let rss = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|t| t.lines().rev().find_map(|l| l.trim().parse::<u64>().ok()));
    Ok((first, rss))
}

/// How many times `needle` occurs in `hay`.
fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || hay.len() < needle.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_estimates_in_any_unit() {
        let text = "\
Benchmarking frame/containers: Warming up for 1.0000 s
frame/containers        time:   [1.2000 ms 1.2500 ms 1.3000 ms]
                        change: [-1.0% +0.5% +2.0%] (p = 0.50 > 0.05)
filter/keystroke_pair_and_frames
                        time:   [850.00 µs 900.00 µs 950.00 µs]
Found 3 outliers among 100 measurements (3.00%)
frame/nodes             time:   [12.5 ns 13.0 ns 13.5 ns]
";
        let e = parse_criterion(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].id, "frame/containers");
        assert_eq!(e[0].mid_ms, 1.25);
        assert_eq!(e[1].id, "filter/keystroke_pair_and_frames");
        assert!((e[1].mid_ms - 0.9).abs() < 1e-9);
        assert_eq!(e[2].id, "frame/nodes");
        assert!((e[2].low_ms - 12.5e-6).abs() < 1e-12);
    }
}
