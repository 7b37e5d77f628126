//! What makes a cluster token usable by an agent: the secret every call and every gossip seal
//! hangs on, so it must be long enough not to be guessed.

use crate::ValidationError;

/// The shortest token an agent accepts: 16 characters. `openssl rand -hex 32` gives 64.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest: a header must carry it.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Checks an agent's cluster token. Field name: `token`. The message never repeats the token.
pub fn check_agent_token(token: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new("token", m));
    if token.starts_with(crate::trust::SCOPED_PREFIX) {
        return err(
            "is a console token (berth-t1-…); an agent needs the cluster secret itself".into(),
        );
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return err("must be printable ASCII with no spaces".into());
    }
    if token.len() < MIN_TOKEN_LEN {
        return err(format!(
            "is {} characters; an agent needs at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
            token.len()
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return err(format!("is longer than {MAX_TOKEN_LEN} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_odd_and_huge_tokens_are_refused_without_being_repeated() {
        for bad in [
            "Zq",
            "Zq9Zq9Zq9Zq9Zq9",
            "has space Zq9Zq9Zq9",
            "tab\tZq9Zq9Zq9Zq9Zq9",
        ] {
            let e = check_agent_token(bad).expect_err(bad);
            assert_eq!(e.field, "token");
            assert!(!e.to_string().contains(bad), "{e}");
        }
        assert!(check_agent_token(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
        assert!(check_agent_token("abcdefghijklmnop").is_ok());
        assert!(check_agent_token(&"f".repeat(64)).is_ok());
        let scoped = format!("{}{}", crate::trust::SCOPED_PREFIX, "A".repeat(86));
        let e = check_agent_token(&scoped).expect_err("a console token");
        assert!(e.to_string().contains("console token"), "{e}");
    }
}
