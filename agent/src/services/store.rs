//! The service store: every service definition, on every agent, in its data dir.
//!
//! An LWW map keyed by service name. Each write is stamped with a hybrid logical clock
//! ([`Clock`]) and the writing node's name; an entry replaces another only when its stamp is
//! greater, so every agent that has seen the same writes holds the same map, whatever order they
//! arrived in. A removal is a tombstone kept for [`DEFAULT_TOMBSTONE_TTL`], longer than any
//! node stays in the membership as down, so a node that was away cannot bring a removed service
//! back. The map is written whole to `services.pb` (temp file, fsync, rename) before a write
//! counts as taken: `kill -9` at any point leaves the old file or the new one.

use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::service::{ServiceSpec, validate_service_id, validate_service_name};
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a removed service's tombstone is kept. It must outlive `--dead-node-grace` (1 h by
/// default): a node away for longer than that is forgotten by the membership and rejoins as
/// new, and by then every tombstone it could contradict is still held by the others.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most service entries (tombstones included) a store holds; a peer that sends more is
/// refused.
pub const MAX_SERVICES: usize = 10_000;
/// The most token entries (revoked ones included), counted apart from services.
pub const MAX_TOKENS: usize = 10_000;
/// A token expired for this long is collected, revoked or not: a copy that comes back from a
/// node that was away is expired anyway.
pub const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A stamp further ahead of this agent's clock than this is refused from a peer: it would win
/// over every later write (a revocation, say) for that long.
const MAX_STAMP_AHEAD_MS: u64 = 3_600_000;
/// The store's file in the data dir.
pub const STORE_FILE: &str = "services.pb";

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A hybrid logical clock: physical milliseconds in the high 48 bits, a counter in the low 16.
/// It never goes back, and it moves past every stamp it observes, so a write taken after seeing
/// another is ordered after it even when the writers' clocks disagree.
#[derive(Debug, Default)]
pub struct Clock {
    last: u64,
}

impl Clock {
    pub fn tick(&mut self) -> u64 {
        let physical = now_ms() << 16;
        self.last = physical.max(self.last.saturating_add(1));
        self.last
    }

    pub fn observe(&mut self, hlc: u64) {
        // A stamp far in the future would freeze every later write behind it: observe at most
        // an hour ahead of our own clock.
        let cap = (now_ms() + 3_600_000) << 16;
        self.last = self.last.max(hlc.min(cap));
    }
}

/// `a` orders after `b`: by clock, then by node name.
pub fn newer(a: Option<&pb::Stamp>, b: Option<&pb::Stamp>) -> bool {
    let key = |s: Option<&pb::Stamp>| s.map(|s| (s.hlc, s.node.clone()));
    key(a) > key(b)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write the service store {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster holds {max} {kind} already")]
    Full { kind: &'static str, max: usize },
    #[error("the service store's writer stopped: {0}")]
    Writer(String),
}

/// Entries named `token/<id>` are the store's other kind: console tokens (see
/// `api::tokens`). A token entry is never collected: its tombstone is its revocation.
pub const TOKEN_PREFIX: &str = "token/";

/// The name of token `id`'s entry.
pub fn token_key(id: &str) -> String {
    format!("{TOKEN_PREFIX}{id}")
}

/// Entries named `node/<name>` are the store's third kind: a node's availability (drained,
/// forgotten). Never deleted: activating a node writes `drained: false`.
pub const NODE_PREFIX: &str = "node/";
/// The most node entries, counted apart.
pub const MAX_NODES: usize = 10_000;

/// The name of node `name`'s entry.
pub fn node_key(name: &str) -> String {
    format!("{NODE_PREFIX}{name}")
}

/// Whether an entry is a service's (not a token's or a node's).
pub fn is_service(e: &pb::ServiceEntry) -> bool {
    e.token.is_none() && e.node_record.is_none()
}

/// Checks a node entry: the name, its record, and nothing else.
fn validate_node_entry(e: &pb::ServiceEntry, name: &str) -> Result<(), ValidationError> {
    validate_stamp(e)?;
    berth_shared::constraint::validate_node_name("name", name)?;
    let r = e
        .node_record
        .as_ref()
        .ok_or_else(|| ValidationError::new("node_record", "is missing from a node entry"))?;
    if r.node_id.len() > 64
        || !r
            .node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ValidationError::new(
            "node_record.node_id",
            "must be at most 64 letters, digits or dashes",
        ));
    }
    if r.forgotten_unix_ms < 0 {
        return Err(ValidationError::new(
            "node_record.forgotten_unix_ms",
            "is negative",
        ));
    }
    if e.spec.is_some() || e.previous.is_some() || e.token.is_some() || e.deleted {
        return Err(ValidationError::new(
            "node_record",
            "a node entry has no spec or token and is never deleted",
        ));
    }
    Ok(())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn validate_stamp(e: &pb::ServiceEntry) -> Result<(), ValidationError> {
    let stamp = e
        .stamp
        .as_ref()
        .ok_or_else(|| ValidationError::new("stamp", "is missing"))?;
    if stamp.node.is_empty() || stamp.node.len() > 256 {
        return Err(ValidationError::new("stamp", "names no node"));
    }
    Ok(())
}

/// Checks a token entry: its id, hash, scope, label and expiry.
fn validate_token_entry(e: &pb::ServiceEntry, id: &str) -> Result<(), ValidationError> {
    validate_stamp(e)?;
    let t = e
        .token
        .as_ref()
        .ok_or_else(|| ValidationError::new("token", "is missing from a token entry"))?;
    if !is_hex(id, 16) || t.id != id {
        return Err(ValidationError::new(
            "token.id",
            "must be 16 hex characters, as in the name",
        ));
    }
    if !is_hex(&t.key_sha256, 64) {
        return Err(ValidationError::new(
            "token.key_sha256",
            "must be 64 hex characters",
        ));
    }
    if !matches!(
        pb::Scope::try_from(t.scope),
        Ok(pb::Scope::Read | pb::Scope::Operate | pb::Scope::Admin)
    ) {
        return Err(ValidationError::new(
            "token.scope",
            "must be read, operate or admin",
        ));
    }
    crate::api::tokens::check_token_name(&t.name)?;
    if t.created_by.len() > 64 {
        return Err(ValidationError::new(
            "token.created_by",
            "is longer than 64 bytes",
        ));
    }
    if t.expires_unix_ms < 0 {
        return Err(ValidationError::new("token.expires_unix_ms", "is negative"));
    }
    if e.spec.is_some() || e.previous.is_some() {
        return Err(ValidationError::new("spec", "a token entry has none"));
    }
    Ok(())
}

/// Checks an entry from the network as if it were a request: a bad one is dropped whole.
pub fn validate_entry(e: &pb::ServiceEntry) -> Result<(), ValidationError> {
    if let Some(id) = e.name.strip_prefix(TOKEN_PREFIX) {
        return validate_token_entry(e, id);
    }
    if let Some(name) = e.name.strip_prefix(NODE_PREFIX) {
        return validate_node_entry(e, name);
    }
    if e.token.is_some() {
        return Err(ValidationError::new("token", "a service entry has none"));
    }
    if e.node_record.is_some() {
        return Err(ValidationError::new(
            "node_record",
            "a service entry has none",
        ));
    }
    validate_service_id(&e.id)?;
    validate_service_name(&e.name)?;
    validate_stamp(e)?;
    if e.message.len() > 4096 {
        return Err(ValidationError::new("message", "is longer than 4096 bytes"));
    }
    if !e.deleted {
        let spec = e
            .spec
            .as_ref()
            .ok_or_else(|| ValidationError::new("spec", "is missing"))?;
        let parsed = ServiceSpec::from_proto(spec)?;
        if parsed.name != e.name {
            return Err(ValidationError::new("name", "differs from the spec's"));
        }
        if let Some(prev) = &e.previous {
            ServiceSpec::from_proto(prev)?;
        }
    }
    Ok(())
}

/// `Some` when the store holds as many entries of `name`'s kind as it may.
fn full(entries: &BTreeMap<String, pb::ServiceEntry>, name: &str) -> Option<StoreError> {
    let count = |prefix: &str| {
        entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .count()
    };
    let tokens = count(TOKEN_PREFIX);
    let nodes = count(NODE_PREFIX);
    if name.starts_with(TOKEN_PREFIX) {
        (tokens >= MAX_TOKENS).then_some(StoreError::Full {
            kind: "tokens",
            max: MAX_TOKENS,
        })
    } else if name.starts_with(NODE_PREFIX) {
        (nodes >= MAX_NODES).then_some(StoreError::Full {
            kind: "nodes",
            max: MAX_NODES,
        })
    } else {
        (entries.len() - tokens - nodes >= MAX_SERVICES).then_some(StoreError::Full {
            kind: "services",
            max: MAX_SERVICES,
        })
    }
}

struct Inner {
    entries: BTreeMap<String, pb::ServiceEntry>,
    clock: Clock,
}

pub struct Store {
    path: PathBuf,
    node: String,
    tombstone_ttl: Duration,
    inner: Mutex<Inner>,
    /// The digest of the entries, sent on every change (gossip publishes it; the reconciler
    /// wakes on it).
    digest: watch::Sender<String>,
}

fn digest_of(entries: &BTreeMap<String, pb::ServiceEntry>) -> String {
    use sha2::Digest;
    if entries.is_empty() {
        return String::new();
    }
    let mut h = sha2::Sha256::new();
    for e in entries.values() {
        let s = e.stamp.clone().unwrap_or_default();
        h.update(e.name.as_bytes());
        h.update([0]);
        h.update(s.hlc.to_be_bytes());
        h.update(s.node.as_bytes());
        h.update([0, u8::from(e.deleted)]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Opens the store in `data_dir`. An unreadable file is set aside (`services.pb.corrupt`) and
    /// the store starts empty: every other agent holds a copy, and anti-entropy refills it.
    pub fn open(data_dir: &Path, node: &str, tombstone_ttl: Duration) -> Self {
        let path = data_dir.join(STORE_FILE);
        let mut entries = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => match pb::ServiceStoreFile::decode(bytes.as_slice()) {
                Ok(file) => {
                    for e in file.entries {
                        match validate_entry(&e) {
                            Ok(()) => {
                                entries.insert(e.name.clone(), e);
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "dropping a bad entry of the service store")
                            }
                        }
                    }
                }
                Err(e) => {
                    let aside = path.with_extension("pb.corrupt");
                    tracing::error!(error = %e, path = %path.display(), aside = %aside.display(), "service store unreadable; starting empty, peers will refill it");
                    let _ = std::fs::rename(&path, &aside);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot read the service store; starting empty");
            }
        }
        let mut clock = Clock::default();
        for e in entries.values() {
            if let Some(s) = &e.stamp {
                clock.observe(s.hlc);
            }
        }
        let (digest, _) = watch::channel(digest_of(&entries));
        tracing::info!(services = entries.len(), "service store loaded");
        Self {
            path,
            node: node.to_owned(),
            tombstone_ttl,
            inner: Mutex::new(Inner { entries, clock }),
            digest,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn watch_digest(&self) -> watch::Receiver<String> {
        self.digest.subscribe()
    }

    pub fn digest(&self) -> String {
        self.digest.borrow().clone()
    }

    pub fn get(&self, name: &str) -> Option<pb::ServiceEntry> {
        self.lock().entries.get(name).cloned()
    }

    /// Token `id`'s entry (a revoked one is a tombstone).
    pub fn token(&self, id: &str) -> Option<pb::ServiceEntry> {
        self.lock().entries.get(&token_key(id)).cloned()
    }

    /// Every token entry, revoked ones included.
    pub fn tokens(&self) -> Vec<pb::ServiceEntry> {
        self.lock()
            .entries
            .range(TOKEN_PREFIX.to_owned()..)
            .take_while(|(k, _)| k.starts_with(TOKEN_PREFIX))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Every node record, by node name.
    pub fn node_records(&self) -> BTreeMap<String, pb::NodeRecord> {
        self.lock()
            .entries
            .range(NODE_PREFIX.to_owned()..)
            .take_while(|(k, _)| k.starts_with(NODE_PREFIX))
            .filter_map(|(k, e)| {
                let name = k.strip_prefix(NODE_PREFIX)?;
                Some((name.to_owned(), e.node_record.clone()?))
            })
            .collect()
    }

    /// Every entry, tombstones included.
    pub fn all(&self) -> Vec<pb::ServiceEntry> {
        self.lock().entries.values().cloned().collect()
    }

    /// What this store holds, for a sync request.
    pub fn have(&self) -> Vec<pb::ServiceVersion> {
        self.lock()
            .entries
            .values()
            .map(|e| pb::ServiceVersion {
                name: e.name.clone(),
                stamp: e.stamp.clone(),
            })
            .collect()
    }

    /// The entries newer than what a peer says it has (or that it lacks).
    pub fn newer_than(&self, have: &[pb::ServiceVersion]) -> Vec<pb::ServiceEntry> {
        let theirs: BTreeMap<&str, Option<&pb::Stamp>> = have
            .iter()
            .map(|v| (v.name.as_str(), v.stamp.as_ref()))
            .collect();
        self.lock()
            .entries
            .values()
            .filter(|e| match theirs.get(e.name.as_str()) {
                Some(stamp) => newer(e.stamp.as_ref(), *stamp),
                None => true,
            })
            .cloned()
            .collect()
    }

    /// Takes a write through this agent: `change` gets the current entry of `name` (or `None`)
    /// and returns the new one, which is stamped, stored durably and returned.
    pub fn write<E>(
        &self,
        name: &str,
        change: impl FnOnce(Option<&pb::ServiceEntry>) -> Result<pb::ServiceEntry, E>,
    ) -> Result<pb::ServiceEntry, E>
    where
        E: From<StoreError>,
    {
        let mut inner = self.lock();
        let current = inner.entries.get(name);
        // A write orders after the entry it replaces, whatever the clocks say: a revocation
        // always wins over the token it revokes.
        let after = current
            .and_then(|c| c.stamp.as_ref())
            .map_or(0, |s| s.hlc.saturating_add(1));
        let mut entry = change(current)?;
        entry.name = name.to_owned();
        let hlc = inner.clock.tick().max(after);
        inner.clock.observe(hlc);
        entry.stamp = Some(pb::Stamp {
            hlc,
            node: self.node.clone(),
        });
        entry.updated_unix_ms = now_ms() as i64;
        if !inner.entries.contains_key(&entry.name)
            && let Some(full) = full(&inner.entries, &entry.name)
        {
            return Err(full.into());
        }
        let old = inner.entries.insert(entry.name.clone(), entry.clone());
        if let Err(e) = self.persist(&inner.entries) {
            // Not durable, not taken: put the old entry back.
            match old {
                Some(o) => inner.entries.insert(o.name.clone(), o),
                None => inner.entries.remove(&entry.name),
            };
            return Err(e.into());
        }
        self.digest.send_replace(digest_of(&inner.entries));
        Ok(entry)
    }

    /// Merges entries from a peer: each replaces ours only when newer. Invalid entries and
    /// tombstones past their time are dropped. Returns the names that changed.
    pub fn merge(&self, entries: Vec<pb::ServiceEntry>) -> Result<Vec<String>, StoreError> {
        let mut inner = self.lock();
        let mut changed = Vec::new();
        let oldest_tombstone = now_ms().saturating_sub(self.tombstone_ttl.as_millis() as u64);
        let mut undo = Vec::new();
        for e in entries {
            if let Err(err) = validate_entry(&e) {
                tracing::debug!(error = %err, "dropping an invalid service entry from a peer");
                continue;
            }
            if e.deleted && is_service(&e) && (e.updated_unix_ms.max(0) as u64) < oldest_tombstone {
                continue;
            }
            if e.stamp
                .as_ref()
                .is_some_and(|s| s.hlc > (now_ms() + MAX_STAMP_AHEAD_MS) << 16)
            {
                tracing::debug!(entry = %e.name, "dropping a peer's entry stamped more than an hour ahead");
                continue;
            }
            let current = inner.entries.get(&e.name);
            if !newer(e.stamp.as_ref(), current.and_then(|c| c.stamp.as_ref())) {
                continue;
            }
            if current.is_none()
                && let Some(full) = full(&inner.entries, &e.name)
            {
                tracing::warn!(error = %full, "store full; ignoring a peer's entry");
                continue;
            }
            if let Some(s) = &e.stamp {
                inner.clock.observe(s.hlc);
            }
            changed.push(e.name.clone());
            undo.push(inner.entries.insert(e.name.clone(), e));
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        if let Err(err) = self.persist(&inner.entries) {
            for (name, old) in changed.iter().zip(undo) {
                match old {
                    Some(o) => inner.entries.insert(name.clone(), o),
                    None => inner.entries.remove(name),
                };
            }
            return Err(err);
        }
        self.digest.send_replace(digest_of(&inner.entries));
        Ok(changed)
    }

    /// [`Store::write`] on a blocking thread: a write fsyncs, which must not stall the async
    /// runtime (the console's embedded agent runs on a single thread).
    pub async fn write_off_thread<E, F>(
        self: &Arc<Self>,
        name: String,
        change: F,
    ) -> Result<pb::ServiceEntry, E>
    where
        F: FnOnce(Option<&pb::ServiceEntry>) -> Result<pb::ServiceEntry, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(&name, change))
            .await
            .unwrap_or_else(|e| Err(StoreError::Writer(e.to_string()).into()))
    }

    /// [`Store::merge`] on a blocking thread (it fsyncs when anything changed).
    pub async fn merge_off_thread(
        self: &Arc<Self>,
        entries: Vec<pb::ServiceEntry>,
    ) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.merge(entries))
            .await
            .unwrap_or_else(|e| Err(StoreError::Writer(e.to_string())))
    }

    /// Drops tombstones older than the TTL.
    pub fn collect_tombstones(&self) {
        let mut inner = self.lock();
        let oldest = now_ms().saturating_sub(self.tombstone_ttl.as_millis() as u64);
        let before = inner.entries.len();
        let now = now_ms();
        inner.entries.retain(|_, e| match &e.token {
            // A token is kept (revoked or not) until it has been expired for the grace.
            Some(t) => {
                t.expires_unix_ms == 0
                    || (t.expires_unix_ms.max(0) as u64)
                        .saturating_add(EXPIRED_TOKEN_GRACE.as_millis() as u64)
                        > now
            }
            None => !(e.deleted && (e.updated_unix_ms.max(0) as u64) < oldest),
        });
        if inner.entries.len() != before {
            if let Err(e) = self.persist(&inner.entries) {
                tracing::warn!(error = %e, "cannot write the service store after collecting tombstones");
            }
            self.digest.send_replace(digest_of(&inner.entries));
        }
    }

    fn persist(&self, entries: &BTreeMap<String, pb::ServiceEntry>) -> Result<(), StoreError> {
        let file = pb::ServiceStoreFile {
            entries: entries.values().cloned().collect(),
        };
        let err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("pb.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&file.encode_to_vec()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, replicas: u32) -> pb::ServiceSpec {
        pb::ServiceSpec {
            name: name.into(),
            mode: pb::ServiceMode::Replicated as i32,
            replicas,
            container: Some(pb::ContainerSpec {
                image: "handmade/app:1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn entry(name: &str, replicas: u32, hlc: u64, node: &str) -> pb::ServiceEntry {
        pb::ServiceEntry {
            id: "0abc".into(),
            name: name.into(),
            spec: Some(spec(name, replicas)),
            version: 1,
            stamp: Some(pb::Stamp {
                hlc,
                node: node.into(),
            }),
            updated_unix_ms: now_ms() as i64,
            ..Default::default()
        }
    }

    fn replicas(s: &Store, name: &str) -> u32 {
        s.get(name)
            .and_then(|e| e.spec)
            .map(|s| s.replicas)
            .unwrap_or(0)
    }

    fn token_entry(id: &str, hlc: u64, expires_unix_ms: i64) -> pb::ServiceEntry {
        pb::ServiceEntry {
            name: token_key(id),
            stamp: Some(pb::Stamp {
                hlc,
                node: "n1".into(),
            }),
            updated_unix_ms: now_ms() as i64,
            token: Some(pb::TokenRecord {
                id: id.into(),
                scope: pb::Scope::Read as i32,
                key_sha256: "ab".repeat(32),
                expires_unix_ms,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node_entry(name: &str, hlc: u64, record: pb::NodeRecord) -> pb::ServiceEntry {
        pb::ServiceEntry {
            name: node_key(name),
            stamp: Some(pb::Stamp {
                hlc,
                node: "n1".into(),
            }),
            updated_unix_ms: now_ms() as i64,
            node_record: Some(record),
            ..Default::default()
        }
    }

    /// Node records are their own kind: merged by stamp, never services, and a peer's bad one
    /// (a spec, a deletion, a bad id or name) is dropped whole.
    #[test]
    fn node_records_merge_apart_from_services_and_bad_ones_are_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "n2", DEFAULT_TOMBSTONE_TTL);
        let drained = pb::NodeRecord {
            node_id: "abc-1".into(),
            drained: true,
            ..Default::default()
        };
        let mut with_spec = node_entry("b", 5, drained.clone());
        with_spec.spec = Some(spec("b", 1));
        let mut deleted = node_entry("c", 5, drained.clone());
        deleted.deleted = true;
        let bad_id = node_entry(
            "d",
            5,
            pb::NodeRecord {
                node_id: "no spaces".into(),
                ..drained.clone()
            },
        );
        let bad_name = node_entry("two words", 5, drained.clone());
        let changed = s
            .merge(vec![
                node_entry("a", 5, drained.clone()),
                with_spec,
                deleted,
                bad_id,
                bad_name,
            ])
            .expect("merged");
        assert_eq!(changed, [node_key("a")]);
        assert_eq!(s.node_records().get("a"), Some(&drained));
        assert!(s.all().iter().all(|e| !is_service(e)));
        // A newer write wins; an older one does not come back.
        let active = pb::NodeRecord {
            drained: false,
            ..drained.clone()
        };
        s.merge(vec![node_entry("a", 9, active.clone())])
            .expect("merged");
        s.merge(vec![node_entry("a", 7, drained)]).expect("merged");
        assert_eq!(s.node_records().get("a"), Some(&active));
    }

    #[test]
    fn a_revocation_wins_over_a_token_stamped_ahead_of_this_clock() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "n2", DEFAULT_TOMBSTONE_TTL);
        // Minted by a node whose clock runs 50 minutes fast: inside what a merge accepts.
        let ahead = (now_ms() + 50 * 60 * 1000) << 16;
        s.merge(vec![token_entry("0123456789abcdef", ahead, 0)])
            .expect("merged");
        let revoked = s
            .write::<StoreError>(&token_key("0123456789abcdef"), |c| {
                let mut next = c.cloned().expect("present");
                next.deleted = true;
                Ok(next)
            })
            .expect("revoked");
        assert!(revoked.stamp.as_ref().expect("stamp").hlc > ahead);
        // The live copy coming back from a peer does not undo it.
        s.merge(vec![token_entry("0123456789abcdef", ahead, 0)])
            .expect("merged");
        assert!(s.token("0123456789abcdef").expect("kept").deleted);
    }

    #[test]
    fn an_entry_stamped_far_ahead_is_refused_from_a_peer() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "n2", DEFAULT_TOMBSTONE_TTL);
        let changed = s
            .merge(vec![token_entry("0123456789abcdef", u64::MAX, 0)])
            .expect("merge");
        assert!(changed.is_empty());
        assert!(s.token("0123456789abcdef").is_none());
    }

    #[test]
    fn expired_tokens_are_collected_after_the_grace_and_others_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "n2", DEFAULT_TOMBSTONE_TTL);
        let long_ago = now_ms() as i64 - EXPIRED_TOKEN_GRACE.as_millis() as i64 - 1000;
        let mut revoked = token_entry("00000000000000aa", 1 << 16, 0);
        revoked.deleted = true;
        s.merge(vec![
            token_entry("00000000000000bb", 1 << 16, long_ago),
            token_entry("00000000000000cc", 1 << 16, now_ms() as i64 - 1000),
            revoked,
        ])
        .expect("merged");
        s.collect_tombstones();
        assert!(s.token("00000000000000bb").is_none(), "expired long ago");
        assert!(s.token("00000000000000cc").is_some(), "inside the grace");
        assert!(
            s.token("00000000000000aa").is_some(),
            "a revocation with no expiry stays"
        );
    }

    #[test]
    fn the_newest_stamp_wins_in_any_order() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("a")).expect("dir");
        std::fs::create_dir_all(dir.path().join("b")).expect("dir");
        let (a, b) = (
            Store::open(&dir.path().join("a"), "a", DEFAULT_TOMBSTONE_TTL),
            Store::open(&dir.path().join("b"), "b", DEFAULT_TOMBSTONE_TTL),
        );
        let old = entry("web", 2, 10, "n1");
        let new = entry("web", 5, 11, "n1");
        // Same clock, greater node name: breaks the tie the same way everywhere.
        let tie = entry("web", 7, 11, "n2");
        a.merge(vec![old.clone(), new.clone(), tie.clone()])
            .expect("merge");
        b.merge(vec![tie, new, old]).expect("merge");
        assert_eq!(replicas(&a, "web"), 7);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.all(), b.all());
    }

    #[test]
    fn a_tombstone_keeps_an_older_write_from_coming_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "a", DEFAULT_TOMBSTONE_TTL);
        s.merge(vec![entry("web", 2, 10, "n1")]).expect("merge");
        let mut gone = entry("web", 0, 20, "n2");
        gone.deleted = true;
        gone.spec = None;
        s.merge(vec![gone]).expect("merge");
        // A node that was away sends its old copy.
        assert!(
            s.merge(vec![entry("web", 2, 10, "n1")])
                .expect("merge")
                .is_empty()
        );
        assert!(s.get("web").expect("tombstone").deleted);
        // A tombstone older than its TTL is not taken back in.
        std::fs::create_dir_all(dir.path().join("x")).expect("dir");
        let short = Store::open(&dir.path().join("x"), "a", Duration::from_millis(1));
        let mut old_gone = entry("db", 0, 5, "n2");
        old_gone.deleted = true;
        old_gone.spec = None;
        old_gone.updated_unix_ms = 1;
        assert!(short.merge(vec![old_gone]).expect("merge").is_empty());
    }

    #[test]
    fn bad_entries_are_dropped_and_writes_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), "a", DEFAULT_TOMBSTONE_TTL);
        let mut bad = entry("web", 2, 10, "n1");
        bad.spec = Some(spec("other", 2));
        let mut huge = entry("db", MAX_REPLICAS_PLUS, 10, "n1");
        huge.name = "db".into();
        let changed = s.merge(vec![bad, huge]).expect("merge");
        assert!(changed.is_empty(), "{changed:?}");
        let written = s
            .write("api", |cur| {
                assert!(cur.is_none());
                Ok::<_, StoreError>(entry("api", 3, 0, "ignored"))
            })
            .expect("write");
        let stamp = written.stamp.expect("stamped");
        assert_eq!(stamp.node, "a");
        let again = Store::open(dir.path(), "a", DEFAULT_TOMBSTONE_TTL);
        assert_eq!(replicas(&again, "api"), 3);
        // The clock moved past what the file holds: the next write orders after it.
        let next = again
            .write("api", |cur| {
                Ok::<_, StoreError>(cur.cloned().expect("there"))
            })
            .expect("write");
        assert!(next.stamp.expect("stamped").hlc > stamp.hlc);
    }

    const MAX_REPLICAS_PLUS: u32 = berth_shared::service::MAX_REPLICAS + 1;
}
