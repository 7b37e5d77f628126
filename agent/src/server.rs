//! The gRPC service `berth.v1.Berth`: request checking, token auth, and the handlers.
//!
//! Handlers validate every request again (the client is never trusted), resolve container
//! references against the view, act through [`DockerRuntime`], and write what they changed back
//! into the view at once, so the next command sees it without waiting for Docker's event.

use crate::docker::{DockerRuntime, owned_by, spec_from_inspect, summary_from_inspect};
use crate::error::AgentError;
use crate::state::{Change, State};
use berth_proto::v1 as pb;
use berth_proto::v1::berth_server::Berth;
use berth_shared::defaults::DEFAULT_STOP_TIMEOUT_SECS;
use berth_shared::spec::ContainerSpec;
use bollard::query_parameters::LogsOptions;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The longest stop grace period a request may ask for.
pub const MAX_STOP_TIMEOUT_SECS: u32 = 3600;
/// Buffered messages per server stream before the sender waits for the client.
const STREAM_BUFFER: usize = 256;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct Service {
    pub state: Arc<State>,
    pub runtime: DockerRuntime,
    /// Flips to `true` when the agent shuts down: long streams end, so shutdown is not held
    /// up by a console that keeps a `Watch` or `logs -f` open.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Checks `authorization: Bearer <token>` in constant time. The token is never logged.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
        }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(subtle::ConstantTimeEq::ct_eq(given, &expected[..])) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong cluster token (authorization: Bearer …)",
            ))
        }
    }
}

fn validated_reference(field: &str, r: &str) -> Result<(), Status> {
    const MAX: usize = 256;
    if r.is_empty() {
        return Err(berth_shared::ValidationError::new(field, "is empty").into());
    }
    if r.len() > MAX {
        return Err(berth_shared::ValidationError::new(
            field,
            format!("is {} bytes long; at most {MAX}", r.len()),
        )
        .into());
    }
    Ok(())
}

impl Service {
    /// Resolves a container this node owns: from the view, then from Docker itself (the view may
    /// lag a just-created container by one event).
    async fn resolve(&self, reference: &str) -> Result<pb::ContainerSummary, Status> {
        validated_reference("container", reference)?;
        match self.state.resolve(reference) {
            Ok(c) => Ok(c),
            Err(AgentError::ContainerNotFound(..)) => {
                let docker = self.runtime.client()?;
                match self.runtime.inspect_raw(&docker, reference).await? {
                    Some(raw) if owned_by(&raw, self.runtime.node()) => {
                        let s = summary_from_inspect(self.runtime.node(), &raw);
                        self.state.apply(Change::Upsert(Box::new(s.clone())));
                        Ok(s)
                    }
                    _ => Err(AgentError::ContainerNotFound(
                        reference.chars().take(64).collect(),
                        self.runtime.node().to_owned(),
                    )
                    .into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Re-reads a container from Docker into the view; returns the fresh summary.
    async fn refresh(&self, id: &str) -> Result<Option<pb::ContainerSummary>, Status> {
        let docker = self.runtime.client()?;
        match self.runtime.inspect_raw(&docker, id).await? {
            Some(raw) => {
                let s = summary_from_inspect(self.runtime.node(), &raw);
                self.state.apply(Change::Upsert(Box::new(s.clone())));
                Ok(self.state.container(id).or(Some(s)))
            }
            None => {
                self.state.apply(Change::Removed(id.to_owned()));
                Ok(None)
            }
        }
    }
}

#[tonic::async_trait]
impl Berth for Service {
    async fn cluster(
        &self,
        _req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterSnapshot>, Status> {
        Ok(Response::new(self.state.snapshot()))
    }

    type WatchStream = BoxStream<pb::WatchEvent>;

    async fn watch(
        &self,
        _req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (snapshot, mut rx) = self.state.subscribe();
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let snap = pb::WatchEvent {
                event: Some(pb::watch_event::Event::Snapshot(snapshot)),
            };
            if tx.send(Ok(snap)).await.is_err() {
                return;
            }
            loop {
                let item = tokio::select! {
                    r = rx.recv() => r,
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let ev = match item {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow to follow change by change: start again from a snapshot.
                        tracing::debug!(skipped = n, "watcher lagged; sending a new snapshot");
                        let (snapshot, fresh) = state.subscribe();
                        rx = fresh;
                        pb::WatchEvent {
                            event: Some(pb::watch_event::Event::Snapshot(snapshot)),
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type RunStream = BoxStream<pb::RunEvent>;

    async fn run(&self, req: Request<pb::RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        let wire = req
            .into_inner()
            .spec
            .ok_or_else(|| berth_shared::ValidationError::new("spec", "is missing"))?;
        let spec = ContainerSpec::from_proto(&wire)?;
        // Fail before the stream starts when Docker is away: one clear status, no half stream.
        self.runtime.client()?;
        let runtime = self.runtime.clone();
        let state = self.state.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let placed = pb::RunEvent {
                event: Some(pb::run_event::Event::Placed(pb::Placed {
                    node: runtime.node().to_owned(),
                    reason: "the local node (single-node cluster)".into(),
                })),
            };
            let _ = tx.send(Ok(placed)).await;
            match runtime.run(&spec, &tx).await {
                Ok(summary) => {
                    tracing::info!(id = %summary.id, name = %summary.name, image = %summary.image, "container started");
                    state.apply(Change::Upsert(Box::new(summary.clone())));
                    let started = pb::RunEvent {
                        event: Some(pb::run_event::Event::Started(pb::Started {
                            container: Some(summary),
                        })),
                    };
                    let _ = tx.send(Ok(started)).await;
                }
                Err(e) => {
                    tracing::info!(error = %e, image = %spec.image, "run failed");
                    let _ = tx.send(Err(e.into())).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn stop(
        &self,
        req: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let req = req.into_inner();
        let timeout = req.timeout_secs.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
        if timeout > MAX_STOP_TIMEOUT_SECS {
            return Err(berth_shared::ValidationError::new(
                "timeout",
                format!("{timeout}s is longer than the {MAX_STOP_TIMEOUT_SECS}s allowed"),
            )
            .into());
        }
        let c = self.resolve(&req.container).await?;
        // Docker answers 304 or 204 for a container that is not running, depending on its
        // version; ask it for the state instead of guessing from the answer.
        let current = self.refresh(&c.id).await?.unwrap_or(c);
        let c = current;
        let was_running = matches!(c.state.as_str(), "running" | "restarting" | "paused")
            && self.runtime.stop(&c.id, timeout).await?;
        tracing::info!(id = %c.id, name = %c.name, was_running, "container stopped");
        let container = self.refresh(&c.id).await?.unwrap_or(c);
        Ok(Response::new(pb::StopResponse {
            container: Some(container),
            was_running,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let req = req.into_inner();
        let c = self.resolve(&req.container).await?;
        self.runtime
            .remove(&c.id, req.force)
            .await
            .map_err(|e| match e {
                AgentError::Running(_) => AgentError::Running(c.name.clone()),
                other => other,
            })?;
        tracing::info!(id = %c.id, name = %c.name, "container removed");
        self.state.apply(Change::Removed(c.id.clone()));
        Ok(Response::new(pb::RemoveResponse {
            id: c.id,
            name: c.name,
        }))
    }

    async fn inspect(
        &self,
        req: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::ContainerDetail>, Status> {
        let c = self.resolve(&req.into_inner().container).await?;
        let docker = self.runtime.client()?;
        let raw = self
            .runtime
            .inspect_raw(&docker, &c.id)
            .await?
            .ok_or_else(|| {
                AgentError::ContainerNotFound(c.name.clone(), self.runtime.node().to_owned())
            })?;
        let mut summary = summary_from_inspect(self.runtime.node(), &raw);
        summary.cpu_percent = c.cpu_percent;
        summary.memory_bytes = c.memory_bytes;
        let state = raw.state.clone().unwrap_or_default();
        let runtime_json = serde_json::to_string(&raw)
            .map_err(|e| Status::internal(format!("cannot encode docker's inspect: {e}")))?;
        Ok(Response::new(pb::ContainerDetail {
            summary: Some(summary),
            spec: spec_from_inspect(&raw).map(|s| s.to_proto()),
            runtime_json,
            error: state.error.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
        }))
    }

    type LogsStream = BoxStream<pb::LogLine>;

    async fn logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let req = req.into_inner();
        if req.since_unix_ms < 0 {
            return Err(berth_shared::ValidationError::new("since", "is before 1970").into());
        }
        let c = self.resolve(&req.container).await?;
        let docker = self.runtime.client()?;
        let since_secs = i32::try_from(req.since_unix_ms / 1000).unwrap_or(i32::MAX);
        let since_ns = req.since_unix_ms.saturating_mul(1_000_000);
        let opts = LogsOptions {
            follow: req.follow,
            stdout: true,
            stderr: true,
            since: since_secs,
            until: 0,
            timestamps: true,
            tail: req
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let mut stream = docker.logs(&c.id, Some(opts));
        let node = self.runtime.node().to_owned();
        let mut shutdown = self.shutdown.clone();
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut splitter = LineSplitter::default();
            loop {
                let item = tokio::select! {
                    i = stream.next() => i,
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let Some(item) = item else { break };
                let (kind, bytes) = match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        (pb::log_line::Stream::Stderr, message)
                    }
                    Ok(
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message },
                    ) => (pb::log_line::Stream::Stdout, message),
                    Ok(bollard::container::LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(AgentError::from_docker(e, &node).into())).await;
                        return;
                    }
                };
                for line in splitter.push(kind, &bytes) {
                    if line.timestamp_unix_ns < since_ns {
                        continue;
                    }
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
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
    use tonic::service::Interceptor;

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

    #[test]
    fn token_check_accepts_only_the_exact_bearer() {
        let mut check = TokenCheck::new(Some("s3cret"));
        let with = |v: &str| {
            let mut r = Request::new(());
            r.metadata_mut()
                .insert("authorization", v.parse().expect("ascii header"));
            r
        };
        assert!(check.call(with("Bearer s3cret")).is_ok());
        let err = check.call(with("Bearer s3cre")).expect_err("wrong token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("s3cret"), "never echo the token");
        assert!(check.call(with("s3cret")).is_err());
        assert!(check.call(Request::new(())).is_err());
        let mut open = TokenCheck::new(None);
        assert!(open.call(Request::new(())).is_ok());
    }
}
