//! What a member's gossip datagram may say, checked before chitchat decodes it: the seal proves
//! who sent it, not that it is sane. A datagram is refused whole when a version, a heartbeat or
//! a GC floor is beyond [`MAX_VERSION`] (no agent counts that far; `u64::MAX` overflowed
//! chitchat's counters and killed a node's publishing), when a node id is empty, too long or not
//! printable, or when it does not parse. And every part of a delta about this node itself (its
//! current incarnation or a later one) is cut out, as is a digest entry for a later one, so a
//! node's own keys are only ever written by the node: one datagram can no longer re-point its
//! address or mark it as left.
//!
//! chitchat's wire format (chitchat 0.13): `magic u16 | protocol u8 | type u8`, then for SYN a
//! digest and the cluster id, for SYN-ACK a digest and a delta, for ACK a delta. Integers are
//! little-endian, strings a u16 length and UTF-8. A digest (v0) is a u16 count of `(id,
//! heartbeat, gc floor, max version)`; v1 and a delta are block streams (zstd or plain blocks,
//! a u16 length each) of entries and delta ops. When something was cut, the rest is written
//! back as blocks the same way; otherwise chitchat gets the bytes as they came.

use std::net::SocketAddr;

/// chitchat's magic number.
const MAGIC: u16 = 45_139;
/// No version, heartbeat or GC floor an honest agent sends comes near this: 2^48 updates.
pub const MAX_VERSION: u64 = 1 << 48;
/// The longest node id (a node name) accepted.
const MAX_NODE_ID: usize = berth_shared::constraint::MAX_NODE_NAME_LEN;
/// chitchat decompresses a block into at most this.
const MAX_BLOCK: usize = u16::MAX as usize;
/// The most a block stream may unpack to.
const MAX_STREAM: usize = 4 << 20;
/// What may be handed to chitchat over loopback UDP: a re-encoded datagram larger than this
/// (a member's crafted one) is refused rather than sent.
pub const MAX_HANDOFF: usize = 65_507;

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("it does not parse: {0}")]
    Parse(&'static str),
    #[error("a version, heartbeat or GC floor is beyond {MAX_VERSION}")]
    Version,
    #[error("a node id is empty, longer than {MAX_NODE_ID} bytes or not printable")]
    NodeId,
    #[error("a node delta sets its max version next to key updates, which chitchat never sends")]
    MaxVersion,
    #[error("re-encoded, it no longer fits a datagram")]
    TooLarge,
}

/// The rule node ids on the wire follow, for `--name` too: a name the others would refuse
/// would make every datagram that lists it refused. Field: `name`.
pub fn check_node_name(name: &str) -> Result<(), berth_shared::ValidationError> {
    berth_shared::constraint::validate_node_name("name", name)
}

/// This agent's chitchat identity, as the wire carries it.
#[derive(Debug, Clone)]
pub struct Own {
    pub node_id: String,
    pub generation: u64,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if self.buf.len() < n {
            return Err(Invalid::Parse("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Invalid> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, Invalid> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn version(&mut self) -> Result<u64, Invalid> {
        let v = self.u64()?;
        if v > MAX_VERSION {
            return Err(Invalid::Version);
        }
        Ok(v)
    }

    fn str(&mut self) -> Result<&'a str, Invalid> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| Invalid::Parse("a string is not UTF-8"))
    }

    fn addr(&mut self) -> Result<SocketAddr, Invalid> {
        let ip: std::net::IpAddr = match self.u8()? {
            4 => {
                let b = self.take(4)?;
                std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                std::net::Ipv6Addr::from(a).into()
            }
            _ => return Err(Invalid::Parse("an address of no IP version")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// A chitchat id: node id, generation, gossip address.
    fn id(&mut self) -> Result<(&'a str, u64), Invalid> {
        let node = self.str()?;
        if check_node_name(node).is_err() {
            return Err(Invalid::NodeId);
        }
        let generation = self.u64()?;
        self.addr()?;
        Ok((node, generation))
    }
}

/// A block stream, decompressed.
fn stream(r: &mut Reader<'_>) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::new();
    loop {
        match r.u8()? {
            0 => return Ok(out),
            1 => {
                let len = r.u16()? as usize;
                let block = r.take(len)?;
                let plain = zstd::bulk::decompress(block, MAX_BLOCK)
                    .map_err(|_| Invalid::Parse("a block does not decompress"))?;
                out.extend_from_slice(&plain);
            }
            2 => {
                let len = r.u16()? as usize;
                out.extend_from_slice(r.take(len)?);
            }
            _ => return Err(Invalid::Parse("a block of no known type")),
        }
        // chitchat bounds the compressed size; this bounds what a member can make us hold.
        if out.len() > MAX_STREAM {
            return Err(Invalid::Parse("a stream that unpacks to more than 4 MiB"));
        }
    }
}

/// `bytes` as a block stream: zstd blocks of at most 16 KiB of input, as chitchat writes them
/// (a plain block where one does not compress), then the end of the stream.
fn plain_stream(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 8);
    for block in bytes.chunks(16 * 1024) {
        match zstd::bulk::compress(block, 1) {
            Ok(z) if z.len() < block.len() => {
                out.push(1);
                out.extend_from_slice(&(z.len() as u16).to_le_bytes());
                out.extend_from_slice(&z);
            }
            _ => {
                out.push(2);
                out.extend_from_slice(&(block.len() as u16).to_le_bytes());
                out.extend_from_slice(block);
            }
        }
    }
    out.push(0);
    out
}

/// A digest checked, with any entry about a later incarnation of this node cut (its heartbeat
/// would make chitchat take a forged incarnation of us for real), re-encoded; and whether
/// anything was cut. Our current incarnation stays: every peer's digest lists it, and chitchat
/// ignores a heartbeat for itself.
fn digest(r: &mut Reader<'_>, protocol: u8, own: &Own) -> Result<(Vec<u8>, bool), Invalid> {
    // One entry: whether it is about a later us.
    let entry = |r: &mut Reader<'_>| -> Result<bool, Invalid> {
        let (node, generation) = r.id()?;
        r.version()?; // heartbeat
        r.version()?; // GC floor
        r.version()?; // max version
        Ok(node == own.node_id && generation > own.generation)
    };
    let mut cut = false;
    let mut kept = Vec::new();
    let mut count: u16 = 0;
    let mut walk = |r: &mut Reader<'_>| -> Result<(), Invalid> {
        let before = r.buf;
        if entry(r)? {
            cut = true;
        } else {
            kept.extend_from_slice(&before[..before.len() - r.buf.len()]);
            count += 1;
        }
        Ok(())
    };
    match protocol {
        0 => {
            for _ in 0..r.u16()? {
                walk(r)?;
            }
            let mut out = count.to_le_bytes().to_vec();
            out.extend_from_slice(&kept);
            Ok((out, cut))
        }
        _ => {
            let plain = stream(r)?;
            let mut inner = Reader { buf: &plain };
            while !inner.buf.is_empty() {
                walk(&mut inner)?;
            }
            Ok((plain_stream(&kept), cut))
        }
    }
}

/// A delta checked, with the ops about this node (now or later) cut out, re-encoded; and
/// whether anything was cut.
fn delta(r: &mut Reader<'_>, own: &Own) -> Result<(Vec<u8>, bool), Invalid> {
    let plain = stream(r)?;
    let mut ops = Reader { buf: &plain };
    let mut kept = Vec::with_capacity(plain.len());
    // Whether the ops being read belong to a node delta about ourselves.
    let mut about_us = false;
    let mut cut = false;
    // Within the current node delta: key updates seen, and a max version set. chitchat sends
    // a max version only for a node delta with no key updates; both together can leave its
    // max below a key's version, which its state asserts against (a panic).
    let (mut keys_seen, mut max_set) = (false, false);
    while !ops.buf.is_empty() {
        let start = plain.len() - ops.buf.len();
        match ops.u8()? {
            0 => {
                let (node, generation) = ops.id()?;
                ops.version()?; // GC floor
                ops.version()?; // from version
                about_us = node == own.node_id && generation >= own.generation;
                (keys_seen, max_set) = (false, false);
            }
            1 => {
                ops.str()?; // key
                ops.str()?; // value
                ops.version()?;
                if ops.u8()? > 2 {
                    return Err(Invalid::Parse("a key of no known deletion state"));
                }
                if max_set {
                    return Err(Invalid::MaxVersion);
                }
                keys_seen = true;
            }
            2 => {
                ops.version()?; // max version
                if keys_seen || max_set {
                    return Err(Invalid::MaxVersion);
                }
                max_set = true;
            }
            _ => return Err(Invalid::Parse("a delta op of no known kind")),
        }
        let end = plain.len() - ops.buf.len();
        if about_us {
            cut = true;
        } else {
            kept.extend_from_slice(&plain[start..end]);
        }
    }
    Ok((plain_stream(&kept), cut))
}

/// Checks a chitchat datagram from a member; returns it as chitchat should read it (with any
/// part about this node cut out), or why it is refused.
pub fn check(datagram: &[u8], own: &Own) -> Result<Vec<u8>, Invalid> {
    let mut r = Reader { buf: datagram };
    if r.u16()? != MAGIC {
        return Err(Invalid::Parse("not chitchat"));
    }
    let protocol = r.u8()?;
    if protocol > 1 {
        return Err(Invalid::Parse("an unknown protocol version"));
    }
    let kind = r.u8()?;
    let mut out = datagram[..4].to_vec();
    let mut cut = false;
    match kind {
        // SYN: a digest and the cluster id.
        0 => {
            let (d, c) = digest(&mut r, protocol, own)?;
            out.extend_from_slice(&d);
            cut |= c;
            let rest = r.buf;
            r.str()?;
            out.extend_from_slice(&rest[..rest.len() - r.buf.len()]);
        }
        // SYN-ACK: a digest and a delta; ACK: a delta. Both checked and cut.
        1 | 2 => {
            if kind == 1 {
                let (d, c) = digest(&mut r, protocol, own)?;
                out.extend_from_slice(&d);
                cut |= c;
            }
            let (d, c) = delta(&mut r, own)?;
            out.extend_from_slice(&d);
            cut |= c;
        }
        3 => {}
        _ => return Err(Invalid::Parse("a message of no known type")),
    }
    // Nothing cut (the usual case): chitchat gets the bytes as they came.
    if !cut {
        return Ok(datagram.to_vec());
    }
    if out.len() > MAX_HANDOFF {
        return Err(Invalid::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(buf: &mut Vec<u8>, node: &str, generation: u64) {
        buf.extend_from_slice(&(node.len() as u16).to_le_bytes());
        buf.extend_from_slice(node.as_bytes());
        buf.extend_from_slice(&generation.to_le_bytes());
        buf.extend_from_slice(&[4, 127, 0, 0, 1]);
        buf.extend_from_slice(&7070u16.to_le_bytes());
    }

    fn kv(buf: &mut Vec<u8>, key: &str, value: &str, version: u64) {
        buf.push(1);
        for s in [key, value] {
            buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        buf.extend_from_slice(&version.to_le_bytes());
        buf.push(0);
    }

    fn node_op(buf: &mut Vec<u8>, node: &str, generation: u64) {
        buf.push(0);
        id(buf, node, generation);
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.extend_from_slice(&0u64.to_le_bytes());
    }

    /// An ACK carrying `ops` in one zstd block, as chitchat sends it.
    fn ack(ops: &[u8]) -> Vec<u8> {
        let mut d = MAGIC.to_le_bytes().to_vec();
        d.extend_from_slice(&[1, 2]);
        let z = zstd::bulk::compress(ops, 3).expect("compress");
        d.push(1);
        d.extend_from_slice(&(z.len() as u16).to_le_bytes());
        d.extend_from_slice(&z);
        d.push(0);
        d
    }

    fn own() -> Own {
        Own {
            node_id: "me".into(),
            generation: 100,
        }
    }

    #[test]
    fn deltas_about_this_node_are_cut_and_the_rest_kept() {
        let mut ops = Vec::new();
        node_op(&mut ops, "peer", 5);
        kv(&mut ops, "grpc", "10.0.0.2:7070", 3);
        node_op(&mut ops, "me", 100);
        kv(&mut ops, "grpc", "6.6.6.6:7070", 99);
        kv(&mut ops, "left", "1", 100);
        node_op(&mut ops, "me", 50); // a past life: kept
        kv(&mut ops, "node", "{}", 2);
        let out = check(&ack(&ops), &own()).expect("valid");
        let mut r = Reader { buf: &out[4..] };
        let kept = stream(&mut r).expect("stream");
        let text = String::from_utf8_lossy(&kept);
        assert!(text.contains("10.0.0.2:7070"));
        assert!(!text.contains("6.6.6.6"), "our own address was re-pointed");
        assert!(!text.contains("left"));
        assert!(
            text.contains("{}"),
            "a past life of ours is someone else's to tell"
        );
    }

    #[test]
    fn digest_entries_about_a_later_incarnation_of_this_node_are_cut() {
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for (node, generation) in [("peer", 5), ("me", 1 << 62), ("me", 50)] {
            let mut one = Vec::new();
            id(&mut one, node, generation);
            one.extend_from_slice(&[0u8; 24]);
            entries.extend_from_slice(&one);
            if generation != 1 << 62 {
                expected.extend_from_slice(&one);
            }
        }
        let mut d = MAGIC.to_le_bytes().to_vec();
        d.extend_from_slice(&[1, 0]); // protocol v1, SYN
        d.extend_from_slice(&plain_stream(&entries));
        d.extend_from_slice(&5u16.to_le_bytes());
        d.extend_from_slice(b"berth");
        let out = check(&d, &own()).expect("valid");
        let mut r = Reader { buf: &out[4..] };
        let kept = stream(&mut r).expect("stream");
        assert_eq!(
            kept, expected,
            "the later incarnation of us is cut, the rest kept"
        );
        assert_eq!(r.str().expect("cluster id"), "berth");
    }

    #[test]
    fn an_honest_datagram_passes_as_it_came() {
        let mut ops = Vec::new();
        node_op(&mut ops, "peer", 5);
        kv(&mut ops, "grpc", "10.0.0.2:7070", 3);
        node_op(&mut ops, "me", 50);
        kv(&mut ops, "node", "{}", 2);
        let d = ack(&ops);
        assert_eq!(check(&d, &own()).expect("valid"), d);
    }

    #[test]
    fn a_version_near_u64_max_refuses_the_datagram() {
        let mut ops = Vec::new();
        node_op(&mut ops, "peer", 5);
        kv(&mut ops, "grpc", "10.0.0.2:7070", u64::MAX);
        assert_eq!(check(&ack(&ops), &own()), Err(Invalid::Version));
        let mut ops = Vec::new();
        node_op(&mut ops, "peer", 5);
        ops.push(2);
        ops.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check(&ack(&ops), &own()), Err(Invalid::Version));
    }

    #[test]
    fn a_max_version_beside_key_updates_is_refused_before_chitchat_asserts() {
        for order in [true, false] {
            let mut ops = Vec::new();
            node_op(&mut ops, "peer", 5);
            let set_max = |ops: &mut Vec<u8>| {
                ops.push(2);
                ops.extend_from_slice(&10u64.to_le_bytes());
            };
            if order {
                kv(&mut ops, "grpc", "10.0.0.2:7070", 12);
                set_max(&mut ops);
            } else {
                set_max(&mut ops);
                kv(&mut ops, "grpc", "10.0.0.2:7070", 12);
            }
            assert_eq!(check(&ack(&ops), &own()), Err(Invalid::MaxVersion));
        }
        // Alone, as chitchat sends it: fine.
        let mut ops = Vec::new();
        node_op(&mut ops, "peer", 5);
        ops.push(2);
        ops.extend_from_slice(&10u64.to_le_bytes());
        assert!(check(&ack(&ops), &own()).is_ok());
    }

    #[test]
    fn a_huge_heartbeat_in_a_digest_refuses_the_datagram() {
        let mut d = MAGIC.to_le_bytes().to_vec();
        d.extend_from_slice(&[0, 0]); // protocol v0, SYN
        d.extend_from_slice(&1u16.to_le_bytes());
        id(&mut d, "peer", 5);
        d.extend_from_slice(&u64::MAX.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        d.extend_from_slice(&5u16.to_le_bytes());
        d.extend_from_slice(b"berth");
        assert_eq!(check(&d, &own()), Err(Invalid::Version));
    }

    #[test]
    fn garbage_and_bad_names_are_refused_without_panicking() {
        assert!(check(&[], &own()).is_err());
        assert!(check(&[0x53, 0xb0, 1, 2, 1, 0xff, 0xff], &own()).is_err());
        let mut ops = Vec::new();
        node_op(&mut ops, "bad\nname", 5);
        assert_eq!(check(&ack(&ops), &own()), Err(Invalid::NodeId));
        for n in 0..64u8 {
            let mut d = ack(&[]);
            d.extend(std::iter::repeat_n(n, n as usize));
            let _ = check(&d, &own());
        }
    }
}
