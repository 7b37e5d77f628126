//! What `docker run` can say about a container beyond its image, command, env, ports and
//! limits: mounts, network, process and security options. One set of rules for the CLI, the
//! TUI form and the agent; every error names its flag.
//!
//! What a node allows (bind mounts, privileged containers, extra capabilities, the host's
//! network) is the node's to decide: see [`Allowed`], checked by the agent that runs it.

use crate::ValidationError;
use crate::error::quoted;
use crate::exec::{validate_user, validate_workdir};
use berth_proto::v1 as pb;
use std::net::IpAddr;
use std::path::{Component, Path};

/// At most this many mounts (`-v`, `--mount`, `--tmpfs` together).
pub const MAX_MOUNTS: usize = 64;
/// At most this many `--add-host`, `--dns`, `--expose`, `--cap-add`, `--cap-drop` each.
pub const MAX_LIST: usize = 64;
/// The longest stop grace period a spec may ask for.
pub const MAX_STOP_TIMEOUT_SECS: u32 = 3600;
/// The longest path accepted (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// The capabilities Docker gives a container by default: `--cap-add` of these (after a
/// `--cap-drop`) is always allowed; any other needs the node's `--allow-cap`.
pub const DEFAULT_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Every Linux capability, as Docker names them (without `CAP_`).
const KNOWN_CAPS: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// The signals `--stop-signal` takes by name.
const SIGNALS: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGWINCH",
    "SIGPWR", "SIGSTOP",
];

/// Docker's networks that are not bridges of our own.
const HOST_NETWORK: &str = "host";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named volume (an anonymous one when the source is empty), created when missing.
    Volume,
    /// A path of the node's filesystem: only under the node's `--allow-bind` prefixes.
    Bind,
    /// Memory, gone with the container.
    Tmpfs,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    /// The volume's name or the host path; empty for tmpfs and anonymous volumes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// tmpfs only; 0: Docker's default (half the memory).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tmpfs_size_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A volume or network name as Docker takes it: letters, digits, `_`, `.`, `-`, starting with a
/// letter or digit, at most 64 characters.
pub fn validate_object_name(field: &str, what: &str, name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{} is not a {what} name: letters, digits, '_', '.' and '-', starting with a \
                 letter or digit, at most 64",
                quoted(name)
            ),
        ))
    }
}

/// An absolute path with no `.` or `..` parts, no NUL, at most 4096 bytes. Field name: `field`.
fn validate_path(field: &str, what: &str, path: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if path.len() > MAX_PATH {
        return err(format!(
            "{what} is {} bytes long; at most {MAX_PATH}",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return err(format!("{what} {} is not an absolute path", quoted(path)));
    }
    if path.contains('\0') {
        return err(format!("{what} contains a NUL byte"));
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path.split('/').any(|p| p == "." || p == "..")
    {
        return err(format!("{what} {} has . or .. in it", quoted(path)));
    }
    Ok(())
}

impl Mount {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        validate_path(field, "the target", &self.target)?;
        if self.target == "/" {
            return Err(ValidationError::new(field, "the target may not be /"));
        }
        match self.kind {
            MountKind::Volume if !self.source.is_empty() => {
                validate_object_name(field, "volume", &self.source)?
            }
            MountKind::Volume => {}
            MountKind::Bind => validate_path(field, "the host path", &self.source)?,
            MountKind::Tmpfs if !self.source.is_empty() => {
                return Err(ValidationError::new(field, "a tmpfs has no source"));
            }
            MountKind::Tmpfs => {}
        }
        if self.tmpfs_size_bytes != 0 && self.kind != MountKind::Tmpfs {
            return Err(ValidationError::new(
                field,
                "tmpfs-size is for tmpfs mounts",
            ));
        }
        Ok(())
    }

    /// `-v SRC:DST[:ro|rw]`, or `-v DST` (an anonymous volume). A source starting with `/` is
    /// a bind mount of that host path, anything else a named volume. Field name: `volume`.
    pub fn parse_volume(s: &str) -> Result<Self, ValidationError> {
        let field = "volume";
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => ("", *target, None),
            [source, target] => (*source, *target, None),
            [source, target, mode] => (*source, *target, Some(*mode)),
            _ => {
                return Err(ValidationError::new(
                    field,
                    format!("{} is not SRC:DST[:ro]", quoted(s)),
                ));
            }
        };
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(ValidationError::new(
                    field,
                    format!("{} is not a mode: ro or rw", quoted(other)),
                ));
            }
        };
        let kind = if source.starts_with('/') {
            MountKind::Bind
        } else {
            MountKind::Volume
        };
        let m = Mount {
            kind,
            source: source.to_owned(),
            target: target.to_owned(),
            read_only,
            tmpfs_size_bytes: 0,
        };
        m.validate(field)?;
        Ok(m)
    }

    /// `--mount type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=64m]`, Docker's
    /// key=value form (`src`, `dst`, `destination`, `ro` too). Field name: `mount`.
    pub fn parse_mount(s: &str) -> Result<Self, ValidationError> {
        let field = "mount";
        let err = |m: String| Err(ValidationError::new(field, m));
        let mut kind = MountKind::Volume;
        let (mut source, mut target, mut read_only, mut size) = (String::new(), None, false, 0);
        for pair in s.split(',') {
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (pair.trim(), None),
            };
            match (key, value) {
                ("type", Some("volume")) => kind = MountKind::Volume,
                ("type", Some("bind")) => kind = MountKind::Bind,
                ("type", Some("tmpfs")) => kind = MountKind::Tmpfs,
                ("type", v) => {
                    return err(format!(
                        "type {} is not volume, bind or tmpfs",
                        quoted(v.unwrap_or(""))
                    ));
                }
                ("source" | "src", Some(v)) => source = v.to_owned(),
                ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_owned()),
                ("readonly" | "ro", None | Some("true" | "1")) => read_only = true,
                ("readonly" | "ro", Some("false" | "0")) => read_only = false,
                ("tmpfs-size", Some(v)) => size = crate::quantity::parse_memory(v)?,
                _ => {
                    return err(format!(
                        "{} is not a mount option (type, source, target, readonly, tmpfs-size)",
                        quoted(pair)
                    ));
                }
            }
        }
        let Some(target) = target else {
            return err("target is missing (target=/path)".into());
        };
        let m = Mount {
            kind,
            source,
            target,
            read_only,
            tmpfs_size_bytes: size,
        };
        if m.kind == MountKind::Bind && m.source.is_empty() {
            return err("a bind mount needs source=/host/path".into());
        }
        m.validate(field)?;
        Ok(m)
    }

    /// `--tmpfs DST[:size=64m][,ro|rw]`. Field name: `tmpfs`.
    pub fn parse_tmpfs(s: &str) -> Result<Self, ValidationError> {
        let field = "tmpfs";
        let (target, options) = s.split_once(':').unwrap_or((s, ""));
        let mut m = Mount {
            kind: MountKind::Tmpfs,
            source: String::new(),
            target: target.to_owned(),
            read_only: false,
            tmpfs_size_bytes: 0,
        };
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("size", v)) => m.tmpfs_size_bytes = crate::quantity::parse_memory(v)?,
                None if option == "ro" => m.read_only = true,
                None if option == "rw" => m.read_only = false,
                _ => {
                    return Err(ValidationError::new(
                        field,
                        format!("{} is not a tmpfs option (size=, ro, rw)", quoted(option)),
                    ));
                }
            }
        }
        m.validate(field)?;
        Ok(m)
    }

    fn to_proto(&self) -> pb::Mount {
        pb::Mount {
            kind: match self.kind {
                MountKind::Volume => pb::MountKind::Volume,
                MountKind::Bind => pb::MountKind::Bind,
                MountKind::Tmpfs => pb::MountKind::Tmpfs,
            } as i32,
            source: self.source.clone(),
            target: self.target.clone(),
            read_only: self.read_only,
            tmpfs_size_bytes: self.tmpfs_size_bytes,
        }
    }

    fn from_proto(p: &pb::Mount, field: &str) -> Result<Self, ValidationError> {
        let kind = match pb::MountKind::try_from(p.kind) {
            Ok(pb::MountKind::Volume) => MountKind::Volume,
            Ok(pb::MountKind::Bind) => MountKind::Bind,
            Ok(pb::MountKind::Tmpfs) => MountKind::Tmpfs,
            _ => {
                return Err(ValidationError::new(
                    field,
                    "kind is not volume, bind or tmpfs",
                ));
            }
        };
        let m = Mount {
            kind,
            source: p.source.clone(),
            target: p.target.clone(),
            read_only: p.read_only,
            tmpfs_size_bytes: p.tmpfs_size_bytes,
        };
        m.validate(field)?;
        Ok(m)
    }
}

/// A hostname: dot-separated labels of letters, digits and `-` (not at either end), each at
/// most 63, all at most 253. Field name: `field`.
pub fn validate_hostname(field: &str, name: &str) -> Result<(), ValidationError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{} is not a hostname", quoted(name)),
        ))
    }
}

/// `--add-host NAME:IP` (Docker's form; `NAME=IP` too), kept as `NAME:IP`. Field: `add-host`.
pub fn parse_add_host(s: &str) -> Result<String, ValidationError> {
    let field = "add-host";
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| ValidationError::new(field, format!("{} is not NAME:IP", quoted(s))))?;
    validate_hostname(field, name)?;
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| ValidationError::new(field, format!("{} is not an IP address", quoted(ip))))?;
    Ok(format!("{name}:{ip}"))
}

/// `--dns IP`. Field name: `dns`.
pub fn parse_dns(s: &str) -> Result<String, ValidationError> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ValidationError::new("dns", format!("{} is not an IP address", quoted(s))))
}

/// `--expose PORT[/tcp|udp]`, kept as `PORT/PROTO`. Field name: `expose`.
pub fn parse_expose(s: &str) -> Result<String, ValidationError> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let bad = || ValidationError::new("expose", format!("{} is not PORT[/tcp|udp]", quoted(s)));
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || !matches!(proto, "tcp" | "udp") {
        return Err(bad());
    }
    Ok(format!("{port}/{proto}"))
}

/// `--cap-add` / `--cap-drop`: a capability name (any case, `CAP_` optional) or `ALL`, kept in
/// Docker's form (`NET_ADMIN`). Field name: `field`.
pub fn parse_capability(field: &str, s: &str) -> Result<String, ValidationError> {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name == "ALL" || KNOWN_CAPS.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{} is not a Linux capability (e.g. NET_ADMIN, ALL)",
                quoted(s)
            ),
        ))
    }
}

/// `--stop-signal`: a name (`SIGTERM`, `TERM`, any case) or a number 1–64, kept as Docker
/// takes it. Field name: `stop-signal`.
pub fn parse_stop_signal(s: &str) -> Result<String, ValidationError> {
    if let Ok(n) = s.parse::<u8>()
        && (1..=64).contains(&n)
    {
        return Ok(n.to_string());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if SIGNALS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(ValidationError::new(
            "stop-signal",
            format!("{} is not a signal (e.g. SIGTERM, SIGINT, 15)", quoted(s)),
        ))
    }
}

/// The run options of a container; every field optional, as `docker run`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RunOptions {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// A Docker network on the node (a bridge made when missing), or `bridge`, `none`, `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `NAME:IP`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Every exposed port to a free host port (`-P`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
    /// `PORT/PROTO`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout_secs: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// When the node pulls the image.
    #[serde(skip_serializing_if = "PullPolicy::is_missing")]
    pub pull: PullPolicy,
}

/// `--pull`: when a node pulls the image before creating the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Every time, even when the node has it (a moving tag such as `latest`).
    Always,
    /// Only when the node does not have it (Docker's default).
    #[default]
    Missing,
    /// Never: a node without the image refuses the run.
    Never,
}

impl PullPolicy {
    /// `always`, `missing` or `never`. Field name: `pull`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" | "" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(ValidationError::new(
                "pull",
                format!("{} is not always, missing or never", quoted(other)),
            )),
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
        }
    }

    fn is_missing(&self) -> bool {
        *self == PullPolicy::Missing
    }
}

fn check_len(field: &str, n: usize, max: usize) -> Result<(), ValidationError> {
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("{n} given, more than the maximum of {max}"),
        ));
    }
    Ok(())
}

impl RunOptions {
    pub fn is_default(&self) -> bool {
        *self == RunOptions::default()
    }

    /// Checks every field; the first problem is returned, naming its flag.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_len("mount", self.mounts.len(), MAX_MOUNTS)?;
        for (i, m) in self.mounts.iter().enumerate() {
            m.validate("mount")?;
            if self.mounts[..i].iter().any(|o| o.target == m.target) {
                return Err(ValidationError::new(
                    "mount",
                    format!("{} is mounted twice", quoted(&m.target)),
                ));
            }
        }
        if let Some(n) = &self.network {
            validate_object_name("network", "network", n)?;
        }
        if let Some(h) = &self.hostname {
            validate_hostname("hostname", h)?;
        }
        for (field, list) in [
            ("add-host", &self.add_hosts),
            ("dns", &self.dns),
            ("expose", &self.expose),
            ("cap-add", &self.cap_add),
            ("cap-drop", &self.cap_drop),
        ] {
            check_len(field, list.len(), MAX_LIST)?;
        }
        for h in &self.add_hosts {
            if parse_add_host(h)? != *h {
                return Err(ValidationError::new("add-host", "is not in NAME:IP form"));
            }
        }
        for d in &self.dns {
            parse_dns(d)?;
        }
        for e in &self.expose {
            if parse_expose(e)? != *e {
                return Err(ValidationError::new("expose", "is not in PORT/PROTO form"));
            }
        }
        if let Some(w) = &self.workdir {
            validate_workdir("workdir", w)?;
        }
        if let Some(u) = &self.user {
            validate_user("user", u)?;
        }
        if let Some(s) = &self.stop_signal {
            parse_stop_signal(s)?;
        }
        if let Some(t) = self.stop_timeout_secs
            && t > MAX_STOP_TIMEOUT_SECS
        {
            return Err(ValidationError::new(
                "stop-timeout",
                format!("{t}s is longer than the {MAX_STOP_TIMEOUT_SECS}s allowed"),
            ));
        }
        for c in &self.cap_add {
            parse_capability("cap-add", c)?;
        }
        for c in &self.cap_drop {
            parse_capability("cap-drop", c)?;
        }
        Ok(())
    }

    /// The named volumes it mounts (created on the node when missing).
    pub fn named_volumes(&self) -> impl Iterator<Item = &str> {
        self.mounts
            .iter()
            .filter(|m| m.kind == MountKind::Volume && !m.source.is_empty())
            .map(|m| m.source.as_str())
    }

    pub fn to_proto(&self) -> pb::RunOptions {
        pb::RunOptions {
            mounts: self.mounts.iter().map(Mount::to_proto).collect(),
            network: self.network.clone().unwrap_or_default(),
            hostname: self.hostname.clone().unwrap_or_default(),
            add_hosts: self.add_hosts.clone(),
            dns: self.dns.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            workdir: self.workdir.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            stop_signal: self.stop_signal.clone().unwrap_or_default(),
            stop_timeout_secs: self.stop_timeout_secs,
            init: self.init,
            read_only: self.read_only,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            pull: match self.pull {
                PullPolicy::Missing => String::new(),
                other => other.word().to_owned(),
            },
        }
    }

    /// Converts and checks a wire form; bounded before any work.
    pub fn from_proto(p: &pb::RunOptions) -> Result<Self, ValidationError> {
        check_len("mount", p.mounts.len(), MAX_MOUNTS)?;
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        let o = RunOptions {
            mounts: p
                .mounts
                .iter()
                .map(|m| Mount::from_proto(m, "mount"))
                .collect::<Result<_, _>>()?,
            network: some(&p.network),
            hostname: some(&p.hostname),
            add_hosts: p.add_hosts.clone(),
            dns: p.dns.clone(),
            publish_all: p.publish_all,
            expose: p.expose.clone(),
            workdir: some(&p.workdir),
            user: some(&p.user),
            stop_signal: some(&p.stop_signal),
            stop_timeout_secs: p.stop_timeout_secs,
            init: p.init,
            read_only: p.read_only,
            cap_add: p.cap_add.clone(),
            cap_drop: p.cap_drop.clone(),
            privileged: p.privileged,
            pull: PullPolicy::parse(&p.pull)?,
        };
        o.validate()?;
        Ok(o)
    }
}

/// What a node lets its containers have beyond the defaults (berthd's `--allow-bind`,
/// `--allow-privileged`, `--allow-cap`). Nothing by default: a bind mount of `/`, a privileged
/// container or `SYS_ADMIN` is root on that machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Host path prefixes bind mounts may come from (whole path components).
    pub bind_prefixes: Vec<std::path::PathBuf>,
    /// `--privileged` and `--network host`.
    pub privileged: bool,
    /// Capabilities beyond [`DEFAULT_CAPS`] (`ALL` allows every one).
    pub caps: Vec<String>,
}

/// Why a node refuses what a spec asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

impl Allowed {
    /// Checks `o` against what this node allows; `resolve` turns a bind source into the real
    /// path it names (symlinks followed), or says why it cannot. `node` is for the message.
    pub fn check(
        &self,
        node: &str,
        o: &RunOptions,
        resolve: impl Fn(&str) -> Result<std::path::PathBuf, String>,
    ) -> Result<(), NotAllowed> {
        if o.privileged && !self.privileged {
            return Err(NotAllowed(format!(
                "node {node} does not run privileged containers (berthd --allow-privileged)"
            )));
        }
        if o.network.as_deref() == Some(HOST_NETWORK) && !self.privileged {
            return Err(NotAllowed(format!(
                "node {node} does not give containers its own network (--network host needs \
                 berthd --allow-privileged)"
            )));
        }
        for cap in &o.cap_add {
            let allowed = DEFAULT_CAPS.contains(&cap.as_str())
                || self.caps.iter().any(|c| c == cap || c == "ALL");
            if !allowed {
                return Err(NotAllowed(format!(
                    "node {node} does not allow --cap-add {cap} (berthd --allow-cap {cap})"
                )));
            }
        }
        for m in o.mounts.iter().filter(|m| m.kind == MountKind::Bind) {
            let real = resolve(&m.source).map_err(|why| {
                NotAllowed(format!("cannot bind {} on node {node}: {why}", m.source))
            })?;
            if !self.bind_prefixes.iter().any(|p| real.starts_with(p)) {
                let allowed = if self.bind_prefixes.is_empty() {
                    "it allows none".to_owned()
                } else {
                    let list: Vec<String> = self
                        .bind_prefixes
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    format!("it allows {}", list.join(", "))
                };
                return Err(NotAllowed(format!(
                    "node {node} does not allow bind mounts of {} ({allowed}; berthd \
                     --allow-bind PREFIX)",
                    real.display()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn volume_flags_in_docker_s_forms() {
        let v = Mount::parse_volume("pgdata:/var/lib/postgresql/data").expect("volume");
        assert_eq!(
            (v.kind, v.source.as_str(), v.read_only),
            (MountKind::Volume, "pgdata", false)
        );
        let b = Mount::parse_volume("/srv/site:/usr/share/nginx/html:ro").expect("bind");
        assert_eq!((b.kind, b.read_only), (MountKind::Bind, true));
        let anon = Mount::parse_volume("/cache").expect("anonymous");
        assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
        for bad in [
            "a:b",
            "x:/d:rx",
            "../x:/d",
            "/a/../etc:/d",
            "a:/",
            "a:b:c:d",
            "bad name:/d",
        ] {
            let e = Mount::parse_volume(bad).expect_err(bad);
            assert_eq!(e.field, "volume", "{bad}: {e}");
        }
        let m = Mount::parse_mount("type=bind,src=/srv/x,dst=/x,readonly").expect("mount");
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.read_only),
            (MountKind::Bind, "/srv/x", "/x", true)
        );
        let t = Mount::parse_mount("type=tmpfs,target=/run,tmpfs-size=64m").expect("tmpfs");
        assert_eq!(t.tmpfs_size_bytes, 64 << 20);
        for bad in [
            "type=nfs,target=/x",
            "source=v",
            "type=bind,target=/x",
            "target=/x,colour=red",
        ] {
            assert_eq!(
                Mount::parse_mount(bad).expect_err(bad).field,
                "mount",
                "{bad}"
            );
        }
        let t = Mount::parse_tmpfs("/run:size=16m,ro").expect("tmpfs");
        assert_eq!((t.tmpfs_size_bytes, t.read_only), (16 << 20, true));
        assert_eq!(
            Mount::parse_tmpfs("/run:exec").expect_err("exec").field,
            "tmpfs"
        );
    }

    #[test]
    fn the_small_flags() {
        assert_eq!(parse_add_host("db:10.0.0.5").as_deref(), Ok("db:10.0.0.5"));
        assert_eq!(parse_add_host("v6=::1").as_deref(), Ok("v6:::1"));
        assert_eq!(parse_add_host("db").expect_err("no ip").field, "add-host");
        assert_eq!(
            parse_add_host("-x:1.2.3.4").expect_err("name").field,
            "add-host"
        );
        assert_eq!(parse_dns("1.1.1.1").as_deref(), Ok("1.1.1.1"));
        assert_eq!(parse_dns("dns.google").expect_err("name").field, "dns");
        assert_eq!(parse_expose("8080").as_deref(), Ok("8080/tcp"));
        assert_eq!(parse_expose("53/udp").as_deref(), Ok("53/udp"));
        assert_eq!(parse_expose("0").expect_err("0").field, "expose");
        assert_eq!(
            parse_capability("cap-add", "cap_net_admin").as_deref(),
            Ok("NET_ADMIN")
        );
        assert_eq!(parse_capability("cap-drop", "all").as_deref(), Ok("ALL"));
        assert_eq!(
            parse_capability("cap-add", "ROOT").expect_err("root").field,
            "cap-add"
        );
        assert_eq!(parse_stop_signal("int").as_deref(), Ok("SIGINT"));
        assert_eq!(parse_stop_signal("15").as_deref(), Ok("15"));
        assert_eq!(
            parse_stop_signal("SIGNOPE").expect_err("nope").field,
            "stop-signal"
        );
        let long = RunOptions {
            stop_timeout_secs: Some(4000),
            ..Default::default()
        };
        assert_eq!(long.validate().expect_err("long").field, "stop-timeout");
    }

    #[test]
    fn round_trips_and_old_specs_read_as_defaults() {
        let o = RunOptions {
            mounts: vec![Mount::parse_volume("data:/data").expect("v")],
            network: Some("app".into()),
            hostname: Some("web-1".into()),
            add_hosts: vec!["db:10.0.0.5".into()],
            dns: vec!["1.1.1.1".into()],
            publish_all: true,
            expose: vec!["80/tcp".into()],
            workdir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            stop_signal: Some("SIGINT".into()),
            stop_timeout_secs: Some(30),
            init: true,
            read_only: true,
            cap_add: vec!["NET_BIND_SERVICE".into()],
            cap_drop: vec!["ALL".into()],
            privileged: false,
            pull: PullPolicy::Always,
        };
        assert_eq!(RunOptions::from_proto(&o.to_proto()), Ok(o.clone()));
        let json = serde_json::to_string(&o).expect("json");
        assert_eq!(serde_json::from_str::<RunOptions>(&json).expect("back"), o);
        assert_eq!(
            serde_json::from_str::<RunOptions>("{}").expect("old"),
            RunOptions::default()
        );
    }

    #[test]
    fn a_node_allows_only_what_it_was_told() {
        let strict = Allowed::default();
        let real = |p: &str| Ok(PathBuf::from(p));
        let bind = RunOptions {
            mounts: vec![Mount::parse_volume("/srv/data:/data").expect("bind")],
            ..Default::default()
        };
        let e = strict
            .check("n1", &bind, real)
            .expect_err("no binds by default");
        assert!(
            e.0.contains("does not allow bind mounts of /srv/data"),
            "{e}"
        );
        let srv = Allowed {
            bind_prefixes: vec![PathBuf::from("/srv")],
            ..Default::default()
        };
        srv.check("n1", &bind, real).expect("under /srv");
        // Whole components: /srvx is not under /srv; a symlink is judged by where it leads.
        let sneaky = RunOptions {
            mounts: vec![Mount::parse_volume("/srvx:/x").expect("bind")],
            ..Default::default()
        };
        assert!(srv.check("n1", &sneaky, real).is_err());
        let link = |_: &str| Ok(PathBuf::from("/etc"));
        assert!(
            srv.check("n1", &bind, link).is_err(),
            "a link out of /srv is refused"
        );
        let privileged = RunOptions {
            privileged: true,
            ..Default::default()
        };
        assert!(strict.check("n1", &privileged, real).is_err());
        let host = RunOptions {
            network: Some("host".into()),
            ..Default::default()
        };
        assert!(strict.check("n1", &host, real).is_err());
        let caps = RunOptions {
            cap_add: vec!["NET_BIND_SERVICE".into(), "NET_ADMIN".into()],
            ..Default::default()
        };
        let e = strict.check("n1", &caps, real).expect_err("NET_ADMIN");
        assert!(e.0.contains("--cap-add NET_ADMIN"), "{e}");
        let net_admin = Allowed {
            caps: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        net_admin.check("n1", &caps, real).expect("allowed");
    }
}
