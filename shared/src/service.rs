//! Services: the desired state a user declares (`berth service create`), and its validation.
//!
//! The same rules serve the console (before anything is sent), the agent (on every request), and
//! the agent again on every entry a peer sends in a sync.

use crate::ValidationError;
use crate::constraint::Constraint;
use crate::error::quoted;
use crate::spec::ContainerSpec;
use berth_proto::v1 as pb;
use std::time::Duration;

/// The most replicas a service may ask for. A single Berth cluster is tens to a few hundred
/// nodes; more than this many replicas of one service is almost surely a typo (`--replicas
/// 100000`), and each replica is a container some node must hold.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest service name: it becomes part of each replica's container name (`NAME.SLOT.SUFFIX`,
/// at most 128 characters) and of a DNS-style label.
pub const MAX_SERVICE_NAME_LEN: usize = 63;
/// At most this many constraints per service (as per run).
pub const MAX_CONSTRAINTS: usize = 32;
/// `--update-parallelism` when not given: one slot at a time, as Swarm.
pub const DEFAULT_UPDATE_PARALLELISM: u32 = 1;
/// `--update-monitor` when not given: how long a new replica must keep running (or, with a health
/// check, be healthy) before the next batch starts. Swarm's default is 5 s too.
pub const DEFAULT_UPDATE_MONITOR: Duration = Duration::from_secs(5);
/// The longest `--update-delay` and monitor period accepted.
pub const MAX_UPDATE_WAIT: Duration = Duration::from_secs(3600);

/// A service name: 1 to 63 letters, digits, `-` and `_`, starting with a letter or digit. No
/// dots: a replica's name is `NAME.SLOT.SUFFIX`. Field name: `name`.
pub fn validate_service_name(name: &str) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new("name", m));
    if name.is_empty() {
        return err("is empty".into());
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return err(format!(
            "{} is longer than {MAX_SERVICE_NAME_LEN} characters",
            quoted(name)
        ));
    }
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !ok {
        return err(format!(
            "{} is not a valid service name: letters, digits, '-' and '_', starting with a \
             letter or digit",
            quoted(name)
        ));
    }
    Ok(())
}

/// A service id: 1 to 64 lowercase hex digits. Field name: `service_id`.
pub fn validate_service_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(ValidationError::new(
            "service_id",
            format!("{} is not 1 to 64 lowercase hex digits", quoted(id)),
        ));
    }
    Ok(())
}

/// A slot: a replica number or a node name, up to 64 characters of letters, digits, `-`, `_`
/// and `.`. Field name: `slot`.
pub fn validate_slot(slot: &str) -> Result<(), ValidationError> {
    let ok = !slot.is_empty()
        && slot.len() <= 64
        && slot
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ValidationError::new(
            "slot",
            format!("{} is not a valid slot", quoted(slot)),
        ));
    }
    Ok(())
}

/// `--replicas N`: a whole number from 0 to [`MAX_REPLICAS`]. Field name: `replicas`.
pub fn parse_replicas(s: &str) -> Result<u32, ValidationError> {
    let n: i64 = s.trim().parse().map_err(|_| {
        ValidationError::new("replicas", format!("{} is not a whole number", quoted(s)))
    })?;
    check_replicas(n)
}

fn check_replicas(n: i64) -> Result<u32, ValidationError> {
    if n < 0 {
        return Err(ValidationError::new("replicas", format!("{n} is negative")));
    }
    if n > i64::from(MAX_REPLICAS) {
        return Err(ValidationError::new(
            "replicas",
            format!("{n} is more than the maximum of {MAX_REPLICAS}"),
        ));
    }
    Ok(n as u32)
}

/// `NAME=N` of `berth service scale`.
pub fn parse_scale(arg: &str) -> Result<(String, u32), ValidationError> {
    let Some((name, n)) = arg.split_once('=') else {
        return Err(ValidationError::new(
            "scale",
            format!("{} is not NAME=REPLICAS", quoted(arg)),
        ));
    };
    validate_service_name(name)?;
    Ok((name.to_owned(), parse_replicas(n)?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replicated(u32),
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureAction {
    #[default]
    Pause,
    Rollback,
}

impl UpdateOrder {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "stop-first" => Ok(Self::StopFirst),
            "start-first" => Ok(Self::StartFirst),
            _ => Err(ValidationError::new(
                "update-order",
                format!("{} is not stop-first or start-first", quoted(s)),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopFirst => "stop-first",
            Self::StartFirst => "start-first",
        }
    }
}

impl FailureAction {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "pause" => Ok(Self::Pause),
            "rollback" => Ok(Self::Rollback),
            _ => Err(ValidationError::new(
                "update-failure-action",
                format!("{} is not pause or rollback", quoted(s)),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Rollback => "rollback",
        }
    }
}

/// How a rolling update proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateConfig {
    pub parallelism: u32,
    pub delay: Duration,
    pub order: UpdateOrder,
    pub failure_action: FailureAction,
    pub monitor: Duration,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            parallelism: DEFAULT_UPDATE_PARALLELISM,
            delay: Duration::ZERO,
            order: UpdateOrder::default(),
            failure_action: FailureAction::default(),
            monitor: DEFAULT_UPDATE_MONITOR,
        }
    }
}

impl UpdateConfig {
    fn from_proto(p: Option<&pb::UpdateConfig>) -> Result<Self, ValidationError> {
        let Some(p) = p else {
            return Ok(Self::default());
        };
        if p.parallelism > MAX_REPLICAS {
            return Err(ValidationError::new(
                "update-parallelism",
                format!("{} is more than {MAX_REPLICAS}", p.parallelism),
            ));
        }
        let wait = |field: &str, ms: u64| {
            let d = Duration::from_millis(ms);
            if d > MAX_UPDATE_WAIT {
                Err(ValidationError::new(
                    field,
                    format!("{ms} ms is longer than an hour"),
                ))
            } else {
                Ok(d)
            }
        };
        let order = match pb::UpdateOrder::try_from(p.order) {
            Ok(pb::UpdateOrder::StartFirst) => UpdateOrder::StartFirst,
            Ok(_) => UpdateOrder::StopFirst,
            Err(_) => return Err(ValidationError::new("update-order", "unknown")),
        };
        let failure_action = match pb::FailureAction::try_from(p.failure_action) {
            Ok(pb::FailureAction::Rollback) => FailureAction::Rollback,
            Ok(_) => FailureAction::Pause,
            Err(_) => return Err(ValidationError::new("update-failure-action", "unknown")),
        };
        Ok(Self {
            parallelism: if p.parallelism == 0 {
                DEFAULT_UPDATE_PARALLELISM
            } else {
                p.parallelism
            },
            delay: wait("update-delay", p.delay_ms)?,
            order,
            failure_action,
            monitor: if p.monitor_ms == 0 {
                DEFAULT_UPDATE_MONITOR
            } else {
                wait("update-monitor", p.monitor_ms)?
            },
        })
    }

    fn to_proto(self) -> pb::UpdateConfig {
        pb::UpdateConfig {
            parallelism: self.parallelism,
            delay_ms: self.delay.as_millis() as u64,
            order: match self.order {
                UpdateOrder::StopFirst => pb::UpdateOrder::StopFirst,
                UpdateOrder::StartFirst => pb::UpdateOrder::StartFirst,
            } as i32,
            failure_action: match self.failure_action {
                FailureAction::Pause => pb::FailureAction::Pause,
                FailureAction::Rollback => pb::FailureAction::Rollback,
            } as i32,
            monitor_ms: self.monitor.as_millis() as u64,
        }
    }
}

/// A validated service spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub mode: Mode,
    pub container: ContainerSpec,
    pub constraints: Vec<Constraint>,
    /// The constraints as given, to send on and show.
    pub constraint_text: Vec<String>,
    pub binpack: bool,
    pub update: UpdateConfig,
}

impl ServiceSpec {
    /// Converts a wire spec, validating everything (the agent calls this on every request and on
    /// every entry a peer sends).
    pub fn from_proto(p: &pb::ServiceSpec) -> Result<Self, ValidationError> {
        validate_service_name(&p.name)?;
        let mode = match pb::ServiceMode::try_from(p.mode) {
            Ok(pb::ServiceMode::Global) => {
                if p.replicas != 0 {
                    return Err(ValidationError::new(
                        "replicas",
                        "cannot be set for a global service (one replica per node)",
                    ));
                }
                Mode::Global
            }
            Ok(_) => Mode::Replicated(check_replicas(i64::from(p.replicas))?),
            Err(_) => return Err(ValidationError::new("mode", "unknown")),
        };
        let wire = p
            .container
            .as_ref()
            .ok_or_else(|| ValidationError::new("spec", "is missing"))?;
        let container = ContainerSpec::from_proto(wire)?;
        if container.name.is_some() {
            return Err(ValidationError::new(
                "name",
                "a service's replicas are named by the cluster (NAME.SLOT.SUFFIX); give the \
                 service's name instead",
            ));
        }
        if container.slot.is_some() {
            return Err(ValidationError::new(
                "slot",
                "is set by the cluster, not in a service's spec",
            ));
        }
        if p.constraints.len() > MAX_CONSTRAINTS {
            return Err(ValidationError::new(
                "constraint",
                format!("at most {MAX_CONSTRAINTS}"),
            ));
        }
        let constraints = p
            .constraints
            .iter()
            .map(|c| Constraint::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let binpack = crate::constraint::strategy_of(p.strategy)? == pb::Strategy::Binpack;
        Ok(Self {
            name: p.name.clone(),
            mode,
            container,
            constraints,
            constraint_text: p.constraints.clone(),
            binpack,
            update: UpdateConfig::from_proto(p.update.as_ref())?,
        })
    }

    pub fn to_proto(&self) -> pb::ServiceSpec {
        let (mode, replicas) = match self.mode {
            Mode::Replicated(n) => (pb::ServiceMode::Replicated, n),
            Mode::Global => (pb::ServiceMode::Global, 0),
        };
        pb::ServiceSpec {
            name: self.name.clone(),
            mode: mode as i32,
            replicas,
            container: Some(self.container.to_proto()),
            constraints: self.constraint_text.clone(),
            strategy: if self.binpack {
                pb::Strategy::Binpack
            } else {
                pb::Strategy::Spread
            } as i32,
            update: Some(self.update.to_proto()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(replicas: u32) -> pb::ServiceSpec {
        pb::ServiceSpec {
            name: "web".into(),
            mode: pb::ServiceMode::Replicated as i32,
            replicas,
            container: Some(pb::ContainerSpec {
                image: "handmade/app:1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn replicas_are_bounded_and_whole() {
        assert_eq!(parse_replicas("3"), Ok(3));
        assert_eq!(parse_replicas("0"), Ok(0));
        for bad in ["-1", "abc", "1.5", "", "100000"] {
            let e = parse_replicas(bad).expect_err(bad);
            assert_eq!(e.field, "replicas", "{bad}");
        }
        assert!(ServiceSpec::from_proto(&wire(MAX_REPLICAS)).is_ok());
        let e = ServiceSpec::from_proto(&wire(MAX_REPLICAS + 1)).expect_err("over the cap");
        assert_eq!(e.field, "replicas");
    }

    #[test]
    fn names_refuse_dots_and_junk() {
        for ok in ["web", "api-2", "a", "db_main"] {
            validate_service_name(ok).expect(ok);
        }
        for bad in ["", "web.1", "-web", "wéb", "a b", &"x".repeat(64)] {
            assert_eq!(validate_service_name(bad).expect_err(bad).field, "name");
        }
    }

    #[test]
    fn global_with_replicas_and_named_containers_are_refused() {
        let mut g = wire(3);
        g.mode = pb::ServiceMode::Global as i32;
        assert_eq!(
            ServiceSpec::from_proto(&g)
                .expect_err("global+replicas")
                .field,
            "replicas"
        );
        g.replicas = 0;
        assert_eq!(
            ServiceSpec::from_proto(&g).expect("global").mode,
            Mode::Global
        );
        let mut named = wire(1);
        if let Some(c) = named.container.as_mut() {
            c.name = "x1".into();
        }
        assert_eq!(
            ServiceSpec::from_proto(&named).expect_err("named").field,
            "name"
        );
    }

    #[test]
    fn the_spec_survives_the_wire() {
        let mut w = wire(2);
        w.constraints = vec!["zone==b".into()];
        w.update = Some(pb::UpdateConfig {
            parallelism: 2,
            delay_ms: 1500,
            order: pb::UpdateOrder::StartFirst as i32,
            failure_action: pb::FailureAction::Rollback as i32,
            monitor_ms: 3000,
        });
        let spec = ServiceSpec::from_proto(&w).expect("valid");
        assert_eq!(
            ServiceSpec::from_proto(&spec.to_proto()).expect("again"),
            spec
        );
        assert_eq!(spec.update.order, UpdateOrder::StartFirst);
        assert_eq!(parse_scale("web=4"), Ok(("web".into(), 4)));
        assert_eq!(parse_scale("web").expect_err("no =").field, "scale");
    }
}
