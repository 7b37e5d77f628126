//! `berth exec`'s start message, checked: what to run in a container, as whom, where.
//! The console checks it before connecting; the agent checks it again.

use crate::ValidationError;
use crate::error::quoted;
use crate::spec::{EnvArg, MAX_ENV, parse_env, validate_args, validate_env_entry};
use berth_proto::v1 as pb;

/// The longest `--user` accepted.
pub const MAX_USER_LEN: usize = 256;
/// The longest `--workdir` accepted (Linux's PATH_MAX).
pub const MAX_WORKDIR_LEN: usize = 4096;
/// The largest terminal side accepted, in cells (Docker's resize takes 16 bits).
pub const MAX_TERMINAL_SIDE: u32 = u16::MAX as u32;

/// What `berth exec` runs, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub container: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// Rows and columns at start, with a terminal.
    pub size: Option<(u16, u16)>,
}

/// `--user`: `user`, `user:group`, `uid` or `uid:gid`, as Docker takes it; no spaces,
/// control characters or `/`, at most one `:`. Field name: `field`.
pub fn validate_user(field: &str, user: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if user.is_empty() {
        return err("is empty".into());
    }
    if user.len() > MAX_USER_LEN {
        return err(format!(
            "is {} bytes long; at most {MAX_USER_LEN}",
            user.len()
        ));
    }
    let bad = |s: &str| {
        s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == ':')
    };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    if bad(name) || group.is_some_and(bad) {
        return err(format!(
            "{} is not a user: expected user, user:group, uid or uid:gid",
            quoted(user)
        ));
    }
    Ok(())
}

/// `--workdir`: an absolute path without NUL bytes. Field name: `field`.
pub fn validate_workdir(field: &str, dir: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if dir.len() > MAX_WORKDIR_LEN {
        return err(format!(
            "is {} bytes long; at most {MAX_WORKDIR_LEN}",
            dir.len()
        ));
    }
    if !dir.starts_with('/') {
        return err(format!("{} is not an absolute path", quoted(dir)));
    }
    if dir.contains('\0') {
        return err("contains a NUL byte".into());
    }
    Ok(())
}

/// A terminal size: both sides from 1 to 65535. Field name: `field`.
pub fn terminal_size(field: &str, size: &pb::TerminalSize) -> Result<(u16, u16), ValidationError> {
    let side = |n: u32| u16::try_from(n).ok().filter(|n| *n > 0);
    match (side(size.rows), side(size.cols)) {
        (Some(rows), Some(cols)) => Ok((rows, cols)),
        _ => Err(ValidationError::new(
            field,
            format!(
                "{}x{} is not a terminal size: rows and columns from 1 to {MAX_TERMINAL_SIDE}",
                size.cols, size.rows
            ),
        )),
    }
}

impl ExecSpec {
    /// The console's `-e` values (an inherited `KEY` already looked up) as pairs; an unset
    /// inherited key is skipped, as Docker does.
    pub fn env_from_args(
        args: &[EnvArg],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        args.iter()
            .filter_map(|a| match a {
                EnvArg::Pair(k, v) => Some((k.clone(), v.clone())),
                EnvArg::Inherit(k) => lookup(k).map(|v| (k.clone(), v)),
            })
            .collect()
    }

    /// Checks every field; the first problem is returned, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::spec::validate_reference("container", &self.container)?;
        if self.command.is_empty() {
            return Err(ValidationError::new(
                "command",
                "is empty: give the program to run after the container, e.g. `-- sh`",
            ));
        }
        validate_args("command", &self.command)?;
        if self.command[0].is_empty() {
            return Err(ValidationError::new(
                "command",
                "the program's name is empty",
            ));
        }
        if let Some(u) = &self.user {
            validate_user("user", u)?;
        }
        if let Some(w) = &self.workdir {
            validate_workdir("workdir", w)?;
        }
        if self.env.len() > MAX_ENV {
            return Err(ValidationError::new(
                "env",
                format!(
                    "{} variables, more than the maximum of {MAX_ENV}",
                    self.env.len()
                ),
            ));
        }
        for (k, v) in &self.env {
            validate_env_entry("env", k, v)?;
        }
        Ok(())
    }

    pub fn from_proto(p: &pb::ExecStart) -> Result<Self, ValidationError> {
        let mut env = Vec::with_capacity(p.env.len().min(MAX_ENV));
        if p.env.len() > MAX_ENV {
            return Err(ValidationError::new(
                "env",
                format!(
                    "{} variables, more than the maximum of {MAX_ENV}",
                    p.env.len()
                ),
            ));
        }
        for e in &p.env {
            match parse_env(e)? {
                EnvArg::Pair(k, v) => env.push((k, v)),
                EnvArg::Inherit(k) => {
                    return Err(ValidationError::new(
                        "env",
                        format!("{} has no value: expected KEY=VALUE", quoted(&k)),
                    ));
                }
            }
        }
        let size = match &p.size {
            Some(s) if p.tty => Some(terminal_size("size", s)?),
            _ => None,
        };
        let spec = Self {
            container: p.container.clone(),
            command: p.command.clone(),
            tty: p.tty,
            stdin: p.stdin,
            user: Some(p.user.clone()).filter(|u| !u.is_empty()),
            workdir: Some(p.workdir.clone()).filter(|w| !w.is_empty()),
            env,
            size,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_proto(&self) -> pb::ExecStart {
        pb::ExecStart {
            container: self.container.clone(),
            command: self.command.clone(),
            tty: self.tty,
            stdin: self.stdin,
            user: self.user.clone().unwrap_or_default(),
            workdir: self.workdir.clone().unwrap_or_default(),
            env: self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            size: self.size.map(|(rows, cols)| pb::TerminalSize {
                rows: rows.into(),
                cols: cols.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> pb::ExecStart {
        pb::ExecStart {
            container: "web".into(),
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            ..Default::default()
        }
    }

    #[test]
    fn round_trips() {
        let mut p = start();
        p.tty = true;
        p.stdin = true;
        p.user = "1000:1000".into();
        p.workdir = "/srv".into();
        p.env = vec!["A=1".into(), "B=".into()];
        p.size = Some(pb::TerminalSize {
            rows: 40,
            cols: 120,
        });
        let spec = ExecSpec::from_proto(&p).expect("valid");
        assert_eq!(spec.size, Some((40, 120)));
        assert_eq!(
            spec.env,
            vec![("A".into(), "1".into()), ("B".into(), "".into())]
        );
        assert_eq!(spec.to_proto(), p);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut pb::ExecStart)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|p| p.container.clear()), "container"),
            (Box::new(|p| p.container = "x".repeat(300)), "container"),
            (Box::new(|p| p.command.clear()), "command"),
            (Box::new(|p| p.command = vec![String::new()]), "command"),
            (Box::new(|p| p.command.push("a\0b".into())), "command"),
            (Box::new(|p| p.user = "root user".into()), "user"),
            (Box::new(|p| p.user = "a:b:c".into()), "user"),
            (Box::new(|p| p.user = ":0".into()), "user"),
            (Box::new(|p| p.workdir = "relative".into()), "workdir"),
            (Box::new(|p| p.env = vec!["=x".into()]), "env"),
            (Box::new(|p| p.env = vec!["NOVALUE".into()]), "env"),
            (
                Box::new(|p| {
                    p.tty = true;
                    p.size = Some(pb::TerminalSize { rows: 0, cols: 80 });
                }),
                "size",
            ),
            (
                Box::new(|p| {
                    p.tty = true;
                    p.size = Some(pb::TerminalSize {
                        rows: 70_000,
                        cols: 80,
                    });
                }),
                "size",
            ),
        ];
        for (change, field) in cases {
            let mut p = start();
            change(&mut p);
            let e = ExecSpec::from_proto(&p).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn users_docker_takes() {
        for ok in ["root", "1000", "1000:1000", "www-data:www-data", "app.user"] {
            validate_user("user", ok).expect(ok);
        }
    }
}
