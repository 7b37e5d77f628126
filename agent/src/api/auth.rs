//! Who may call, decided once per call before any handler runs.
//!
//! With a cluster secret, a call is let in when its connection's TLS handshake proved it comes
//! from an agent of this cluster (a client certificate signed by the cluster CA, see
//! [`super::listen::PeerInfo`]), or when it carries `authorization: Bearer <secret>` (checked
//! in constant time against every secret held, so a rotation can accept two). The hop marker
//! is honoured only on a call whose certificate names the node the marker claims: from anyone
//! else it is removed, so the call is checked as a first hop. Without a secret (loopback only)
//! every call is let in, as before. A scoped token (`berth-t1-…`) is looked up in the
//! service store by its id; its key is compared with the stored hash in constant time, and a
//! revoked, expired or unknown token is refused, as is one of another cluster.
//!
//! What was decided rides with the request as a [`Caller`]; [`ScopeGuard`] then refuses a
//! call outside the caller's scope with `PERMISSION_DENIED` naming the scope it needs, and logs
//! every mutating call with the caller's token id (never the token), address and outcome.

use super::listen::PeerInfo;
use crate::cluster::peers::HOP_HEADER;
use crate::services::store::Store;
use berth_proto::v1 as pb;
use berth_shared::trust::{ClusterKey, Credential, ScopedToken};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::{Request, Status};

/// Who a call comes from, as proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The agent has no secret: everyone on loopback.
    Open,
    /// An agent of this cluster, by its certificate.
    Agent,
    /// A holder of the cluster secret.
    Secret,
    /// A scoped token.
    Scoped { id: String, scope: pb::Scope },
}

impl Caller {
    /// How logs name the caller: never a secret.
    pub fn id(&self) -> String {
        match self {
            Caller::Open => "open".into(),
            Caller::Agent => "agent".into(),
            Caller::Secret => "secret".into(),
            Caller::Scoped { id, .. } => format!("token:{id}"),
        }
    }

    /// Whether the caller may make a call that needs `need`.
    pub fn may(&self, need: Need) -> bool {
        match self {
            Caller::Open | Caller::Agent | Caller::Secret => true,
            Caller::Scoped { scope, .. } => match need {
                Need::Read => true,
                Need::Operate => matches!(scope, pb::Scope::Operate | pb::Scope::Admin),
                Need::Admin => *scope == pb::Scope::Admin,
                Need::Secret | Need::Agent => false,
            },
        }
    }
}

/// What a call needs, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Operate,
    Admin,
    /// The secret itself (and agents): the keyring, since a secret installed there is the
    /// whole cluster, which no scoped token may hand itself.
    Secret,
    /// Agents only (and the secret): the store's anti-entropy carries token hashes.
    Agent,
}

impl Need {
    pub fn of(method: &str) -> Need {
        match method {
            "Cluster" | "Watch" | "Events" | "Inspect" | "Logs" | "ListServices"
            | "ListObjects" | "ContainerStats" => Need::Read,
            // A container's files are as private as a shell in it.
            "Run" | "Stop" | "Remove" | "Exec" | "StatPath" | "CopyFrom" | "CopyTo"
            | "RemoveObject" | "Pull" | "CreateService" | "UpdateService" | "RemoveService"
            | "UpdateNode" => Need::Operate,
            "SyncServices" => Need::Agent,
            "Keyring" => Need::Secret,
            // The token calls, and any method added later until it is put above.
            _ => Need::Admin,
        }
    }

    /// Whether calls to a method are logged: those that change something, and CopyFrom.
    pub fn mutating(method: &str) -> bool {
        matches!(
            method,
            "Run"
                | "Stop"
                | "Remove"
                | "Exec"
                // Not a change, but as telling as a shell: audited as one.
                | "CopyFrom"
                | "CopyTo"
                | "RemoveObject"
                | "Pull"
                | "CreateService"
                | "UpdateService"
                | "RemoveService"
                | "CreateToken"
                | "RevokeToken"
                | "Keyring"
                | "UpdateNode"
        )
    }

    fn word(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Operate => "operate",
            Need::Admin => "admin",
            Need::Secret => "cluster secret",
            Need::Agent => "agent (agents only)",
        }
    }
}

/// Checks every call; see the module doc.
#[derive(Clone)]
pub struct TokenCheck {
    /// The secrets accepted (none: an open agent); they change with the keyring.
    keys: tokio::sync::watch::Receiver<Arc<crate::keyring::Keys>>,
    store: Option<Arc<Store>>,
    refusals: Arc<std::sync::Mutex<Refusals>>,
}

/// Refused calls, logged at most every [`REFUSED_LOG_EVERY`] with how many there were.
#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged_at: Option<std::time::Instant>,
}

const REFUSED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

impl TokenCheck {
    /// `keys`: the secrets accepted, none for an open agent. Scoped tokens are looked up in
    /// `store` and must pin one of the secrets' clusters.
    pub fn new(
        keys: tokio::sync::watch::Receiver<Arc<crate::keyring::Keys>>,
        store: Option<Arc<Store>>,
    ) -> Self {
        Self {
            keys,
            store,
            refusals: Arc::default(),
        }
    }

    /// Logs a refused call (never the token), at most every [`REFUSED_LOG_EVERY`].
    fn refused(&self, peer: &PeerInfo, why: &str) {
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        r.since_log += 1;
        if r.logged_at.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
            tracing::warn!(
                from = %peer.remote.map_or_else(|| "?".to_owned(), |a| a.to_string()),
                refused = r.since_log,
                last_reason = why,
                "refused calls with a missing or wrong token"
            );
            r.logged_at = Some(std::time::Instant::now());
            r.since_log = 0;
        }
    }

    fn scoped(&self, clusters: &[ClusterKey], token: &ScopedToken) -> Result<Caller, Status> {
        let refuse = |why: String| Err(Status::unauthenticated(why));
        if !clusters.contains(&token.cluster) {
            return refuse(format!(
                "token {} belongs to another cluster ({})",
                token.id,
                token.cluster.fingerprint()
            ));
        }
        let Some(entry) = self.store.as_ref().and_then(|s| s.token(&token.id)) else {
            return refuse(format!(
                "token {} is not known here (a token just made reaches every agent within \
                 seconds)",
                token.id
            ));
        };
        let Some(record) = entry.token.as_ref() else {
            return refuse(format!("token {} is not known here", token.id));
        };
        let matches = subtle::ConstantTimeEq::ct_eq(
            record.key_sha256.as_bytes(),
            token.key_hash().as_bytes(),
        );
        if !bool::from(matches) {
            return refuse(format!("token {} is wrong", token.id));
        }
        if entry.deleted {
            return refuse(format!("token {} was revoked", token.id));
        }
        if record.expires_unix_ms > 0
            && chrono::Utc::now().timestamp_millis() >= record.expires_unix_ms
        {
            return refuse(format!("token {} has expired", token.id));
        }
        let scope = pb::Scope::try_from(record.scope).unwrap_or(pb::Scope::Unspecified);
        Ok(Caller::Scoped {
            id: token.id.clone(),
            scope,
        })
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let keys = self.keys.borrow().clone();
        if keys.secrets.is_empty() {
            req.extensions_mut().insert(Caller::Open);
            return Ok(req);
        }
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .cloned()
            .unwrap_or_default();
        // An agent's certificate counts only if a CA trusted now issued it: after a rotation
        // removed its CA, a connection made before is no agent's any more.
        let agent = peer
            .agent_cert
            .as_ref()
            .is_some_and(|c| berth_shared::trust::issued_by(c, &keys.anchors));
        if let Some(from) = req.metadata().get(HOP_HEADER) {
            let proved = agent && from.to_str().is_ok_and(|node| peer.is_agent(node));
            if !proved {
                tracing::debug!(
                    from = ?peer.remote,
                    "ignoring a hop marker from a caller that is not the agent it names"
                );
                req.metadata_mut().remove(HOP_HEADER);
            }
        }
        if agent {
            req.extensions_mut().insert(Caller::Agent);
            return Ok(req);
        }
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if let Some(scoped) = given
            .strip_prefix(b"Bearer ")
            .filter(|t| t.starts_with(berth_shared::trust::SCOPED_PREFIX.as_bytes()))
        {
            let parsed = std::str::from_utf8(scoped)
                .ok()
                .and_then(|t| Credential::parse(t).ok());
            let caller = match parsed {
                Some(Credential::Scoped(t)) => match self.scoped(&keys.clusters, &t) {
                    Ok(c) => c,
                    Err(status) => {
                        self.refused(&peer, status.message());
                        return Err(status);
                    }
                },
                _ => {
                    self.refused(&peer, "a malformed scoped token");
                    return Err(Status::unauthenticated(
                        "a malformed scoped token (berth-t1-…): copy it again",
                    ));
                }
            };
            req.extensions_mut().insert(caller);
            return Ok(req);
        }
        // Every secret is compared, so the time taken says nothing about which matched.
        // Digests of equal length are compared, so the time taken says nothing of a secret's
        // length either, and every secret is compared, so nothing of which one matched.
        let given = digest(given);
        let matched = keys.bearers.iter().fold(subtle::Choice::from(0), |m, e| {
            m | subtle::ConstantTimeEq::ct_eq(&given[..], &e[..])
        });
        if bool::from(matched) {
            req.extensions_mut().insert(Caller::Secret);
            Ok(req)
        } else {
            self.refused(&peer, "missing or wrong cluster token");
            Err(Status::unauthenticated(
                "missing or wrong cluster token (authorization: Bearer …)",
            ))
        }
    }
}

/// Refuses calls outside the caller's scope and logs mutating calls; see the module doc. It
/// sits inside [`TokenCheck`], which has put the [`Caller`] in the request's extensions.
#[derive(Clone)]
pub struct ScopeGuard<S> {
    inner: S,
}

impl<S> ScopeGuard<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for ScopeGuard<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for ScopeGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let need = Need::of(&method);
        let caller = req.extensions().get::<Caller>().cloned();
        let from = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.remote)
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        let Some(caller) = caller else {
            let refused = Status::unauthenticated("no credentials checked").into_http();
            return Box::pin(async move { Ok(refused) });
        };
        if !caller.may(need) {
            tracing::warn!(call = %method, caller = %caller.id(), %from, outcome = "permission_denied", "refused a call outside the token's scope");
            let have = match &caller {
                Caller::Scoped { scope, .. } => berth_shared::trust::scope_word(*scope as i32),
                _ => "all",
            };
            let message = if need == Need::Secret {
                format!("{method} needs the cluster secret itself; a scoped token ({have}) may not")
            } else {
                format!(
                    "{method} needs the {} scope; this token has {have}",
                    need.word()
                )
            };
            let refused = Status::permission_denied(message).into_http();
            return Box::pin(async move { Ok(refused) });
        }
        // The ready service is the one to call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(req);
        // A forwarded call is logged by the agent that took it from the console.
        let mutating = Need::mutating(&method) && caller != Caller::Agent;
        Box::pin(async move {
            let response = call.await?;
            if mutating {
                // An error is sent trailers-only, its status in the headers; a stream that
                // started has none yet.
                let outcome = match response.headers().get("grpc-status") {
                    Some(code) if code.as_bytes() != b"0" => {
                        tonic::Code::from_bytes(code.as_bytes())
                            .description()
                            .to_owned()
                    }
                    // A stream's outcome comes later, in its events: this says it began.
                    _ if matches!(method.as_str(), "Run" | "Exec" | "Pull") => "started".to_owned(),
                    _ => "ok".to_owned(),
                };
                tracing::info!(call = %method, caller = %caller.id(), %from, %outcome, "mutating call");
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn checker(secrets: &[&str]) -> TokenCheck {
        let keys = crate::keyring::Keys::new(secrets.iter().map(|s| s.to_string()).collect());
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(keys));
        // The sender may go: the receiver keeps the last value.
        drop(tx);
        TokenCheck::new(rx, None)
    }

    fn with(v: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", v.parse().expect("ascii header"));
        r
    }

    #[test]
    fn token_check_accepts_only_the_exact_bearer() {
        let mut check = checker(&["s3cret"]);
        let ok = check.call(with("Bearer s3cret")).expect("right token");
        assert_eq!(ok.extensions().get::<Caller>(), Some(&Caller::Secret));
        let err = check.call(with("Bearer s3cre")).expect_err("wrong token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("s3cret"), "never echo the token");
        assert!(check.call(with("s3cret")).is_err());
        assert!(check.call(Request::new(())).is_err());
        let mut open = checker(&[]);
        let open = open.call(Request::new(())).expect("open");
        assert_eq!(open.extensions().get::<Caller>(), Some(&Caller::Open));
    }

    #[test]
    fn during_a_rotation_both_secrets_get_in() {
        let mut check = checker(&["new-secret", "old-secret"]);
        assert!(check.call(with("Bearer new-secret")).is_ok());
        assert!(check.call(with("Bearer old-secret")).is_ok());
        assert!(check.call(with("Bearer other-secret")).is_err());
    }

    #[test]
    fn a_hop_marker_without_the_named_agent_s_certificate_is_removed() {
        let mut check = checker(&["s3cret"]);
        let mut req = with("Bearer s3cret");
        req.metadata_mut()
            .insert(HOP_HEADER, "node-b".parse().expect("ascii"));
        let req = check.call(req).expect("the token is right");
        assert!(req.metadata().get(HOP_HEADER).is_none());
    }

    #[test]
    fn each_scope_reaches_its_methods_and_no_further() {
        let read = Caller::Scoped {
            id: "0".into(),
            scope: pb::Scope::Read,
        };
        let operate = Caller::Scoped {
            id: "0".into(),
            scope: pb::Scope::Operate,
        };
        let admin = Caller::Scoped {
            id: "0".into(),
            scope: pb::Scope::Admin,
        };
        for m in [
            "Cluster",
            "Watch",
            "Events",
            "Inspect",
            "Logs",
            "ListServices",
            "ListObjects",
            "ContainerStats",
        ] {
            assert!(read.may(Need::of(m)), "{m}");
        }
        for m in [
            "Run",
            "Stop",
            "Remove",
            "Exec",
            "StatPath",
            "CopyFrom",
            "CopyTo",
            "RemoveObject",
            "Pull",
            "CreateService",
            "UpdateService",
            "RemoveService",
            "UpdateNode",
        ] {
            assert!(!read.may(Need::of(m)), "{m}");
            assert!(operate.may(Need::of(m)), "{m}");
        }
        for m in ["CreateToken", "ListTokens", "RevokeToken", "SomethingNew"] {
            assert!(!operate.may(Need::of(m)), "{m}");
            assert!(admin.may(Need::of(m)), "{m}");
        }
        assert!(!admin.may(Need::of("SyncServices")));
        assert!(
            !admin.may(Need::of("Keyring")),
            "a token may not install a secret"
        );
        assert!(Caller::Secret.may(Need::of("Keyring")));
        assert!(Caller::Agent.may(Need::of("SyncServices")));
    }
}
