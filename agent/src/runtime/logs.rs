//! Docker's log frames as Berth's log lines: timestamps split off, stdout and stderr kept apart.

use crate::error::AgentError;
use berth_proto::v1 as pb;
use futures::{Stream, StreamExt};

/// Docker's log frames as lines, polled by the gRPC encoder itself: a line goes from the
/// engine's socket to the client's without a hand-over between tasks (each one a wake-up, often
/// on another thread), which is most of what follow latency adds to `docker logs -f`. Lines
/// before `since_ns` are dropped (Docker's `since` is in whole seconds); an engine error is the
/// stream's last item.
pub fn log_lines<S>(
    frames: S,
    node: String,
    since_ns: i64,
) -> impl Stream<Item = Result<pb::LogLine, AgentError>> + Send + 'static
where
    S: Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
        + Send
        + 'static,
{
    let state = Some((Box::pin(frames), LineSplitter::default()));
    futures::stream::unfold(state, move |state| {
        let node = node.clone();
        async move {
            let (mut frames, mut splitter) = state?;
            loop {
                let (kind, bytes) = match frames.next().await? {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        (pb::log_line::Stream::Stderr, message)
                    }
                    Ok(
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message },
                    ) => (pb::log_line::Stream::Stdout, message),
                    Ok(bollard::container::LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        let last = Err(AgentError::from_docker(e, &node));
                        return Some((futures::stream::iter(vec![last]), None));
                    }
                };
                let lines: Vec<_> = splitter
                    .push(kind, &bytes)
                    .into_iter()
                    .filter(|l| l.timestamp_unix_ns >= since_ns)
                    .map(Ok)
                    .collect();
                if !lines.is_empty() {
                    return Some((futures::stream::iter(lines), Some((frames, splitter))));
                }
            }
        }
    })
    .flatten()
}

/// Turns Docker's timestamped log frames into lines: `2026-11-22T10:00:00.123456789Z text\n`.
/// A frame may hold several lines; a line without a timestamp of its own (a long line Docker
/// split) takes the last one seen.
#[derive(Default)]
pub struct LineSplitter {
    last_ts: i64,
}

impl LineSplitter {
    pub fn push(&mut self, kind: pb::log_line::Stream, bytes: &[u8]) -> Vec<pb::LogLine> {
        let mut out = Vec::new();
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for raw in body.split(|b| *b == b'\n') {
            let (ts, text) = split_timestamp(raw);
            if let Some(ts) = ts {
                self.last_ts = ts;
            }
            out.push(pb::LogLine {
                stream: kind as i32,
                timestamp_unix_ns: ts.unwrap_or(self.last_ts),
                line: text.to_vec(),
            });
        }
        out
    }
}

fn split_timestamp(raw: &[u8]) -> (Option<i64>, &[u8]) {
    let Some(space) = raw.iter().position(|b| *b == b' ') else {
        return (
            parse_ts(raw),
            if parse_ts(raw).is_some() { &[] } else { raw },
        );
    };
    match parse_ts(&raw[..space]) {
        Some(ts) => (Some(ts), &raw[space + 1..]),
        None => (None, raw),
    }
}

fn parse_ts(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()?
        .timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_timestamped_frames_into_lines() {
        let mut s = LineSplitter::default();
        let lines = s.push(
            pb::log_line::Stream::Stdout,
            b"2026-11-22T10:00:00.000000001Z hello world\n2026-11-22T10:00:01Z second\n",
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, b"hello world");
        assert_eq!(lines[1].line, b"second");
        assert_eq!(
            lines[1].timestamp_unix_ns - lines[0].timestamp_unix_ns,
            999_999_999
        );
        // A continuation without a timestamp keeps the previous one.
        let more = s.push(pb::log_line::Stream::Stderr, b"no stamp here\n");
        assert_eq!(more[0].line, b"no stamp here");
        assert_eq!(more[0].timestamp_unix_ns, lines[1].timestamp_unix_ns);
        assert_eq!(more[0].stream, pb::log_line::Stream::Stderr as i32);
        // An empty line keeps its emptiness.
        let empty = s.push(pb::log_line::Stream::Stdout, b"2026-11-22T10:00:02Z \n");
        assert_eq!(empty[0].line, b"");
    }
}
