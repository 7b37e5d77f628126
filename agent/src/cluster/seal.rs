//! Sealed gossip: every datagram is encrypted and authenticated with ChaCha20-Poly1305 under a
//! key derived from the cluster secret (HKDF-SHA256), so nothing from a sender without the
//! secret is ever decoded, and what a member sends cannot be read on the wire.
//!
//! A datagram is `version (1) | key id (4) | nonce (12) | ciphertext | tag (16)`; the plaintext
//! is `sent at, unix ms (8, big-endian) | chitchat envelope`, and the version and key id are
//! authenticated too. A datagram is dropped, and counted by reason, when it is malformed, names
//! a key this agent does not hold, fails authentication, was sent more than [`WINDOW`] from now
//! (so a replay is only possible inside the window), or carries a nonce already seen inside the
//! window (a replay, or one of this agent's own datagrams sent back to it).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The wire format's version byte.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TIME_LEN: usize = 8;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = HEADER_LEN + TIME_LEN + TAG_LEN;
/// A datagram sent further than this from the receiver's clock is dropped: agents' clocks must
/// agree within it (NTP does far better).
pub const WINDOW: Duration = Duration::from_secs(60);
/// At most this many nonces are remembered; only authenticated datagrams are remembered, so
/// only members can fill it, and gossip at 100 nodes stays far below it.
const MAX_SEEN: usize = 200_000;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Too short, or an unknown version.
    Malformed,
    /// Sealed with a key this agent does not hold: another cluster, or an old secret.
    UnknownKey,
    /// Authentication failed: forged or altered.
    Forged,
    /// Sent outside [`WINDOW`] of this agent's clock.
    Stale,
    /// Its nonce was seen already.
    Replayed,
    /// Sealed by a member, but what it says is out of bounds (see `cluster::wire`).
    Invalid,
}

impl Rejected {
    pub const ALL: [Rejected; 6] = [
        Rejected::Malformed,
        Rejected::UnknownKey,
        Rejected::Forged,
        Rejected::Stale,
        Rejected::Replayed,
        Rejected::Invalid,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::UnknownKey => "unknown_key",
            Rejected::Forged => "forged",
            Rejected::Stale => "stale",
            Rejected::Replayed => "replayed",
            Rejected::Invalid => "invalid",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Rejected::Malformed => 0,
            Rejected::UnknownKey => 1,
            Rejected::Forged => 2,
            Rejected::Stale => 3,
            Rejected::Replayed => 4,
            Rejected::Invalid => 5,
        }
    }
}

/// One gossip key, derived from a cluster secret.
#[derive(Clone)]
pub struct GossipKey {
    id: [u8; KEY_ID_LEN],
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("GossipKey")
            .field("id", &hex(&self.id))
            .finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl GossipKey {
    /// The key for `secret`: HKDF-SHA256 with a fixed salt and purpose, so it shares nothing
    /// with the token a console sends or the cluster id. The id, a hash of the key, is not
    /// secret: it only picks the key during a rotation.
    pub fn derive(secret: &str) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"berth gossip seal v1"), secret.as_bytes());
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit (255 × 32), so expand cannot fail.
        let _ = hk.expand(b"chacha20poly1305 key", &mut key);
        let mut id = [0u8; KEY_ID_LEN];
        let _ = hk.expand(b"key id", &mut id);
        Self {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The key's public id, in hex.
    pub fn id(&self) -> String {
        hex(&self.id)
    }
}

/// Nonces seen inside the window, oldest first.
#[derive(Default)]
struct Seen {
    at: HashMap<[u8; NONCE_LEN], i64>,
    order: VecDeque<([u8; NONCE_LEN], i64)>,
}

impl Seen {
    /// Records `nonce`; false when it was there already.
    fn insert(&mut self, nonce: [u8; NONCE_LEN], now_ms: i64) -> bool {
        let horizon = now_ms - 2 * WINDOW.as_millis() as i64;
        while let Some(&(n, t)) = self.order.front() {
            if t >= horizon && self.order.len() < MAX_SEEN {
                break;
            }
            self.order.pop_front();
            if self.at.get(&n) == Some(&t) {
                self.at.remove(&n);
            }
        }
        if self.at.contains_key(&nonce) {
            return false;
        }
        self.at.insert(nonce, now_ms);
        self.order.push_back((nonce, now_ms));
        true
    }
}

/// Seals and opens datagrams with a keyring: the first key seals, every key opens.
pub struct Sealer {
    keys: Vec<GossipKey>,
    seen: Seen,
}

impl Sealer {
    /// `keys` must not be empty: the first one seals.
    pub fn new(keys: Vec<GossipKey>) -> Option<Self> {
        (!keys.is_empty()).then(|| Self {
            keys,
            seen: Seen::default(),
        })
    }

    /// Changes the keyring (a rotation): the first key seals from now on. The nonces seen
    /// are kept, so a replay stays a replay.
    pub fn set_keys(&mut self, keys: Vec<GossipKey>) {
        if !keys.is_empty() {
            self.keys = keys;
        }
    }

    /// `plaintext` sealed at `now_ms`, appended to `out`.
    pub fn seal(
        &mut self,
        plaintext: &[u8],
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        // Our own datagram sent back to us is a replay.
        self.seen.insert(nonce, now_ms);
        let mut body = Vec::with_capacity(TIME_LEN + plaintext.len());
        body.extend_from_slice(&now_ms.to_be_bytes());
        body.extend_from_slice(plaintext);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let aad = out[out.len() - HEADER_LEN..out.len() - NONCE_LEN].to_vec();
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: &aad,
                },
            )
            .map_err(|_| std::io::Error::other("cannot seal a gossip datagram"))?;
        out.extend_from_slice(&sealed);
        Ok(())
    }

    /// The plaintext of `datagram`, received at `now_ms`, or why it was dropped.
    pub fn open(&mut self, datagram: &[u8], now_ms: i64) -> Result<Vec<u8>, Rejected> {
        if datagram.len() < OVERHEAD || datagram[0] != VERSION {
            return Err(Rejected::Malformed);
        }
        let (header, sealed) = datagram.split_at(HEADER_LEN);
        let key_id = &header[1..1 + KEY_ID_LEN];
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(Rejected::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[1 + KEY_ID_LEN..]);
        let body = key
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: sealed,
                    aad: &header[..1 + KEY_ID_LEN],
                },
            )
            .map_err(|_| Rejected::Forged)?;
        let mut at = [0u8; TIME_LEN];
        at.copy_from_slice(&body[..TIME_LEN]);
        let sent = i64::from_be_bytes(at);
        if sent.abs_diff(now_ms) > WINDOW.as_millis() as u64 {
            return Err(Rejected::Stale);
        }
        if !self.seen.insert(nonce, now_ms) {
            return Err(Rejected::Replayed);
        }
        Ok(body[TIME_LEN..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(vec![GossipKey::derive(secret)]).expect("a key")
    }

    fn sealed(s: &mut Sealer, msg: &[u8], at: i64) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(msg, at, &mut out).expect("sealed");
        out
    }

    #[test]
    fn a_member_opens_what_a_member_sealed_and_the_wire_hides_it() {
        let (mut a, mut b) = (sealer("s3cret-token"), sealer("s3cret-token"));
        let msg = b"container web-1 env PASSWORD=x";
        let d = sealed(&mut a, msg, 1_000);
        assert_eq!(d.len(), msg.len() + OVERHEAD);
        assert!(!d.windows(5).any(|w| w == b"web-1"), "encrypted");
        assert_eq!(
            b.open(&d, 1_500).expect("opens"),
            b"container web-1 env PASSWORD=x"
        );
    }

    #[test]
    fn every_bad_datagram_is_dropped_with_its_reason() {
        let (mut a, mut b) = (sealer("one"), sealer("one"));
        let d = sealed(&mut a, b"hello", 10_000);
        assert_eq!(b.open(&d[..10], 10_000), Err(Rejected::Malformed));
        assert_eq!(
            b.open(b"\x00\x01\x02\x03\x04\x05", 10_000),
            Err(Rejected::Malformed)
        );
        let mut other = sealer("two");
        let foreign = sealed(&mut other, b"hello", 10_000);
        assert_eq!(b.open(&foreign, 10_000), Err(Rejected::UnknownKey));
        for i in [0, 1, HEADER_LEN, d.len() - 1] {
            let mut bent = d.clone();
            bent[i] ^= 0x40;
            let r = b.open(&bent, 10_000);
            assert!(
                matches!(
                    r,
                    Err(Rejected::Forged | Rejected::Malformed | Rejected::UnknownKey)
                ),
                "byte {i}: {r:?}"
            );
        }
        let window = WINDOW.as_millis() as i64;
        assert_eq!(b.open(&d, 10_000 + window + 1), Err(Rejected::Stale));
        assert_eq!(b.open(&d, 10_000 - window - 1), Err(Rejected::Stale));
        assert!(b.open(&d, 10_000).is_ok());
        assert_eq!(b.open(&d, 10_001), Err(Rejected::Replayed), "a replay");
        let own = sealed(&mut b, b"mine", 10_000);
        assert_eq!(b.open(&own, 10_000), Err(Rejected::Replayed), "reflected");
    }

    #[test]
    fn a_keyring_opens_with_every_key_and_seals_with_the_first() {
        let old = GossipKey::derive("old");
        let new = GossipKey::derive("new");
        assert_ne!(old.id(), new.id());
        let mut rolling = Sealer::new(vec![new.clone(), old.clone()]).expect("keys");
        let mut only_old = Sealer::new(vec![old]).expect("key");
        let mut only_new = Sealer::new(vec![new]).expect("key");
        let from_old = sealed(&mut only_old, b"x", 0);
        assert!(rolling.open(&from_old, 0).is_ok());
        let from_rolling = sealed(&mut rolling, b"y", 0);
        assert!(only_new.open(&from_rolling, 0).is_ok());
        assert_eq!(only_old.open(&from_rolling, 0), Err(Rejected::UnknownKey));
        assert!(Sealer::new(Vec::new()).is_none());
        assert!(!format!("{:?}", GossipKey::derive("hush")).contains("hush"));
    }

    #[test]
    fn the_replay_memory_forgets_what_the_window_already_refuses() {
        let mut seen = Seen::default();
        let n = [7u8; NONCE_LEN];
        assert!(seen.insert(n, 0));
        assert!(!seen.insert(n, 1));
        let later = 2 * WINDOW.as_millis() as i64 + 10;
        assert!(seen.insert([8u8; NONCE_LEN], later));
        assert!(
            seen.insert(n, later),
            "expired, forgotten: the window refuses it now"
        );
        assert_eq!(seen.at.len(), 2);
    }
}
