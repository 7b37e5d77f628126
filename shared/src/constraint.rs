//! Scheduling constraints: `--constraint zone==east`, `--constraint node!=n2`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    Eq(String, String),
    Ne(String, String),
}

impl Constraint {
    /// Parses `key==value` or `key!=value`. The pseudo-label `node` is the node's name.
    pub fn parse(s: &str) -> Result<Self, crate::ValidationError> {
        let bad = |m: &str| crate::ValidationError::new("constraint", m.to_owned());
        let (k, v, eq) = if let Some((k, v)) = s.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = s.split_once("!=") {
            (k, v, false)
        } else {
            return Err(bad("must be label==value or label!=value"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(bad("the label is empty"));
        }
        if k.len() > 128 || v.len() > 4096 {
            return Err(bad("too long"));
        }
        // A label key's characters (`node` is one), so `=!=!` is not "`=` is not `!`".
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
            || !alnum(k.chars().next())
            || !alnum(k.chars().last())
        {
            return Err(crate::ValidationError::new(
                "constraint",
                format!(
                    "{} is not a label: letters, digits and . _ - /, starting and ending with a \
                     letter or digit",
                    crate::error::quoted(k)
                ),
            ));
        }
        // An empty value stays allowed (`zone==` matches a node whose zone is empty): services
        // stored with one must still parse.
        if v.starts_with(['=', '!']) {
            return Err(bad("must be label==value or label!=value (one operator)"));
        }
        Ok(if eq {
            Constraint::Eq(k.into(), v.into())
        } else {
            Constraint::Ne(k.into(), v.into())
        })
    }

    /// Whether a node named `node` with `labels` satisfies it.
    pub fn holds(&self, node: &str, labels: &std::collections::HashMap<String, String>) -> bool {
        let value = |k: &str| {
            if k == "node" {
                Some(node)
            } else {
                labels.get(k).map(String::as_str)
            }
        };
        match self {
            Constraint::Eq(k, v) => value(k) == Some(v.as_str()),
            Constraint::Ne(k, v) => value(k) != Some(v.as_str()),
        }
    }
}

/// The longest node name (an agent's `--name`) accepted; the gossip wire takes no longer.
pub const MAX_NODE_NAME_LEN: usize = 256;

/// A node name, as `--name` sets it, `--node` names it and the gossip wire carries it: 1 to
/// [`MAX_NODE_NAME_LEN`] bytes with no spaces or control characters. Field name: `field`.
pub fn validate_node_name(field: &str, name: &str) -> Result<(), crate::ValidationError> {
    if name.is_empty()
        || name.len() > MAX_NODE_NAME_LEN
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(crate::ValidationError::new(
            field,
            format!("must be 1 to {MAX_NODE_NAME_LEN} bytes with no spaces or control characters"),
        ));
    }
    Ok(())
}

/// `--strategy`: `spread` (the least reserved node first) or `binpack` (the fullest that
/// fits). Field name: `strategy`.
pub fn parse_strategy(s: &str) -> Result<berth_proto::v1::Strategy, crate::ValidationError> {
    match s {
        "spread" => Ok(berth_proto::v1::Strategy::Spread),
        "binpack" => Ok(berth_proto::v1::Strategy::Binpack),
        other => Err(crate::ValidationError::new(
            "strategy",
            format!("{}: use spread or binpack", crate::error::quoted(other)),
        )),
    }
}

/// The strategy a request carries: unset is spread; a number no strategy has is refused.
pub fn strategy_of(wire: i32) -> Result<berth_proto::v1::Strategy, crate::ValidationError> {
    match berth_proto::v1::Strategy::try_from(wire) {
        Ok(berth_proto::v1::Strategy::Unspecified) => Ok(berth_proto::v1::Strategy::Spread),
        Ok(s) => Ok(s),
        Err(_) => Err(crate::ValidationError::new(
            "strategy",
            format!("{wire} is not a strategy: spread or binpack"),
        )),
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::Eq(k, v) => write!(f, "{k}=={v}"),
            Constraint::Ne(k, v) => write!(f, "{k}!={v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_is_checked() {
        assert!(Constraint::parse("zone=east").is_err());
        assert!(Constraint::parse("==east").is_err());
        // One operator, between a label and a value.
        for bad in ["=!=!", "a===b", "a!=!b", "a=!=b", "-x==y", "a b==c"] {
            let e = Constraint::parse(bad).expect_err(bad);
            assert_eq!(e.field, "constraint", "{bad}");
        }
        assert!(Constraint::parse("topology.kubernetes.io/zone==eu-1").is_ok());
        let e = Constraint::parse("zone").expect_err("no operator");
        assert_eq!(e.field, "constraint");
        assert_eq!(
            Constraint::parse(" zone == east ").expect("valid"),
            Constraint::Eq("zone".into(), "east".into())
        );
        assert_eq!(
            Constraint::parse("node!=n2").expect("valid").to_string(),
            "node!=n2"
        );
    }

    #[test]
    fn node_names_and_strategies_have_one_rule() {
        assert!(validate_node_name("node", "n-1.example").is_ok());
        for bad in [
            "",
            "two words",
            "tab\there",
            &"x".repeat(MAX_NODE_NAME_LEN + 1),
        ] {
            assert_eq!(
                validate_node_name("node", bad).expect_err(bad).field,
                "node"
            );
        }
        assert_eq!(
            parse_strategy("binpack"),
            Ok(berth_proto::v1::Strategy::Binpack)
        );
        assert!(parse_strategy("random").is_err());
        assert_eq!(strategy_of(0), Ok(berth_proto::v1::Strategy::Spread));
        assert!(strategy_of(99).is_err());
    }

    #[test]
    fn node_is_a_pseudo_label() {
        let labels = [("zone".to_string(), "east".to_string())].into();
        assert!(
            Constraint::parse("node==a")
                .expect("valid")
                .holds("a", &labels)
        );
        assert!(
            !Constraint::parse("node==a")
                .expect("valid")
                .holds("b", &labels)
        );
        assert!(
            Constraint::parse("zone!=west")
                .expect("valid")
                .holds("a", &labels)
        );
        assert!(
            !Constraint::parse("zone==west")
                .expect("valid")
                .holds("a", &labels)
        );
        assert!(
            Constraint::parse("rack!=1")
                .expect("valid")
                .holds("a", &labels)
        );
    }
}
