//! The one error type of validation: which field, and what is wrong with it.

use std::fmt;

/// A rejected input. `field` names the flag or API field (`image`, `memory`, `ports[1]`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.message)
    }
}

impl From<ValidationError> for tonic::Status {
    fn from(e: ValidationError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Longest part of a user's value echoed back in a message: a 1 MB field must not become a 1 MB
/// error (nor a 1 MB log line on the agent).
pub(crate) const MAX_ECHO_CHARS: usize = 64;

/// `value` in double quotes with escapes, cut to [`MAX_ECHO_CHARS`] characters with a note of how
/// long it really was.
pub(crate) fn quoted(value: &str) -> String {
    let count = value.chars().count();
    if count <= MAX_ECHO_CHARS {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head:?}… ({count} characters)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field_and_message() {
        let e = ValidationError::new("memory", "must be greater than zero");
        assert_eq!(e.to_string(), "invalid memory: must be greater than zero");
    }

    #[test]
    fn converts_to_invalid_argument_status() {
        let s = tonic::Status::from(ValidationError::new("image", "empty"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "invalid image: empty");
    }

    #[test]
    fn quoted_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let long = "x".repeat(1_000_000);
        let q = quoted(&long);
        assert!(q.len() < 100, "{q}");
        assert!(q.ends_with("… (1000000 characters)"), "{q}");
        assert!(
            q.starts_with(&format!("\"{}\"", "x".repeat(MAX_ECHO_CHARS))),
            "{q}"
        );
    }
}
