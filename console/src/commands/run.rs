//! `berth run`: build a checked spec, send it, show placement and pull progress on stderr, print
//! the new container's id on stdout.

use super::print;
use crate::cli::{ContainerArgs, HealthFlags, OutputFormat, RunArgs};
use crate::errors::status_report;
use crate::output::{RunJson, short_id, to_json};
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::quantity::format_bytes;
use berth_shared::spec::{ContainerSpec, EnvArg, RestartPolicy};
use color_eyre::Section;
use color_eyre::eyre::{Result, eyre};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

#[derive(Debug)]
pub struct RunPlan {
    pub spec: pb::ContainerSpec,
    pub node: String,
    pub constraints: Vec<String>,
    pub strategy: pb::Strategy,
    /// The same on every try of this run, so a retry finds what an earlier try made.
    pub request_id: String,
}

/// Tries of one run when the connection breaks (the first and the retries).
const RUN_TRIES: u32 = 4;
/// The wait before the first retry, doubled for each next one (0.5, 1, 2 s: longer in all than
/// the ≈3 s a cluster takes to see a dead node down, so a retry can move past it).
const FIRST_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A fresh request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The command words after the image: clap keeps a `--` that follows the image, Docker drops it.
pub fn command_words(words: &[String]) -> &[String] {
    match words.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => words,
    }
}

/// Checks the whole spec as the agent will; `lookup` reads the console's environment for `-e KEY`.
pub fn prepare(args: RunArgs, lookup: impl Fn(&str) -> Option<String>) -> Result<RunPlan> {
    let (spec, constraints, strategy) = container_spec(args.c, args.name, lookup)?;
    Ok(RunPlan {
        spec,
        node: args.node.unwrap_or_default(),
        constraints,
        strategy,
        request_id: new_request_id(),
    })
}

/// The health check `--health-*` / `--no-healthcheck` ask for (none: the image's own).
pub fn health_check(h: HealthFlags) -> Result<Option<berth_shared::spec::HealthCheck>> {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64).unwrap_or(0);
    let timing_given = h.health_interval.is_some()
        || h.health_timeout.is_some()
        || h.health_retries.is_some()
        || h.health_start_period.is_some();
    let health = if h.no_healthcheck {
        Some(berth_shared::spec::HealthCheck {
            disabled: true,
            ..Default::default()
        })
    } else if let Some(cmd) = h.health_cmd {
        Some(berth_shared::spec::HealthCheck {
            disabled: false,
            cmd,
            interval_ms: ms(h.health_interval),
            timeout_ms: ms(h.health_timeout),
            retries: h.health_retries.unwrap_or(0),
            start_period_ms: ms(h.health_start_period),
        })
    } else if timing_given {
        return Err(eyre!(
            "invalid health-cmd: --health-interval, --health-timeout, --health-retries and \
             --health-start-period need --health-cmd"
        ));
    } else {
        None
    };
    Ok(health)
}

/// The container's environment: `--env-file`s first (Docker's order; a `KEY` alone skipped
/// when unset, as Docker does), then `-e` (a `KEY` alone must be set here); the last value of a
/// name wins.
pub fn collect_env(
    env_file: &[std::path::PathBuf],
    env_args: Vec<EnvArg>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(env_args.len());
    // Env files first (Docker's order), a `KEY` alone skipped when unset, as Docker does.
    for path in env_file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre!("invalid env-file: cannot read {shown}: {e}"))?;
        for arg in berth_shared::spec::parse_env_file(&shown, &text)? {
            match arg {
                EnvArg::Pair(k, v) => env.push((k, v)),
                EnvArg::Inherit(k) => {
                    if let Some(v) = lookup(&k) {
                        env.push((k, v));
                    }
                }
            }
        }
    }
    for arg in env_args {
        match arg {
            EnvArg::Pair(k, v) => env.push((k, v)),
            EnvArg::Inherit(k) => match lookup(&k) {
                Some(v) => env.push((k, v)),
                None => {
                    return Err(eyre!(
                        "invalid env: {k} is not set in this environment (-e {k} takes its value from here)"
                    ))
                    .suggestion(format!("give a value with -e {k}=VALUE, or export {k}"));
                }
            },
        }
    }
    // One value a name: the last one given wins (-e over files, a later file over an earlier).
    let mut seen = std::collections::HashSet::new();
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    env.reverse();
    Ok(env)
}

/// `docker run`'s other flags as the spec's options.
pub fn run_options(o: crate::cli::RunOptionFlags) -> berth_shared::options::RunOptions {
    berth_shared::options::RunOptions {
        mounts: o.volume.into_iter().chain(o.mount).chain(o.tmpfs).collect(),
        network: o.network,
        hostname: o.hostname,
        add_hosts: o.add_host,
        dns: o.dns,
        publish_all: o.publish_all,
        expose: o.expose,
        workdir: o.workdir,
        user: o.user,
        stop_signal: o.stop_signal,
        stop_timeout_secs: o.stop_timeout,
        init: o.init,
        read_only: o.read_only,
        cap_add: o.cap_add,
        cap_drop: o.cap_drop,
        privileged: o.privileged,
        pull: o.pull.unwrap_or_default(),
    }
}

/// The checked container spec of `args`, with its constraints and strategy for the wire.
pub fn container_spec(
    args: ContainerArgs,
    name: Option<String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(pb::ContainerSpec, Vec<String>, pb::Strategy)> {
    let env = collect_env(&args.env_file, args.env, lookup)?;
    let health = health_check(args.health)?;
    let options = run_options(args.options);
    // Docker's `--entrypoint ""` sends [""], which resets the image's entrypoint.
    let entrypoint = args.entrypoint.map(|e| vec![e]);
    let spec = ContainerSpec {
        image: args.image.to_string(),
        name,
        entrypoint,
        command: command_words(&args.command).to_vec(),
        env,
        ports: args.publish,
        cpus: args.cpus.unwrap_or(0.0),
        memory_bytes: args.memory.unwrap_or(0),
        restart: args.restart.unwrap_or(RestartPolicy::No),
        labels: args.label.into_iter().collect::<BTreeMap<_, _>>(),
        slot: None,
        health,
        options,
        request: None,
    };
    spec.validate().map_err(refused)?;
    let strategy = args.strategy;
    Ok((
        spec.to_proto(),
        args.constraints.iter().map(ToString::to_string).collect(),
        strategy,
    ))
}

fn refused(e: ValidationError) -> color_eyre::eyre::Report {
    eyre!("{e}")
}

pub async fn execute(session: &mut Session, output: OutputFormat, plan: RunPlan) -> Result<()> {
    let image = plan.spec.image.clone();
    let address = session.address.clone();
    let stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let mut progress = Progress::new(stderr, image, terminal);
    let mut wait = FIRST_RETRY_WAIT;
    let mut tries = 1;
    let result = loop {
        match follow_run(session, &plan, &mut progress).await {
            Err(s) if tries < RUN_TRIES && worth_retrying(&s) => {
                progress.line(&format!(
                    "{}; trying again with the same request id ({} of {RUN_TRIES}) in {} ms",
                    retry_reason(&s),
                    tries + 1,
                    wait.as_millis()
                ));
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
            other => break other,
        }
    };
    progress.finish();
    let outcome = result.map_err(|s| status_report(s, &address))?;
    let Some(container) = outcome.container() else {
        return Err(eyre!(
            "the agent ended the run before the container started"
        ))
        .suggestion("`berth ps -a` shows whether it was created");
    };
    match output {
        OutputFormat::Json => print(&to_json(&container)?),
        OutputFormat::Table | OutputFormat::Wide => print(&format!("{}\n", container.id)),
    }
}

/// What the run's event stream said.
#[derive(Debug, Default)]
struct Outcome {
    placed_on: String,
    created: Option<pb::Created>,
    started: Option<pb::ContainerSummary>,
}

impl Outcome {
    /// The started container, each field from the most complete event that carries it.
    fn container(self) -> Option<RunJson> {
        let started = self.started?;
        let created = self.created.unwrap_or_default();
        let or = |a: String, b: String| if a.is_empty() { b } else { a };
        Some(RunJson {
            id: or(started.id, created.id),
            name: or(started.name, created.name),
            node: or(started.node, self.placed_on),
        })
    }
}

/// A run is tried again when its answer was lost on the way (the connection broke), or when
/// the agent says a retry is the way on; with the same request id neither makes a second copy.
fn worth_retrying(s: &tonic::Status) -> bool {
    berth_shared::client::transport_failure(s).is_some() || berth_shared::request::asks_for_retry(s)
}

fn retry_reason(s: &tonic::Status) -> String {
    if berth_shared::request::asks_for_retry(s) {
        s.message().to_owned()
    } else {
        format!("lost the connection to the agent ({})", s.message())
    }
}

async fn follow_run(
    session: &mut Session,
    plan: &RunPlan,
    progress: &mut Progress<impl Write>,
) -> Result<Outcome, tonic::Status> {
    let mut stream = session
        .client
        .run(pb::RunRequest {
            spec: Some(plan.spec.clone()),
            node: plan.node.clone(),
            constraints: plan.constraints.clone(),
            strategy: plan.strategy as i32,
            request_id: plan.request_id.clone(),
        })
        .await?
        .into_inner();
    let mut outcome = Outcome::default();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(pb::run_event::Event::Placed(p)) => {
                progress.line(&if p.reason.is_empty() {
                    format!("placed on {}", p.node)
                } else {
                    format!("placed on {}: {}", p.node, p.reason)
                });
                outcome.placed_on = p.node;
            }
            Some(pb::run_event::Event::Pull(p)) => progress.pull(&p),
            Some(pb::run_event::Event::Created(c)) => {
                progress.line(&format!("created {}", c.id));
                for w in &c.warnings {
                    progress.line(&format!("warning: {w}"));
                }
                outcome.created = Some(c);
            }
            Some(pb::run_event::Event::Started(s)) => {
                let container = s.container.unwrap_or_default();
                if !container.name.is_empty() {
                    progress.line(&format!("started {} on {}", container.name, container.node));
                }
                outcome.started = Some(container);
            }
            None => {}
        }
    }
    Ok(outcome)
}

/// Pull progress on stderr: one line redrawn in place on a terminal, plain lines otherwise
/// (one per layer status change, never one per downloaded chunk). Failing to write progress
/// does not fail the run.
pub(crate) struct Progress<W: Write> {
    out: W,
    image: String,
    terminal: bool,
    announced: bool,
    /// A redrawn line is on screen and needs a newline before anything else is written.
    line_open: bool,
    layers: BTreeMap<String, Layer>,
    last_message: String,
}

#[derive(Default)]
struct Layer {
    status: String,
    current: u64,
    total: u64,
    done: bool,
}

const BAR_WIDTH: usize = 24;

impl<W: Write> Progress<W> {
    pub(crate) fn new(out: W, image: String, terminal: bool) -> Self {
        Self {
            out,
            image,
            terminal,
            announced: false,
            line_open: false,
            layers: BTreeMap::new(),
            last_message: String::new(),
        }
    }

    pub(crate) fn line(&mut self, text: &str) {
        self.close_line();
        let _ = writeln!(self.out, "{text}");
    }

    fn close_line(&mut self) {
        if self.line_open {
            let _ = writeln!(self.out);
            self.line_open = false;
        }
    }

    pub(crate) fn pull(&mut self, p: &pb::PullProgress) {
        if !self.announced {
            self.announced = true;
            self.line(&format!("pulling {}", self.image));
        }
        // Docker's "Pulling from <repo>" carries the tag as its id: it is not about a layer.
        let about_layer = !p.layer.is_empty() && !p.status.starts_with("Pulling from");
        let changed = if about_layer {
            let layer = self.layers.entry(p.layer.clone()).or_default();
            let changed = layer.status != p.status;
            layer.status.clone_from(&p.status);
            if p.total > 0 {
                layer.current = p.current;
                layer.total = p.total;
            }
            let status = p.status.to_ascii_lowercase();
            if status.contains("complete") || status.contains("already exists") {
                layer.done = true;
                layer.current = layer.total;
            }
            changed
        } else {
            let changed = p.status != self.last_message;
            self.last_message.clone_from(&p.status);
            changed
        };
        if self.terminal {
            self.redraw();
        } else if changed {
            let text = if about_layer {
                format!("{}: {}", short_id(&p.layer), p.status)
            } else {
                p.status.clone()
            };
            let _ = writeln!(self.out, "{text}");
        }
    }

    fn redraw(&mut self) {
        let (current, total) = self.layers.values().fold((0u64, 0u64), |(c, t), l| {
            (c.saturating_add(l.current), t.saturating_add(l.total))
        });
        let done = self.layers.values().filter(|l| l.done).count();
        let mut text = format!("pulling {}", self.image);
        if !self.layers.is_empty() {
            text.push_str(&format!(": {done}/{} layers", self.layers.len()));
        }
        if let Some(bar) = bar(current, total) {
            text.push_str(&format!(
                " [{bar}] {} / {}",
                format_bytes(current),
                format_bytes(total)
            ));
        } else if !self.last_message.is_empty() {
            text.push_str(&format!(": {}", self.last_message));
        }
        // \r and "erase line": redraw in place.
        let _ = write!(self.out, "\r\x1b[2K{text}");
        let _ = self.out.flush();
        self.line_open = true;
    }

    pub(crate) fn finish(&mut self) {
        self.close_line();
    }
}

/// `=====     ` of [`BAR_WIDTH`] characters; `None` while the total is unknown.
fn bar(current: u64, total: u64) -> Option<String> {
    // u128: no overflow for any u64 byte count.
    let filled =
        (u128::from(current.min(total)) * BAR_WIDTH as u128).checked_div(u128::from(total))?;
    let filled = usize::try_from(filled).unwrap_or(BAR_WIDTH).min(BAR_WIDTH);
    Some(format!(
        "{}{}",
        "=".repeat(filled),
        " ".repeat(BAR_WIDTH - filled)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(a: &[&str]) -> RunArgs {
        let cli =
            crate::cli::Cli::try_parse_from(["berth", "run"].into_iter().chain(a.iter().copied()))
                .expect("parses");
        match cli.command {
            Some(crate::cli::Command::Run(r)) => *r,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn progress_bar_fills_in_proportion() {
        crate::test_error_hook();
        assert_eq!(bar(0, 0), None);
        assert_eq!(bar(0, 10).as_deref(), Some(" ".repeat(BAR_WIDTH).as_str()));
        assert_eq!(
            bar(5, 10).map(|b| b.matches('=').count()),
            Some(BAR_WIDTH / 2)
        );
        assert_eq!(bar(99, 10).as_deref(), Some("=".repeat(BAR_WIDTH).as_str()));
        assert_eq!(
            bar(u64::MAX, u64::MAX).as_deref(),
            Some("=".repeat(BAR_WIDTH).as_str())
        );
    }

    fn pull_event(status: &str, layer: &str, current: u64, total: u64) -> pb::PullProgress {
        pb::PullProgress {
            status: status.into(),
            layer: layer.into(),
            current,
            total,
        }
    }

    fn pull_events() -> Vec<pb::PullProgress> {
        vec![
            pull_event("Pulling from team/app", "1", 0, 0),
            pull_event("Pulling fs layer", "aaaa", 0, 0),
            pull_event("Downloading", "aaaa", 10, 100),
            pull_event("Downloading", "aaaa", 50, 100),
            pull_event("Already exists", "bbbb", 0, 0),
            pull_event("Pull complete", "aaaa", 0, 0),
            pull_event("Status: Downloaded newer image for team/app:1", "", 0, 0),
        ]
    }

    #[test]
    fn plain_progress_prints_each_status_change_once() {
        crate::test_error_hook();
        let mut p = Progress::new(Vec::new(), "team/app:1".into(), false);
        p.line("placed on n1");
        for e in pull_events() {
            p.pull(&e);
        }
        p.finish();
        assert_eq!(
            String::from_utf8_lossy(&p.out),
            "placed on n1\n\
             pulling team/app:1\n\
             Pulling from team/app\n\
             aaaa: Pulling fs layer\n\
             aaaa: Downloading\n\
             bbbb: Already exists\n\
             aaaa: Pull complete\n\
             Status: Downloaded newer image for team/app:1\n"
        );
    }

    #[test]
    fn terminal_progress_redraws_one_line() {
        crate::test_error_hook();
        let mut p = Progress::new(Vec::new(), "team/app:1".into(), true);
        let events = pull_events();
        p.pull(&events[0]);
        p.pull(&events[1]);
        p.pull(&events[3]);
        let text = String::from_utf8_lossy(&p.out).into_owned();
        let last = text.rsplit("\r\x1b[2K").next().unwrap_or_default();
        assert_eq!(
            last,
            format!(
                "pulling team/app:1: 0/1 layers [{}{}] 50B / 100B",
                "=".repeat(12),
                " ".repeat(12)
            )
        );
        for e in &events[4..] {
            p.pull(e);
        }
        p.line("created abc");
        let text = String::from_utf8_lossy(&p.out).into_owned();
        assert!(
            text.ends_with("2/2 layers [========================] 100B / 100B\ncreated abc\n"),
            "{text:?}"
        );
        assert_eq!(text.matches('\n').count(), 3, "{text:?}");
    }

    #[test]
    fn inherited_env_comes_from_the_environment() {
        crate::test_error_hook();
        let plan = prepare(args(&["-e", "HOMEDIR", "-e", "A=", "img"]), |k| {
            (k == "HOMEDIR").then(|| "/home/x".to_owned())
        })
        .expect("prepared");
        let env: Vec<(&str, &str)> = plan
            .spec
            .env
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(env, [("HOMEDIR", "/home/x"), ("A", "")]);
    }

    #[test]
    fn unset_inherited_env_is_refused_naming_the_variable() {
        crate::test_error_hook();
        let e = prepare(args(&["-e", "NOT_SET_ANYWHERE", "img"]), |_| None).expect_err("refused");
        assert!(e.to_string().contains("NOT_SET_ANYWHERE is not set"), "{e}");
        assert!(e.to_string().starts_with("invalid env"), "{e}");
    }

    #[test]
    fn spec_carries_every_flag() {
        crate::test_error_hook();
        let plan = prepare(
            args(&[
                "--name",
                "web",
                "-p",
                "8080:80",
                "--cpus",
                "1.5",
                "--memory",
                "64m",
                "--restart",
                "always",
                "--label",
                "a=b",
                "--entrypoint",
                "",
                "img:2",
                "--",
                "x",
                "-y",
            ]),
            |_| None,
        )
        .expect("prepared");
        let s = plan.spec;
        assert_eq!(s.name, "web");
        assert!(s.image.contains("img"), "{}", s.image);
        assert_eq!(s.command, ["x", "-y"]);
        assert_eq!(s.entrypoint, [""]);
        assert_eq!(s.cpus, 1.5);
        assert_eq!(s.memory_bytes, 64 * 1024 * 1024);
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            s.restart.map(|r| r.kind),
            Some(pb::restart_policy::Kind::Always as i32)
        );
    }
}
