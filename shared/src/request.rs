//! Request ids: chosen by the client once per `run` and sent again on every retry, so a retry
//! after a lost answer finds the container the first try made instead of making a second.

use crate::ValidationError;
use crate::error::quoted;

/// The longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Status metadata an agent adds when a retry with the same request id is the way on: it lost
/// track of a node that may have started the container, and a retry asks that node first.
pub const RETRY_METADATA: &str = "x-berth-retry-same-request";

/// Whether `status` asks for a retry with the same request id ([`RETRY_METADATA`]).
pub fn asks_for_retry(status: &tonic::Status) -> bool {
    status.metadata().contains_key(RETRY_METADATA)
}

/// A request id: 1 to [`MAX_REQUEST_ID_LEN`] characters of `A-Z a-z 0-9 . _ -`. Field name:
/// `request_id`.
pub fn check_request_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        return Err(ValidationError::new("request_id", "is empty"));
    }
    if id.len() > MAX_REQUEST_ID_LEN {
        return Err(ValidationError::new(
            "request_id",
            format!(
                "is {} bytes, more than the maximum of {MAX_REQUEST_ID_LEN}",
                id.len()
            ),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ValidationError::new(
            "request_id",
            format!("{} has {bad:?}; use A-Z a-z 0-9 . _ -", quoted(id)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_plain_words() {
        for good in [
            "a",
            "0f3c9d2e-7b1a",
            "run.1_x",
            &"x".repeat(MAX_REQUEST_ID_LEN),
        ] {
            assert!(check_request_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a b",
            "é",
            "a/b",
            "a\0",
            &"x".repeat(MAX_REQUEST_ID_LEN + 1),
        ] {
            let e = check_request_id(bad).unwrap_err();
            assert_eq!(e.field, "request_id", "{bad:?}");
        }
    }
}
