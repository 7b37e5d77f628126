//! Image references, checked by the grammar Docker uses (distribution/reference):
//! `[domain[:port]/]path[:tag][@sha256:hex]`, path components lowercase, 255 characters at most.

use crate::ValidationError;
use crate::error::quoted;
use std::fmt;

/// Docker's `NameTotalLengthMax`; here it bounds the whole reference.
pub const MAX_REFERENCE_LEN: usize = 255;
/// Longest tag Docker accepts.
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), if the reference names one.
    pub domain: Option<String>,
    /// Repository path, e.g. `library/nginx` or `team/app`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and validates; errors name the field `image`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.len() > MAX_REFERENCE_LEN {
            return Err(err(format!(
                "longer than {MAX_REFERENCE_LEN} characters ({} bytes)",
                s.len()
            )));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!(
                "{} contains whitespace or control characters",
                quoted(s)
            )));
        }
        // A bare image ID is not a reference (Docker refuses it as a repository name too).
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }

        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if last_slash.is_none_or(|sl| i > sl) => {
                (&name_tag[..i], Some(parse_tag(&name_tag[i + 1..])?))
            }
            _ => (name_tag, None),
        };
        if name.is_empty() {
            return Err(err(format!("{}: repository name is empty", quoted(s))));
        }

        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => {
                validate_domain(first)?;
                (Some(first.to_owned()), rest)
            }
            _ => (None, name),
        };
        validate_path(path)?;

        Ok(Self {
            domain,
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    /// The tag to pull when neither tag nor digest is given: `latest`, as Docker.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// `domain/path`, without tag or digest (what Docker's pull API calls `fromImage`).
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The reference as given (normalised): `domain/path:tag@digest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn err(message: impl Into<String>) -> ValidationError {
    ValidationError::new("image", message)
}

/// Docker's rule: the first component names a registry when it looks like a host.
fn is_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `host[:port]` where host is a DNS name (any case) or a bracketed IPv6 address.
fn validate_domain(domain: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| err(format!("invalid registry host {}: {why}", quoted(domain)));
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(bad("missing ']' after the IPv6 address"));
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(bad("unexpected characters after ']'")),
            },
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(bad("host name is empty"));
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(
                    "host name parts must be letters, digits and inner hyphens, separated by dots",
                ));
            }
        }
    }
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("port must be a number"));
    }
    Ok(())
}

/// `component(/component)*`, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn validate_path(path: &str) -> Result<(), ValidationError> {
    if path.is_empty() {
        return Err(err("repository path is empty"));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(err(format!(
                "repository path {} has an empty component",
                quoted(path)
            )));
        }
        if !is_path_component(component) {
            if is_path_component(&component.to_ascii_lowercase()) {
                return Err(err(format!(
                    "repository name must be lowercase: {}",
                    quoted(path)
                )));
            }
            return Err(err(format!(
                "invalid repository name component {}: use lowercase letters and digits, \
                 separated by '.', '_', '__' or '-'",
                quoted(component)
            )));
        }
    }
    Ok(())
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of alphanumerics.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator: `.`, `_`, `__` or `-+`.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn parse_tag(tag: &str) -> Result<String, ValidationError> {
    if tag.is_empty() {
        return Err(err("invalid tag: empty after ':'"));
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if !ok {
        return Err(err(format!(
            "invalid tag {}: at most {MAX_TAG_LEN} letters, digits, '_', '.' or '-', \
             not starting with '.' or '-'",
            quoted(tag)
        )));
    }
    Ok(tag.to_owned())
}

/// `algorithm:hex`, with the algorithms and lengths Docker's digest package knows.
fn parse_digest(digest: &str) -> Result<String, ValidationError> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(err(format!(
            "invalid digest {}: expected algorithm:hex, e.g. sha256:<64 hex digits>",
            quoted(digest)
        )));
    };
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(err(format!(
                "unsupported digest algorithm {} (use sha256, sha384 or sha512)",
                quoted(algo)
            )));
        }
    };
    let ok = hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(err(format!(
            "invalid {algo} digest: expected {len} lowercase hexadecimal digits, got {}",
            quoted(hex)
        )));
    }
    Ok(digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parts(s: &str) -> (Option<String>, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(s).unwrap_or_else(|e| panic!("{s:?} refused: {e}"));
        (r.domain, r.path, r.tag, r.digest)
    }

    fn refused(s: &str) -> String {
        match ImageRef::parse(s) {
            Ok(r) => panic!("{s:?} accepted as {r:?}"),
            Err(e) => {
                assert_eq!(e.field, "image", "{e}");
                e.message
            }
        }
    }

    #[test]
    fn accepts_plain_name() {
        let (d, p, t, g) = parts("nginx");
        assert_eq!((d, p.as_str(), t, g), (None, "nginx", None, None));
        let r = ImageRef::parse("nginx").expect("valid");
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.repository(), "nginx");
    }

    #[test]
    fn accepts_tag() {
        let r = ImageRef::parse("nginx:1.25").expect("valid");
        assert_eq!(r.tag.as_deref(), Some("1.25"));
        assert_eq!(r.tag_or_latest(), "1.25");
        assert_eq!(r.path, "nginx");
        assert_eq!(r.domain, None);
    }

    #[test]
    fn accepts_registry_with_port_and_tag() {
        let (d, p, t, g) = parts("localhost:5000/team/app:v1");
        assert_eq!(d.as_deref(), Some("localhost:5000"));
        assert_eq!(p, "team/app");
        assert_eq!(t.as_deref(), Some("v1"));
        assert_eq!(g, None);
        let r = ImageRef::parse("localhost:5000/team/app:v1").expect("valid");
        assert_eq!(r.repository(), "localhost:5000/team/app");
    }

    #[test]
    fn accepts_ip_registry() {
        let (d, p, t, _) = parts("127.0.0.1:5000/x");
        assert_eq!(d.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(p, "x");
        assert_eq!(t, None);
    }

    #[test]
    fn accepts_ghcr_and_localhost_and_ipv6() {
        let (d, p, _, _) = parts("ghcr.io/o/r");
        assert_eq!((d.as_deref(), p.as_str()), (Some("ghcr.io"), "o/r"));
        let (d, p, _, _) = parts("localhost/app");
        assert_eq!((d.as_deref(), p.as_str()), (Some("localhost"), "app"));
        let (d, _, _, _) = parts("[::1]:5000/app");
        assert_eq!(d.as_deref(), Some("[::1]:5000"));
        // Uppercase is allowed in the registry host only, as Docker.
        let (d, p, _, _) = parts("Registry.Example.COM/app");
        assert_eq!(
            (d.as_deref(), p.as_str()),
            (Some("Registry.Example.COM"), "app")
        );
    }

    #[test]
    fn a_first_component_without_dot_or_colon_is_path() {
        let (d, p, _, _) = parts("library/nginx");
        assert_eq!((d, p.as_str()), (None, "library/nginx"));
    }

    #[test]
    fn accepts_digest_with_and_without_tag() {
        let s = format!("a@sha256:{HEX}");
        let (d, p, t, g) = parts(&s);
        assert_eq!((d, p.as_str(), t), (None, "a", None));
        assert_eq!(g, Some(format!("sha256:{HEX}")));
        let s = format!("ghcr.io/o/r:1.0@sha256:{HEX}");
        let r = ImageRef::parse(&s).expect("valid");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.to_string(), s);
    }

    #[test]
    fn accepts_separators() {
        for s in [
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "a-b.c_d__e",
            "0",
            "x/y-1/z.2",
        ] {
            parts(s);
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "nginx",
            "nginx:1.25",
            "localhost:5000/team/app:v1",
            "127.0.0.1:5000/x",
            "ghcr.io/o/r",
        ] {
            let r = ImageRef::parse(s).expect("valid");
            assert_eq!(r.to_string(), s);
            assert_eq!(ImageRef::parse(&r.to_string()).expect("valid"), r);
        }
    }

    #[test]
    fn refuses_uppercase_repository() {
        let m = refused("UPPER/case");
        assert!(m.contains("repository name must be lowercase"), "{m}");
        let m = refused("Nginx");
        assert!(m.contains("repository name must be lowercase"), "{m}");
        let m = refused("ghcr.io/Owner/r");
        assert!(m.contains("repository name must be lowercase"), "{m}");
    }

    #[test]
    fn refuses_double_colon() {
        let m = refused("a::b");
        assert!(
            m.contains("invalid repository name component \"a:\""),
            "{m}"
        );
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(refused(""), "empty");
        assert!(refused(":tag").contains("repository name is empty"));
        assert!(refused(&format!("@sha256:{HEX}")).contains("repository name is empty"));
    }

    #[test]
    fn refuses_too_long_with_a_short_message() {
        let name = "a".repeat(300);
        let m = refused(&name);
        assert!(m.contains("longer than 255 characters"), "{m}");
        assert!(m.len() < 100, "{m}");
        // 255 is still fine.
        parts(&"a".repeat(255));
    }

    #[test]
    fn refuses_bad_tags() {
        assert!(refused("nginx:").contains("invalid tag: empty"));
        assert!(refused("nginx:.x").contains("invalid tag \".x\""));
        assert!(refused("nginx:-x").contains("invalid tag"));
        assert!(refused("nginx:a+b").contains("invalid tag"));
        assert!(refused(&format!("nginx:{}", "t".repeat(129))).contains("invalid tag"));
        parts(&format!("nginx:{}", "t".repeat(128)));
    }

    #[test]
    fn refuses_bad_digests() {
        assert!(refused("a@sha256:abc").contains("64 lowercase hexadecimal"));
        assert!(refused(&format!("a@sha256:{}", HEX.to_uppercase())).contains("64 lowercase"));
        assert!(refused(&format!("a@md5:{HEX}")).contains("unsupported digest algorithm"));
        assert!(refused("a@").contains("invalid digest"));
    }

    #[test]
    fn refuses_bad_paths_and_hosts() {
        assert!(refused("a//b").contains("empty component"));
        assert!(refused("a/").contains("empty component"));
        assert!(refused("ghcr.io/").contains("repository path is empty"));
        assert!(refused("-a").contains("invalid repository name component"));
        assert!(refused("a.").contains("invalid repository name component"));
        assert!(refused("a..b").contains("invalid repository name component"));
        assert!(refused("a___b").contains("invalid repository name component"));
        assert!(refused("ex_ample.com/a").contains("invalid registry host"));
        assert!(refused("host:port/a").contains("port must be a number"));
        assert!(refused("nginx latest").contains("whitespace"));
        assert!(refused(HEX).contains("image ID"));
    }
}
