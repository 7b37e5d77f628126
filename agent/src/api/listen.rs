//! The agent's accepted connections, guarded: at most `max` at once (and half of that from one
//! address), each with `TCP_NODELAY` and TCP keepalive, and each closed unless it sends its
//! first bytes within [`HANDSHAKE_TIMEOUT`]; with TLS, it must also finish its handshake within
//! it, and then send its first request bytes within it again.
//! A connection over a cap is closed at once; the log says so at most every
//! `REFUSED_WARNING_EVERY`, and so for failed handshakes.
//!
//! With TLS, handshakes run side by side (one that stalls holds up no other), and what the
//! handshake proved goes with every request on the connection as a [`PeerInfo`]: the client's
//! certificate, verified against the cluster CA, when it offered one (an agent).
//!
//! Without this, connections that send nothing are kept forever: 20,000 of them exhausted the
//! agent's file descriptors and new consoles timed out, with nothing in the log.

use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// What the connection a request came on proved about its sender.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The client certificate, already verified against the cluster CA by the handshake:
    /// present only when an agent of this cluster dialled us.
    pub agent_cert: Option<rustls::pki_types::CertificateDer<'static>>,
}

impl PeerInfo {
    /// Whether the caller proved, by its certificate, to be the agent of `node`.
    pub fn is_agent(&self, node: &str) -> bool {
        self.agent_cert
            .as_ref()
            .is_some_and(|c| berth_shared::trust::certifies_node(c, node))
    }
}

/// `--max-connections`: connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// A connection must send its first bytes within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often refused connections are reported.
const REFUSED_WARNING_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    refused_since_warning: u64,
    warned_at: Option<Instant>,
}

/// The caps and the live counts, shared by every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    max: usize,
    per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Limits {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            per_ip: (max / 2).max(1),
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection from `ip`, or `None` when a cap is reached.
    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut c = self.lock();
        let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.max || from_ip >= self.per_ip {
            c.refused_since_warning += 1;
            if c.warned_at
                .is_none_or(|t| t.elapsed() >= REFUSED_WARNING_EVERY)
            {
                tracing::warn!(
                    refused = c.refused_since_warning,
                    last_from = %ip,
                    open = c.total,
                    from_that_address = from_ip,
                    max = self.max,
                    max_per_address = self.per_ip,
                    "refusing connections: the agent serves at most --max-connections at once, \
                     half of them from one address"
                );
                c.warned_at = Some(Instant::now());
                c.refused_since_warning = 0;
            }
            return None;
        }
        c.total += 1;
        *c.by_ip.entry(ip).or_default() += 1;
        Some(Slot {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// A connection's place under the caps, given back on drop.
#[derive(Debug)]
struct Slot {
    limits: Limits,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection under the caps and the handshake deadline.
pub struct Guarded {
    stream: TcpStream,
    _slot: Slot,
    /// Until the first byte arrives: when the connection is closed.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Guarded {
    pub fn nodelay(&self) -> io::Result<bool> {
        self.stream.nodelay()
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// A connection as served: plaintext (no secret, loopback) or TLS.
pub enum Conn {
    Plain(Guarded),
    Tls(Box<tokio_rustls::server::TlsStream<Guarded>>),
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Conn::Plain(g) => PeerInfo {
                remote: g.stream.peer_addr().ok(),
                agent_cert: None,
            },
            Conn::Tls(t) => {
                let (g, session) = t.get_ref();
                PeerInfo {
                    remote: g.stream.peer_addr().ok(),
                    agent_cert: session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned()),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(g) => Pin::new(g).poll_read(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(g) => Pin::new(g).poll_write(cx, buf),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(g) => Pin::new(g).poll_flush(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(g) => Pin::new(g).poll_shutdown(cx),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(g) => Pin::new(g).poll_write_vectored(cx, bufs),
            Conn::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(g) => g.is_write_vectored(),
            Conn::Tls(t) => t.is_write_vectored(),
        }
    }
}

/// Failed handshakes, reported at most every `REFUSED_WARNING_EVERY`.
#[derive(Default)]
struct HandshakeFailures {
    since_warning: u64,
    warned_at: Option<Instant>,
}

/// Why a handshake failed, in words that point at the likely cause. Never names a secret.
fn handshake_failure(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired
            | rustls::CertificateError::ExpiredContext { .. }
            | rustls::CertificateError::NotValidYet
            | rustls::CertificateError::NotValidYetContext { .. },
        )) => "its client certificate is out of date: is a clock more than an hour off?",
        Some(rustls::Error::InvalidCertificate(_)) => {
            "its client certificate is not from this cluster's CA: an agent of another cluster, \
             or one with another secret"
        }
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            "it did not speak TLS: a console or agent without the cluster token?"
        }
        Some(rustls::Error::NoApplicationProtocol) => "it does not speak HTTP/2 (gRPC)",
        Some(rustls::Error::AlertReceived(_)) => {
            "the client refused this agent's certificate: it pins another cluster's CA (a \
             token of another cluster?)"
        }
        Some(_) => "TLS refused",
        None if e.kind() == io::ErrorKind::TimedOut => {
            "it did not finish the handshake within the handshake timeout"
        }
        None => "the connection failed during the handshake",
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.deadline.is_some() {
            match &polled {
                Poll::Ready(Ok(())) if buf.filled().len() > before => self.deadline = None,
                Poll::Pending => {
                    if let Some(d) = self.deadline.as_mut()
                        && d.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client sent nothing within the handshake timeout",
                        )));
                    }
                }
                _ => {}
            }
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

use std::future::Future;

/// The listener's connections, with TLS when `tls` is given: see [`guarded`] and the module
/// doc. Ends when the server drops it.
pub fn incoming(
    listener: tokio::net::TcpListener,
    limits: Limits,
    tls: Option<Arc<crate::tls::AgentTls>>,
) -> std::pin::Pin<Box<dyn Stream<Item = io::Result<Conn>> + Send + 'static>> {
    let accepted = guarded(listener, limits);
    let Some(tls) = tls else {
        return Box::pin(accepted.map(|c| c.map(Conn::Plain)));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Conn>>(64);
    let failures = Arc::new(Mutex::new(HandshakeFailures::default()));
    tokio::spawn(async move {
        let mut accepted = std::pin::pin!(accepted);
        loop {
            let next = tokio::select! {
                next = accepted.next() => next,
                _ = tx.closed() => return,
            };
            let Some(next) = next else { return };
            let conn = match next {
                Ok(conn) => conn,
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            // The settings of now: a keyring change applies to the next connection.
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server());
            let (tx, failures) = (tx.clone(), failures.clone());
            tokio::spawn(async move {
                let from = conn.stream.peer_addr().ok();
                let handshake =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await;
                let error = match handshake {
                    Ok(Ok(mut stream)) => {
                        // The handshake's bytes cleared the first-byte deadline: the first
                        // request must come within the same again.
                        stream.get_mut().0.deadline =
                            Some(Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)));
                        let _ = tx.send(Ok(Conn::Tls(Box::new(stream)))).await;
                        return;
                    }
                    Ok(Err(e)) => e,
                    Err(_) => io::Error::new(io::ErrorKind::TimedOut, "handshake timeout"),
                };
                let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                f.since_warning += 1;
                if f.warned_at
                    .is_none_or(|t| t.elapsed() >= REFUSED_WARNING_EVERY)
                {
                    tracing::warn!(
                        from = %from.map_or_else(|| "?".to_owned(), |a| a.to_string()),
                        failed = f.since_warning,
                        reason = handshake_failure(&error),
                        "refused a connection at the TLS handshake"
                    );
                    f.warned_at = Some(Instant::now());
                    f.since_warning = 0;
                }
            });
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The listener's TCP connections: `TCP_NODELAY` on each (with our own listener tonic's builder
/// flag does not apply, and a reply's second small write would wait ~40 ms for the client's
/// delayed ACK), TCP keepalive so a console that vanished without a FIN is noticed, the caps
/// and the deadline for the first byte.
pub fn guarded(
    listener: tokio::net::TcpListener,
    limits: Limits,
) -> impl Stream<Item = io::Result<Guarded>> + Send + 'static {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
        .filter_map(move |accepted| {
            let limits = limits.clone();
            async move {
                match accepted {
                    Ok(stream) => {
                        let ip = stream
                            .peer_addr()
                            .map_or(IpAddr::from([0, 0, 0, 0]), |a: SocketAddr| a.ip());
                        // Over a cap: dropped here, which closes it.
                        let slot = limits.admit(ip)?;
                        Some(Ok(Guarded {
                            stream,
                            _slot: slot,
                            deadline: Some(Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT))),
                        }))
                    }
                    // tonic logs and goes on for accept errors it is given.
                    Err(e) => Some(Err(e)),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_every_connection_and_half_per_address() {
        let limits = Limits::new(4);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = limits.admit(a).expect("1");
        let _a2 = limits.admit(a).expect("2");
        assert!(
            limits.admit(a).is_none(),
            "half of the cap from one address"
        );
        let _b1 = limits.admit(b).expect("3");
        let _b2 = limits.admit(b).expect("4");
        assert!(
            limits.admit([10, 0, 0, 3].into()).is_none(),
            "the total cap"
        );
        assert_eq!(limits.open(), 4);
        drop(a1);
        assert_eq!(limits.open(), 3);
        assert!(
            limits.admit(a).is_some(),
            "a closed connection frees its slot"
        );
    }
}
