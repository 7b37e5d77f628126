//! The authenticated client connector used by the console, the agent (to reach peers) and tests.

use berth_proto::v1::berth_client::BerthClient;
use std::time::Duration;
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
#[derive(Clone)]
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
}

/// `host:port` or `http://host:port` → `http://host:port`. `https://` is refused for now (TLS
/// comes later) with a message saying so.
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
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad(
                "TLS is not supported yet; use http:// on a trusted network or an SSH tunnel",
            ));
        }
        Some(_) => return Err(bad("unsupported scheme; use host:port or http://host:port")),
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

/// Connects now (fails fast with [`ConnectError::Unreachable`] naming the address).
/// The token is checked before any network traffic.
pub async fn connect(address: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    let interceptor = AuthInterceptor::new(token)?;
    let url = normalize_agent_url(address)?;
    let channel = endpoint(&url)?
        .connect()
        .await
        .map_err(|source| ConnectError::Unreachable {
            address: url,
            source,
        })?;
    Ok(BerthClient::with_interceptor(channel, interceptor))
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
    }

    #[test]
    fn refuses_bad_addresses() {
        assert!(bad_reason("").starts_with("empty"));
        assert!(bad_reason("host").contains("missing port"));
        assert!(bad_reason("host:").contains("missing port"));
        assert!(bad_reason("http://host").contains("missing port"));
        assert!(bad_reason("[::1]").contains("missing port"));
        assert_eq!(
            bad_reason("https://host:7070"),
            "TLS is not supported yet; use http:// on a trusted network or an SSH tunnel"
        );
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
        let e = normalize_agent_url("https://h:1").expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("invalid agent address \"https://h:1\": TLS"),
            "{e}"
        );
    }

    #[test]
    fn endpoint_uses_normalized_url() {
        let ep = endpoint("127.0.0.1:7070").expect("valid");
        assert_eq!(ep.uri().to_string(), "http://127.0.0.1:7070/");
        assert!(matches!(
            endpoint("https://x:1"),
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
