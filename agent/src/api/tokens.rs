//! Scoped console tokens: minted by any agent for an admin, kept in the service store as
//! `token/<id>` entries (only a hash of the key), so a token and its revocation reach every
//! agent the way a service write does: pushed to a few peers at once, then anti-entropy.
//!
//! A token is `berth-t1-` and the cluster's CA key (so a console holding it pins the
//! cluster), the token's id and its key; see `shared::trust::ScopedToken`.

use super::Service;
use super::auth::Caller;
use crate::services::store::token_key;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::trust::{ScopedToken, scope_word};
use tonic::{Request, Status};

/// The longest a token may live: ten years. 0 asks for no expiry.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A token's label: up to 64 printable ASCII characters (spaces allowed), so a row of
/// `berth token ls` cannot be made to look like another. Field: `name`.
pub fn check_token_name(name: &str) -> Result<(), ValidationError> {
    if name.len() > 64 {
        return Err(ValidationError::new("name", "is longer than 64 bytes"));
    }
    if !name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "name",
            "may hold only printable ASCII characters and spaces",
        ));
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn info(e: &pb::ServiceEntry) -> pb::TokenInfo {
    let t = e.token.clone().unwrap_or_default();
    pb::TokenInfo {
        id: t.id,
        name: t.name,
        scope: t.scope,
        created_unix_ms: e.created_unix_ms,
        expires_unix_ms: t.expires_unix_ms,
        revoked: e.deleted,
        created_by: t.created_by,
    }
}

fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Open)
}

/// How often an open stream looks whether its token is still good.
pub const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends `stream` with `UNAUTHENTICATED` once `gone` resolves: a `Watch` or `logs -f` opened
/// with a token that is then revoked (or expires) does not outlive it.
pub fn until_revoked<T: Send + 'static>(
    stream: super::BoxStream<T>,
    gone: std::pin::Pin<Box<dyn std::future::Future<Output = Status> + Send>>,
) -> super::BoxStream<T> {
    use futures::StreamExt as _;
    Box::pin(futures::stream::unfold(
        Some((stream, gone)),
        |state| async move {
            let (mut stream, mut gone) = state?;
            tokio::select! {
                item = stream.next() => item.map(|i| (i, Some((stream, gone)))),
                status = &mut gone => Some((Err(status), None)),
            }
        },
    ))
}

impl Service {
    /// Resolves when `caller`'s scoped token is revoked, expires or is forgotten; never for
    /// any other caller.
    pub(super) fn token_gone<T>(
        &self,
        req: &Request<T>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Status> + Send>> {
        let Caller::Scoped { id, .. } = caller(req) else {
            return Box::pin(std::future::pending());
        };
        let store = self.services.store.clone();
        Box::pin(async move {
            loop {
                tokio::time::sleep(STREAM_RECHECK).await;
                let why = match store.token(&id) {
                    None => "is no longer known",
                    Some(e) if e.deleted => "was revoked",
                    Some(e)
                        if e.token.as_ref().is_some_and(|t| {
                            t.expires_unix_ms > 0 && now_ms() >= t.expires_unix_ms
                        }) =>
                    {
                        "has expired"
                    }
                    Some(_) => continue,
                };
                return Status::unauthenticated(format!("token {id} {why}: the stream ends"));
            }
        })
    }

    pub(super) async fn create_token_impl(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<pb::CreateTokenResponse, Status> {
        let by = caller(&req).id();
        let req = req.into_inner();
        let Some(cluster) = self.keyring.keys().primary() else {
            return Err(Status::failed_precondition(
                "this agent has no cluster secret: scoped tokens need one (and TLS)",
            ));
        };
        if !matches!(
            pb::Scope::try_from(req.scope),
            Ok(pb::Scope::Read | pb::Scope::Operate | pb::Scope::Admin)
        ) {
            return Err(ValidationError::new("scope", "must be read, operate or admin").into());
        }
        if req.ttl_seconds > MAX_TTL_SECONDS {
            return Err(ValidationError::new(
                "ttl_seconds",
                format!("is more than ten years ({MAX_TTL_SECONDS} s)"),
            )
            .into());
        }
        check_token_name(&req.name)?;
        let token = ScopedToken::mint(cluster).map_err(|e| Status::internal(e.to_string()))?;
        let now = now_ms();
        let record = pb::TokenRecord {
            id: token.id.clone(),
            name: req.name,
            scope: req.scope,
            key_sha256: token.key_hash(),
            expires_unix_ms: if req.ttl_seconds == 0 {
                0
            } else {
                now.saturating_add((req.ttl_seconds as i64).saturating_mul(1000))
            },
            created_by: by,
        };
        let entry = self
            .services
            .store
            .write_off_thread::<Status, _>(token_key(&token.id), move |_| {
                Ok(pb::ServiceEntry {
                    created_unix_ms: now,
                    token: Some(record),
                    ..Default::default()
                })
            })
            .await?;
        self.services.push(vec![entry.clone()]).await;
        tracing::info!(token = %token.id, scope = scope_word(req.scope), "minted a console token");
        Ok(pb::CreateTokenResponse {
            token: token.encode(),
            info: Some(info(&entry)),
        })
    }

    pub(super) fn list_tokens_impl(&self) -> pb::ListTokensResponse {
        pb::ListTokensResponse {
            tokens: self.services.store.tokens().iter().map(info).collect(),
        }
    }

    pub(super) async fn revoke_token_impl(
        &self,
        req: pb::RevokeTokenRequest,
    ) -> Result<pb::RevokeTokenResponse, Status> {
        let id = req.id.trim().to_ascii_lowercase();
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValidationError::new("id", "must be a token id: 16 hex characters").into());
        }
        let not_found = || Status::not_found(format!("no token with id {id}"));
        if self.services.store.token(&id).is_none() {
            return Err(not_found());
        }
        let entry = self
            .services
            .store
            .write_off_thread::<Status, _>(token_key(&id), move |current| {
                let Some(current) = current else {
                    return Err(Status::not_found("no such token"));
                };
                let mut next = current.clone();
                next.deleted = true;
                Ok(next)
            })
            .await?;
        self.services.push(vec![entry.clone()]).await;
        tracing::info!(token = %id, "revoked a console token");
        Ok(pb::RevokeTokenResponse {
            info: Some(info(&entry)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_are_short_and_printable() {
        assert!(check_token_name("on-call phone").is_ok());
        assert!(check_token_name("").is_ok());
        assert_eq!(
            check_token_name(&"x".repeat(65)).expect_err("long").field,
            "name"
        );
        assert!(check_token_name("bell\u{7}").is_err());
        assert!(
            check_token_name("flip\u{202e}txt").is_err(),
            "a bidi override"
        );
    }
}
