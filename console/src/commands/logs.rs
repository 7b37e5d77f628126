//! `berth logs`: a container's output, stdout lines to our stdout and stderr lines to our
//! stderr, byte for byte.

use crate::cli::LogsArgs;
use crate::errors::status_report;
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::time::parse_since;
use chrono::{DateTime, SecondsFormat, Utc};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::io::Write;

#[derive(Debug)]
pub struct LogsPlan {
    pub request: pb::LogsRequest,
    pub timestamps: bool,
}

/// Resolves `--since` against `now`, so a bad value is refused before connecting.
pub fn prepare(args: LogsArgs, now: DateTime<Utc>) -> Result<LogsPlan> {
    let since_unix_ms = match &args.since {
        Some(s) => parse_since(s, now)
            .map_err(|e| eyre!("{e}"))?
            .timestamp_millis(),
        None => 0,
    };
    Ok(LogsPlan {
        request: pb::LogsRequest {
            container: args.container,
            follow: args.follow,
            tail: args.tail.and_then(crate::cli::Tail::lines),
            since_unix_ms,
        },
        timestamps: args.timestamps,
    })
}

pub async fn execute(session: &mut Session, plan: LogsPlan) -> Result<()> {
    let follow = plan.request.follow;
    let mut stream = session
        .client
        .logs(plan.request)
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut stderr = std::io::stderr().lock();
    loop {
        let line = match stream.message().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(s) => {
                // What was received is still worth showing before the error.
                let _ = stdout.flush();
                return Err(status_report(s, &session.address));
            }
        };
        if line.stream == pb::log_line::Stream::Stderr as i32 {
            // Keep the two streams in the container's order on a shared terminal.
            stdout.flush().wrap_err("cannot write the log line")?;
            write_line(&mut stderr, &line, plan.timestamps)
                .wrap_err("cannot write the log line")?;
        } else {
            write_line(&mut stdout, &line, plan.timestamps)
                .wrap_err("cannot write the log line")?;
        }
        if follow {
            stdout.flush().wrap_err("cannot write the log line")?;
        }
    }
    stdout.flush().wrap_err("cannot write the log line")?;
    Ok(())
}

/// `line\n`, or `2026-01-02T03:04:05.123456789Z line\n` with timestamps (Docker's fixed-width
/// RFC 3339 with nanoseconds).
pub fn write_line(
    out: &mut dyn Write,
    line: &pb::LogLine,
    timestamps: bool,
) -> std::io::Result<()> {
    if timestamps {
        write!(out, "{} ", timestamp(line.timestamp_unix_ns))?;
    }
    out.write_all(&line.line)?;
    out.write_all(b"\n")
}

pub fn timestamp(unix_ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(unix_ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_nanoseconds() {
        assert_eq!(
            timestamp(1_767_225_600_000_000_000),
            "2026-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            timestamp(1_767_225_600_123_456_789),
            "2026-01-01T00:00:00.123456789Z"
        );
    }

    #[test]
    fn lines_are_written_as_bytes() {
        let line = pb::LogLine {
            stream: pb::log_line::Stream::Stdout as i32,
            timestamp_unix_ns: 1_767_225_600_000_000_001,
            line: b"caf\xc3\xa9 \xff".to_vec(),
        };
        let mut out = Vec::new();
        write_line(&mut out, &line, false).expect("written");
        assert_eq!(out, b"caf\xc3\xa9 \xff\n");
        let mut out = Vec::new();
        write_line(&mut out, &line, true).expect("written");
        assert_eq!(out, b"2026-01-01T00:00:00.000000001Z caf\xc3\xa9 \xff\n");
    }
}
