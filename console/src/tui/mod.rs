//! The interactive console: `berth` with no command.
//!
//! - [`model`]: plain data and `update(msg) -> effects`; no I/O.
//! - [`view`]: drawing, a pure function of the model.
//! - [`conn`]: the `Watch` stream as a state machine with backoff, in its own task.
//! - [`keys`]: every key, per view; the help overlay prints the same table.
//! - this module: the terminal (raw mode, alternate screen, a guard and a panic hook that
//!   restore it), and the loop that feeds terminal input, watch events, call results and a
//!   render tick into the model as messages, runs the effects as tasks, and draws.
//!
//! **Invariant:** drawing never awaits. Every call to an agent runs in a task and answers
//! with a message; a frame only reads the model.

pub mod conn;
pub mod fixtures;
pub mod keys;
pub mod layout;
pub mod model;
pub mod types;
pub mod view;

use crate::errors::status_report;
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::client::Client;
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use futures::{FutureExt, StreamExt};
use model::{Clock, Config, Effect, LogSource, Model, Msg, Target};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often the loop wakes to draw what arrived (at most this many frames a second while
/// messages flow; input draws at once).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(50);
/// With nothing new, the screen is still redrawn this often (ages, countdowns, fading).
pub const IDLE_REDRAW: Duration = Duration::from_secs(1);
/// Messages waiting for the loop; producers (watch, logs) wait when it is full.
pub const CHANNEL_CAPACITY: usize = 1_024;
/// Messages applied per wake-up before drawing, so a flood cannot starve input.
pub const MAX_BATCH: usize = 4_096;
/// Log lines sent to the loop in one message.
pub const LOG_BATCH: usize = 512;
/// Set to make the TUI panic right after it starts: the end-to-end test uses it to check that
/// a panic restores the terminal. Debug builds only: a release `berth` ignores it.
pub const ENV_TEST_PANIC: &str = "BERTH_TUI_TEST_PANIC";

/// How `berth` (no command) was asked to look.
#[derive(Debug, Clone)]
pub struct Options {
    pub color: bool,
    pub mouse: bool,
    pub log_lines: usize,
}

// ---------------------------------------------------------------------------------------------
// The terminal

/// Whether the terminal is in the TUI's mode (raw, alternate screen) right now.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as the shell had it: raw mode off, alternate screen left, mouse and
/// paste reporting off, cursor shown. Does nothing when the TUI has not changed the terminal,
/// so the guard and the panic hook can both call it.
pub fn restore_terminal() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = crossterm::terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = out.flush();
}

/// Restores the terminal before the previous hook prints the panic, so the message is readable
/// and the shell usable.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// The terminal in the TUI's mode for as long as it lives.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter(mouse: bool) -> Result<Self> {
        install_panic_hook();
        let guard = TerminalGuard;
        resume_terminal(mouse)?;
        Ok(guard)
    }
}

/// Puts the terminal (back) in the TUI's mode; [`restore_terminal`] undoes it.
fn resume_terminal(mouse: bool) -> Result<()> {
    crossterm::terminal::enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = std::io::stdout();
    crossterm::execute!(out, EnterAlternateScreen, EnableBracketedPaste)
        .wrap_err("cannot switch to the alternate screen")?;
    if mouse {
        crossterm::execute!(out, EnableMouseCapture).wrap_err("cannot enable the mouse")?;
    }
    Ok(())
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

// ---------------------------------------------------------------------------------------------
// The loop

fn message_of(event: Event) -> Option<Msg> {
    match event {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Mouse(m) => Some(Msg::Mouse(m)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        Event::Paste(text) => Some(Msg::Paste(text)),
        _ => None,
    }
}

/// Runs the TUI until the user quits. The session (and its embedded agent, if any) stays open
/// the whole time.
pub async fn run(session: &Session, options: Options) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(eyre!("the interactive console needs a terminal"))
            .suggestion("run a command instead, e.g. `berth ps` (see `berth --help`)");
    }
    let mut model = Model::new(Config {
        // The header names the context too, when one chose the agent.
        agent: match &session.context {
            Some(name) => format!("{} (context {name})", session.address),
            None => session.address.clone(),
        },
        color: options.color,
        mouse: options.mouse,
        log_lines: options.log_lines,
    });
    let guard = TerminalGuard::enter(options.mouse)?;
    if cfg!(debug_assertions) && std::env::var_os(ENV_TEST_PANIC).is_some() {
        panic!("{ENV_TEST_PANIC} is set: panicking on purpose to test the terminal is restored");
    }
    let result = event_loop(session, &mut model).await;
    drop(guard);
    result
}

async fn event_loop(session: &Session, model: &mut Model) -> Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .wrap_err("cannot set up the terminal")?;
    terminal.clear().wrap_err("cannot clear the terminal")?;
    let size = terminal.size().wrap_err("cannot read the terminal size")?;
    model.update(Msg::Resize(size.width, size.height));

    let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL_CAPACITY);
    let watch = tokio::spawn(conn::watch(
        session.client.clone(),
        session.address.clone(),
        tx.clone(),
    ));
    let mut runner = Runner {
        client: session.client.clone(),
        address: session.address.clone(),
        tx,
        logs: None,
        exec: None,
    };
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(FRAME_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .wrap_err("cannot listen for SIGTERM")?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .wrap_err("cannot listen for SIGHUP")?;
    let start = Instant::now();
    let clock = || Clock {
        wall_ms: chrono::Utc::now().timestamp_millis(),
        mono_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let mut last_draw: Option<Instant> = None;
    let mut changed = true;

    let result = loop {
        let mut draw_now = false;
        let first = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => match message_of(event) {
                    Some(msg) => {
                        draw_now = true;
                        msg
                    }
                    None => continue,
                },
                Some(Err(e)) => break Err(e).wrap_err("cannot read from the terminal"),
                None => break Ok(()),
            },
            Some(msg) = rx.recv() => msg,
            _ = tick.tick() => Msg::Tick,
            _ = terminate.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
        };
        model.clock = clock();
        let is_tick = matches!(first, Msg::Tick);
        changed |= !is_tick;
        for effect in model.update(first) {
            runner.execute(effect);
        }
        for _ in 0..MAX_BATCH {
            let Ok(msg) = rx.try_recv() else { break };
            changed = true;
            for effect in model.update(msg) {
                runner.execute(effect);
            }
        }
        if model.quit {
            break Ok(());
        }
        if let Some((target, command)) = runner.exec.take() {
            // The terminal is the session's until it ends: nobody here reads it meanwhile.
            drop(std::mem::replace(&mut events, EventStream::new()));
            let result = step_aside(session, &target, &command).await;
            if let Err(e) = resume_terminal(model.config.mouse) {
                break Err(e);
            }
            // Everything is drawn again on a blank screen. (`Terminal::clear` would ask the
            // terminal where its cursor is, and the answer is a key the next reader takes.)
            let _ = crossterm::execute!(
                std::io::stdout(),
                crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
            );
            terminal.swap_buffers();
            terminal.swap_buffers();
            if let Ok((w, h)) = crossterm::terminal::size() {
                model.update(Msg::Resize(w, h));
            }
            model.update(Msg::ExecEnded { target, result });
            changed = true;
            draw_now = true;
        }
        let idle_due = last_draw.is_none_or(|t| t.elapsed() >= IDLE_REDRAW);
        if draw_now || (is_tick && (changed || idle_due)) {
            model.settle();
            if let Err(e) = terminal.draw(|frame| view::draw(frame, model)) {
                break Err(e).wrap_err("cannot draw");
            }
            last_draw = Some(Instant::now());
            changed = false;
        }
    };
    watch.abort();
    runner.shutdown();
    result
}

/// Hands the terminal to `berth exec -it` in a child process, and takes it back when the
/// session ends. A process of its own, as k9s runs kubectl: its stdin reader and raw mode end
/// with it, so nothing of the session is left to steal the TUI's keys afterwards. The token
/// goes in its environment, never on its command line.
async fn step_aside(session: &Session, target: &Target, command: &[String]) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the berth binary: {e}"))?;
    restore_terminal();
    // A ctrl-c typed before the session has the terminal in raw mode is the session's, not ours.
    let interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let mut child = tokio::process::Command::new(exe);
    child
        .arg("--agent")
        .arg(&session.address)
        .args(["exec", "-it", &target.id, "--"])
        .args(command)
        .env_remove(berth_shared::defaults::ENV_AGENT)
        .env_remove(berth_shared::defaults::ENV_TOKEN)
        .env_remove(crate::context::ENV_CONTEXT);
    if let Some(token) = &session.token {
        child.env(berth_shared::defaults::ENV_TOKEN, token);
    }
    let status = child.status().await;
    drop(interrupts);
    match status {
        Ok(s) => Ok(s.code().unwrap_or(128)),
        Err(e) => Err(format!("cannot start `berth exec`: {e}")),
    }
}

/// Runs effects as tasks that answer with messages.
struct Runner {
    client: Client,
    address: String,
    tx: mpsc::Sender<Msg>,
    logs: Option<JoinHandle<()>>,
    /// An exec the loop runs once the batch is applied (it needs the terminal).
    exec: Option<(Target, Vec<String>)>,
}

impl Runner {
    fn execute(&mut self, effect: Effect) {
        let (mut client, address, tx) =
            (self.client.clone(), self.address.clone(), self.tx.clone());
        let report = move |s: tonic::Status, address: &str| status_report(s, address).to_string();
        match effect {
            Effect::Quit => {}
            Effect::Exec { target, command } => self.exec = Some((target, command)),
            Effect::CloseLogs => {
                if let Some(task) = self.logs.take() {
                    task.abort();
                }
            }
            Effect::OpenLogs {
                stream,
                container,
                tail,
            } => {
                if let Some(task) = self.logs.take() {
                    task.abort();
                }
                let sources = vec![LogSource {
                    container,
                    prefix: String::new(),
                }];
                self.logs = Some(tokio::spawn(follow_logs(
                    client, address, stream, sources, tail, tx,
                )));
            }
            Effect::OpenMergedLogs {
                stream,
                sources,
                tail,
            } => {
                if let Some(task) = self.logs.take() {
                    task.abort();
                }
                self.logs = Some(tokio::spawn(follow_logs(
                    client, address, stream, sources, tail, tx,
                )));
            }
            Effect::ListServices => {
                tokio::spawn(async move {
                    let result = client
                        .list_services(pb::ListServicesRequest::default())
                        .await
                        .map(|r| r.into_inner().services)
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::Services(result)).await;
                });
            }
            Effect::CreateService(spec) => {
                tokio::spawn(async move {
                    let name = spec.name.clone();
                    let replicas = spec.replicas;
                    let result = client
                        .create_service(pb::CreateServiceRequest { spec: Some(*spec) })
                        .await
                        .map(|r| {
                            let id = r.into_inner().entry.map(|e| e.id).unwrap_or_default();
                            format!(
                                "created service {name} ({replicas} replica{}, id {})",
                                if replicas == 1 { "" } else { "s" },
                                crate::output::short_id(&id)
                            )
                        })
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::ServiceCreated { name, result }).await;
                });
            }
            Effect::ScaleService { name, replicas } => {
                tokio::spawn(async move {
                    let result = client
                        .update_service(pb::UpdateServiceRequest {
                            name: name.clone(),
                            spec: None,
                            replicas: Some(replicas),
                            rollback: false,
                        })
                        .await
                        .map(|r| written(&r.into_inner(), format!("scaled {name} to {replicas}")))
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::ServiceWritten(result)).await;
                });
            }
            Effect::RemoveService { name } => {
                tokio::spawn(async move {
                    let result = client
                        .remove_service(pb::RemoveServiceRequest { name: name.clone() })
                        .await
                        .map(|r| {
                            written(
                                &r.into_inner(),
                                format!("removed service {name}; its replicas stop everywhere"),
                            )
                        })
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::ServiceWritten(result)).await;
                });
            }
            Effect::Inspect { id } => {
                tokio::spawn(async move {
                    let result = client
                        .inspect(pb::InspectRequest {
                            container: id.clone(),
                        })
                        .await
                        .map(|r| Box::new(r.into_inner()))
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::Inspected { id, result }).await;
                });
            }
            Effect::Stop {
                targets,
                timeout_secs,
            } => {
                tokio::spawn(async move {
                    let calls = targets.into_iter().map(|target| {
                        let mut client = client.clone();
                        let address = address.clone();
                        async move {
                            let result = client
                                .stop(pb::StopRequest {
                                    container: target.id.clone(),
                                    timeout_secs: Some(timeout_secs),
                                })
                                .await
                                .map(|r| r.into_inner().was_running)
                                .map_err(|s| report(s, &address));
                            (target, result)
                        }
                    });
                    let results = futures::future::join_all(calls).await;
                    let _ = tx.send(Msg::Stopped(results)).await;
                });
            }
            Effect::Remove { targets, force } => {
                tokio::spawn(async move {
                    let calls = targets.into_iter().map(|target: Target| {
                        let mut client = client.clone();
                        let address = address.clone();
                        async move {
                            let result = client
                                .remove(pb::RemoveRequest {
                                    container: target.id.clone(),
                                    force,
                                })
                                .await
                                .map(|_| ())
                                .map_err(|s| report(s, &address));
                            (target, result)
                        }
                    });
                    let results = futures::future::join_all(calls).await;
                    let _ = tx.send(Msg::Removed(results)).await;
                });
            }
            Effect::Run(request) => {
                tokio::spawn(async move {
                    let result = follow_run(&mut client, *request, &tx)
                        .await
                        .map_err(|s| report(s, &address));
                    let _ = tx.send(Msg::RunFinished(result)).await;
                });
            }
        }
    }

    fn shutdown(&mut self) {
        if let Some(task) = self.logs.take() {
            task.abort();
        }
    }
}

/// What to say after a service write: `done`, and which write won when a newer one did.
fn written(r: &pb::ServiceWriteResponse, done: String) -> String {
    match &r.superseded_by {
        Some(s) => format!("{done}, but a newer write through {} won", s.node),
        None => done,
    }
}

async fn follow_run(
    client: &mut Client,
    request: pb::RunRequest,
    tx: &mpsc::Sender<Msg>,
) -> Result<Option<pb::ContainerSummary>, tonic::Status> {
    let mut stream = client.run(request).await?.into_inner();
    let mut started = None;
    while let Some(event) = stream.message().await? {
        if let Some(event) = event.event {
            if let pb::run_event::Event::Started(s) = &event {
                started.clone_from(&s.container);
            }
            let _ = tx.send(Msg::RunProgress(event)).await;
        }
    }
    Ok(started)
}

/// Follows the logs of one container, or of several merged (each line then starts with its
/// source's prefix), sending lines in batches of up to [`LOG_BATCH`] (whatever has already
/// arrived), until every stream ends or the task is aborted. In merged logs a source whose
/// stream fails says so in one stderr line and the others go on.
async fn follow_logs(
    mut client: Client,
    address: String,
    stream: u64,
    sources: Vec<LogSource>,
    tail: u32,
    tx: mpsc::Sender<Msg>,
) {
    let ended = |error: Option<String>| Msg::LogEnded { stream, error };
    let merged = sources.len() > 1;
    let mut streams = Vec::with_capacity(sources.len());
    let mut failures = Vec::new();
    for source in sources {
        let request = pb::LogsRequest {
            container: source.container.clone(),
            follow: true,
            tail: Some(tail),
            since_unix_ms: 0,
        };
        match client.logs(request).await {
            Ok(response) => {
                let prefix = source.prefix;
                streams.push(
                    response
                        .into_inner()
                        .map(move |item| (prefix.clone(), item)),
                );
            }
            Err(s) if merged => failures.push(note(
                &source.prefix,
                &status_report(s, &address).to_string(),
            )),
            Err(s) => {
                let _ = tx
                    .send(ended(Some(status_report(s, &address).to_string())))
                    .await;
                return;
            }
        }
    }
    if !failures.is_empty()
        && tx
            .send(Msg::LogLines {
                stream,
                lines: failures,
            })
            .await
            .is_err()
    {
        return;
    }
    if !streams.is_empty() && tx.send(Msg::LogOpened { stream }).await.is_err() {
        return;
    }
    if streams.is_empty() {
        let _ = tx
            .send(ended(Some("no replica's logs could be opened".into())))
            .await;
        return;
    }
    let mut lines = futures::stream::select_all(streams);
    // A line as shown: with its source's prefix; an error ends a single stream, and is one
    // line of merged logs.
    let shown = |(prefix, item): (String, Result<pb::LogLine, tonic::Status>)| match item {
        Ok(mut line) => {
            if !prefix.is_empty() {
                let mut text = prefix.into_bytes();
                text.extend_from_slice(&line.line);
                line.line = text;
            }
            Ok(line)
        }
        Err(s) if merged => Ok(note(&prefix, &status_report(s, &address).to_string())),
        Err(s) => Err(status_report(s, &address).to_string()),
    };
    loop {
        let mut batch = match lines.next().await.map(&shown) {
            Some(Ok(line)) => vec![line],
            None => {
                let _ = tx.send(ended(None)).await;
                return;
            }
            Some(Err(e)) => {
                let _ = tx.send(ended(Some(e))).await;
                return;
            }
        };
        let mut end = None;
        while batch.len() < LOG_BATCH {
            match lines.next().now_or_never() {
                Some(Some(item)) => match shown(item) {
                    Ok(line) => batch.push(line),
                    Err(e) => {
                        end = Some(Some(e));
                        break;
                    }
                },
                Some(None) => {
                    end = Some(None);
                    break;
                }
                None => break,
            }
        }
        if tx
            .send(Msg::LogLines {
                stream,
                lines: batch,
            })
            .await
            .is_err()
        {
            return;
        }
        if let Some(error) = end {
            let _ = tx.send(ended(error)).await;
            return;
        }
    }
}

/// A line of merged logs that says something about its source rather than from it.
fn note(prefix: &str, text: &str) -> pb::LogLine {
    pb::LogLine {
        stream: pb::log_line::Stream::Stderr as i32,
        timestamp_unix_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        line: format!("{prefix}[berth: this replica's log stream ended: {text}]").into_bytes(),
    }
}

/// Whether colours are off: `--no-color`, or `NO_COLOR` set to anything but empty
/// (<https://no-color.org>).
pub fn monochrome(no_color_flag: bool) -> bool {
    no_color_flag || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
