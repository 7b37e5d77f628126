//! Cluster membership and the shared view, by gossip (chitchat: scuttlebutt anti-entropy and a
//! phi-accrual failure detector, over UDP on the same port number as gRPC).
//!
//! Each node writes only its own keys — `grpc` (its address), `node` (labels, rounded stats,
//! runtime status, allocatable and reserved resources), one `c:<id>` per container it owns, and
//! `left` when it shuts down gracefully — and reads everyone's. Full details (inspect, logs) are
//! never gossiped: they come from the owner over gRPC.
//!
//! What gossip trusts: with a cluster token, only datagrams sealed with the key derived from it
//! ([`seal`], through `SealedSocket`); without one (a laptop on loopback), any UDP sender that
//! uses the default cluster id. gRPC between peers always needs the token.

use super::seal;
use crate::state::{Change, PeerContainers, PeerUpdate, State};
use berth_proto::v1 as pb;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::{
    ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `--gossip-interval`: one gossip round. With the default threshold a dead node is marked down
/// after about 6 rounds without news (≈3 s), well within 5 s.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// `--failure-threshold`: phi above which a node is down (phi = silence / mean heartbeat gap).
pub const DEFAULT_PHI_THRESHOLD: f64 = 6.0;
/// `--dead-node-grace`: how long a down node keeps its row before it is forgotten.
pub const DEFAULT_DEAD_NODE_GRACE: Duration = Duration::from_secs(3600);
/// A live node silent for more than this share of its failure timeout is shown as suspect.
const SUSPECT_AT: f64 = 0.5;
/// How often a node that reaches nobody says so in its log.
const LONELY_WARNING_EVERY: Duration = Duration::from_secs(10);
/// The most a graceful leave waits for gossip to carry `left`.
const MAX_LEAVE_WAIT: Duration = Duration::from_millis(800);

const KEY_GRPC: &str = "grpc";
const KEY_NODE: &str = "node";
const KEY_LEFT: &str = "left";
/// A digest of the node's service store: peers whose digests differ sync over gRPC.
const KEY_SERVICES: &str = "svc";
/// The node's volume names, one a line: a key of its own, since the `node` key is sent again
/// whenever its rounded figures move and the names rarely do.
const KEY_VOLUMES: &str = "vol";
const PREFIX_CONTAINER: &str = "c:";

#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// The address peers use for gRPC (TCP) and gossip (UDP).
    pub advertise: SocketAddr,
    /// Where gossip binds (the listen address).
    pub listen: SocketAddr,
    /// Members to join through (`host:port`).
    pub seeds: Vec<String>,
    pub interval: Duration,
    pub phi_threshold: f64,
    pub dead_node_grace: Duration,
    /// Nodes gossip only with nodes of the same cluster id.
    pub cluster_id: String,
    /// Gossip keys (see [`seal`]): with any, every datagram is sealed; the first seals.
    pub keys: Vec<seal::GossipKey>,
    /// The keyring, when it can change while the agent runs: the seal follows it.
    pub rekey: Option<tokio::sync::watch::Receiver<Arc<crate::keyring::Keys>>>,
    /// `--join mdns`: announce this node and introduce the peers found (sealed gossip only).
    pub mdns: bool,
}

/// The cluster id chitchat checks on a SYN. It does not depend on the secret: the seal is what
/// keeps other clusters out (their datagrams are never opened), and a secret can change while
/// the cluster runs (a rotation), when a changing id would split it.
pub fn cluster_id(sealed: bool) -> String {
    if sealed { "berth-sealed" } else { "berth" }.into()
}

/// Bytes through the gossip socket, both ways, and datagrams dropped by the seal check.
#[derive(Default, Debug)]
pub struct GossipCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Per [`seal::Rejected`] reason, in [`seal::Rejected::index`] order.
    pub rejected: [AtomicU64; 6],
    /// Datagrams chitchat made that were too large to seal and send.
    pub oversize: AtomicU64,
    /// Gossip exchanges this node started: a Syn sent (chitchat sends one to each peer it
    /// picks in a round).
    pub syns: AtomicU64,
}

impl GossipCounters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

fn count_syn(counters: &GossipCounters, envelope: &ChitchatEnvelope) {
    if matches!(envelope.message, chitchat::ChitchatMessage::Syn { .. }) {
        counters.syns.fetch_add(1, Ordering::Relaxed);
    }
}

/// The largest UDP payload over IPv4: a sealed datagram must fit it.
const MAX_DATAGRAM: usize = 65_507;
/// How often dropped datagrams are reported in the log (one line with the counts).
const REJECTED_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Gossip over UDP with every datagram sealed ([`seal`]): a sender without the cluster secret
/// is never decoded.
///
/// chitchat keeps its wire encoding to itself, so its own UDP socket runs on an ephemeral
/// loopback port behind this one, and bytes cross between them on loopback: to send, chitchat
/// encodes to the relay socket, whose bytes are sealed and sent from the public socket; a
/// datagram that opens is handed to chitchat's socket from the relay, one at a time, and the
/// answer is given the real sender's address. chitchat's socket accepts nothing that does not
/// come from the relay, so nothing reaches it unsealed.
struct SealedTransport {
    counters: Arc<GossipCounters>,
    keys: Vec<seal::GossipKey>,
    rekey: Option<tokio::sync::watch::Receiver<Arc<crate::keyring::Keys>>>,
    own: super::wire::Own,
    /// Gossip addresses found by mDNS, taken by the socket chitchat opens.
    introductions: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<SocketAddr>>>,
    cluster_id: String,
}

struct SealedSocket {
    public: tokio::net::UdpSocket,
    /// chitchat's own socket, on loopback.
    inner: Box<dyn Socket>,
    inner_addr: SocketAddr,
    /// Between the two: receives what chitchat encodes, sends what it is to decode.
    relay: tokio::net::UdpSocket,
    relay_addr: SocketAddr,
    sealer: seal::Sealer,
    rekey: Option<tokio::sync::watch::Receiver<Arc<crate::keyring::Keys>>>,
    counters: Arc<GossipCounters>,
    sealed: Vec<u8>,
    buf: Box<[u8]>,
    /// The sender of the datagram handed to chitchat and not yet read back (a `recv` can be
    /// cancelled between the two).
    handed: Option<(SocketAddr, usize)>,
    /// Drops since the last warning, per reason, and when that was.
    unreported: [u64; 6],
    /// This agent's chitchat id: deltas about it are cut from what members send.
    own: super::wire::Own,
    /// Peers found by mDNS, each sent a sealed introduction (an empty SYN).
    introductions: Option<tokio::sync::mpsc::Receiver<SocketAddr>>,
    /// When each address was last introduced.
    introduced: HashMap<SocketAddr, Instant>,
    cluster_id: String,
    warned_at: Option<Instant>,
}

/// An address found by mDNS is introduced at most this often.
const INTRODUCE_EVERY: Duration = Duration::from_secs(30);
/// At most this many addresses are introduced in one [`INTRODUCE_EVERY`].
const MAX_INTRODUCED: usize = 256;

/// How long chitchat may take to decode a datagram handed to it over loopback: one it cannot
/// decode is dropped by it, silently for us, and this ends the wait.
const HANDOFF_TIMEOUT: Duration = Duration::from_millis(100);

#[async_trait::async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {listen_addr}/UDP for gossip: {e}"))?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let inner = UdpTransport.open(loopback).await?;
        let inner_addr = inner.local_addr()?;
        let relay = tokio::net::UdpSocket::bind(loopback).await?;
        let relay_addr = relay.local_addr()?;
        let sealer = seal::Sealer::new(self.keys.clone())
            .ok_or_else(|| anyhow::anyhow!("sealed gossip needs a key"))?;
        Ok(Box::new(SealedSocket {
            public,
            inner,
            inner_addr,
            relay,
            relay_addr,
            sealer,
            rekey: self.rekey.clone(),
            counters: self.counters.clone(),
            sealed: Vec::with_capacity(MAX_DATAGRAM),
            buf: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            handed: None,
            unreported: [0; 6],
            own: self.own.clone(),
            introductions: self
                .introductions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            introduced: HashMap::new(),
            cluster_id: self.cluster_id.clone(),
            warned_at: None,
        }))
    }
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
    )
}

impl SealedSocket {
    /// Sends `to` (found by mDNS) a sealed empty SYN: its answer introduces us to the cluster.
    /// At most once per [`INTRODUCE_EVERY`] per address, so announcements cannot aim our
    /// sends at will.
    async fn introduce(&mut self, to: SocketAddr) {
        if Some(to) == self.public.local_addr().ok() {
            return;
        }
        let now = Instant::now();
        self.introduced
            .retain(|_, at| now.duration_since(*at) < INTRODUCE_EVERY);
        if self.introduced.contains_key(&to) || self.introduced.len() >= MAX_INTRODUCED {
            return;
        }
        self.introduced.insert(to, now);
        let syn = super::mdns::introduction(&self.cluster_id);
        self.follow_keyring();
        self.sealed.clear();
        if self.sealer.seal(&syn, unix_ms(), &mut self.sealed).is_ok() {
            let _ = self.public.send_to(&self.sealed, to).await;
        }
    }

    /// Follows a keyring change before the next datagram.
    fn follow_keyring(&mut self) {
        let Some(rekey) = self.rekey.as_mut() else {
            return;
        };
        if rekey.has_changed().unwrap_or(false) {
            let keys = rekey.borrow_and_update().clone();
            self.sealer.set_keys(
                keys.secrets
                    .iter()
                    .map(|s| seal::GossipKey::derive(s))
                    .collect(),
            );
        }
    }

    fn rejected(&mut self, why: seal::Rejected, from: SocketAddr) {
        self.counters.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
        self.unreported[why.index()] += 1;
        if self
            .warned_at
            .is_some_and(|t| t.elapsed() < REJECTED_WARNING_EVERY)
        {
            return;
        }
        self.warned_at = Some(Instant::now());
        let counts: Vec<String> = seal::Rejected::ALL
            .iter()
            .filter(|r| self.unreported[r.index()] > 0)
            .map(|r| format!("{} {}", self.unreported[r.index()], r.word()))
            .collect();
        // The counts and the last sender; never a key, a token or a cluster id.
        tracing::warn!(
            dropped = %counts.join(", "),
            last_from = %from,
            "dropped gossip datagrams that did not pass the seal check (another cluster, an old \
             secret, a forgery or a replay); more are counted, not logged, for {}s",
            REJECTED_WARNING_EVERY.as_secs()
        );
        self.unreported = [0; 6];
    }

    /// What chitchat made of the datagram handed to it, with its real sender.
    async fn take_handed(&mut self) -> anyhow::Result<Option<RecvOutcome>> {
        let Some((from, n)) = self.handed else {
            return Ok(None);
        };
        let out = tokio::time::timeout(HANDOFF_TIMEOUT, self.inner.recv()).await;
        self.handed = None;
        match out {
            Ok(Ok(mut o)) if o.from_addr == self.relay_addr => {
                o.from_addr = from;
                o.num_bytes_received = n;
                Ok(Some(o))
            }
            // Not from the relay: something else on this machine wrote to chitchat's port.
            Ok(Ok(o)) => {
                self.rejected(seal::Rejected::Malformed, o.from_addr);
                Ok(None)
            }
            Ok(Err(e)) => Err(e),
            // Sealed by a member but not a chitchat message: chitchat dropped it.
            Err(_) => {
                self.rejected(seal::Rejected::Malformed, from);
                Ok(None)
            }
        }
    }
}

#[async_trait::async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        count_syn(&self.counters, &envelope);
        // Anything left from a send that was cancelled half-way is not this message.
        while self.relay.try_recv_from(&mut self.buf).is_ok() {}
        self.inner.send(self.relay_addr, envelope).await?;
        let n = loop {
            let (n, from) = self.relay.recv_from(&mut self.buf).await?;
            if from == self.inner_addr {
                break n;
            }
        };
        self.sealed.clear();
        self.follow_keyring();
        self.sealer
            .seal(&self.buf[..n], unix_ms(), &mut self.sealed)?;
        if self.sealed.len() > MAX_DATAGRAM {
            // chitchat fills a datagram up to the UDP limit by an upper bound of its
            // compressed size; in the rare case the seal's bytes do not fit, this round's
            // message is skipped (the next round carries the state again) and counted.
            self.counters.oversize.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(len = self.sealed.len(), "sealed gossip datagram too large");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        match self.public.send_to(&self.sealed, to).await {
            Ok(n) => {
                self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                Ok(SendOutcome { num_bytes_sent: n })
            }
            // A peer that is gone (ICMP port unreachable) is the failure detector's business.
            Err(e) if is_gone(&e) => Ok(SendOutcome { num_bytes_sent: 0 }),
            Err(e) => Err(anyhow::anyhow!("cannot send gossip to {to}: {e}")),
        }
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some(o) = self.take_handed().await? {
                return Ok(o);
            }
            let received = match self.introductions.as_mut() {
                None => self.public.recv_from(&mut self.buf).await,
                Some(found) => tokio::select! {
                    r = self.public.recv_from(&mut self.buf) => r,
                    to = found.recv() => {
                        match to {
                            Some(to) => self.introduce(to).await,
                            None => self.introductions = None,
                        }
                        continue;
                    }
                },
            };
            let (n, from) = match received {
                Ok(x) => x,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(anyhow::anyhow!("cannot receive gossip: {e}")),
            };
            self.counters
                .received
                .fetch_add(n as u64, Ordering::Relaxed);
            self.follow_keyring();
            let plain = match self.sealer.open(&self.buf[..n], unix_ms()) {
                Ok(p) => p,
                Err(why) => {
                    self.rejected(why, from);
                    continue;
                }
            };
            // A member sent it; what it says is still checked like a request.
            let plain = match super::wire::check(&plain, &self.own) {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(%from, error = %e, "a member's gossip datagram is out of bounds");
                    self.rejected(seal::Rejected::Invalid, from);
                    continue;
                }
            };
            if let Err(e) = self.relay.send_to(&plain, self.inner_addr).await {
                // Not chitchat's to hear (too large for loopback, say): this datagram only.
                tracing::debug!(%from, error = %e, "cannot hand a gossip datagram to chitchat");
                self.rejected(seal::Rejected::Invalid, from);
                continue;
            }
            self.handed = Some((from, n));
        }
    }
}

/// Plain gossip (no secret: a laptop on loopback), counting bytes.
struct CountingTransport(Arc<GossipCounters>);

struct CountingSocket {
    inner: Box<dyn Socket>,
    counters: Arc<GossipCounters>,
}

#[async_trait::async_trait]
impl Transport for CountingTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = UdpTransport.open(listen_addr).await?;
        Ok(Box::new(CountingSocket {
            inner,
            counters: self.0.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        count_syn(&self.counters, &envelope);
        let out = self.inner.send(to, envelope).await?;
        self.counters
            .sent
            .fetch_add(out.num_bytes_sent as u64, Ordering::Relaxed);
        Ok(out)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let out = self.inner.recv().await?;
        self.counters
            .received
            .fetch_add(out.num_bytes_received as u64, Ordering::Relaxed);
        Ok(out)
    }
}

/// What a node says about itself, rounded so noise does not re-gossip every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct NodeInfo {
    #[serde(default)]
    labels: HashMap<String, String>,
    cpu: f64,
    cores: u32,
    mem_used: u64,
    mem_total: u64,
    disk_used: u64,
    disk_total: u64,
    load: [f64; 3],
    uptime: u64,
    os: String,
    kernel: String,
    rt_ok: bool,
    rt_version: String,
    rt_error: String,
    version: String,
    alloc_cpus: f64,
    alloc_mem: u64,
    res_cpus: f64,
    res_mem: u64,
    /// The node's own id (from its data dir).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
}

/// One container, compactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct ContainerInfo {
    n: String,
    i: String,
    s: String,
    cr: i64,
    #[serde(default)]
    st: i64,
    #[serde(default)]
    fi: i64,
    #[serde(default)]
    x: i64,
    #[serde(default)]
    r: u32,
    #[serde(default)]
    cpu: f64,
    #[serde(default)]
    mem: u64,
    #[serde(default)]
    lc: f64,
    #[serde(default)]
    lm: u64,
    /// `host_ip|host_port|container_port|protocol`
    #[serde(default)]
    p: Vec<String>,
    #[serde(default)]
    l: BTreeMap<String, String>,
    /// Docker's health status, when the container has a check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    h: String,
    /// The service slot: `[service id, service name, slot, version]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sv: Option<(String, String, String, u64)>,
    /// The request id of the run that made it, so a retry through any agent finds it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    rq: String,
}

const MIB: u64 = 1024 * 1024;

/// The most volume names a node row carries, and the most bytes they take together: a node
/// with more is still placed on, but only its first volumes (by name) pin containers.
pub const MAX_GOSSIPED_VOLUMES: usize = 64;
const MAX_GOSSIPED_VOLUME_BYTES: usize = 4096;

/// At most [`MAX_GOSSIPED_VOLUMES`] names of at most 255 bytes (no line breaks),
/// [`MAX_GOSSIPED_VOLUME_BYTES`] in all, sorted: what we publish, and all we take from a peer.
fn bounded_volumes<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut total = 0;
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.len() <= 255 && !n.contains(['\n', '\r']))
        .take(MAX_GOSSIPED_VOLUMES)
        .take_while(|n| {
            total += n.len();
            total <= MAX_GOSSIPED_VOLUME_BYTES
        })
        .map(str::to_owned)
        .collect()
}

fn round_to(x: u64, step: u64) -> u64 {
    (x + step / 2) / step * step
}

/// A container's CPU % as every agent shows it: to 0.1 below 10 %, whole above (noise there
/// would re-gossip the row every tick). The owner rounds its own figure the same way, so the
/// same container reads the same through every agent.
pub fn round_container_cpu(x: f64) -> f64 {
    if x < 10.0 { round1(x) } else { x.round() }
}

/// A container's memory as every agent shows it: to a sixteenth of its binary unit (the
/// consoles print a tenth: 328.0KiB, 1.5GiB), so small figures survive (328 KiB was 0 B when
/// rounded to a MiB) and a byte's noise does not re-gossip the row. The owner rounds the same
/// way; a rounded figure rounds to itself.
pub fn round_container_memory(bytes: u64) -> u64 {
    let mut unit = 1u64;
    while unit <= bytes / 1024 {
        unit *= 1024;
    }
    round_to(bytes, (unit / 16).max(1))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn node_info(n: &pb::Node) -> NodeInfo {
    let s = n.stats.clone().unwrap_or_default();
    let rt = n.runtime.clone().unwrap_or_default();
    NodeInfo {
        labels: n.labels.clone(),
        cpu: s.cpu_percent.round(),
        cores: s.cores,
        mem_used: round_to(s.memory_used_bytes, 16 * MIB),
        mem_total: s.memory_total_bytes,
        disk_used: round_to(s.disk_used_bytes, 256 * MIB),
        disk_total: s.disk_total_bytes,
        load: [round1(s.load1), round1(s.load5), round1(s.load15)],
        uptime: s.uptime_secs / 60 * 60,
        os: s.os,
        kernel: s.kernel,
        rt_ok: rt.available,
        rt_version: rt.version,
        rt_error: rt.error,
        version: n.agent_version.clone(),
        alloc_cpus: n.allocatable_cpus,
        alloc_mem: n.allocatable_memory_bytes,
        res_cpus: n.reserved_cpus,
        res_mem: n.reserved_memory_bytes,
        id: n.node_id.clone(),
    }
}

fn container_info(c: &pb::ContainerSummary) -> ContainerInfo {
    ContainerInfo {
        n: c.name.clone(),
        i: c.image.clone(),
        s: c.state.clone(),
        cr: c.created_unix_ms,
        st: c.started_unix_ms,
        fi: c.finished_unix_ms,
        x: c.exit_code,
        r: c.restart_count,
        cpu: round_container_cpu(c.cpu_percent),
        mem: round_container_memory(c.memory_bytes),
        lc: c.cpus,
        lm: c.memory_limit_bytes,
        p: c.ports
            .iter()
            .map(|p| {
                format!(
                    "{}|{}|{}|{}",
                    p.host_ip, p.host_port, p.container_port, p.protocol
                )
            })
            .collect(),
        l: c.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        h: c.health.clone(),
        sv: c.slot.as_ref().map(|s| {
            (
                s.service_id.clone(),
                s.service.clone(),
                s.slot.clone(),
                s.version,
            )
        }),
        rq: c.request_id.clone(),
    }
}

fn summary_from_info(node: &str, id: &str, c: ContainerInfo) -> pb::ContainerSummary {
    pb::ContainerSummary {
        id: id.to_owned(),
        name: c.n,
        image: c.i,
        node: node.to_owned(),
        state: c.s,
        created_unix_ms: c.cr,
        started_unix_ms: c.st,
        finished_unix_ms: c.fi,
        exit_code: c.x,
        restart_count: c.r,
        ports: c
            .p
            .iter()
            .filter_map(|p| {
                let mut it = p.split('|');
                Some(pb::PortMapping {
                    host_ip: it.next()?.to_owned(),
                    host_port: it.next()?.parse().ok()?,
                    container_port: it.next()?.parse().ok()?,
                    protocol: it.next()?.to_owned(),
                })
            })
            .collect(),
        cpu_percent: c.cpu,
        memory_bytes: c.mem,
        cpus: c.lc,
        memory_limit_bytes: c.lm,
        labels: c.l.into_iter().collect(),
        health: c.h,
        slot: c
            .sv
            .map(|(service_id, service, slot, version)| pb::ServiceSlot {
                service_id,
                service,
                slot,
                version,
            }),
        request_id: c.rq,
        ..Default::default()
    }
}

/// A running gossip member.
pub struct Gossip {
    handle: ChitchatHandle,
    interval: Duration,
    pub counters: Arc<GossipCounters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Gossip {
    /// Joins (or starts) the cluster and keeps `state`'s peer rows up to date.
    pub async fn start(
        cfg: GossipConfig,
        node: &str,
        state: Arc<State>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let generation = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let id = ChitchatId::new(node.to_owned(), generation, cfg.advertise);
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: cfg.interval,
            listen_addr: cfg.listen,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: cfg.phi_threshold,
                sampling_window_size: 100,
                max_interval: cfg.interval * 10,
                initial_interval: cfg.interval,
                dead_node_grace_period: cfg.dead_node_grace,
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V1,
        };
        let counters = Arc::new(GossipCounters::default());
        let initial = vec![(KEY_GRPC.to_owned(), cfg.advertise.to_string())];
        let (found_tx, found_rx) = tokio::sync::mpsc::channel(64);
        let mdns = match (cfg.mdns, cfg.keys.first()) {
            (false, _) => None,
            (true, None) => anyhow::bail!("--join mdns needs a cluster secret"),
            (true, Some(_)) => {
                let fingerprint = cfg
                    .rekey
                    .as_ref()
                    .and_then(|k| k.borrow().primary())
                    .map(|c| c.fingerprint())
                    .unwrap_or_default();
                Some(
                    super::mdns::start(node, cfg.advertise, &fingerprint, found_tx)
                        .map_err(|e| anyhow::anyhow!("cannot start mDNS: {e}"))?,
                )
            }
        };
        let handle = if cfg.keys.is_empty() {
            chitchat::spawn_chitchat(config, initial, &CountingTransport(counters.clone())).await?
        } else {
            let transport = SealedTransport {
                counters: counters.clone(),
                keys: cfg.keys.clone(),
                rekey: cfg.rekey.clone(),
                own: super::wire::Own {
                    node_id: node.to_owned(),
                    generation,
                },
                introductions: std::sync::Mutex::new(Some(found_rx)),
                cluster_id: cfg.cluster_id.clone(),
            };
            chitchat::spawn_chitchat(config, initial, &transport).await?
        };
        let mdns_stop = shutdown.clone();
        let mut tasks = vec![
            tokio::spawn(publish_loop(
                handle.chitchat(),
                state.clone(),
                cfg.interval,
                shutdown.clone(),
            )),
            tokio::spawn(read_loop(
                handle.chitchat(),
                id,
                state,
                cfg.clone(),
                shutdown,
            )),
        ];
        tracing::info!(
            advertise = %cfg.advertise,
            seeds = ?cfg.seeds,
            interval_ms = cfg.interval.as_millis() as u64,
            "gossip started"
        );
        // mDNS follows the keyring: it announces the CA in use and accepts any trusted.
        if let Some(mut m) = mdns {
            let mut keys = cfg.rekey.clone();
            let mut stop = mdns_stop;
            // The task owns the announcement: it ends (and mDNS stops) with gossip.
            tasks.push(tokio::spawn(async move {
                loop {
                    let changed = async {
                        match keys.as_mut() {
                            Some(k) => k.changed().await.is_ok(),
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        ok = changed => if !ok { return },
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    if let Some(k) = keys.as_mut() {
                        let fingerprints = k.borrow_and_update().fingerprints();
                        m.set_fingerprints(&fingerprints);
                    }
                }
            }));
        }
        Ok(Self {
            handle,
            interval: cfg.interval,
            counters,
            tasks,
        })
    }

    /// Announces a graceful leave, gives peers a few rounds to hear it, then stops gossiping.
    pub async fn leave(self) {
        let peers = self
            .handle
            .with_chitchat(|c| {
                c.self_node_state().set(KEY_LEFT, "1");
                let me = c.self_chitchat_id().clone();
                c.live_nodes().filter(|id| **id != me).count()
            })
            .await;
        // A round or two carries `left` to a few peers, and they to the rest; with no one to
        // tell, there is nothing to wait for. Under a second either way, so a stop is quick.
        if peers > 0 {
            tokio::time::sleep((self.interval * 2).min(MAX_LEAVE_WAIT)).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.handle.shutdown().await {
            tracing::warn!(error = %e, "gossip did not stop cleanly");
        }
    }
}

/// Writes this node's keys from the local view every round (`set` is a no-op when unchanged).
async fn publish_loop(
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    state: Arc<State>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut published: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (node, containers) = state.local();
        let node_json = match serde_json::to_string(&node_info(&node)) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode node info");
                continue;
            }
        };
        let mut keys: Vec<(String, String)> = Vec::with_capacity(containers.len() + 2);
        keys.push((KEY_NODE.to_owned(), node_json));
        keys.push((
            KEY_VOLUMES.to_owned(),
            bounded_volumes(node.volumes.iter().map(String::as_str)).join("\n"),
        ));
        if !node.services_digest.is_empty() {
            keys.push((KEY_SERVICES.to_owned(), node.services_digest.clone()));
        }
        for c in &containers {
            if let Ok(j) = serde_json::to_string(&container_info(c)) {
                keys.push((format!("{PREFIX_CONTAINER}{}", c.id), j));
            }
        }
        let now: HashSet<String> = keys
            .iter()
            .filter(|(k, _)| k.starts_with(PREFIX_CONTAINER))
            .map(|(k, _)| k.clone())
            .collect();
        let mut cc = chitchat.lock().await;
        let me = cc.self_node_state();
        for (k, v) in keys {
            me.set(k, v);
        }
        for gone in published.difference(&now) {
            me.delete(gone);
        }
        drop(cc);
        published = now;
    }
}

/// What this agent has read of one node's keys, kept between rounds so that a round reads only
/// the keys that changed since (chitchat versions every key; a node's max version only grows).
#[derive(Default)]
struct Decoded {
    /// The node's max version and GC floor when its keys were last read.
    max_version: u64,
    last_gc_version: u64,
    address: String,
    info: Option<NodeInfo>,
    containers: BTreeMap<String, pb::ContainerSummary>,
    left: bool,
    services_digest: String,
    volumes: Vec<String>,
    /// The view must be given every container next time (first sight, or a full re-read).
    full: bool,
    /// Containers changed or removed since the view was last given this node.
    upserted: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl Decoded {
    /// Reads the keys of `ns` newer than the last read: O(changed keys) decoding, where
    /// re-decoding every container row of a node on each change of any of its keys was most of
    /// an agent's CPU in a busy cluster (41 % of samples under the read loop at N = 50).
    fn read(&mut self, ns: &chitchat::NodeState, node: &str) {
        // Re-read everything when the history has a gap: the node's state was reset (its max
        // version went back), or tombstones newer than our last read were collected, so
        // deletions could be missed.
        let reset = ns.max_version() < self.max_version
            || (ns.last_gc_version() > self.last_gc_version
                && ns.last_gc_version() > self.max_version);
        let floor = if reset || self.max_version == 0 {
            self.containers.clear();
            self.upserted.clear();
            self.removed.clear();
            self.full = true;
            0
        } else {
            self.max_version
        };
        for (key, v) in ns
            .key_values_including_deleted()
            .filter(|(_, v)| v.version > floor)
        {
            let deleted = v.is_deleted();
            match key {
                KEY_NODE if !deleted => match serde_json::from_str::<NodeInfo>(&v.value) {
                    Ok(info) => self.info = Some(info),
                    Err(e) => tracing::debug!(%node, error = %e, "undecodable node row"),
                },
                KEY_GRPC if !deleted => self.address = v.value.clone(),
                KEY_VOLUMES if !deleted => {
                    self.volumes = bounded_volumes(v.value.split('\n'));
                }
                KEY_LEFT => self.left = !deleted,
                KEY_SERVICES if !deleted => {
                    // A digest is 16 hex digits; anything else is not one.
                    if v.value.len() <= 64 && v.value.bytes().all(|b| b.is_ascii_hexdigit()) {
                        self.services_digest = v.value.clone();
                    }
                }
                _ => {
                    let Some(id) = key.strip_prefix(PREFIX_CONTAINER) else {
                        continue;
                    };
                    let decoded = if deleted {
                        None
                    } else {
                        serde_json::from_str::<ContainerInfo>(&v.value)
                            .inspect_err(|e| tracing::debug!(%node, id, error = %e, "undecodable container row"))
                            .ok()
                    };
                    match decoded {
                        Some(ci) => {
                            self.containers
                                .insert(id.to_owned(), summary_from_info(node, id, ci));
                            self.removed.remove(id);
                            self.upserted.insert(id.to_owned());
                        }
                        None => {
                            if self.containers.remove(id).is_some() {
                                self.upserted.remove(id);
                                self.removed.insert(id.to_owned());
                            }
                        }
                    }
                }
            }
        }
        self.max_version = ns.max_version();
        self.last_gc_version = ns.last_gc_version();
    }

    /// What the view needs to catch up with this node, which is then taken as given.
    fn take_containers(&mut self, all: bool) -> PeerContainers {
        let upserted = std::mem::take(&mut self.upserted);
        let removed = std::mem::take(&mut self.removed);
        if all || std::mem::take(&mut self.full) {
            return PeerContainers::All(self.containers.clone());
        }
        PeerContainers::Delta {
            upserted: upserted
                .iter()
                .filter_map(|id| self.containers.get(id).cloned())
                .collect(),
            removed: removed.into_iter().collect(),
        }
    }
}

struct Seen {
    heartbeat: u64,
    at: Instant,
}

/// Rebuilds the peer rows from chitchat's state twice a round, decoding a node's keys again only
/// when its version moved.
async fn read_loop(
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    me: ChitchatId,
    state: Arc<State>,
    cfg: GossipConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cache: HashMap<ChitchatId, Decoded> = HashMap::new();
    let mut seen: HashMap<ChitchatId, Seen> = HashMap::new();
    // What the view was last given per node: (generation, version, status).
    let mut given: HashMap<String, (u64, u64, pb::NodeStatus)> = HashMap::new();
    let mut last_lonely_warning: Option<Instant> = None;
    let started = Instant::now();
    let mut tick = tokio::time::interval(cfg.interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let mut changed: BTreeMap<String, PeerUpdate> = BTreeMap::new();
        let mut heard: Vec<(String, Instant)> = Vec::new();
        let mut present: HashSet<String> = HashSet::new();
        let mut live_peers = 0usize;
        {
            let cc = chitchat.lock().await;
            let live: HashSet<&ChitchatId> = cc.live_nodes().collect();
            let dead: HashSet<&ChitchatId> = cc.dead_nodes().collect();
            // The newest generation of each node name wins; older ones are its past lives.
            let mut newest: HashMap<&str, &ChitchatId> = HashMap::new();
            for id in cc.node_states().keys() {
                if id.node_id == me.node_id {
                    continue;
                }
                newest
                    .entry(&*id.node_id)
                    .and_modify(|cur| {
                        if id.generation_id > cur.generation_id {
                            *cur = id;
                        }
                    })
                    .or_insert(id);
            }
            for id in newest.into_values() {
                let Some(ns) = cc.node_state(id) else {
                    continue;
                };
                let hb = u64::from(ns.heartbeat());
                let entry = seen.entry(id.clone()).or_insert(Seen {
                    heartbeat: hb,
                    at: now,
                });
                if entry.heartbeat != hb {
                    entry.heartbeat = hb;
                    entry.at = now;
                }
                let silent = now.duration_since(entry.at);
                let d = cache.entry(id.clone()).or_default();
                if d.max_version != ns.max_version() || d.last_gc_version != ns.last_gc_version() {
                    d.read(ns, &id.node_id);
                }
                if d.info.is_none() {
                    // Joined, but has not told us about itself yet.
                    continue;
                }
                let version = d.max_version;
                let status = if d.left {
                    pb::NodeStatus::Left
                } else if dead.contains(id) {
                    pb::NodeStatus::Down
                } else if live.contains(id) {
                    live_peers += 1;
                    let timeout = cc
                        .failure_detection_timeout(id)
                        .unwrap_or(cfg.interval.mul_f64(cfg.phi_threshold));
                    if silent > timeout.mul_f64(SUSPECT_AT) {
                        pb::NodeStatus::Suspect
                    } else {
                        pb::NodeStatus::Alive
                    }
                } else {
                    // Known, neither live nor declared dead yet: not heard from enough.
                    pb::NodeStatus::Suspect
                };
                let name = id.node_id.to_string();
                present.insert(name.clone());
                heard.push((name.clone(), entry.at));
                let key = (id.generation_id, version, status);
                let previous = given.insert(name.clone(), key);
                if previous != Some(key) {
                    // A node the view does not hold (first sight, another generation, or back
                    // after being gone) gets all its containers; otherwise only what changed.
                    let all =
                        previous.is_none_or(|(generation, ..)| generation != id.generation_id);
                    changed.insert(
                        name,
                        PeerUpdate {
                            node: pb::Node {
                                generation: id.generation_id,
                                ..node_row(&id.node_id, d, status)
                            },
                            last_seen: entry.at,
                            containers: d.take_containers(all),
                        },
                    );
                }
            }
            // Forget decoded state of generations chitchat itself forgot.
            let known: HashSet<&ChitchatId> = cc.node_states().keys().collect();
            cache.retain(|id, _| known.contains(id));
            seen.retain(|id, _| known.contains(id));
        }
        if !cfg.seeds.is_empty()
            && live_peers == 0
            && now.duration_since(started) > LONELY_WARNING_EVERY
            && last_lonely_warning.is_none_or(|t| now.duration_since(t) > LONELY_WARNING_EVERY)
        {
            tracing::warn!(seeds = ?cfg.seeds, "no peer reachable yet; still trying the join addresses");
            last_lonely_warning = Some(now);
        }
        let gone: Vec<String> = given
            .keys()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        for n in &gone {
            given.remove(n);
        }
        state.apply(Change::Peers {
            changed,
            gone,
            seen: heard,
        });
    }
}

fn node_row(name: &str, d: &Decoded, status: pb::NodeStatus) -> pb::Node {
    let unknown = NodeInfo::default();
    let i = d.info.as_ref().unwrap_or(&unknown);
    pb::Node {
        name: name.to_owned(),
        address: d.address.clone(),
        status: status as i32,
        services_digest: d.services_digest.clone(),
        stats: Some(pb::NodeStats {
            cpu_percent: i.cpu,
            cores: i.cores,
            memory_used_bytes: i.mem_used,
            memory_total_bytes: i.mem_total,
            disk_used_bytes: i.disk_used,
            disk_total_bytes: i.disk_total,
            load1: i.load[0],
            load5: i.load[1],
            load15: i.load[2],
            uptime_secs: i.uptime,
            os: i.os.clone(),
            kernel: i.kernel.clone(),
            containers: None,
            gossip_sent_bytes: 0,
            gossip_received_bytes: 0,
            gossip_rejected_datagrams: 0,
        }),
        runtime: Some(pb::RuntimeStatus {
            available: i.rt_ok,
            version: i.rt_version.clone(),
            error: i.rt_error.clone(),
        }),
        labels: i.labels.clone(),
        agent_version: i.version.clone(),
        updated_unix_ms: 0,
        last_seen_ms_ago: 0,
        allocatable_cpus: i.alloc_cpus,
        allocatable_memory_bytes: i.alloc_mem,
        reserved_cpus: i.res_cpus,
        reserved_memory_bytes: i.res_mem,
        volumes: d.volumes.clone(),
        node_id: i.id.chars().take(64).collect(),
        // The service store's to say (`state::Change::NodeRecords`), not the row's.
        drained: false,
        // The caller's, from the member's id.
        generation: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_and_plain_agents_have_different_cluster_ids() {
        assert_eq!(cluster_id(false), "berth");
        assert_ne!(cluster_id(true), cluster_id(false));
    }

    #[test]
    fn container_rows_survive_the_trip_through_gossip() {
        let c = pb::ContainerSummary {
            id: "abc".into(),
            name: "web".into(),
            image: "nginx:1".into(),
            node: "n1".into(),
            state: "running".into(),
            created_unix_ms: 1,
            started_unix_ms: 2,
            finished_unix_ms: 0,
            exit_code: 0,
            restart_count: 1,
            ports: vec![pb::PortMapping {
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
            }],
            cpu_percent: 12.0,
            memory_bytes: 3 * MIB,
            cpus: 0.5,
            memory_limit_bytes: 64 * MIB,
            labels: [("team".to_string(), "infra".to_string())].into(),
            health: "healthy".into(),
            slot: Some(pb::ServiceSlot {
                service_id: "0a1b".into(),
                service: "web".into(),
                slot: "2".into(),
                version: 3,
            }),
            request_id: "0f3c9d2e7b1a4c5d8e9f0a1b2c3d4e5f".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&container_info(&c)).expect("encode");
        let back = summary_from_info("n1", "abc", serde_json::from_str(&json).expect("decode"));
        assert_eq!(back, c);
        assert!(json.len() < 380, "compact: {} bytes", json.len());
    }

    #[test]
    fn noise_is_rounded_away() {
        let node = |cpu: f64, mem: u64| pb::Node {
            stats: Some(pb::NodeStats {
                cpu_percent: cpu,
                memory_used_bytes: mem,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            node_info(&node(10.2, 1000 * MIB)),
            node_info(&node(9.8, 1001 * MIB))
        );
        assert_ne!(
            node_info(&node(10.2, 1000 * MIB)),
            node_info(&node(30.0, 1000 * MIB))
        );
    }

    #[test]
    fn a_container_s_figures_survive_the_trip_as_the_consoles_print_them() {
        use berth_shared::quantity::format_bytes;
        for bytes in [0, 1000, 335_872, 5 * MIB + 12_345, 3 * 1024 * MIB + 7] {
            let once = round_container_memory(bytes);
            assert_eq!(round_container_memory(once), once, "stable: {bytes}");
            // Within a 32nd of the unit the consoles print in: the same figure to a tenth.
            let off = once.abs_diff(bytes) as f64;
            assert!(
                off <= (bytes as f64 / 32.0).max(0.5),
                "{bytes}: {}",
                format_bytes(once)
            );
        }
        assert_eq!(
            round_container_memory(335_872),
            335_872,
            "328 KiB is not 0 B"
        );
        // A byte's noise does not change the row.
        assert_eq!(
            round_container_memory(5 * MIB),
            round_container_memory(5 * MIB + 100)
        );
        assert_eq!(round_container_cpu(0.44), 0.4);
        assert_eq!(round_container_cpu(37.6), 38.0);
    }

    #[test]
    fn volume_names_travel_bounded() {
        // What we publish: sorted, each name at most 255 bytes, at most 64 of them.
        let mut names: Vec<String> = (0..200).rev().map(|i| format!("vol-{i:03}")).collect();
        names.insert(0, "a".repeat(300));
        names.insert(1, "a\nb".into());
        let published = bounded_volumes(names.iter().map(String::as_str));
        assert_eq!(published.len(), MAX_GOSSIPED_VOLUMES);
        assert_eq!(
            published[..2],
            ["vol-000", "vol-001"],
            "sorted; the long and the broken dropped"
        );
        let mut ns = chitchat::NodeState::for_test();
        ns.set(KEY_VOLUMES, published.join("\n"));
        let mut d = Decoded::default();
        d.read(&ns, "n1");
        assert_eq!(node_row("n1", &d, pb::NodeStatus::Alive).volumes, published);

        // A hostile row with more is cut on the way in.
        ns.set(KEY_VOLUMES, vec!["y".repeat(200); 500].join("\n"));
        d.read(&ns, "n1");
        let row = node_row("n1", &d, pb::NodeStatus::Alive);
        assert!(!row.volumes.is_empty());
        assert!(row.volumes.iter().map(String::len).sum::<usize>() <= MAX_GOSSIPED_VOLUME_BYTES);
        // The node's figures moving does not touch its volumes' key.
        ns.set(KEY_VOLUMES, "pgdata");
        d.read(&ns, "n1");
        ns.set(KEY_NODE, node_json());
        d.read(&ns, "n1");
        assert_eq!(
            node_row("n1", &d, pb::NodeStatus::Alive).volumes,
            ["pgdata"]
        );
    }

    fn row(id: &str, state: &str) -> String {
        let c = pb::ContainerSummary {
            id: id.into(),
            name: format!("name-{id}"),
            state: state.into(),
            ..Default::default()
        };
        serde_json::to_string(&container_info(&c)).expect("encode")
    }

    fn node_json() -> String {
        serde_json::to_string(&NodeInfo::default()).expect("encode")
    }

    fn ids(list: &[pb::ContainerSummary]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|c| (c.id.as_str(), c.state.as_str()))
            .collect()
    }

    #[test]
    fn a_node_is_read_whole_once_then_by_its_changes() {
        let mut ns = chitchat::NodeState::for_test();
        ns.set(KEY_GRPC, "127.0.0.1:1");
        ns.set(KEY_NODE, node_json());
        ns.set("c:a", row("a", "running"));
        ns.set("c:b", row("b", "running"));
        let mut d = Decoded::default();
        d.read(&ns, "n1");
        assert_eq!(d.address, "127.0.0.1:1");
        assert!(d.info.is_some());
        let PeerContainers::All(all) = d.take_containers(false) else {
            panic!("first sight must give every container")
        };
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(all.values().all(|c| c.node == "n1"));

        // One container changes, one goes, one comes: only those are in the delta.
        ns.set("c:a", row("a", "exited"));
        ns.delete("c:b");
        ns.set("c:c", row("c", "created"));
        d.read(&ns, "n1");
        let PeerContainers::Delta { upserted, removed } = d.take_containers(false) else {
            panic!("a known node gets a delta")
        };
        assert_eq!(ids(&upserted), [("a", "exited"), ("c", "created")]);
        assert_eq!(removed, ["b"]);
        assert_eq!(d.containers.keys().collect::<Vec<_>>(), ["a", "c"]);

        // Nothing new: an empty delta. Asked for all (the view forgot the node): all.
        d.read(&ns, "n1");
        let PeerContainers::Delta { upserted, removed } = d.take_containers(false) else {
            panic!("a known node gets a delta")
        };
        assert!(upserted.is_empty() && removed.is_empty());
        let PeerContainers::All(all) = d.take_containers(true) else {
            panic!("asked for all")
        };
        assert_eq!(all.len(), 2);

        // A row that comes and goes between two reads is neither upserted nor removed.
        ns.set("c:d", row("d", "running"));
        ns.delete("c:d");
        ns.set(KEY_LEFT, "1");
        d.read(&ns, "n1");
        assert!(d.left);
        let PeerContainers::Delta { upserted, removed } = d.take_containers(false) else {
            panic!("a known node gets a delta")
        };
        assert!(
            upserted.is_empty() && removed.is_empty(),
            "{upserted:?} {removed:?}"
        );
    }

    #[test]
    fn a_node_whose_history_went_back_is_read_again_whole() {
        let mut ns = chitchat::NodeState::for_test();
        ns.set(KEY_NODE, node_json());
        for id in ["a", "b", "c"] {
            ns.set(format!("c:{id}"), row(id, "running"));
        }
        let mut d = Decoded::default();
        d.read(&ns, "n1");
        let _ = d.take_containers(false);
        // The same node id with a shorter history (its state was reset): "b" is not in it, and
        // no tombstone says so.
        let mut reset = chitchat::NodeState::for_test();
        reset.set(KEY_NODE, node_json());
        reset.set("c:a", row("a", "running"));
        d.read(&reset, "n1");
        let PeerContainers::All(all) = d.take_containers(false) else {
            panic!("a reset gives every container")
        };
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a"]);
    }
}
