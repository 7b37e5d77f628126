//! `berth service …`: services, Docker's words. The cluster keeps each service's replicas
//! running; these commands declare, change and show that desired state.

use super::print;
use crate::cli::{
    OutputFormat, ServiceCommand, ServiceCreateArgs, ServiceLogsArgs, ServiceUpdateArgs,
    UpdateFlags,
};
use crate::errors::status_report;
use crate::output::{Table, age, rfc3339_ms, short_id, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use color_eyre::Section;
use color_eyre::eyre::{Result, eyre};
use futures::StreamExt;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// How long `service create` (without `--detach`) waits for every replica to run.
pub const DEFAULT_CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum ServicePlan {
    Create(Box<pb::ServiceSpec>, bool),
    Ls,
    Ps(String),
    Inspect(String),
    Scale(Vec<(String, u32)>),
    Update(Box<ServiceUpdateArgs>),
    Rollback(String),
    Rm(Vec<String>),
    Logs(ServiceLogsArgs),
}

fn update_config(u: &UpdateFlags, base: Option<pb::UpdateConfig>) -> pb::UpdateConfig {
    let mut c = base.unwrap_or_default();
    if let Some(p) = u.update_parallelism {
        c.parallelism = p;
    }
    if let Some(d) = u.update_delay {
        c.delay_ms = d.as_millis() as u64;
    }
    if let Some(d) = u.update_monitor {
        c.monitor_ms = d.as_millis() as u64;
    }
    if let Some(o) = u.update_order {
        c.order = match o {
            berth_shared::service::UpdateOrder::StopFirst => pb::UpdateOrder::StopFirst,
            berth_shared::service::UpdateOrder::StartFirst => pb::UpdateOrder::StartFirst,
        } as i32;
    }
    if let Some(a) = u.update_failure_action {
        c.failure_action = match a {
            berth_shared::service::FailureAction::Pause => pb::FailureAction::Pause,
            berth_shared::service::FailureAction::Rollback => pb::FailureAction::Rollback,
        } as i32;
    }
    c
}

fn create_spec(a: ServiceCreateArgs) -> Result<pb::ServiceSpec> {
    let global = a.mode == crate::cli::ServiceMode::Global;
    if global && a.replicas.is_some() {
        return Err(eyre!(
            "invalid replicas: --replicas cannot be given with --mode global (one replica per node)"
        ));
    }
    let update = update_config(&a.update, None);
    let (container, constraints, strategy) =
        super::run::container_spec(a.c, None, |k| std::env::var(k).ok())?;
    let spec = pb::ServiceSpec {
        name: a.name,
        mode: if global {
            pb::ServiceMode::Global
        } else {
            pb::ServiceMode::Replicated
        } as i32,
        replicas: if global { 0 } else { a.replicas.unwrap_or(1) },
        container: Some(container),
        constraints,
        strategy: strategy as i32,
        update: Some(update),
    };
    // The same checks the agent makes.
    berth_shared::service::ServiceSpec::from_proto(&spec).map_err(|e| eyre!("{e}"))?;
    Ok(spec)
}

pub fn prepare(cmd: ServiceCommand) -> Result<ServicePlan> {
    Ok(match cmd {
        ServiceCommand::Create(a) => {
            let detach = a.detach;
            ServicePlan::Create(Box::new(create_spec(*a)?), detach)
        }
        ServiceCommand::Ls => ServicePlan::Ls,
        ServiceCommand::Ps { name } => ServicePlan::Ps(name),
        ServiceCommand::Inspect { name } => ServicePlan::Inspect(name),
        ServiceCommand::Scale { pairs } => ServicePlan::Scale(pairs),
        ServiceCommand::Update(a) => {
            if !a.changes_anything() {
                return Err(eyre!("invalid update: names no change"))
                    .suggestion("give --image, --replicas, -e, --cpus, --memory, --restart, a --health-* flag or an --update-* flag");
            }
            ServicePlan::Update(a)
        }
        ServiceCommand::Rollback { name } => ServicePlan::Rollback(name),
        ServiceCommand::Rm { names } => ServicePlan::Rm(names),
        ServiceCommand::Logs(a) => ServicePlan::Logs(a),
    })
}

async fn list(session: &mut Session, name: &str) -> Result<Vec<pb::ServiceStatus>> {
    session
        .client
        .list_services(pb::ListServicesRequest {
            name: name.to_owned(),
        })
        .await
        .map(|r| r.into_inner().services)
        .map_err(|s| service_report(s, &session.address))
}

fn service_report(s: tonic::Status, agent: &str) -> color_eyre::eyre::Report {
    match s.code() {
        tonic::Code::NotFound => {
            eyre!("{}", s.message()).suggestion("`berth service ls` lists the services")
        }
        tonic::Code::AlreadyExists => eyre!("{}", s.message()).suggestion(
            "change it with `berth service update`, or remove it with `berth service rm`",
        ),
        _ => status_report(s, agent),
    }
}

fn note_write(r: &pb::ServiceWriteResponse) {
    let mut err = std::io::stderr().lock();
    if let Some(s) = &r.superseded_by {
        let _ = writeln!(
            err,
            "note: a newer write of this service, taken by {}, won over this one",
            s.node
        );
    }
}

pub async fn execute(session: &mut Session, output: OutputFormat, plan: ServicePlan) -> Result<()> {
    let address = session.address.clone();
    match plan {
        ServicePlan::Create(spec, detach) => {
            let name = spec.name.clone();
            let r = session
                .client
                .create_service(pb::CreateServiceRequest { spec: Some(*spec) })
                .await
                .map_err(|s| service_report(s, &address))?
                .into_inner();
            note_write(&r);
            let entry = r.entry.unwrap_or_default();
            if !detach {
                converge(session, &name).await?;
            }
            print(&format!("{}\n", entry.id))
        }
        ServicePlan::Ls => {
            let mut all = list(session, "").await?;
            all.sort_by(|a, b| name_of(a).cmp(name_of(b)));
            match output {
                OutputFormat::Json => {
                    print(&to_json(&all.iter().map(ls_json).collect::<Vec<_>>())?)
                }
                _ => print(&ls_table(&all)),
            }
        }
        ServicePlan::Ps(name) => {
            let all = list(session, &name).await?;
            let rows: Vec<PsJson> = all.iter().flat_map(ps_json).collect();
            match output {
                OutputFormat::Json => print(&to_json(&rows)?),
                _ => print(&ps_table(&rows)),
            }
        }
        ServicePlan::Inspect(name) => {
            let all = list(session, &name).await?;
            let s = all
                .first()
                .ok_or_else(|| eyre!("no service named {name:?}"))?;
            print(&to_json(&inspect_json(s))?)
        }
        ServicePlan::Scale(pairs) => {
            for (name, n) in pairs {
                let r = session
                    .client
                    .update_service(pb::UpdateServiceRequest {
                        name: name.clone(),
                        replicas: Some(n),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| service_report(s, &address))?
                    .into_inner();
                note_write(&r);
                print(&format!("{name} scaled to {n}\n"))?;
            }
            Ok(())
        }
        ServicePlan::Update(a) => update(session, *a).await,
        ServicePlan::Rollback(name) => {
            let r = session
                .client
                .update_service(pb::UpdateServiceRequest {
                    name: name.clone(),
                    rollback: true,
                    ..Default::default()
                })
                .await
                .map_err(|s| service_report(s, &address))?
                .into_inner();
            note_write(&r);
            print(&format!("{name}\n"))
        }
        ServicePlan::Rm(names) => {
            let mut ids = Vec::new();
            for name in names {
                let r = session
                    .client
                    .remove_service(pb::RemoveServiceRequest { name: name.clone() })
                    .await
                    .map_err(|s| service_report(s, &address))?
                    .into_inner();
                note_write(&r);
                ids.extend(r.entry.map(|e| e.id));
                print(&format!("{name}\n"))?;
            }
            drained(session, &ids).await
        }
        ServicePlan::Logs(a) => logs(session, a).await,
    }
}

async fn update(session: &mut Session, a: ServiceUpdateArgs) -> Result<()> {
    let address = session.address.clone();
    let current = list(session, &a.name).await?;
    let entry = current
        .first()
        .and_then(|s| s.entry.clone())
        .ok_or_else(|| eyre!("no service named {:?}", a.name))?;
    let mut spec = entry.spec.unwrap_or_default();
    let mut container = spec.container.take().unwrap_or_default();
    if let Some(i) = &a.image {
        container.image = i.to_string();
    }
    for e in &a.env {
        let (k, v) = match e {
            berth_shared::spec::EnvArg::Pair(k, v) => (k.clone(), v.clone()),
            berth_shared::spec::EnvArg::Inherit(k) => (
                k.clone(),
                std::env::var(k)
                    .map_err(|_| eyre!("invalid env: {k} is not set in this environment"))?,
            ),
        };
        container.env.retain(|x| x.key != k);
        container.env.push(pb::EnvVar { key: k, value: v });
    }
    if let Some(c) = a.cpus {
        container.cpus = c;
    }
    if let Some(m) = a.memory {
        container.memory_bytes = m;
    }
    if let Some(r) = &a.restart {
        container.restart = Some(r.to_proto());
    }
    container.health = updated_health(&a.health, container.health.take())?;
    spec.container = Some(container);
    if let Some(n) = a.replicas {
        spec.replicas = n;
    }
    spec.update = Some(update_config(&a.update, spec.update));
    berth_shared::service::ServiceSpec::from_proto(&spec).map_err(|e| eyre!("{e}"))?;
    let r = session
        .client
        .update_service(pb::UpdateServiceRequest {
            name: a.name.clone(),
            spec: Some(spec),
            ..Default::default()
        })
        .await
        .map_err(|s| service_report(s, &address))?
        .into_inner();
    note_write(&r);
    let version = r.entry.map(|e| e.version).unwrap_or_default();
    print(&format!("{} updated to version {version}\n", a.name))
}

/// The health check after `service update`'s health flags, as Docker's `service update` reads
/// them: `--no-healthcheck` turns it off, `--health-cmd` replaces the command, and each timing
/// flag replaces its own setting, keeping the others.
fn updated_health(
    h: &crate::cli::HealthFlags,
    current: Option<pb::HealthCheck>,
) -> Result<Option<pb::HealthCheck>> {
    if !h.given() {
        return Ok(current);
    }
    if h.no_healthcheck {
        return Ok(Some(pb::HealthCheck {
            disabled: true,
            ..Default::default()
        }));
    }
    let mut check = current.filter(|c| !c.disabled && !c.cmd.is_empty());
    if let Some(cmd) = &h.health_cmd {
        let c = check.get_or_insert_with(Default::default);
        c.cmd = cmd.clone();
    }
    let Some(mut c) = check else {
        return Err(eyre!(
            "invalid health-cmd: the service has no health check to change; give --health-cmd"
        ));
    };
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if let Some(d) = h.health_interval {
        c.interval_ms = ms(d);
    }
    if let Some(d) = h.health_timeout {
        c.timeout_ms = ms(d);
    }
    if let Some(n) = h.health_retries {
        c.retries = n;
    }
    if let Some(d) = h.health_start_period {
        c.start_period_ms = ms(d);
    }
    Ok(Some(c))
}

/// Waits until every replica runs, showing each slot's progress on stderr; fails with the
/// reasons when they do not within [`DEFAULT_CONVERGE_TIMEOUT`].
async fn converge(session: &mut Session, name: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let mut shown: std::collections::HashMap<String, String> = Default::default();
    loop {
        let all = list(session, name).await?;
        let Some(s) = all.first() else {
            return Err(eyre!("service {name:?} went away while it was starting"));
        };
        let mut err = std::io::stderr().lock();
        for slot in &s.slots {
            let line = if slot.error.is_empty() {
                format!(
                    "{} on {}",
                    slot.state,
                    if slot.node.is_empty() {
                        "-"
                    } else {
                        &slot.node
                    }
                )
            } else {
                format!("{}: {}", slot.state, slot.error)
            };
            if shown.get(&slot.slot) != Some(&line) {
                let _ = writeln!(err, "{name}.{}: {line}", slot.slot);
                shown.insert(slot.slot.clone(), line);
            }
        }
        drop(err);
        if s.replicas_running >= s.replicas_desired && s.state == "converged" {
            let _ = writeln!(
                std::io::stderr(),
                "{name}: {}/{} replicas running",
                s.replicas_running,
                s.replicas_desired
            );
            return Ok(());
        }
        if started.elapsed() > DEFAULT_CONVERGE_TIMEOUT {
            let errors: Vec<String> = s
                .slots
                .iter()
                .filter(|x| !x.error.is_empty())
                .map(|x| format!("slot {}: {}", x.slot, x.error))
                .collect();
            return Err(eyre!(
                "{name}: {}/{} replicas running after {}s{}",
                s.replicas_running,
                s.replicas_desired,
                DEFAULT_CONVERGE_TIMEOUT.as_secs(),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errors.join("; "))
                }
            ))
            .suggestion("the cluster keeps trying; `berth service ps` shows each slot");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits (bounded) until no container of the removed services is left in the view, so that
/// `service rm` returns once its containers are gone, as it says.
async fn drained(session: &mut Session, ids: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let snapshot = super::nodes::cluster(session).await?;
        let left = snapshot
            .containers
            .iter()
            .filter(|c| c.slot.as_ref().is_some_and(|s| ids.contains(&s.service_id)))
            .count();
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > DEFAULT_CONVERGE_TIMEOUT / 4 {
            let _ = writeln!(
                std::io::stderr(),
                "note: {left} container(s) still being removed; the cluster goes on with it"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn logs(session: &mut Session, a: ServiceLogsArgs) -> Result<()> {
    let address = session.address.clone();
    let all = list(session, &a.name).await?;
    let s = all
        .first()
        .ok_or_else(|| eyre!("no service named {:?}", a.name))?;
    let mut streams = Vec::new();
    for slot in s.slots.iter().filter(|x| !x.container_id.is_empty()) {
        let prefix = format!("{}.{}@{} | ", a.name, slot.slot, slot.node);
        let stream = session
            .client
            .logs(pb::LogsRequest {
                container: slot.container_id.clone(),
                follow: a.follow,
                tail: a.tail,
                since_unix_ms: 0,
            })
            .await
            .map_err(|st| status_report(st, &address))?
            .into_inner()
            .map(move |l| (prefix.clone(), l));
        streams.push(stream);
    }
    let mut merged = futures::stream::select_all(streams);
    while let Some((prefix, line)) = merged.next().await {
        let line = line.map_err(|st| status_report(st, &address))?;
        let mut text = prefix.into_bytes();
        text.extend_from_slice(&line.line);
        text.push(b'\n');
        let stderr = line.stream == pb::log_line::Stream::Stderr as i32;
        let written = if stderr {
            std::io::stderr().lock().write_all(&text)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&text).and_then(|()| out.flush())
        };
        if written.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn name_of(s: &pb::ServiceStatus) -> &str {
    s.entry
        .as_ref()
        .map(|e| e.name.as_str())
        .unwrap_or_default()
}

fn mode_word(spec: Option<&pb::ServiceSpec>) -> &'static str {
    match spec.map(|s| s.mode) {
        Some(m) if m == pb::ServiceMode::Global as i32 => "global",
        _ => "replicated",
    }
}

/// `service ls -o json`: one object per service. Field names are stable.
#[derive(Debug, Serialize)]
pub struct LsJson {
    pub id: String,
    pub name: String,
    pub mode: &'static str,
    pub replicas_desired: u32,
    pub replicas_running: u32,
    pub image: String,
    pub state: String,
    pub version: u64,
    pub created: Option<String>,
    pub updated: Option<String>,
}

fn ls_json(s: &pb::ServiceStatus) -> LsJson {
    let e = s.entry.clone().unwrap_or_default();
    LsJson {
        mode: mode_word(e.spec.as_ref()),
        image: e
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default(),
        id: e.id,
        name: e.name,
        replicas_desired: s.replicas_desired,
        replicas_running: s.replicas_running,
        state: s.state.clone(),
        version: e.version,
        created: rfc3339_ms(e.created_unix_ms),
        updated: rfc3339_ms(e.updated_unix_ms),
    }
}

fn ls_table(all: &[pb::ServiceStatus]) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let mut t = Table::new(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "STATE", "AGE"]);
    for s in all {
        let j = ls_json(s);
        let created = s.entry.as_ref().map(|e| e.created_unix_ms).unwrap_or(now);
        t.row(vec![
            short_id(&j.id).to_owned(),
            j.name,
            j.mode.to_owned(),
            format!("{}/{}", j.replicas_running, j.replicas_desired),
            j.image,
            j.state,
            age(u64::try_from(now - created).unwrap_or(0)),
        ]);
    }
    t.render()
}

/// `service ps -o json`: one object per slot. Field names are stable.
#[derive(Debug, Serialize)]
pub struct PsJson {
    pub service: String,
    pub slot: String,
    pub id: String,
    pub name: String,
    pub node: String,
    pub state: String,
    pub version: u64,
    pub error: String,
}

fn ps_json(s: &pb::ServiceStatus) -> Vec<PsJson> {
    let name = name_of(s).to_owned();
    let mut rows: Vec<PsJson> = s
        .slots
        .iter()
        .map(|x| PsJson {
            service: name.clone(),
            slot: x.slot.clone(),
            id: x.container_id.clone(),
            name: x.container_name.clone(),
            node: x.node.clone(),
            state: x.state.clone(),
            version: x.version,
            error: x.error.clone(),
        })
        .collect();
    rows.sort_by(|a, b| {
        let n = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
        (n(&a.slot), &a.slot).cmp(&(n(&b.slot), &b.slot))
    });
    rows
}

fn ps_table(rows: &[PsJson]) -> String {
    let mut t = Table::new(&[
        "SERVICE",
        "SLOT",
        "CONTAINER ID",
        "NAME",
        "NODE",
        "STATE",
        "VERSION",
        "ERROR",
    ]);
    for r in rows {
        t.row(vec![
            r.service.clone(),
            r.slot.clone(),
            short_id(&r.id).to_owned(),
            r.name.clone(),
            r.node.clone(),
            r.state.clone(),
            r.version.to_string(),
            r.error.clone(),
        ]);
    }
    t.render()
}

#[derive(Debug, Serialize)]
struct InspectJson {
    #[serde(flatten)]
    summary: LsJson,
    responsible: String,
    paused: bool,
    rolled_back: bool,
    message: String,
    written_by: String,
    spec: serde_json::Value,
    previous: Option<serde_json::Value>,
    slots: Vec<PsJson>,
}

fn spec_value(s: &pb::ServiceSpec) -> serde_json::Value {
    let c = s.container.clone().unwrap_or_default();
    let u = s.update.unwrap_or_default();
    serde_json::json!({
        "mode": mode_word(Some(s)),
        "replicas": s.replicas,
        "container": crate::output::spec_json(&c),
        "constraints": s.constraints,
        "strategy": if s.strategy == pb::Strategy::Binpack as i32 { "binpack" } else { "spread" },
        "update": {
            "parallelism": u.parallelism,
            "delay_ms": u.delay_ms,
            "monitor_ms": u.monitor_ms,
            "order": if u.order == pb::UpdateOrder::StartFirst as i32 { "start-first" } else { "stop-first" },
            "failure_action": if u.failure_action == pb::FailureAction::Rollback as i32 { "rollback" } else { "pause" },
        },
    })
}

fn inspect_json(s: &pb::ServiceStatus) -> InspectJson {
    let e = s.entry.clone().unwrap_or_default();
    InspectJson {
        summary: ls_json(s),
        responsible: s.responsible.clone(),
        paused: e.paused,
        rolled_back: e.rolled_back,
        message: e.message.clone(),
        written_by: e.stamp.map(|s| s.node).unwrap_or_default(),
        spec: e.spec.as_ref().map(spec_value).unwrap_or_default(),
        previous: e.previous.as_ref().map(spec_value),
        slots: ps_json(s),
    }
}

/// `NAME` of a service command.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::HealthFlags;
    use std::time::Duration;

    fn check(cmd: &str) -> pb::HealthCheck {
        pb::HealthCheck {
            cmd: cmd.into(),
            interval_ms: 30_000,
            timeout_ms: 5_000,
            retries: 3,
            ..Default::default()
        }
    }

    #[test]
    fn health_flags_change_only_what_they_name() {
        let none = HealthFlags::default();
        assert_eq!(
            updated_health(&none, Some(check("a"))).expect("ok"),
            Some(check("a")),
            "no flag: unchanged"
        );
        let retries = HealthFlags {
            health_retries: Some(7),
            ..Default::default()
        };
        let c = updated_health(&retries, Some(check("a")))
            .expect("ok")
            .expect("a check");
        assert_eq!((c.cmd.as_str(), c.retries, c.interval_ms), ("a", 7, 30_000));
        let cmd = HealthFlags {
            health_cmd: Some("b".into()),
            health_interval: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let c = updated_health(&cmd, Some(check("a")))
            .expect("ok")
            .expect("a check");
        assert_eq!(
            (c.cmd.as_str(), c.interval_ms, c.timeout_ms),
            ("b", 2_000, 5_000)
        );
        let c = updated_health(&cmd, None)
            .expect("ok")
            .expect("a new check");
        assert_eq!((c.cmd.as_str(), c.interval_ms, c.retries), ("b", 2_000, 0));
        let off = HealthFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert!(
            updated_health(&off, Some(check("a")))
                .expect("ok")
                .is_some_and(|c| c.disabled)
        );
    }

    #[test]
    fn a_timing_flag_needs_a_check_to_change() {
        let retries = HealthFlags {
            health_retries: Some(2),
            ..Default::default()
        };
        for current in [
            None,
            Some(pb::HealthCheck {
                disabled: true,
                ..Default::default()
            }),
        ] {
            let e = updated_health(&retries, current).expect_err("nothing to change");
            assert!(e.to_string().contains("--health-cmd"), "{e}");
        }
    }
}
