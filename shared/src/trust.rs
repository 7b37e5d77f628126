//! Trust, derived from one secret: the cluster's certificate authority, each agent's
//! certificate, the tokens consoles present, and the TLS settings both ends use.
//!
//! - The **cluster secret** (any printable string of 16 characters or more; `berth secret new`
//!   makes one) is what agents share. From it, with HKDF-SHA256 and a fixed purpose, every agent
//!   derives the same Ed25519 key: the cluster CA's. The CA never exists as a file; each agent
//!   holds it in memory and signs its own certificate with it.
//! - The CA's **public key** is what a console pins: derived from the secret by a console that
//!   holds it, or carried inside a scoped token (`berth-t1-…`) by one that does not. Either way
//!   the console verifies the agent's certificate against that key before it sends anything,
//!   so the first answer is never trusted.
//! - An agent's certificate names two things: [`AGENT_SERVER_NAME`], which every agent of the
//!   cluster carries (what a console checks), and [`node_server_name`] of its node name, which
//!   only that node carries (what an agent checks when it dials the node a gossip row names).
//!
//! Only TLS 1.3 is spoken, with ring's primitives.

use crate::ValidationError;
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, TrustAnchor};
use sha2::Digest as _;
use std::sync::Arc;

/// How a secret made by `berth secret new` starts.
pub const SECRET_PREFIX: &str = "berth-s1-";
/// How a scoped console token starts.
pub const SCOPED_PREFIX: &str = "berth-t1-";
/// The name in every agent certificate of a cluster, and the one a console verifies: a
/// console can reach any agent. `.invalid` is reserved (RFC 2606): it never resolves.
pub const AGENT_SERVER_NAME: &str = "agent.berth.invalid";
/// The CA certificate's subject; with the key it makes the trust anchor.
const CA_COMMON_NAME: &str = "Berth cluster CA";
/// What the ALPN offers: gRPC is HTTP/2.
const ALPN_H2: &[u8] = b"h2";

const SCOPED_ID_LEN: usize = 8;
const SCOPED_KEY_LEN: usize = 24;
const PUBLIC_LEN: usize = 32;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What went wrong building trust material. None of these is the network's fault.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot make a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS settings refused: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// A new cluster secret: 32 random bytes, as `berth-s1-` and 43 URL-safe base64 characters.
pub fn new_secret() -> Result<String, TrustError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TrustError::Random(e.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", b64().encode(bytes)))
}

/// The name only `node`'s certificate carries: a hash of the node name, so any node name fits
/// a DNS label.
pub fn node_server_name(node: &str) -> String {
    let digest = sha2::Sha256::digest(format!("berth node\0{node}").as_bytes());
    format!("n{}.node.berth.invalid", hex(&digest[..20]))
}

/// A cluster's CA public key: what identifies a cluster to a console.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterKey([u8; PUBLIC_LEN]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({})", self.fingerprint())
    }
}

impl ClusterKey {
    /// The key of the cluster whose secret is `secret`.
    pub fn of_secret(secret: &str) -> Self {
        let key = ca_key(secret);
        let mut public = [0u8; PUBLIC_LEN];
        public.copy_from_slice(key.public_key_raw());
        Self(public)
    }

    /// Not secret: shown in messages so two clusters can be told apart, e.g. `ca:1f2e3d4c5b6a7988`.
    pub fn fingerprint(&self) -> String {
        let digest = sha2::Sha256::digest(self.0);
        format!("ca:{}", hex(&digest[..8]))
    }

    pub fn bytes(&self) -> &[u8; PUBLIC_LEN] {
        &self.0
    }

    /// The trust anchor certificates of this cluster chain to. Built from the public key
    /// alone: the subject is fixed, and an Ed25519 key's SubjectPublicKeyInfo is a fixed
    /// prefix and the 32 key bytes, so a template CA (any key, same subject) gives the rest.
    pub fn anchor(&self) -> Result<TrustAnchor<'static>, TrustError> {
        let template = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = ca_params().self_signed(&template)?;
        let anchor = webpki::anchor_from_trusted_cert(cert.der())
            .map_err(|e| TrustError::Tls(rustls::Error::General(format!("CA anchor: {e}"))))?;
        let mut spki = anchor.subject_public_key_info.to_vec();
        let at = spki.len() - PUBLIC_LEN;
        spki[at..].copy_from_slice(&self.0);
        Ok(TrustAnchor {
            subject: anchor.subject.to_vec().into(),
            subject_public_key_info: spki.into(),
            name_constraints: None,
        })
    }
}

fn ca_key(secret: &str) -> rcgen::KeyPair {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"berth cluster ca v1"), secret.as_bytes());
    let mut seed = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
    let _ = hk.expand(b"ed25519 seed", &mut seed);
    // PKCS#8 v1 of an Ed25519 seed (RFC 8410): a fixed prefix, then the 32 seed bytes.
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    // A well-formed seed always loads; the expect documents an invariant, not outside data.
    #[allow(clippy::expect_used)]
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8),
        &rcgen::PKCS_ED25519,
    )
    .expect("an Ed25519 PKCS#8 built from 32 bytes loads")
}

fn ca_params() -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
    p
}

/// The cluster CA, derived from the secret; only agents hold it.
pub struct ClusterCa {
    key: rcgen::KeyPair,
    public: ClusterKey,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A certificate an agent issued itself: the DER and when it stops being valid.
pub struct Issued {
    pub cert: CertificateDer<'static>,
    pub not_after: time::OffsetDateTime,
}

impl ClusterCa {
    pub fn derive(secret: &str) -> Self {
        let key = ca_key(secret);
        let mut public = [0u8; PUBLIC_LEN];
        public.copy_from_slice(key.public_key_raw());
        Self {
            key,
            public: ClusterKey(public),
        }
    }

    pub fn public(&self) -> ClusterKey {
        self.public
    }

    /// A certificate for `node`'s key, valid from an hour ago (clocks differ) for `valid`.
    /// It names [`AGENT_SERVER_NAME`] and [`node_server_name`] and serves both ends of TLS.
    pub fn issue(
        &self,
        node: &str,
        key: &impl rcgen::PublicKeyData,
        valid: std::time::Duration,
    ) -> Result<Issued, TrustError> {
        let mut p = rcgen::CertificateParams::new(vec![
            AGENT_SERVER_NAME.to_owned(),
            node_server_name(node),
        ])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        // The node name is for people reading the certificate; the check uses the SAN.
        let cn: String = node
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("berth node {cn}"));
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::seconds(valid.as_secs().min(i64::MAX as u64) as i64);
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| TrustError::Random(e.to_string()))?;
        serial[0] &= 0x7f;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let ca = ca_params();
        let issuer = rcgen::Issuer::from_params(&ca, &self.key);
        let cert = p.signed_by(key, &issuer)?;
        Ok(Issued {
            cert: cert.der().clone(),
            not_after: p.not_after,
        })
    }
}

/// The word for a token scope, as flags and messages spell it.
pub fn scope_word(scope: i32) -> &'static str {
    use berth_proto::v1::Scope;
    match Scope::try_from(scope) {
        Ok(Scope::Read) => "read",
        Ok(Scope::Operate) => "operate",
        Ok(Scope::Admin) => "admin",
        _ => "none",
    }
}

/// What a console or a caller presents: the cluster secret itself, or a scoped token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Secret(String),
    Scoped(ScopedToken),
}

impl std::fmt::Debug for Credential {
    /// Never shows a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(<redacted>)"),
            Credential::Scoped(t) => write!(f, "Scoped({})", t.id),
        }
    }
}

impl Credential {
    /// Reads a token: `berth-t1-…` is a scoped token, anything else the cluster secret.
    /// Field name: `token`; the message never repeats it.
    pub fn parse(token: &str) -> Result<Self, ValidationError> {
        if !token.bytes().all(|b| b.is_ascii_graphic()) || token.is_empty() {
            return Err(ValidationError::new(
                "token",
                "must be printable ASCII with no spaces",
            ));
        }
        if token.starts_with(SCOPED_PREFIX) {
            return ScopedToken::parse(token).map(Credential::Scoped);
        }
        Ok(Credential::Secret(token.to_owned()))
    }

    /// The CA key to pin.
    pub fn cluster(&self) -> ClusterKey {
        match self {
            Credential::Secret(s) => ClusterKey::of_secret(s),
            Credential::Scoped(t) => t.cluster,
        }
    }
}

/// A console token with a scope, minted by an agent: `berth-t1-` and the base64 of the
/// cluster's CA key (so it pins the cluster), the token's id, and its key. Agents keep only a
/// hash of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopedToken {
    pub cluster: ClusterKey,
    /// 16 hex characters; not secret: logs and `berth token ls` show it.
    pub id: String,
    key: [u8; SCOPED_KEY_LEN],
}

impl ScopedToken {
    /// A new token of `cluster`.
    pub fn mint(cluster: ClusterKey) -> Result<Self, TrustError> {
        let mut id = [0u8; SCOPED_ID_LEN];
        let mut key = [0u8; SCOPED_KEY_LEN];
        getrandom::fill(&mut id).map_err(|e| TrustError::Random(e.to_string()))?;
        getrandom::fill(&mut key).map_err(|e| TrustError::Random(e.to_string()))?;
        Ok(Self {
            cluster,
            id: hex(&id),
            key,
        })
    }

    pub fn parse(token: &str) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                "token",
                "is not a whole scoped token (berth-t1- and 86 characters); copy it again",
            )
        };
        let body = token.strip_prefix(SCOPED_PREFIX).ok_or_else(bad)?;
        let bytes = b64().decode(body).map_err(|_| bad())?;
        if bytes.len() != PUBLIC_LEN + SCOPED_ID_LEN + SCOPED_KEY_LEN {
            return Err(bad());
        }
        let mut public = [0u8; PUBLIC_LEN];
        public.copy_from_slice(&bytes[..PUBLIC_LEN]);
        let mut key = [0u8; SCOPED_KEY_LEN];
        key.copy_from_slice(&bytes[PUBLIC_LEN + SCOPED_ID_LEN..]);
        Ok(Self {
            cluster: ClusterKey(public),
            id: hex(&bytes[PUBLIC_LEN..PUBLIC_LEN + SCOPED_ID_LEN]),
            key,
        })
    }

    /// The token as the user copies it.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_LEN + SCOPED_ID_LEN + SCOPED_KEY_LEN);
        bytes.extend_from_slice(&self.cluster.0);
        for i in 0..SCOPED_ID_LEN {
            bytes.push(u8::from_str_radix(&self.id[i * 2..i * 2 + 2], 16).unwrap_or(0));
        }
        bytes.extend_from_slice(&self.key);
        format!("{SCOPED_PREFIX}{}", b64().encode(bytes))
    }

    /// What an agent stores instead of the key: SHA-256 of it, in hex.
    pub fn key_hash(&self) -> String {
        hex(&sha2::Sha256::digest(self.key))
    }
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("cluster", &self.cluster)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots for a set of clusters (during a rotation, the old and the new).
pub fn roots(clusters: &[ClusterKey]) -> Result<Arc<rustls::RootCertStore>, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in clusters {
        roots.roots.push(c.anchor()?);
    }
    Ok(Arc::new(roots))
}

/// A client's TLS settings: TLS 1.3, HTTP/2 by ALPN, servers verified against `clusters`'
/// CAs, and a certificate of our own when `identity` is given (agents dialling agents).
pub fn client_config(
    clusters: &[ClusterKey],
    identity: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
) -> Result<Arc<rustls::ClientConfig>, TrustError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(clusters)?);
    let mut config = match identity {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A server's TLS settings: TLS 1.3, HTTP/2, our certificate from `certs`, and a client
/// certificate verified when one is offered (agents) but not required (consoles present a
/// token instead).
pub fn server_config(
    clusters: &[ClusterKey],
    certs: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, TrustError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(clusters)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TrustError::Tls(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A signing key rustls can use, from PKCS#8 DER.
pub fn signing_key(pkcs8: &[u8]) -> Result<Arc<dyn rustls::sign::SigningKey>, TrustError> {
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    Ok(provider().key_provider.load_private_key(der)?)
}

/// Whether `cert` chains, now, to one of `anchors` as a client certificate. What a handshake
/// accepted is checked again on every call, so a connection made with a CA that a rotation
/// has since removed no longer counts as an agent's.
pub fn issued_by(cert: &CertificateDer<'_>, anchors: &[TrustAnchor<'_>]) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    ee.verify_for_usage(
        &[webpki::ring::ED25519],
        anchors,
        &[],
        rustls::pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .is_ok()
}

/// Whether `cert` (already verified against the cluster CA by the handshake) names `node`.
pub fn certifies_node(cert: &CertificateDer<'_>, node: &str) -> bool {
    let Ok(name) = ServerName::try_from(node_server_name(node)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_built_from_the_public_key_is_the_real_ca_s() {
        let secret = "a-cluster-secret-of-some-length";
        let key = ca_key(secret);
        let real = ca_params().self_signed(&key).expect("ca");
        let from_cert = webpki::anchor_from_trusted_cert(real.der()).expect("anchor");
        let built = ClusterKey::of_secret(secret).anchor().expect("built");
        assert_eq!(built.subject.as_ref(), from_cert.subject.as_ref());
        assert_eq!(
            built.subject_public_key_info.as_ref(),
            from_cert.subject_public_key_info.as_ref()
        );
    }

    #[test]
    fn every_holder_of_a_secret_derives_the_same_ca_and_others_another() {
        let a = ClusterKey::of_secret("secret-number-one-xx");
        assert_eq!(a, ClusterCa::derive("secret-number-one-xx").public());
        assert_ne!(a, ClusterKey::of_secret("secret-number-two-xx"));
        assert_eq!(a.fingerprint().len(), "ca:".len() + 16);
    }

    #[test]
    fn an_issued_certificate_names_its_node_and_no_other() {
        let ca = ClusterCa::derive("secret-number-one-xx");
        let leaf = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let issued = ca
            .issue("node-a", &leaf, std::time::Duration::from_secs(3600))
            .expect("issued");
        assert!(certifies_node(&issued.cert, "node-a"));
        assert!(!certifies_node(&issued.cert, "node-b"));
        assert!(!certifies_node(&issued.cert, "node-a "));
    }

    #[test]
    fn a_certificate_is_issued_by_its_cluster_only() {
        let ca = ClusterCa::derive("secret-number-one-xx");
        let leaf = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let issued = ca
            .issue("node-a", &leaf, std::time::Duration::from_secs(3600))
            .expect("issued");
        let mine = ca.public().anchor().expect("anchor");
        let other = ClusterKey::of_secret("secret-number-two-xx")
            .anchor()
            .expect("anchor");
        assert!(issued_by(&issued.cert, std::slice::from_ref(&mine)));
        assert!(!issued_by(&issued.cert, std::slice::from_ref(&other)));
        assert!(issued_by(&issued.cert, &[other, mine]));
    }

    #[test]
    fn scoped_tokens_round_trip_and_bad_ones_name_the_field() {
        let t = ScopedToken::mint(ClusterKey::of_secret("secret-number-one-xx")).expect("mint");
        let text = t.encode();
        assert!(text.starts_with(SCOPED_PREFIX));
        assert_eq!(text.len(), SCOPED_PREFIX.len() + 86);
        assert_eq!(ScopedToken::parse(&text).expect("parses"), t);
        match Credential::parse(&text).expect("credential") {
            Credential::Scoped(s) => assert_eq!(s.id, t.id),
            other => panic!("{other:?}"),
        }
        for bad in [&text[..text.len() - 1], "berth-t1-", "berth-t1-!!!!"] {
            let e = Credential::parse(bad).expect_err(bad);
            assert_eq!(e.field, "token");
            assert!(!e.to_string().contains(&text[12..30]), "{e}");
        }
        assert!(!format!("{t:?}").contains(&text[SCOPED_PREFIX.len()..]));
        assert!(matches!(
            Credential::parse("any-long-shared-secret"),
            Ok(Credential::Secret(_))
        ));
    }

    #[test]
    fn new_secrets_are_long_random_and_usable() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert!(crate::token::check_agent_token(&a).is_ok());
    }
}
