//! The container spec: what `berth run` asks for, checked. Stored as JSON on the container
//! (`berth.spec` label) so the owner can always say what a container was made from.

use crate::ValidationError;
use crate::error::quoted;
use crate::image::ImageRef;
use crate::labels::{MAX_LABELS, validate_label_key, validate_label_value};
use crate::port::PortSpec;
use crate::quantity::{MIN_MEMORY_BYTES, format_bytes, validate_cpus};
use berth_proto::v1 as pb;
use std::collections::BTreeMap;

pub const MAX_NAME_LEN: usize = 128;
pub const MAX_ENV: usize = 1024;
pub const MAX_ENV_ENTRY_LEN: usize = 32 * 1024;
pub const MAX_ARGS: usize = 1024;
pub const MAX_ARGS_TOTAL_LEN: usize = 128 * 1024;
pub const MAX_PORTS: usize = 256;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    /// `max_retries` 0: unlimited.
    OnFailure {
        max_retries: u32,
    },
}

impl RestartPolicy {
    /// Parses `no|always|unless-stopped|on-failure[:N]`. Field name: `restart`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |m: String| Err(ValidationError::new("restart", m));
        let (kind, retries) = match s.split_once(':') {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        };
        let policy = match kind {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max_retries = match retries {
                    None => 0,
                    Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        match n.parse::<u32>() {
                            Ok(n) => n,
                            Err(_) => {
                                return err(format!(
                                    "maximum retry count {} is too large",
                                    quoted(n)
                                ));
                            }
                        }
                    }
                    Some(n) => {
                        return err(format!(
                            "maximum retry count {} must be a non-negative integer",
                            quoted(n)
                        ));
                    }
                };
                return Ok(RestartPolicy::OnFailure { max_retries });
            }
            other => {
                return err(format!(
                    "unknown policy {}: use no, always, unless-stopped or on-failure[:max-retries]",
                    quoted(other)
                ));
            }
        };
        if retries.is_some() {
            return err(format!(
                "a maximum retry count only applies to on-failure, not {kind}"
            ));
        }
        Ok(policy)
    }

    pub fn to_proto(&self) -> pb::RestartPolicy {
        use pb::restart_policy::Kind;
        let (kind, max_retries) = match self {
            RestartPolicy::No => (Kind::No, 0),
            RestartPolicy::Always => (Kind::Always, 0),
            RestartPolicy::UnlessStopped => (Kind::UnlessStopped, 0),
            RestartPolicy::OnFailure { max_retries } => (Kind::OnFailure, *max_retries),
        };
        pb::RestartPolicy {
            kind: kind as i32,
            max_retries,
        }
    }

    /// No policy or `KIND_UNSPECIFIED` means `no`, as Docker's default.
    fn from_proto(p: Option<&pb::RestartPolicy>) -> Result<Self, ValidationError> {
        use pb::restart_policy::Kind;
        let Some(p) = p else {
            return Ok(RestartPolicy::No);
        };
        let kind = Kind::try_from(p.kind).map_err(|_| {
            ValidationError::new("restart", format!("unknown restart policy kind {}", p.kind))
        })?;
        let policy = match kind {
            Kind::Unspecified | Kind::No => RestartPolicy::No,
            Kind::Always => RestartPolicy::Always,
            Kind::UnlessStopped => RestartPolicy::UnlessStopped,
            Kind::OnFailure => RestartPolicy::OnFailure {
                max_retries: p.max_retries,
            },
        };
        if p.max_retries != 0 && !matches!(policy, RestartPolicy::OnFailure { .. }) {
            return Err(ValidationError::new(
                "restart",
                format!("a maximum retry count only applies to on-failure, not {policy}"),
            ));
        }
        Ok(policy)
    }
}

impl std::fmt::Display for RestartPolicy {
    /// The same words `parse` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure { max_retries: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max_retries } => write!(f, "on-failure:{max_retries}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    /// Canonical form of the validated [`ImageRef`].
    pub image: String,
    pub name: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<PortSpec>,
    /// 0.0: unlimited.
    pub cpus: f64,
    /// 0: unlimited.
    pub memory_bytes: u64,
    pub restart: RestartPolicy,
    pub labels: BTreeMap<String, String>,
    /// The service slot this container fills; set only by the service reconciler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotRef>,
    /// Docker's HEALTHCHECK; `None`: the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Mounts, network, process and security options.
    #[serde(
        default,
        skip_serializing_if = "crate::options::RunOptions::is_default"
    )]
    pub options: crate::options::RunOptions,
    /// The request id of the `Run` that makes it ([`crate::request`]); not part of the wire
    /// spec: it travels in `RunRequest.request_id` and is kept with the spec on the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// The longest health check interval, timeout or start period accepted.
pub const MAX_HEALTH_WAIT_MS: u64 = 24 * 3600 * 1000;
/// The most health check retries accepted.
pub const MAX_HEALTH_RETRIES: u32 = 100;

/// Docker's HEALTHCHECK, as `--health-*` and `--no-healthcheck` give it. Zero times and retries
/// mean Docker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct HealthCheck {
    pub disabled: bool,
    /// Run with the container's shell (Docker's `CMD-SHELL`).
    pub cmd: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

impl HealthCheck {
    /// Field names: `health-cmd`, `health-interval`, … as the flags.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.disabled {
            if !self.cmd.is_empty() {
                return Err(ValidationError::new(
                    "health-cmd",
                    "cannot be given with --no-healthcheck",
                ));
            }
            return Ok(());
        }
        if self.cmd.trim().is_empty() {
            return Err(ValidationError::new("health-cmd", "is empty"));
        }
        if self.cmd.len() > 4096 || self.cmd.contains('\0') {
            return Err(ValidationError::new(
                "health-cmd",
                "is longer than 4096 bytes or holds a NUL",
            ));
        }
        for (field, ms) in [
            ("health-interval", self.interval_ms),
            ("health-timeout", self.timeout_ms),
            ("health-start-period", self.start_period_ms),
        ] {
            if ms > MAX_HEALTH_WAIT_MS {
                return Err(ValidationError::new(field, "is longer than 24h"));
            }
        }
        if self.retries > MAX_HEALTH_RETRIES {
            return Err(ValidationError::new(
                "health-retries",
                format!("{} is more than {MAX_HEALTH_RETRIES}", self.retries),
            ));
        }
        Ok(())
    }

    pub fn from_proto(p: &pb::HealthCheck) -> Result<Self, ValidationError> {
        let h = Self {
            disabled: p.disabled,
            cmd: p.cmd.clone(),
            interval_ms: p.interval_ms,
            timeout_ms: p.timeout_ms,
            retries: p.retries,
            start_period_ms: p.start_period_ms,
        };
        h.validate()?;
        Ok(h)
    }

    pub fn to_proto(&self) -> pb::HealthCheck {
        pb::HealthCheck {
            disabled: self.disabled,
            cmd: self.cmd.clone(),
            interval_ms: self.interval_ms,
            timeout_ms: self.timeout_ms,
            retries: self.retries,
            start_period_ms: self.start_period_ms,
        }
    }
}

/// Which service slot a container fills (see `berth_proto::v1::ServiceSlot`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotRef {
    pub service_id: String,
    pub service: String,
    /// `1`..`N` for a replicated service, the node's name for a global one.
    pub slot: String,
    pub version: u64,
}

impl SlotRef {
    pub fn from_proto(p: &pb::ServiceSlot) -> Result<Self, ValidationError> {
        crate::service::validate_service_id(&p.service_id)?;
        crate::service::validate_service_name(&p.service)?;
        crate::service::validate_slot(&p.slot)?;
        Ok(Self {
            service_id: p.service_id.clone(),
            service: p.service.clone(),
            slot: p.slot.clone(),
            version: p.version,
        })
    }

    pub fn to_proto(&self) -> pb::ServiceSlot {
        pb::ServiceSlot {
            service_id: self.service_id.clone(),
            service: self.service.clone(),
            slot: self.slot.clone(),
            version: self.version,
        }
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, here at most 128 chars.
/// A leading `/` (Docker's own listing form) is refused too. Field name: `name`.
pub fn validate_container_name(name: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new("name", m));
    if name.is_empty() {
        return err("empty".into());
    }
    if name.starts_with('/') {
        return err(format!("{} must not start with '/'", quoted(name)));
    }
    if name.len() > MAX_NAME_LEN {
        return err(format!(
            "{} is longer than {MAX_NAME_LEN} characters",
            quoted(name)
        ));
    }
    let rest_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(rest_ok);
    if !valid {
        return err(format!(
            "{} is not a valid container name: at least 2 characters of letters, digits, \
             '_', '.' and '-', starting with a letter or digit",
            quoted(name)
        ));
    }
    Ok(())
}

/// The longest container reference (name, id or id prefix) accepted.
pub const MAX_REFERENCE_LEN: usize = 256;

/// A container reference as a request carries it: not empty, at most [`MAX_REFERENCE_LEN`]
/// bytes (what it names is the agent's to resolve). Field name: `field`.
pub fn validate_reference(field: &str, r: &str) -> Result<(), ValidationError> {
    if r.is_empty() {
        return Err(ValidationError::new(field, "is empty"));
    }
    if r.len() > MAX_REFERENCE_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes long; at most {MAX_REFERENCE_LEN}", r.len()),
        ));
    }
    Ok(())
}

/// How `-e` is given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    /// `KEY=VALUE` (VALUE may be empty).
    Pair(String, String),
    /// `KEY` alone: take the value from the console's own environment, as Docker does.
    Inherit(String),
}

/// Parses `-e`: the key is non-empty, has no `=` or NUL, and at most 32 KiB with its value.
/// `=x` is refused (empty key). Field name: `env`.
pub fn parse_env(arg: &str) -> Result<EnvArg, ValidationError> {
    match arg.split_once('=') {
        Some((key, value)) => {
            validate_env_entry("env", key, value)?;
            Ok(EnvArg::Pair(key.to_owned(), value.to_owned()))
        }
        None => {
            validate_env_entry("env", arg, "")?;
            Ok(EnvArg::Inherit(arg.to_owned()))
        }
    }
}

/// Reads an env file in Docker's `--env-file` format: one `KEY=VALUE` a line, taken as it is
/// (quotes and trailing spaces are part of the value, as Docker keeps them); `KEY` alone
/// takes the value from the console's environment (and is skipped when unset, as Docker does);
/// blank lines and lines starting with `#` (after leading whitespace) are ignored; a UTF-8 BOM
/// is dropped. Field name: `env-file`; a message names the file and the line.
pub fn parse_env_file(file: &str, text: &str) -> Result<Vec<EnvArg>, ValidationError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at =
            |m: String| ValidationError::new("env-file", format!("{file} line {}: {m}", i + 1));
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line.trim_end(), None),
        };
        if key.chars().any(char::is_whitespace) {
            return Err(at(format!("variable {} contains whitespace", quoted(key))));
        }
        validate_env_entry("env-file", key, value.unwrap_or_default())
            .map_err(|e| at(e.message))?;
        out.push(match value {
            Some(v) => EnvArg::Pair(key.to_owned(), v.to_owned()),
            None => EnvArg::Inherit(key.to_owned()),
        });
    }
    Ok(out)
}

pub(crate) fn validate_env_entry(
    field: &str,
    key: &str,
    value: &str,
) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if key.is_empty() {
        return err("env var name is empty".into());
    }
    if key.contains('=') {
        return err(format!("env var name {} contains '='", quoted(key)));
    }
    if key.contains('\0') || value.contains('\0') {
        return err(format!("env var {} contains a NUL byte", quoted(key)));
    }
    let len = key.len() + 1 + value.len();
    if len > MAX_ENV_ENTRY_LEN {
        return err(format!(
            "env var {} is {len} bytes, more than the maximum of {MAX_ENV_ENTRY_LEN}",
            quoted(key)
        ));
    }
    Ok(())
}

/// Count, total length and NUL bytes of an argument vector (`entrypoint` or `command`).
pub(crate) fn validate_args(field: &str, args: &[String]) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if args.len() > MAX_ARGS {
        return err(format!(
            "{} arguments, more than the maximum of {MAX_ARGS}",
            args.len()
        ));
    }
    let total: usize = args.iter().map(String::len).sum();
    if total > MAX_ARGS_TOTAL_LEN {
        return err(format!(
            "arguments total {total} bytes, more than the maximum of {MAX_ARGS_TOTAL_LEN}"
        ));
    }
    if let Some((i, a)) = args.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        return err(format!("argument {i} ({}) contains a NUL byte", quoted(a)));
    }
    Ok(())
}

impl ContainerSpec {
    /// Checks every field; the first problem is returned, naming its field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        ImageRef::parse(&self.image)?;
        if let Some(name) = &self.name {
            validate_container_name(name)?;
        }
        if let Some(id) = &self.request {
            crate::request::check_request_id(id)?;
        }
        if let Some(entrypoint) = &self.entrypoint {
            validate_args("entrypoint", entrypoint)?;
        }
        validate_args("command", &self.command)?;
        self.validate_env()?;
        self.validate_ports()?;
        validate_cpus(self.cpus)?;
        if self.memory_bytes != 0 && self.memory_bytes < MIN_MEMORY_BYTES {
            return Err(ValidationError::new(
                "memory",
                format!(
                    "{} is below the minimum of {} that Docker accepts (0 means no limit)",
                    format_bytes(self.memory_bytes),
                    format_bytes(MIN_MEMORY_BYTES)
                ),
            ));
        }
        if let Some(h) = &self.health {
            h.validate()?;
        }
        self.options.validate()?;
        self.validate_labels()
    }

    fn validate_env(&self) -> Result<(), ValidationError> {
        if self.env.len() > MAX_ENV {
            return Err(ValidationError::new(
                "env",
                format!(
                    "{} variables, more than the maximum of {MAX_ENV}",
                    self.env.len()
                ),
            ));
        }
        for (key, value) in &self.env {
            validate_env_entry("env", key, value)?;
        }
        Ok(())
    }

    fn validate_ports(&self) -> Result<(), ValidationError> {
        let err = |m: String| Err(ValidationError::new("ports", m));
        if self.ports.len() > MAX_PORTS {
            return err(format!(
                "{} ports, more than the maximum of {MAX_PORTS}",
                self.ports.len()
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.container_port == 0 {
                return err(format!(
                    "port {i}: container port 0 is out of range 1-65535"
                ));
            }
            let Some(host_port) = p.host_port else {
                continue;
            };
            if host_port == 0 {
                return err(format!(
                    "port {i}: host port 0 is out of range 1-65535 (leave it out to let Docker pick one)"
                ));
            }
            // Two bindings clash when they share port and protocol and their addresses overlap:
            // no address or an unspecified one (0.0.0.0, ::) overlaps every address.
            let overlaps = |a: Option<std::net::IpAddr>, b: Option<std::net::IpAddr>| match (a, b) {
                (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
                _ => true,
            };
            let clash = self.ports[..i].iter().any(|q| {
                q.host_port == Some(host_port)
                    && q.protocol == p.protocol
                    && overlaps(q.host_ip, p.host_ip)
            });
            if clash {
                return err(format!(
                    "host port {host_port}/{} is published twice",
                    p.protocol
                ));
            }
        }
        Ok(())
    }

    fn validate_labels(&self) -> Result<(), ValidationError> {
        if self.labels.len() > MAX_LABELS {
            return Err(ValidationError::new(
                "labels",
                format!(
                    "{} labels, more than the maximum of {MAX_LABELS}",
                    self.labels.len()
                ),
            ));
        }
        for (key, value) in &self.labels {
            validate_label_key("labels", key)?;
            validate_label_value("labels", key, value)?;
        }
        Ok(())
    }

    /// Converts a wire spec, validating everything: the agent calls this on every request.
    /// An empty name or entrypoint means none; a missing or unspecified restart policy means `no`.
    pub fn from_proto(p: &pb::ContainerSpec) -> Result<Self, ValidationError> {
        // Bound the work before converting: a hostile request may carry millions of entries.
        if p.ports.len() > MAX_PORTS {
            return Err(ValidationError::new(
                "ports",
                format!(
                    "{} ports, more than the maximum of {MAX_PORTS}",
                    p.ports.len()
                ),
            ));
        }
        let spec = Self {
            image: p.image.clone(),
            name: (!p.name.is_empty()).then(|| p.name.clone()),
            entrypoint: (!p.entrypoint.is_empty()).then(|| p.entrypoint.clone()),
            command: p.command.clone(),
            env: p
                .env
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect(),
            ports: p
                .ports
                .iter()
                .map(PortSpec::try_from)
                .collect::<Result<_, _>>()?,
            cpus: p.cpus,
            memory_bytes: p.memory_bytes,
            restart: RestartPolicy::from_proto(p.restart.as_ref())?,
            labels: p
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            slot: p.slot.as_ref().map(SlotRef::from_proto).transpose()?,
            health: p.health.as_ref().map(HealthCheck::from_proto).transpose()?,
            options: p
                .options
                .as_ref()
                .map(crate::options::RunOptions::from_proto)
                .transpose()?
                .unwrap_or_default(),
            request: None,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_proto(&self) -> pb::ContainerSpec {
        pb::ContainerSpec {
            image: self.image.clone(),
            name: self.name.clone().unwrap_or_default(),
            entrypoint: self.entrypoint.clone().unwrap_or_default(),
            command: self.command.clone(),
            env: self
                .env
                .iter()
                .map(|(key, value)| pb::EnvVar {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            ports: self.ports.iter().map(pb::PortMapping::from).collect(),
            cpus: self.cpus,
            memory_bytes: self.memory_bytes,
            restart: Some(self.restart.to_proto()),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            slot: self.slot.as_ref().map(SlotRef::to_proto),
            health: self.health.as_ref().map(HealthCheck::to_proto),
            options: (!self.options.is_default()).then(|| self.options.to_proto()),
        }
    }

    /// Parsed image reference (always valid for a validated spec).
    pub fn image_ref(&self) -> Result<ImageRef, ValidationError> {
        ImageRef::parse(&self.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::Protocol;

    fn minimal() -> ContainerSpec {
        ContainerSpec {
            options: Default::default(),
            image: "nginx:1.25".into(),
            name: None,
            entrypoint: None,
            command: vec![],
            env: vec![],
            ports: vec![],
            cpus: 0.0,
            memory_bytes: 0,
            restart: RestartPolicy::No,
            labels: BTreeMap::new(),
            slot: None,
            health: None,
            request: None,
        }
    }

    fn full() -> ContainerSpec {
        ContainerSpec {
            options: Default::default(),
            image: "localhost:5000/team/app:v1".into(),
            name: Some("web-1".into()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            command: vec!["echo hi".into()],
            env: vec![("A".into(), "1".into()), ("EMPTY".into(), String::new())],
            ports: vec![
                PortSpec::parse("127.0.0.1:8080:80/tcp").expect("valid"),
                PortSpec::parse("53/udp").expect("valid"),
            ],
            cpus: 0.5,
            memory_bytes: 512 * 1024 * 1024,
            restart: RestartPolicy::OnFailure { max_retries: 3 },
            labels: BTreeMap::from([("team".into(), "web".into()), ("x".into(), String::new())]),
            slot: None,
            health: None,
            request: None,
        }
    }

    /// The error of an invalid spec, checked to name `field`.
    fn refused(spec: &ContainerSpec, field: &str) -> String {
        match spec.validate() {
            Ok(()) => panic!("accepted: {spec:?}"),
            Err(e) => {
                assert_eq!(e.field, field, "{e}");
                assert!(
                    e.message.len() < 300,
                    "message too long: {} bytes",
                    e.message.len()
                );
                e.message
            }
        }
    }

    fn with(f: impl FnOnce(&mut ContainerSpec)) -> ContainerSpec {
        let mut s = minimal();
        f(&mut s);
        s
    }

    #[test]
    fn restart_parses_docker_words() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(RestartPolicy::parse("always"), Ok(RestartPolicy::Always));
        assert_eq!(
            RestartPolicy::parse("unless-stopped"),
            Ok(RestartPolicy::UnlessStopped)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Ok(RestartPolicy::OnFailure { max_retries: 0 })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure { max_retries: 3 })
        );
    }

    #[test]
    fn restart_refuses_bad_input() {
        let refused = |s: &str| {
            let e = RestartPolicy::parse(s).expect_err(s);
            assert_eq!(e.field, "restart");
            e.message
        };
        assert!(refused("on-failure:x").contains("\"x\" must be a non-negative integer"));
        assert!(refused("on-failure:-1").contains("must be a non-negative integer"));
        assert!(refused("on-failure:").contains("must be a non-negative integer"));
        assert!(refused("on-failure:99999999999").contains("too large"));
        assert!(refused("always:3").contains("only applies to on-failure, not always"));
        assert!(refused("no:1").contains("only applies to on-failure"));
        assert!(refused("sometimes").contains("unknown policy \"sometimes\""));
        assert!(refused("").contains("unknown policy"));
        assert!(refused("Always").contains("unknown policy"));
    }

    #[test]
    fn restart_display_round_trips() {
        for (s, p) in [
            ("no", RestartPolicy::No),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
            ("on-failure", RestartPolicy::OnFailure { max_retries: 0 }),
            ("on-failure:5", RestartPolicy::OnFailure { max_retries: 5 }),
        ] {
            assert_eq!(p.to_string(), s);
            assert_eq!(RestartPolicy::parse(s), Ok(p));
        }
    }

    #[test]
    fn container_names_follow_docker() {
        for ok in ["ab", "web-1", "a.b_c-d", "0x", &"n".repeat(MAX_NAME_LEN)] {
            assert_eq!(validate_container_name(ok), Ok(()), "{ok}");
        }
        let refused = |s: &str| {
            let e = validate_container_name(s).expect_err(s);
            assert_eq!(e.field, "name");
            e.message
        };
        assert_eq!(refused(""), "empty");
        assert!(refused("/web").contains("must not start with '/'"));
        assert!(refused("a").contains("at least 2 characters"));
        assert!(refused("-web").contains("not a valid container name"));
        assert!(refused("_web").contains("not a valid container name"));
        assert!(refused("web 1").contains("not a valid container name"));
        assert!(refused("wéb").contains("not a valid container name"));
        assert!(refused(&"n".repeat(MAX_NAME_LEN + 1)).contains("longer than 128"));
    }

    #[test]
    fn env_args() {
        assert_eq!(parse_env("A=1"), Ok(EnvArg::Pair("A".into(), "1".into())));
        assert_eq!(
            parse_env("NOVALUE="),
            Ok(EnvArg::Pair("NOVALUE".into(), String::new()))
        );
        assert_eq!(
            parse_env("A=b=c"),
            Ok(EnvArg::Pair("A".into(), "b=c".into()))
        );
        assert_eq!(parse_env("K"), Ok(EnvArg::Inherit("K".into())));
    }

    #[test]
    fn env_files_read_as_docker_reads_them() {
        let text = "\u{feff}# a comment\n\n  # indented comment\nA=1\nQUOTED=\"two words\"\n  B=x=y \nINHERIT\nEMPTY=\n";
        let got = parse_env_file("app.env", text).expect("valid");
        assert_eq!(
            got,
            [
                EnvArg::Pair("A".into(), "1".into()),
                EnvArg::Pair("QUOTED".into(), "\"two words\"".into()),
                EnvArg::Pair("B".into(), "x=y ".into()),
                EnvArg::Inherit("INHERIT".into()),
                EnvArg::Pair("EMPTY".into(), String::new()),
            ]
        );
        let e = parse_env_file("app.env", "OK=1\nBAD KEY=2\n").expect_err("whitespace");
        assert_eq!(e.field, "env-file");
        assert!(e.message.starts_with("app.env line 2:"), "{e}");
        let e = parse_env_file("app.env", "=nokey\n").expect_err("no key");
        assert!(e.message.contains("line 1"), "{e}");
        let refused = |s: &str| {
            let e = parse_env(s).expect_err(s);
            assert_eq!(e.field, "env");
            e.message
        };
        assert_eq!(refused("=x"), "env var name is empty");
        assert_eq!(refused(""), "env var name is empty");
        assert!(refused("A\0B=1").contains("NUL"));
        assert!(refused("A=1\0").contains("NUL"));
        let big = format!("A={}", "v".repeat(MAX_ENV_ENTRY_LEN));
        assert!(refused(&big).contains("more than the maximum of 32768"));
        let just_fits = format!("A={}", "v".repeat(MAX_ENV_ENTRY_LEN - 2));
        assert!(parse_env(&just_fits).is_ok());
    }

    #[test]
    fn valid_specs_pass() {
        assert_eq!(minimal().validate(), Ok(()));
        assert_eq!(full().validate(), Ok(()));
        assert!(minimal().image_ref().is_ok());
    }

    #[test]
    fn validate_names_the_bad_field() {
        let m = refused(&with(|s| s.image = "UPPER/case".into()), "image");
        assert!(m.contains("lowercase"), "{m}");
        refused(&with(|s| s.name = Some("/x".into())), "name");
        refused(
            &with(|s| s.entrypoint = Some(vec!["a\0".into()])),
            "entrypoint",
        );
        refused(
            &with(|s| s.command = vec!["ok".into(), "b\0ad".into()]),
            "command",
        );
        refused(&with(|s| s.env = vec![(String::new(), "v".into())]), "env");
        let m = refused(&with(|s| s.env = vec![("A=B".into(), "v".into())]), "env");
        assert!(m.contains("contains '='"), "{m}");
        refused(&with(|s| s.cpus = -1.0), "cpus");
        refused(&with(|s| s.cpus = f64::NAN), "cpus");
        let m = refused(&with(|s| s.memory_bytes = 1024), "memory");
        assert!(m.contains("1.0KiB is below the minimum of 6.0MiB"), "{m}");
        let m = refused(
            &with(|s| s.labels = BTreeMap::from([("berth.node".into(), "x".into())])),
            "labels",
        );
        assert!(m.contains("reserved"), "{m}");
        refused(
            &with(|s| s.labels = BTreeMap::from([("k".into(), "v".repeat(5000))])),
            "labels",
        );
    }

    #[test]
    fn validate_enforces_counts_and_sizes() {
        let m = refused(
            &with(|s| s.command = vec!["x".into(); MAX_ARGS + 1]),
            "command",
        );
        assert!(m.contains("1025 arguments"), "{m}");
        let m = refused(
            &with(|s| s.entrypoint = Some(vec!["x".repeat(MAX_ARGS_TOTAL_LEN + 1)])),
            "entrypoint",
        );
        assert!(m.contains("more than the maximum of 131072"), "{m}");
        assert_eq!(
            with(|s| s.command = vec!["x".into(); MAX_ARGS]).validate(),
            Ok(())
        );
        refused(
            &with(|s| s.env = vec![("A".into(), "1".into()); MAX_ENV + 1]),
            "env",
        );
        refused(
            &with(|s| s.env = vec![("A".into(), "v".repeat(MAX_ENV_ENTRY_LEN))]),
            "env",
        );
        let labels: BTreeMap<_, _> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let m = refused(&with(|s| s.labels = labels), "labels");
        assert!(m.contains("65 labels"), "{m}");
        let port = PortSpec::parse("80").expect("valid");
        refused(&with(|s| s.ports = vec![port; MAX_PORTS + 1]), "ports");
    }

    #[test]
    fn validate_refuses_duplicate_host_ports() {
        let ports = |list: &[&str]| {
            with(|s| {
                s.ports = list
                    .iter()
                    .map(|p| PortSpec::parse(p).expect("valid"))
                    .collect()
            })
        };
        let m = refused(&ports(&["8080:80", "8080:81"]), "ports");
        assert_eq!(m, "host port 8080/tcp is published twice");
        refused(&ports(&["127.0.0.1:8080:80", "8080:81"]), "ports");
        refused(&ports(&["0.0.0.0:8080:80", "127.0.0.1:8080:81"]), "ports");
        // Different protocol, different address, or no host port: no clash.
        assert_eq!(ports(&["8080:80", "8080:80/udp"]).validate(), Ok(()));
        assert_eq!(
            ports(&["127.0.0.1:8080:80", "127.0.0.2:8080:81"]).validate(),
            Ok(())
        );
        assert_eq!(ports(&["80", "80", "8080:80"]).validate(), Ok(()));
        let zero = PortSpec {
            host_ip: None,
            host_port: Some(0),
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        refused(&with(|s| s.ports = vec![zero]), "ports");
    }

    #[test]
    fn oversized_fields_give_short_messages() {
        let huge = "n".repeat(1_000_000);
        for (spec, field) in [
            (with(|s| s.name = Some(huge.clone())), "name"),
            (with(|s| s.image = huge.clone()), "image"),
            (with(|s| s.env = vec![(huge.clone(), "v".into())]), "env"),
            (with(|s| s.command = vec![huge.clone()]), "command"),
            (
                with(|s| s.labels = BTreeMap::from([(huge.clone(), String::new())])),
                "labels",
            ),
        ] {
            let m = refused(&spec, field);
            assert!(m.len() < 200, "{field}: {} bytes", m.len());
        }
        let e = parse_env(&format!("{huge}\0")).expect_err("refused");
        assert!(e.message.len() < 200);
    }

    #[test]
    fn proto_round_trip() {
        for spec in [minimal(), full()] {
            let wire = spec.to_proto();
            assert_eq!(ContainerSpec::from_proto(&wire), Ok(spec));
        }
    }

    #[test]
    fn to_proto_maps_fields() {
        let wire = full().to_proto();
        assert_eq!(wire.name, "web-1");
        assert_eq!(wire.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(wire.env[1].key, "EMPTY");
        assert_eq!(wire.ports[0].host_ip, "127.0.0.1");
        assert_eq!(wire.ports[1].protocol, "udp");
        let restart = wire.restart.expect("restart set");
        assert_eq!(restart.kind, pb::restart_policy::Kind::OnFailure as i32);
        assert_eq!(restart.max_retries, 3);
        assert_eq!(wire.labels.get("team").map(String::as_str), Some("web"));
        let wire = minimal().to_proto();
        assert_eq!((wire.name.as_str(), wire.entrypoint.len()), ("", 0));
    }

    #[test]
    fn from_proto_defaults() {
        let wire = pb::ContainerSpec {
            image: "nginx".into(),
            ..Default::default()
        };
        let spec = ContainerSpec::from_proto(&wire).expect("valid");
        assert_eq!(spec.name, None);
        assert_eq!(spec.entrypoint, None);
        assert_eq!(spec.restart, RestartPolicy::No);
        let unspecified = pb::ContainerSpec {
            restart: Some(pb::RestartPolicy {
                kind: pb::restart_policy::Kind::Unspecified as i32,
                max_retries: 0,
            }),
            ..wire.clone()
        };
        assert_eq!(
            ContainerSpec::from_proto(&unspecified).map(|s| s.restart),
            Ok(RestartPolicy::No)
        );
        let always = pb::ContainerSpec {
            restart: Some(pb::RestartPolicy {
                kind: pb::restart_policy::Kind::Always as i32,
                max_retries: 0,
            }),
            ..wire
        };
        assert_eq!(
            ContainerSpec::from_proto(&always).map(|s| s.restart),
            Ok(RestartPolicy::Always)
        );
    }

    #[test]
    fn from_proto_refuses_bad_wire_specs() {
        let base = full().to_proto();
        let refused = |wire: pb::ContainerSpec, field: &str| {
            let e = ContainerSpec::from_proto(&wire).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            e.message
        };
        refused(
            pb::ContainerSpec {
                image: String::new(),
                ..base.clone()
            },
            "image",
        );
        refused(
            pb::ContainerSpec {
                name: "x".into(),
                ..base.clone()
            },
            "name",
        );
        let mut wire = base.clone();
        wire.ports[0].protocol = "icmp".into();
        assert!(refused(wire, "ports").contains("protocol must be tcp or udp"));
        let mut wire = base.clone();
        wire.ports[0].host_port = 99999;
        refused(wire, "ports");
        let mut wire = base.clone();
        wire.restart = Some(pb::RestartPolicy {
            kind: 42,
            max_retries: 0,
        });
        assert!(refused(wire, "restart").contains("unknown restart policy kind 42"));
        let mut wire = base.clone();
        wire.restart = Some(pb::RestartPolicy {
            kind: pb::restart_policy::Kind::Always as i32,
            max_retries: 2,
        });
        assert!(refused(wire, "restart").contains("only applies to on-failure"));
        refused(
            pb::ContainerSpec {
                cpus: f64::INFINITY,
                ..base.clone()
            },
            "cpus",
        );
        refused(
            pb::ContainerSpec {
                memory_bytes: 5,
                ..base.clone()
            },
            "memory",
        );
        let mut wire = base;
        wire.env.push(pb::EnvVar {
            key: String::new(),
            value: "x".into(),
        });
        refused(wire, "env");
    }

    #[test]
    fn json_round_trip() {
        // The spec is stored as JSON in the `berth.spec` label.
        let spec = full();
        let json = serde_json::to_string(&spec).expect("serialize");
        assert!(
            json.contains(r#""restart":{"kind":"on-failure","max_retries":3}"#),
            "{json}"
        );
        let back: ContainerSpec = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, spec);
    }
}
