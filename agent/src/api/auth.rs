//! Who may call: the cluster token, checked in constant time on every call.

use std::sync::Arc;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` in constant time. The token is never logged.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
        }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(subtle::ConstantTimeEq::ct_eq(given, &expected[..])) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong cluster token (authorization: Bearer …)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn token_check_accepts_only_the_exact_bearer() {
        let mut check = TokenCheck::new(Some("s3cret"));
        let with = |v: &str| {
            let mut r = Request::new(());
            r.metadata_mut()
                .insert("authorization", v.parse().expect("ascii header"));
            r
        };
        assert!(check.call(with("Bearer s3cret")).is_ok());
        let err = check.call(with("Bearer s3cre")).expect_err("wrong token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("s3cret"), "never echo the token");
        assert!(check.call(with("s3cret")).is_err());
        assert!(check.call(Request::new(())).is_err());
        let mut open = TokenCheck::new(None);
        assert!(open.call(Request::new(())).is_ok());
    }
}
