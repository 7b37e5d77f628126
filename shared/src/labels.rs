//! Labels the agent puts on every container it creates. Docker keeps them, so an agent that
//! restarts rebuilds its state from Docker alone. User labels may not use the `berth.` prefix.

use crate::ValidationError;
use crate::error::quoted;

/// `true` on every container Berth created.
pub const MANAGED: &str = "berth.managed";
/// The node (agent name) that owns the container.
pub const NODE: &str = "berth.node";
/// The `spec::ContainerSpec` the container was made from, as JSON.
pub const SPEC: &str = "berth.spec";
/// The service a replica belongs to (its id), its slot, and the spec version it runs.
pub const SERVICE: &str = "berth.service";
pub const SERVICE_NAME: &str = "berth.service.name";
pub const SLOT: &str = "berth.slot";
pub const VERSION: &str = "berth.version";
/// The request id of the `Run` that made it, when the client sent one.
pub const REQUEST: &str = "berth.request";
/// Prefix reserved for Berth's own labels.
pub const RESERVED_PREFIX: &str = "berth.";

pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_LEN: usize = 128;
pub const MAX_LABEL_VALUE_LEN: usize = 4096;

/// Parses `key=value` (value may be empty; `key` alone means an empty value, as Docker).
/// The key is checked with [`validate_label_key`] and the value's length with
/// [`validate_label_value`]. Field name: `label`.
pub fn parse_label(arg: &str) -> Result<(String, String), ValidationError> {
    let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
    validate_label_key("label", key)?;
    validate_label_value("label", key, value)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// A label value: at most [`MAX_LABEL_VALUE_LEN`] bytes, no NUL.
pub fn validate_label_value(field: &str, key: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_LABEL_VALUE_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "value of {} is {} bytes, more than the maximum of {MAX_LABEL_VALUE_LEN}",
                quoted(key),
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(ValidationError::new(
            field,
            format!("value of {} contains a NUL byte", quoted(key)),
        ));
    }
    Ok(())
}

/// A user label key: non-empty, at most 128 chars, `[A-Za-z0-9._/-]`, starting and ending with an
/// alphanumeric, not under the reserved `berth.` prefix.
pub fn validate_label_key(field: &str, key: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if key.is_empty() {
        return err("label key is empty".into());
    }
    if key.len() > MAX_LABEL_KEY_LEN {
        return err(format!(
            "label key {} is longer than {MAX_LABEL_KEY_LEN} characters",
            quoted(key)
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-');
    if let Some(c) = key.chars().find(|&c| !allowed(c)) {
        return err(format!(
            "label key {} contains {c:?}: use letters, digits, '.', '_', '/' and '-'",
            quoted(key)
        ));
    }
    let alnum_ends = key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !alnum_ends {
        return err(format!(
            "label key {} must start and end with a letter or digit",
            quoted(key)
        ));
    }
    // Case-insensitive, so `Berth.node` cannot pass for Berth's own label either.
    if key
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
    {
        return err(format!(
            "label key {} uses the prefix {RESERVED_PREFIX:?}, which is reserved for Berth",
            quoted(key)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(arg: &str) -> String {
        match parse_label(arg) {
            Ok(kv) => panic!("{arg:?} accepted as {kv:?}"),
            Err(e) => {
                assert_eq!(e.field, "label", "{e}");
                e.message
            }
        }
    }

    #[test]
    fn parses_pairs_and_bare_keys() {
        let kv = |k: &str, v: &str| Ok((k.to_owned(), v.to_owned()));
        assert_eq!(parse_label("team=web"), kv("team", "web"));
        assert_eq!(parse_label("team="), kv("team", ""));
        assert_eq!(parse_label("team"), kv("team", ""));
        assert_eq!(parse_label("a=b=c"), kv("a", "b=c"));
        assert_eq!(
            parse_label("com.example/tier-1_x=x y"),
            kv("com.example/tier-1_x", "x y")
        );
        assert_eq!(parse_label("x"), kv("x", ""));
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(refused("=x"), "label key is empty");
        assert_eq!(refused(""), "label key is empty");
        assert!(refused("a b=c").contains("contains ' '"));
        assert!(refused("-a=b").contains("must start and end with a letter or digit"));
        assert!(refused("a.=b").contains("must start and end with a letter or digit"));
        assert!(refused("é=b").contains("contains 'é'"));
        let m = refused(&"k".repeat(129));
        assert!(m.contains("longer than 128") && m.len() < 150, "{m}");
        assert!(parse_label(&"k".repeat(128)).is_ok());
    }

    #[test]
    fn refuses_reserved_prefix() {
        let m = refused("berth.node=x");
        assert!(m.contains("reserved for Berth"), "{m}");
        assert!(refused("Berth.managed").contains("reserved"));
        assert!(parse_label("berthx.node=x").is_ok());
        assert!(parse_label("berth=x").is_ok());
        let e = validate_label_key("labels", MANAGED).expect_err("reserved");
        assert_eq!(e.field, "labels");
    }

    #[test]
    fn refuses_oversized_or_nul_values() {
        let m = refused(&format!("k={}", "v".repeat(MAX_LABEL_VALUE_LEN + 1)));
        assert!(m.contains("more than the maximum of 4096"), "{m}");
        assert!(m.len() < 150, "{m}");
        assert!(parse_label(&format!("k={}", "v".repeat(MAX_LABEL_VALUE_LEN))).is_ok());
        assert!(refused("k=a\0b").contains("NUL"));
    }
}
