//! The agent's side of TLS: its own key (kept in the data dir, mode 0600), the certificate it
//! issues itself with the cluster CA derived from the secret, renewed well before it expires,
//! and the TLS settings of its server and of its connections to peers.
//!
//! Trust is described in `shared::trust`; this module only keeps the files and the timers.

use berth_shared::trust::{self, ClusterCa, ClusterKey};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a certificate the agent issues itself is valid.
pub const CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// A certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(10 * 24 * 3600);
/// How often the agent looks at its certificate's expiry.
pub const RENEW_CHECK_EVERY: Duration = Duration::from_secs(3600);

const KEY_FILE: &str = "node.key";
const CERT_FILE: &str = "node.crt";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot keep TLS files in {path}")]
    Files {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key in {path} is not usable ({reason}); remove it and the agent makes a new one")]
    BadKey { path: PathBuf, reason: String },
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
}

/// The certificate in use, swapped when renewed. Serves both ends: the server's certificate
/// and the client's (to peers).
#[derive(Debug)]
pub struct Current {
    key: RwLock<Arc<CertifiedKey>>,
}

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        self.key.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl rustls::server::ResolvesServerCert for Current {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for Current {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// An agent's TLS: what it serves with and what it dials peers with. The secrets can change
/// while it runs ([`AgentTls::set_secrets`]): new connections use the new settings, open ones
/// are left alone.
pub struct AgentTls {
    node: String,
    dir: PathBuf,
    leaf: rcgen::KeyPair,
    current: Arc<Current>,
    state: RwLock<State>,
}

/// What changes with the secrets.
struct State {
    ca: ClusterCa,
    clusters: Vec<ClusterKey>,
    not_after: time::OffsetDateTime,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTls")
            .field("node", &self.node)
            .field("clusters", &self.clusters())
            .finish_non_exhaustive()
    }
}

impl AgentTls {
    /// Loads (or makes) this node's key under `data_dir/tls`, issues a certificate with the
    /// CA of `secrets[0]`, and trusts the CAs of all `secrets`.
    pub fn load(data_dir: &Path, node: &str, secrets: &[String]) -> Result<Self, TlsError> {
        let dir = data_dir.join("tls");
        let files = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Files { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(files(&dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(files(&dir))?;
        }
        let key_path = dir.join(KEY_FILE);
        let leaf = match std::fs::read_to_string(&key_path) {
            Ok(pem) => rcgen::KeyPair::from_pem(&pem).map_err(|e| TlsError::BadKey {
                path: key_path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                    .map_err(trust::TrustError::from)?;
                crate::files::write_private(&key_path, key.serialize_pem().as_bytes())
                    .map_err(files(&key_path))?;
                key
            }
            Err(e) => return Err(files(&key_path)(e)),
        };
        let Some(primary) = secrets.first() else {
            return Err(TlsError::BadKey {
                path: key_path,
                reason: "no cluster secret".into(),
            });
        };
        let ca = ClusterCa::derive(primary);
        let (certified, not_after) = issue(&ca, node, &leaf, &dir)?;
        let current = Arc::new(Current {
            key: RwLock::new(certified),
        });
        let state = state(ca, secrets, not_after, &current)?;
        Ok(Self {
            node: node.to_owned(),
            dir,
            leaf,
            current,
            state: RwLock::new(state),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The CAs trusted, the one in use first.
    pub fn clusters(&self) -> Vec<ClusterKey> {
        self.read().clusters.clone()
    }

    /// The server's settings for a new connection.
    pub fn server(&self) -> Arc<rustls::ServerConfig> {
        self.read().server.clone()
    }

    /// The settings for a new connection to a peer.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        self.read().client.clone()
    }

    /// When the certificate in use expires.
    pub fn not_after(&self) -> time::OffsetDateTime {
        self.read().not_after
    }

    /// Trusts the CAs of `secrets` and, when the first one changed, issues this node's
    /// certificate with its CA.
    pub fn set_secrets(&self, secrets: &[String]) -> Result<(), TlsError> {
        let Some(primary) = secrets.first() else {
            return Ok(());
        };
        let ca = ClusterCa::derive(primary);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut not_after = state.not_after;
        if ca.public() != state.ca.public() {
            let (certified, expires) = issue(&ca, &self.node, &self.leaf, &self.dir)?;
            *self.current.key.write().unwrap_or_else(|p| p.into_inner()) = certified;
            not_after = expires;
        }
        *state = self::state(ca, secrets, not_after, &self.current)?;
        tracing::info!(clusters = ?state.clusters.iter().map(ClusterKey::fingerprint).collect::<Vec<_>>(), "TLS trusts a new set of cluster CAs");
        Ok(())
    }

    /// Issues a new certificate when the one in use has less than `before` left; new
    /// connections use it at once. Returns whether it renewed.
    pub fn renew_if_due(&self, before: Duration) -> Result<bool, TlsError> {
        let left = self.not_after() - time::OffsetDateTime::now_utc();
        if left > time::Duration::seconds(before.as_secs() as i64) {
            return Ok(false);
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let (certified, not_after) = issue(&state.ca, &self.node, &self.leaf, &self.dir)?;
        *self.current.key.write().unwrap_or_else(|p| p.into_inner()) = certified;
        state.not_after = not_after;
        tracing::info!(node = %self.node, expires = %not_after, "renewed this node's TLS certificate");
        Ok(true)
    }

    /// Renews in the background until shutdown.
    pub async fn renew_loop(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RENEW_CHECK_EVERY) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            // It writes and fsyncs the certificate file: off the async runtime.
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.renew_if_due(RENEW_BEFORE)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew this node's TLS certificate; will retry")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew this node's TLS certificate; will retry")
                }
            }
        }
    }
}

fn state(
    ca: ClusterCa,
    secrets: &[String],
    not_after: time::OffsetDateTime,
    current: &Arc<Current>,
) -> Result<State, TlsError> {
    let clusters: Vec<ClusterKey> = secrets.iter().map(|s| ClusterKey::of_secret(s)).collect();
    Ok(State {
        server: trust::server_config(&clusters, current.clone())?,
        client: trust::client_config(&clusters, Some(current.clone()))?,
        ca,
        clusters,
        not_after,
    })
}

fn issue(
    ca: &ClusterCa,
    node: &str,
    leaf: &rcgen::KeyPair,
    dir: &Path,
) -> Result<(Arc<CertifiedKey>, time::OffsetDateTime), TlsError> {
    let issued = ca.issue(node, leaf, CERT_VALIDITY)?;
    // For people and tools that look; the agent never reads it back, so a full or read-only
    // disk must not stop a renewal.
    let path = dir.join(CERT_FILE);
    let pem = pem_of(issued.cert.as_ref());
    if let Err(e) = crate::files::write_private(&path, pem.as_bytes()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write this node's certificate file; the certificate is in use anyway");
    }
    let key = trust::signing_key(leaf.serialized_der())?;
    Ok((
        Arc::new(CertifiedKey::new(vec![issued.cert], key)),
        issued.not_after,
    ))
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_kept_private_and_reused_and_the_certificate_renewed_when_due() {
        let dir = tempfile::tempdir().expect("tmp");
        let secrets = vec!["secret-of-the-test-cluster".to_owned()];
        let a = AgentTls::load(dir.path(), "n1", &secrets).expect("first load");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for f in [KEY_FILE, CERT_FILE] {
                let mode = std::fs::metadata(dir.path().join("tls").join(f))
                    .expect("file")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let key_before = std::fs::read(dir.path().join("tls").join(KEY_FILE)).expect("key");
        let b = AgentTls::load(dir.path(), "n1", &secrets).expect("second load");
        let key_after = std::fs::read(dir.path().join("tls").join(KEY_FILE)).expect("key");
        assert_eq!(key_before, key_after, "the key is reused");
        drop(b);

        let expires = a.not_after();
        assert!(expires - time::OffsetDateTime::now_utc() > time::Duration::days(29));
        assert!(!a.renew_if_due(RENEW_BEFORE).expect("not due"));
        assert_eq!(a.not_after(), expires);
        // Due when more than the whole validity is asked to be left.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(a.renew_if_due(CERT_VALIDITY * 2).expect("due"));
        assert!(a.not_after() > expires);
    }

    #[test]
    fn a_damaged_key_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("tls")).expect("dir");
        std::fs::write(dir.path().join("tls").join(KEY_FILE), "not a key").expect("write");
        let e = AgentTls::load(dir.path(), "n1", &["secret-of-the-test-cluster".into()])
            .expect_err("bad key");
        assert!(e.to_string().contains("node.key"), "{e}");
    }
}
