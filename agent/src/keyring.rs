//! The agent's cluster secrets, changed while it runs: the keyring, as Serf's. The first secret
//! is in use (it issues this node's certificate, seals gossip, mints tokens); every secret is
//! accepted (CAs trusted, gossip opened, bearers let in). A rotation is three steps taken on
//! every agent in turn (`berth secret rotate` does them): install the new secret, use it,
//! remove the old one. Between the steps every agent accepts both, so nothing is cut off, and
//! connections already open (a `logs -f`, a `Watch`) are not touched.
//!
//! The keyring is kept in `<data dir>/keyring` (mode 0600, one secret a line, the one in use
//! first) once it has changed, and from then on it wins over `--token`: a restarted agent
//! comes back with the secrets it had, not with the one its unit file still names.

use berth_shared::trust::ClusterKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The keyring's file in the data dir.
pub const KEYRING_FILE: &str = "keyring";
/// At most this many secrets at once.
pub const MAX_KEYS: usize = 4;

/// The secrets and what is derived from them, computed once per change.
#[derive(Debug)]
pub struct Keys {
    /// The one in use first.
    pub secrets: Vec<String>,
    /// The CA of each, in the same order.
    pub clusters: Vec<ClusterKey>,
    /// Their trust anchors, to check a client certificate again on each call.
    pub anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    /// SHA-256 of `Bearer <secret>` for each, what a call's header is compared with.
    pub bearers: Vec<[u8; 32]>,
}

impl Keys {
    pub fn new(secrets: Vec<String>) -> Self {
        let clusters: Vec<ClusterKey> = secrets.iter().map(|s| ClusterKey::of_secret(s)).collect();
        let anchors = clusters.iter().filter_map(|c| c.anchor().ok()).collect();
        let bearers = secrets
            .iter()
            .map(|s| {
                use sha2::Digest as _;
                sha2::Sha256::digest(format!("Bearer {s}").as_bytes()).into()
            })
            .collect();
        Self {
            secrets,
            clusters,
            anchors,
            bearers,
        }
    }

    /// The CA in use.
    pub fn primary(&self) -> Option<ClusterKey> {
        self.clusters.first().copied()
    }

    /// The fingerprints, the one in use first.
    pub fn fingerprints(&self) -> Vec<String> {
        self.clusters.iter().map(ClusterKey::fingerprint).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot write the keyring {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The keyring; see the module doc.
pub struct Keyring {
    path: PathBuf,
    keys: watch::Sender<Arc<Keys>>,
    /// One change at a time: read, write the file, publish.
    changing: std::sync::Mutex<()>,
}

impl Keyring {
    /// The keyring in `data_dir` if one was written, else `flag` (the `--token` secret) alone.
    /// An unreadable file is an error: guessing would lock this node out or let an old secret
    /// back in.
    pub fn load(data_dir: &Path, flag: Option<&str>) -> Result<Self, KeyringError> {
        let path = data_dir.join(KEYRING_FILE);
        let secrets = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secrets: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                for s in &secrets {
                    berth_shared::token::check_agent_token(s).map_err(|e| {
                        KeyringError::Refused(format!("{}: a secret {e}", path.display()))
                    })?;
                }
                if secrets.is_empty() {
                    return Err(KeyringError::Refused(format!(
                        "{} holds no secret; remove it to start from --token",
                        path.display()
                    )));
                }
                if let Some(flag) = flag
                    && !secrets.iter().any(|s| s == flag)
                {
                    tracing::warn!(
                        path = %path.display(),
                        "the keyring in the data dir wins over --token, which it does not hold \
                         (the cluster was rotated): update the token file to the new secret"
                    );
                }
                secrets
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                flag.map(|f| vec![f.to_owned()]).unwrap_or_default()
            }
            Err(source) => return Err(KeyringError::Write { path, source }),
        };
        let (keys, _) = watch::channel(Arc::new(Keys::new(secrets)));
        Ok(Self {
            path,
            keys,
            changing: std::sync::Mutex::new(()),
        })
    }

    pub fn keys(&self) -> Arc<Keys> {
        self.keys.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Keys>> {
        self.keys.subscribe()
    }

    /// Whether the agent has any secret (else it is open, on loopback).
    pub fn is_secured(&self) -> bool {
        !self.keys.borrow().secrets.is_empty()
    }

    /// Adds `secret` as accepted. Installing one already held changes nothing.
    pub fn install(&self, secret: &str) -> Result<Arc<Keys>, KeyringError> {
        self.change(|secrets| {
            if !secrets.iter().any(|s| s == secret) {
                if secrets.len() >= MAX_KEYS {
                    return Err(format!(
                        "the keyring holds {MAX_KEYS} secrets already: remove one first"
                    ));
                }
                secrets.push(secret.to_owned());
            }
            Ok(())
        })
    }

    /// Makes `secret` (installed already) the one in use.
    pub fn use_secret(&self, secret: &str) -> Result<Arc<Keys>, KeyringError> {
        self.change(|secrets| {
            let Some(at) = secrets.iter().position(|s| s == secret) else {
                return Err("that secret is not installed here: install it first".into());
            };
            let s = secrets.remove(at);
            secrets.insert(0, s);
            Ok(())
        })
    }

    /// Removes `secret`, which must not be the one in use.
    pub fn remove(&self, secret: &str) -> Result<Arc<Keys>, KeyringError> {
        self.change(|secrets| {
            match secrets.iter().position(|s| s == secret) {
                None => {}
                Some(0) => {
                    return Err("that secret is the one in use: use another one first".into());
                }
                Some(at) => {
                    secrets.remove(at);
                }
            }
            Ok(())
        })
    }

    fn change(
        &self,
        f: impl FnOnce(&mut Vec<String>) -> Result<(), String>,
    ) -> Result<Arc<Keys>, KeyringError> {
        let _one = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.keys();
        if current.secrets.is_empty() {
            return Err(KeyringError::Refused(
                "this agent has no cluster secret: restart it with one (--token-file) to secure \
                 it"
                .into(),
            ));
        }
        let mut secrets = current.secrets.clone();
        f(&mut secrets).map_err(KeyringError::Refused)?;
        if secrets == current.secrets {
            return Ok(current);
        }
        let mut text = secrets.join("\n");
        text.push('\n');
        crate::files::write_private(&self.path, text.as_bytes()).map_err(|source| {
            KeyringError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        let keys = Arc::new(Keys::new(secrets));
        self.keys.send_replace(keys.clone());
        Ok(keys)
    }
}

/// Applies every keyring change to TLS (new connections trust the new CAs, and a new secret in
/// use issues a new certificate) and drops the peer connections cached with the old settings.
pub async fn follow(
    mut keys: watch::Receiver<Arc<Keys>>,
    tls: Arc<crate::tls::AgentTls>,
    peers: Arc<crate::cluster::peers::PeerPool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = keys.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = keys.borrow_and_update().clone();
        // It writes and fsyncs the certificate file: off the async runtime.
        let t = tls.clone();
        let done = tokio::task::spawn_blocking(move || t.set_secrets(&now.secrets)).await;
        match done {
            Ok(Ok(())) => peers.reset(),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot follow the keyring change in TLS"),
            Err(e) => tracing::error!(error = %e, "cannot follow the keyring change in TLS"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "the-old-cluster-secret";
    const NEW: &str = "the-new-cluster-secret";

    #[test]
    fn install_use_remove_and_the_file_wins_after_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = Keyring::load(dir.path(), Some(OLD)).expect("load");
        assert_eq!(k.keys().secrets, [OLD]);
        assert!(
            !dir.path().join(KEYRING_FILE).exists(),
            "nothing written yet"
        );
        assert!(k.use_secret(NEW).is_err(), "not installed");
        k.install(NEW).expect("install");
        assert_eq!(k.keys().secrets, [OLD, NEW]);
        assert!(k.remove(OLD).is_err(), "in use");
        k.use_secret(NEW).expect("use");
        k.remove(OLD).expect("remove");
        assert_eq!(k.keys().secrets, [NEW]);
        // A restart with the old --token still comes back with the new secret.
        let again = Keyring::load(dir.path(), Some(OLD)).expect("reload");
        assert_eq!(again.keys().secrets, [NEW]);
        assert_eq!(again.keys().primary(), Some(ClusterKey::of_secret(NEW)));
    }

    #[test]
    fn an_open_agent_has_no_keyring_to_change() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = Keyring::load(dir.path(), None).expect("load");
        assert!(!k.is_secured());
        assert!(k.install(NEW).is_err());
    }
}
