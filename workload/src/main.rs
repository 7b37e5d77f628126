//! `berth-workload`: the program inside Berth's test image. It is built statically and packed
//! `FROM scratch`, so every test can run a container without any image registry.
//!
//! It prints numbered lines at a chosen rate (to stdout, or some to stderr), can hold memory, burn
//! one CPU, answer on a TCP port, sleep, and exit with a chosen code. It handles SIGTERM/SIGINT
//! (exit 0 at once) because, as PID 1 in a container, it would otherwise ignore them. It is not a
//! general tool: flags are parsed by hand and it depends on nothing but std and libc.

mod sys;

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: berth-workload [FLAGS]
  --lines N           print N lines `line <i>` (i from 1) to stdout
  --interval-ms MS    wait MS milliseconds between lines (default 0)
  --stderr-every K    every K-th line goes to stderr as `err <i>` (default 0 = never)
  --timestamp         prefix each line with unix nanoseconds and a space
  --forever           keep printing lines until killed (ignores --lines)
  --hold-mb MB        allocate and touch MB MiB, and keep them
  --burn-cpu          spin one thread at 100%
  --listen PORT       answer every TCP connection on 0.0.0.0:PORT with `berth-workload`
  --sleep SECS        after printing, sleep SECS (default: forever)
  --exit CODE         after the sleep, exit with CODE (default 0); without --sleep, exit at once
  --ignore-sigterm    ignore SIGTERM and SIGINT (default: exit 0 on them)
  --help              print this help";

/// The answer sent on every `--listen` connection.
const GREETING: &[u8] = b"berth-workload\n";

#[derive(Debug, Default)]
struct Options {
    lines: u64,
    interval: Duration,
    stderr_every: u64,
    timestamp: bool,
    forever: bool,
    hold_mb: u64,
    burn_cpu: bool,
    listen: Option<u16>,
    sleep: Option<Duration>,
    exit: Option<i32>,
    ignore_sigterm: bool,
}

enum Parsed {
    Run(Options),
    Help,
}

fn value<T: std::str::FromStr>(
    flag: &str,
    args: &mut impl Iterator<Item = String>,
) -> Result<T, String> {
    let raw = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    raw.parse()
        .map_err(|_| format!("invalid value {raw:?} for {flag}"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut o = Options::default();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--lines" => o.lines = value(&flag, &mut args)?,
            "--interval-ms" => o.interval = Duration::from_millis(value(&flag, &mut args)?),
            "--stderr-every" => o.stderr_every = value(&flag, &mut args)?,
            "--timestamp" => o.timestamp = true,
            "--forever" => o.forever = true,
            "--hold-mb" => o.hold_mb = value(&flag, &mut args)?,
            "--burn-cpu" => o.burn_cpu = true,
            "--listen" => o.listen = Some(value(&flag, &mut args)?),
            "--sleep" => {
                let secs: f64 = value(&flag, &mut args)?;
                let sleep = Duration::try_from_secs_f64(secs)
                    .map_err(|_| format!("invalid value {secs} for --sleep"))?;
                o.sleep = Some(sleep);
            }
            "--exit" => o.exit = Some(value(&flag, &mut args)?),
            "--ignore-sigterm" => o.ignore_sigterm = true,
            "--help" | "-h" => return Ok(Parsed::Help),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(Parsed::Run(o))
}

/// Allocates `mb` MiB and writes to every page, so the memory is really resident.
fn hold_memory(mb: u64) -> Vec<u8> {
    const PAGE: usize = 4096;
    let bytes = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let mut held = vec![0u8; bytes];
    for page in held.chunks_mut(PAGE) {
        page[0] = 1;
    }
    std::hint::black_box(&held);
    held
}

fn burn_cpu() {
    std::thread::spawn(|| {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    });
}

fn listen(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    std::thread::spawn(move || {
        // A client that goes away early is its own problem; keep serving the others.
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(GREETING);
        }
    });
    Ok(())
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Prints line `i`; stops the process when the output has gone away.
fn print_line(o: &Options, i: u64) {
    let to_stderr = o.stderr_every != 0 && i.is_multiple_of(o.stderr_every);
    let text = if to_stderr {
        format!("err {i}")
    } else {
        format!("line {i}")
    };
    let text = if o.timestamp {
        format!("{} {text}\n", unix_nanos())
    } else {
        format!("{text}\n")
    };
    let written = if to_stderr {
        let mut err = std::io::stderr().lock();
        err.write_all(text.as_bytes()).and_then(|()| err.flush())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
    if written.is_err() {
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let o = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("berth-workload: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    if o.ignore_sigterm {
        sys::ignore_terminate();
    } else {
        sys::exit_on_terminate();
    }

    let held = hold_memory(o.hold_mb);
    if o.burn_cpu {
        burn_cpu();
    }
    if let Some(port) = o.listen
        && let Err(error) = listen(port)
    {
        eprintln!("berth-workload: cannot listen on 0.0.0.0:{port}: {error}");
        return ExitCode::from(1);
    }

    let mut i: u64 = 0;
    while o.forever || i < o.lines {
        if i > 0 && !o.interval.is_zero() {
            std::thread::sleep(o.interval);
        }
        i += 1;
        print_line(&o, i);
    }

    match o.sleep {
        Some(sleep) => std::thread::sleep(sleep),
        None if o.exit.is_some() => {}
        // Parking can wake spuriously, hence the loop.
        None => loop {
            std::thread::park();
        },
    }
    std::hint::black_box(&held);
    std::process::exit(o.exit.unwrap_or(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|a| a.to_string()))? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".to_string()),
        }
    }

    #[test]
    fn parses_every_flag() {
        let o = run(&[
            "--lines",
            "3",
            "--interval-ms",
            "20",
            "--stderr-every",
            "2",
            "--timestamp",
            "--forever",
            "--hold-mb",
            "4",
            "--burn-cpu",
            "--listen",
            "8080",
            "--sleep",
            "1.5",
            "--exit",
            "3",
            "--ignore-sigterm",
        ])
        .unwrap();
        assert_eq!(o.lines, 3);
        assert_eq!(o.interval, Duration::from_millis(20));
        assert_eq!(o.stderr_every, 2);
        assert!(o.timestamp && o.forever && o.burn_cpu && o.ignore_sigterm);
        assert_eq!(o.hold_mb, 4);
        assert_eq!(o.listen, Some(8080));
        assert_eq!(o.sleep, Some(Duration::from_millis(1500)));
        assert_eq!(o.exit, Some(3));
    }

    #[test]
    fn refuses_unknown_flags_and_bad_values() {
        assert_eq!(run(&["--bogus"]).unwrap_err(), "unknown flag \"--bogus\"");
        assert_eq!(run(&["--lines"]).unwrap_err(), "--lines needs a value");
        assert_eq!(
            run(&["--lines", "x"]).unwrap_err(),
            "invalid value \"x\" for --lines"
        );
        assert!(run(&["--sleep", "-1"]).is_err());
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
