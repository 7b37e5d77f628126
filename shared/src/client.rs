//! The authenticated client connector used by the console, the agent (to reach peers) and tests.
//!
//! With a token, every connection is TLS ([`crate::trust`]): the agent's certificate is
//! verified against the cluster CA the token pins before the token is sent. With none, it is
//! plaintext HTTP/2, for an agent on loopback with no secret.

use crate::trust::{self, ClusterKey, Credential};
use berth_proto::v1::berth_client::BerthClient;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http::Uri;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How long [`connect`] waits for the TCP connection before reporting the agent unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings keep idle watch streams alive through NATs and notice a dead peer.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// A ping unanswered for this long closes the connection.
/// HTTP/2 flow-control windows of our client connections. h2 (since 0.4.16) closes a connection
/// with `ENHANCE_YOUR_CALM` when too many small DATA frames sit unread, and its allowance is half
/// the connection window. A log stream sends one small frame per line when lines trickle in, so a
/// reader that falls behind (a pipe into a slow program, a busy terminal) had hyper's 2 MiB of
/// stream window filled with tiny frames against a 2.5 MiB allowance (each frame under 256 bytes
/// counts as 256 − its size), and `berth logs` died with "h2 protocol error". With these, a full
/// stream window of frames as small as a gRPC message gets (≈ 15 bytes: 256 KiB / 15 × 241 ≈
/// 4.2 MiB) stays well inside the 8 MiB allowance, for a few streams stalled at once.
pub const STREAM_WINDOW: u32 = 256 * 1024;
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Attaches `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct AuthInterceptor {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl AuthInterceptor {
    /// Errors when the token holds characters a header cannot carry.
    /// The token must be non-empty printable ASCII with no whitespace.
    pub fn new(token: Option<&str>) -> Result<Self, ConnectError> {
        let Some(token) = token else {
            return Ok(Self { header: None });
        };
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnectError::BadToken);
        }
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| ConnectError::BadToken)?;
        Ok(Self {
            header: Some(header),
        })
    }
}

impl std::fmt::Debug for AuthInterceptor {
    /// Never shows the token: it grants root on every node.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.header.is_some() {
            "<redacted>"
        } else {
            "<none>"
        };
        f.debug_struct("AuthInterceptor")
            .field("token", &token)
            .finish()
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

pub type Client = BerthClient<InterceptedService<Channel, AuthInterceptor>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid agent address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("cannot reach agent at {address}")]
    Unreachable {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("invalid token: it must be printable ASCII with no spaces")]
    BadToken,
    #[error("invalid token: {0}")]
    Token(#[from] crate::ValidationError),
    #[error("cannot set up TLS: {0}")]
    Trust(#[from] trust::TrustError),
    #[error("refusing agent at {address}")]
    Tls {
        address: String,
        #[source]
        failure: TlsFailure,
    },
}

/// Why a TLS connection was not made, found again under tonic's transport error.
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    #[error(
        "its certificate is not signed by the cluster CA this token pins ({expected}): it is an \
         agent of another cluster, or the token is not this cluster's"
    )]
    WrongCluster {
        expected: String,
        #[source]
        source: rustls::Error,
    },
    #[error("its certificate is this cluster's but does not name {expected}")]
    WrongName {
        expected: String,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "it did not answer in TLS: it runs without a cluster secret (then connect without a \
         token, on loopback only), or it is not a Berth agent"
    )]
    NotTls {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "its certificate is out of date (expired, or not valid yet): is one of the two clocks \
         more than an hour off?"
    )]
    OutOfDate {
        #[source]
        source: rustls::Error,
    },
    #[error(
        "it closed the connection during the TLS handshake: it may be over its connection cap, \
         or not speak TLS (an agent without a cluster secret)"
    )]
    Closed {
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS handshake failed: {source}")]
    Handshake {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect: {source}")]
    Tcp {
        #[source]
        source: std::io::Error,
    },
    #[error("no host in {0}")]
    NoHost(String),
}

impl TlsFailure {
    fn from_handshake(e: std::io::Error, expected_cluster: &str, expected_name: &str) -> Self {
        let tls = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        match tls {
            Some(
                source @ rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ),
            ) => TlsFailure::WrongName {
                expected: expected_name.to_owned(),
                source,
            },
            Some(
                source @ rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. }
                    | rustls::CertificateError::NotValidYet
                    | rustls::CertificateError::NotValidYetContext { .. },
                ),
            ) => TlsFailure::OutOfDate { source },
            Some(source @ rustls::Error::InvalidCertificate(_)) => TlsFailure::WrongCluster {
                expected: expected_cluster.to_owned(),
                source,
            },
            Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
                TlsFailure::NotTls { source: e }
            }
            _ if e.kind() == std::io::ErrorKind::UnexpectedEof => TlsFailure::Closed { source: e },
            _ => TlsFailure::Handshake { source: e },
        }
    }
}

/// How a client speaks TLS: its settings, the name the server's certificate must carry, and
/// the cluster it pins (for messages).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    /// What the certificate must name, as people say it: "any agent", "node a".
    name_text: String,
    cluster_text: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("name", &self.name_text)
            .field("cluster", &self.cluster_text)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A console's: any agent of the cluster `credential` pins, and no certificate of its own.
    pub fn console(credential: &Credential) -> Result<Self, trust::TrustError> {
        let cluster = credential.cluster();
        Ok(Self::new(
            trust::client_config(&[cluster], None)?,
            trust::AGENT_SERVER_NAME,
            "an agent of this cluster".into(),
            &[cluster],
        ))
    }

    /// Settings for a given server name (an agent dialling one node uses
    /// [`trust::node_server_name`]).
    pub fn new(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        name_text: String,
        clusters: &[ClusterKey],
    ) -> Self {
        let server_name = ServerName::try_from(server_name.to_owned())
            .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("a valid name"));
        Self {
            config,
            server_name,
            name_text,
            cluster_text: clusters
                .iter()
                .map(ClusterKey::fingerprint)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// A channel that connects through TLS when first used.
    pub fn channel_lazy(&self, endpoint: &Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(self.connector())
    }

    async fn channel(&self, endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint.connect_with_connector(self.connector()).await
    }

    fn connector(
        &self,
    ) -> impl tower::Service<
        Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Error = TlsFailure,
        Future = impl Send,
    > + Send
    + Clone
    + 'static {
        let tls = self.clone();
        tower::service_fn(move |uri: Uri| {
            let tls = tls.clone();
            async move {
                let host = uri
                    .host()
                    .ok_or_else(|| TlsFailure::NoHost(uri.to_string()))?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = uri.port_u16().unwrap_or(80);
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|source| TlsFailure::Tcp { source })?;
                // With a connector of our own, the endpoint's flag does not apply.
                let _ = tcp.set_nodelay(true);
                let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        TlsFailure::from_handshake(e, &tls.cluster_text, &tls.name_text)
                    })?;
                Ok(hyper_util::rt::TokioIo::new(stream))
            }
        })
    }
}

/// The [`TlsFailure`] under a transport error, if that is what it was.
pub fn tls_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TlsFailure> {
    let mut at: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = at {
        if let Some(f) = e.downcast_ref::<TlsFailure>() {
            return Some(f);
        }
        if let Some(c) = e.downcast_ref::<tonic::ConnectError>()
            && let Some(f) = c.0.downcast_ref::<TlsFailure>()
        {
            return Some(f);
        }
        at = e.source();
    }
    None
}

/// `host:port`, `http://host:port` or `https://host:port` → `http://host:port`: the scheme
/// does not choose TLS, the token does (see [`connect`]), and our own connector speaks it.
///
/// IPv6 addresses go in brackets (`[::1]:7070`). The port is required; paths, queries and user
/// info are refused. A trailing `/` is dropped.
pub fn normalize_agent_url(address: &str) -> Result<String, ConnectError> {
    let bad = |reason: &str| ConnectError::BadAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Err(bad("empty; expected host:port, e.g. 127.0.0.1:7070"));
    }
    let authority = match trimmed.split_once("://") {
        None => trimmed,
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        Some(_) => return Err(bad("unsupported scheme; use host:port")),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains(['/', '?', '#']) {
        return Err(bad("a path is not allowed; use host:port"));
    }
    if authority.contains('@') {
        return Err(bad("user info is not allowed; use host:port"));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(bad("missing ']' after the IPv6 address"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address between '[' and ']'"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(bad("missing port; expected [ipv6]:port, e.g. [::1]:7070"));
        };
        (&authority[..v6.len() + 2], port)
    } else {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(bad("missing port; expected host:port, e.g. 127.0.0.1:7070"));
        };
        if host.contains(':') {
            return Err(bad("IPv6 addresses need brackets, e.g. [::1]:7070"));
        }
        if host.is_empty() {
            return Err(bad("missing host; expected host:port, e.g. 127.0.0.1:7070"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(bad(
                "the host may only hold letters, digits, '.', '-' and '_'",
            ));
        }
        (host, port)
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ if port.is_empty() => return Err(bad("missing port; expected host:port")),
        _ => return Err(bad("the port must be a number from 1 to 65535")),
    };
    Ok(format!("http://{host}:{port}"))
}

/// An endpoint with sane timeouts (connect 3 s, keep-alive), not yet connected.
pub fn endpoint(address: &str) -> Result<Endpoint, ConnectError> {
    let url = normalize_agent_url(address)?;
    let endpoint = Endpoint::from_shared(url).map_err(|e| ConnectError::BadAddress {
        address: address.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(endpoint
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// Connects now (fails fast with [`ConnectError::Unreachable`] naming the address). With a
/// token the connection is TLS, and the agent must prove it belongs to the cluster the token
/// pins ([`ConnectError::Tls`] says what did not match) before the token is sent. The token
/// is checked before any network traffic.
pub async fn connect(address: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    let interceptor = AuthInterceptor::new(token)?;
    let tls = match token {
        None => None,
        Some(t) => Some(ClientTls::console(&Credential::parse(t)?)?),
    };
    let url = normalize_agent_url(address)?;
    let endpoint = endpoint(&url)?;
    let shown = url.trim_start_matches("http://").to_owned();
    let channel = match &tls {
        None => endpoint.connect().await,
        Some(tls) => tls.channel(&endpoint).await,
    }
    .map_err(|source| match tls_failure(&source) {
        Some(TlsFailure::Tcp { .. }) | None => ConnectError::Unreachable {
            address: url.clone(),
            source,
        },
        Some(_) => ConnectError::Tls {
            address: shown.clone(),
            failure: take_tls_failure(source),
        },
    })?;
    Ok(BerthClient::with_interceptor(channel, interceptor))
}

/// Like [`connect`], but the TLS pin and the bearer are given apart: a client that trusts
/// `pin`'s cluster and sends `bearer` (or nothing). For tests of what an agent refuses.
pub async fn connect_pinned(
    address: &str,
    pin: &Credential,
    bearer: Option<&str>,
) -> Result<Client, ConnectError> {
    let interceptor = AuthInterceptor::new(bearer)?;
    let tls = ClientTls::console(pin)?;
    let url = normalize_agent_url(address)?;
    let channel = tls
        .channel(&endpoint(&url)?)
        .await
        .map_err(|source| ConnectError::Tls {
            address: url.trim_start_matches("http://").to_owned(),
            failure: take_tls_failure(source),
        })?;
    Ok(BerthClient::with_interceptor(channel, interceptor))
}

/// Moves the [`TlsFailure`] out of tonic's error (it sits in a box two levels down).
fn take_tls_failure(e: tonic::transport::Error) -> TlsFailure {
    match tls_failure(&e) {
        Some(f) => f.clone_shallow(),
        None => TlsFailure::Handshake {
            source: std::io::Error::other(e.to_string()),
        },
    }
}

impl TlsFailure {
    /// A copy (io errors do not clone; their kind and text do).
    fn clone_shallow(&self) -> Self {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            TlsFailure::WrongCluster { expected, source } => TlsFailure::WrongCluster {
                expected: expected.clone(),
                source: source.clone(),
            },
            TlsFailure::WrongName { expected, source } => TlsFailure::WrongName {
                expected: expected.clone(),
                source: source.clone(),
            },
            TlsFailure::NotTls { source } => TlsFailure::NotTls { source: io(source) },
            TlsFailure::Closed { source } => TlsFailure::Closed { source: io(source) },
            TlsFailure::OutOfDate { source } => TlsFailure::OutOfDate {
                source: source.clone(),
            },
            TlsFailure::Handshake { source } => TlsFailure::Handshake { source: io(source) },
            TlsFailure::Tcp { source } => TlsFailure::Tcp { source: io(source) },
            TlsFailure::NoHost(h) => TlsFailure::NoHost(h.clone()),
        }
    }
}

/// How a call failed on the way, as opposed to an answer the other side gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No connection was made: the request was never sent, so nothing happened there.
    NotConnected,
    /// The connection broke (or timed out) once the request may have been sent: whether it
    /// took effect is unknown.
    Lost,
}

/// Whether `status` is a transport failure rather than the server's answer. tonic gives the
/// statuses it makes from transport errors a source (the error itself); a status the server
/// sent arrives without one.
pub fn transport_failure(status: &tonic::Status) -> Option<Transport> {
    let mut source = std::error::Error::source(status)?;
    loop {
        if source.downcast_ref::<tonic::ConnectError>().is_some() {
            return Some(Transport::NotConnected);
        }
        match source.source() {
            Some(next) => source = next,
            None => return Some(Transport::Lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn bad_reason(address: &str) -> String {
        match normalize_agent_url(address) {
            Err(ConnectError::BadAddress { address: a, reason }) => {
                assert_eq!(a, address);
                reason
            }
            other => panic!("{address:?}: {other:?}"),
        }
    }

    #[test]
    fn normalizes_accepted_forms() {
        let ok = |s: &str| normalize_agent_url(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(ok("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(ok("node-1.lan:7070"), "http://node-1.lan:7070");
        assert_eq!(ok("http://host:7070"), "http://host:7070");
        assert_eq!(ok("HTTP://host:7070/"), "http://host:7070");
        assert_eq!(ok("[::1]:7070"), "http://[::1]:7070");
        assert_eq!(ok("http://[fe80::1]:1"), "http://[fe80::1]:1");
        assert_eq!(ok(" localhost:65535 "), "http://localhost:65535");
        // The token chooses TLS, not the scheme.
        assert_eq!(ok("https://host:7070"), "http://host:7070");
    }

    #[test]
    fn refuses_bad_addresses() {
        assert!(bad_reason("").starts_with("empty"));
        assert!(bad_reason("host").contains("missing port"));
        assert!(bad_reason("host:").contains("missing port"));
        assert!(bad_reason("http://host").contains("missing port"));
        assert!(bad_reason("[::1]").contains("missing port"));
        assert!(bad_reason("grpc://host:7070").contains("unsupported scheme"));
        assert!(bad_reason("http://host:7070/api").contains("path is not allowed"));
        assert!(bad_reason("host:7070?x=1").contains("path is not allowed"));
        assert!(bad_reason("user@host:7070").contains("user info"));
        assert!(bad_reason("::1:7070").contains("brackets"));
        assert!(bad_reason(":7070").contains("missing host"));
        assert!(bad_reason("host:0").contains("1 to 65535"));
        assert!(bad_reason("host:99999").contains("1 to 65535"));
        assert!(bad_reason("host:+80").contains("1 to 65535"));
        assert!(bad_reason("ho st:80").contains("host may only hold"));
        assert!(bad_reason("[nope]:80").contains("not an IPv6 address"));
    }

    #[test]
    fn error_messages_name_the_address() {
        let e = normalize_agent_url("ftp://h:1").expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("invalid agent address \"ftp://h:1\": unsupported scheme"),
            "{e}"
        );
    }

    #[test]
    fn endpoint_uses_normalized_url() {
        let ep = endpoint("127.0.0.1:7070").expect("valid");
        assert_eq!(ep.uri().to_string(), "http://127.0.0.1:7070/");
        assert!(matches!(
            endpoint("ftp://x:1"),
            Err(ConnectError::BadAddress { .. })
        ));
    }

    #[test]
    fn interceptor_adds_bearer_header() {
        let mut i = AuthInterceptor::new(Some("s3cr3t-TOKEN_1")).expect("valid token");
        let req = i.call(tonic::Request::new(())).expect("intercepted");
        let h = req.metadata().get("authorization").expect("header set");
        assert_eq!(h.to_str().expect("ascii"), "Bearer s3cr3t-TOKEN_1");
        assert!(!format!("{i:?}").contains("s3cr3t"));
    }

    #[test]
    fn interceptor_without_token_adds_nothing() {
        let mut i = AuthInterceptor::new(None).expect("no token is fine");
        let req = i.call(tonic::Request::new(())).expect("intercepted");
        assert!(req.metadata().get("authorization").is_none());
    }

    #[test]
    fn interceptor_refuses_bad_tokens() {
        for t in ["", "two words", "tab\t", "new\nline", "é", "nul\0"] {
            assert!(
                matches!(AuthInterceptor::new(Some(t)), Err(ConnectError::BadToken)),
                "{t:?}"
            );
        }
    }

    #[tokio::test]
    async fn connect_reports_unreachable_with_address() {
        // Bind then drop a listener so the port is very likely closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        match connect(&format!("127.0.0.1:{port}"), None).await {
            Err(e @ ConnectError::Unreachable { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!("cannot reach agent at http://127.0.0.1:{port}")
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("connected to a closed port"),
        }
    }

    #[tokio::test]
    async fn connect_checks_token_before_the_network() {
        // Port 1 would fail to connect; the token error must come first.
        assert!(matches!(
            connect("127.0.0.1:1", Some("bad token")).await,
            Err(ConnectError::BadToken)
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_connected_and_an_answer_is_no_transport_failure() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let channel = endpoint(&format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect_lazy();
        let mut client = BerthClient::new(channel);
        let refused = client
            .cluster(berth_proto::v1::ClusterRequest {})
            .await
            .expect_err("nothing listens");
        assert_eq!(
            transport_failure(&refused),
            Some(Transport::NotConnected),
            "{refused:?}"
        );
        let answered = tonic::Status::unavailable("docker is away");
        assert_eq!(transport_failure(&answered), None);
    }
}
