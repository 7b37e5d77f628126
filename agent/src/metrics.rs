//! `--metrics-listen`: Prometheus metrics at `GET /metrics` (OpenMetrics text, from the
//! `prometheus-client` crate), off unless asked for.
//!
//! Two kinds of figure: counters the agent bumps as things happen (gRPC calls by method and
//! code with their latency, Docker reconnects, watch subscribers), and figures read from the
//! view at scrape time ([`Live`]: this node's CPU and memory, its containers' usage and counts
//! by state, the nodes it sees by status, gossip traffic). Only this node's own figures: every
//! agent is scraped for its own, so nothing is counted twice.
//!
//! The endpoint has no authentication, like a node exporter's; it is loopback unless the
//! operator gives another address. Every label value is bounded: methods are the API's own
//! list (anything else is `unknown`), so a hostile caller cannot grow the registry.

use crate::cluster::GossipCounters;
use crate::cluster::seal::Rejected;
use crate::state::State;
use berth_proto::v1 as pb;
use bytes::Bytes;
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// `--metrics-listen` with no address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9470";
/// Scrapes served at once; more wait for a slot.
const MAX_SCRAPE_CONNECTIONS: usize = 16;
/// How long a scraper may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection is kept, keep-alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The gRPC methods of `berth.v1.Berth`, the only values the `method` label takes (besides
/// `unknown`). A unit test checks this against the proto file.
pub const METHODS: &[&str] = &[
    "Cluster",
    "Watch",
    "Events",
    "Run",
    "Stop",
    "Remove",
    "Inspect",
    "Logs",
    "Exec",
    "ListObjects",
    "RemoveObject",
    "Pull",
    "ContainerStats",
    "StatPath",
    "CopyFrom",
    "CopyTo",
    "CreateService",
    "UpdateService",
    "RemoveService",
    "ListServices",
    "SyncServices",
    "CreateToken",
    "ListTokens",
    "RevokeToken",
    "Keyring",
    "UpdateNode",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// One agent's metrics. Cheap to share; every agent in a process (tests) has its own.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    docker_reconnects: Counter,
    watchers: Gauge,
}

impl Metrics {
    /// Metrics of the agent whose view is `state`; gossip's counters arrive once it starts.
    pub fn new(state: Arc<State>, gossip: Arc<Mutex<Option<Arc<GossipCounters>>>>) -> Self {
        let mut registry = Registry::with_prefix("berth");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by method and status code",
            calls.clone(),
        );
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~33 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 17))
        });
        registry.register(
            "grpc_request_duration_seconds",
            "Time until a gRPC call's response starts (for a stream, until it opens), by method",
            latency.clone(),
        );
        let docker_reconnects = Counter::default();
        registry.register(
            "docker_reconnects",
            "Times the agent connected to Docker again after losing it",
            docker_reconnects.clone(),
        );
        let watchers = Gauge::default();
        registry.register(
            "watch_subscribers",
            "Watch streams (consoles following the cluster) open now",
            watchers.clone(),
        );
        registry.register_collector(Box::new(Live { state, gossip }));
        Self {
            registry,
            calls,
            latency,
            docker_reconnects,
            watchers,
        }
    }

    /// The OpenMetrics text of every metric, as of now.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug of ours.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }

    pub fn docker_reconnected(&self) {
        self.docker_reconnects.inc();
    }

    /// Counts a watch stream open until the guard is dropped.
    pub fn watching(self: &Arc<Self>) -> WatchGuard {
        self.watchers.inc();
        WatchGuard(self.clone())
    }

    fn answered(&self, method: &'static str, code: tonic::Code) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: code_word(code),
            })
            .inc();
    }
}

/// One open watch stream; see [`Metrics::watching`].
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watchers.dec();
    }
}

/// The method a request's path names, if it is one of ours.
fn method_of(path: &str) -> &'static str {
    path.strip_prefix("/berth.v1.Berth/")
        .and_then(|m| METHODS.iter().find(|k| **k == m))
        .copied()
        .unwrap_or("unknown")
}

fn code_word(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `grpc-status` a header map carries, if any.
fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(tonic::Code::from_i32)
}

/// Figures read from the view on each scrape.
struct Live {
    state: Arc<State>,
    gossip: Arc<Mutex<Option<Arc<GossipCounters>>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let metric = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(metric)
}

/// One metric of type `M` with a sample per label set (none: only its description).
fn family<'a, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (Vec<(&'a str, &'a str)>, M)>,
) -> Result<(), std::fmt::Error>
where
    M: EncodeMetric + prometheus_client::metrics::TypedMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (node, containers) = self.state.local();
        let stats = node.stats.clone().unwrap_or_default();
        let e = &mut encoder;
        gauge(
            e,
            "node_cpu_percent",
            "This node's CPU use, percent of all cores",
            stats.cpu_percent,
        )?;
        gauge(
            e,
            "node_memory_used_bytes",
            "This node's memory in use",
            i64::try_from(stats.memory_used_bytes).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "node_memory_total_bytes",
            "This node's memory",
            i64::try_from(stats.memory_total_bytes).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "node_load1",
            "This node's 1-minute load average",
            stats.load1,
        )?;
        let docker_up = node.runtime.as_ref().is_some_and(|r| r.available);
        gauge(
            e,
            "docker_up",
            "1 when the agent reaches Docker",
            i64::from(docker_up),
        )?;

        // Every state Docker has, so a state with no container reads 0, not absent.
        let mut by_state: BTreeMap<&str, i64> = [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for c in &containers {
            if let Some(n) = by_state.get_mut(c.state.as_str()) {
                *n += 1;
            }
        }
        family(
            e,
            "containers",
            "This node's containers, by state",
            by_state
                .iter()
                .map(|(s, n)| (vec![("state", *s)], ConstGauge::new(*n))),
        )?;
        let running = || containers.iter().filter(|c| c.state == "running");
        fn of(c: &pb::ContainerSummary) -> Vec<(&str, &str)> {
            vec![
                ("id", crate::state::short_id(&c.id)),
                ("name", c.name.as_str()),
            ]
        }
        family(
            e,
            "container_cpu_percent",
            "A running container's CPU use, percent of one core",
            running().map(|c| (of(c), ConstGauge::new(c.cpu_percent))),
        )?;
        family(
            e,
            "container_memory_bytes",
            "A running container's memory use",
            running().map(|c| {
                let bytes = i64::try_from(c.memory_bytes).unwrap_or(i64::MAX);
                (of(c), ConstGauge::new(bytes))
            }),
        )?;
        let mut nodes: BTreeMap<&str, i64> = ["alive", "suspect", "down", "left"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for n in self.state.nodes() {
            let word =
                berth_shared::time::node_status_word(pb::NodeStatus::try_from(n.status).ok());
            if let Some(k) = nodes.get_mut(word) {
                *k += 1;
            }
        }
        family(
            e,
            "cluster_nodes",
            "Nodes this agent sees, itself included, by status",
            nodes
                .iter()
                .map(|(s, n)| (vec![("status", *s)], ConstGauge::new(*n))),
        )?;

        let gossip = self
            .gossip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(g) = gossip {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            counter(
                e,
                "gossip_sent_bytes",
                "Gossip bytes sent (UDP)",
                load(&g.sent),
            )?;
            counter(
                e,
                "gossip_received_bytes",
                "Gossip bytes received (UDP)",
                load(&g.received),
            )?;
            counter(
                e,
                "gossip_exchanges",
                "Gossip exchanges this node started (one per peer it gossips with in a round)",
                load(&g.syns),
            )?;
            family(
                e,
                "gossip_rejected_datagrams",
                "Gossip datagrams dropped, by reason",
                Rejected::ALL.into_iter().map(|why| {
                    let n = load(&g.rejected[why.index()]);
                    (vec![("reason", why.word())], ConstCounter::new(n))
                }),
            )?;
        }
        Ok(())
    }
}

/// The tower layer that counts every gRPC call (`Server::builder().layer(…)`).
#[derive(Clone)]
pub struct CallsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for CallsLayer {
    type Service = Calls<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Calls {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Calls<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_of(req.uri().path());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            metrics
                .latency
                .get_or_create(&MethodLabels { method })
                .observe(started.elapsed().as_secs_f64());
            // A failure before any message comes as headers only; otherwise the code is in
            // the trailers, at the end of the body.
            if let Some(code) = grpc_status(response.headers()) {
                metrics.answered(method, code);
                return Ok(response);
            }
            let call = Some(Call { metrics, method });
            Ok(response.map(|inner| tonic::body::Body::new(CountedBody { inner, call })))
        })
    }
}

/// A call whose code is not known yet: counted once, when it is.
struct Call {
    metrics: Arc<Metrics>,
    method: &'static str,
}

struct CountedBody {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl CountedBody {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            call.metrics.answered(call.method, code);
        }
    }
}

impl Drop for CountedBody {
    /// Dropped before its trailers: the caller went away (or the agent is stopping).
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).unwrap_or(tonic::Code::Unknown);
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code();
                self.finish(code);
            }
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` flips.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPE_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait a moment rather than spin.
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let answer = respond(&metrics, &req);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

fn respond<B>(metrics: &Metrics, req: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let reply = |status: http::StatusCode, content_type: &'static str, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        r
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/metrics") => reply(
            http::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (_, "/metrics") => {
            let mut r = reply(
                http::StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "only GET\n".into(),
            );
            r.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            r
        }
        _ => reply(
            http::StatusCode::NOT_FOUND,
            TEXT,
            "berthd serves its metrics at /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_list_is_the_protos() {
        let proto = include_str!("../../proto/proto/berth/v1/berth.proto");
        let declared: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        assert_eq!(
            declared, METHODS,
            "METHODS must list the proto's rpcs, in order"
        );
    }

    #[test]
    fn only_our_methods_become_labels() {
        assert_eq!(method_of("/berth.v1.Berth/Run"), "Run");
        assert_eq!(method_of("/berth.v1.Berth/Nope"), "unknown");
        assert_eq!(method_of("/other.Service/Run"), "unknown");
        assert_eq!(method_of("/berth.v1.Berth/Run/x"), "unknown");
    }
}
