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
