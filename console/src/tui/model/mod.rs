//! The TUI's state as plain data. It changes only in [`Model::update`], which takes one
//! [`Msg`] (a key, a watch event, a finished call…) and returns the [`Effect`]s the loop should
//! start (calls to the agent); their results come back as messages. Nothing here waits, draws
//! or talks to the network, so every behaviour is testable by feeding messages.

pub mod containers;
pub mod detail;
pub mod form;
pub mod list;
pub mod logs;
pub mod nodes;
pub mod services;

mod command;
mod mouse;
mod navigation;
mod prompts;
mod results;
mod run_view;

use results::labels;

pub use super::types::{SortKey, View};
pub use containers::Containers;
pub use list::ListState;

use super::keys::{self, Action, Key};
use super::layout;
use super::types::{ConnEvent, ConnState};
use berth_proto::v1 as pb;
use berth_shared::defaults::DEFAULT_STOP_TIMEOUT_SECS;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use detail::{DetailState, DetailView};
use form::{Phase, RunForm};
use logs::{LogView, StreamStatus, Viewport};
use nodes::Nodes;
use ratatui::layout::Rect;
use services::Services;
use std::collections::HashSet;

/// A flash message is shown in full this long…
pub const FLASH_BRIGHT_MS: u64 = 4_000;
/// …then dimmed until this age, then gone.
pub const FLASH_GONE_MS: u64 = 8_000;
/// Rows a mouse wheel notch scrolls.
pub const WHEEL_ROWS: usize = 3;

/// Everything that changes the model.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Paste(String),
    /// Time passed (the loop sets [`Model::clock`] before every message).
    Tick,
    Conn(ConnEvent),
    Watch(pb::WatchEvent),
    LogLines {
        stream: u64,
        lines: Vec<pb::LogLine>,
    },
    LogEnded {
        stream: u64,
        error: Option<String>,
    },
    /// The log stream is open (lines may never come: a container that prints nothing).
    LogOpened {
        stream: u64,
    },
    RunProgress(pb::run_event::Event),
    /// The run stream ended: the started container, or the error.
    RunFinished(Result<Option<pb::ContainerSummary>, String>),
    Stopped(Vec<(Target, Result<bool, String>)>),
    Removed(Vec<(Target, Result<(), String>)>),
    Inspected {
        id: String,
        result: Result<Box<pb::ContainerDetail>, String>,
    },
    /// The `ListServices` answer.
    Services(Result<Vec<pb::ServiceStatus>, String>),
    /// A service write (scale, remove) answered: what to say, or the error.
    ServiceWritten(Result<String, String>),
    /// `CreateService` from the run form answered.
    ServiceCreated {
        name: String,
        result: Result<String, String>,
    },
    /// An exec session ended: its exit status, or why it could not run.
    ExecEnded {
        target: Target,
        result: Result<i32, String>,
    },
}

/// A container an action is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub name: String,
}

impl Target {
    /// The name, or the short id when it has none.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            crate::output::short_id(&self.id)
        } else {
            &self.name
        }
    }
}

/// Work for the loop: calls to the agent, run as tasks that answer with a [`Msg`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Run(Box<pb::RunRequest>),
    Stop {
        targets: Vec<Target>,
        timeout_secs: u32,
    },
    Remove {
        targets: Vec<Target>,
        force: bool,
    },
    Inspect {
        id: String,
    },
    /// Follow a container's logs from its last `tail` lines; lines come back tagged `stream`.
    OpenLogs {
        stream: u64,
        container: String,
        tail: u32,
    },
    /// Follow several containers' logs at once (a service's replicas), each line starting with
    /// its source's prefix.
    OpenMergedLogs {
        stream: u64,
        sources: Vec<LogSource>,
        tail: u32,
    },
    CloseLogs,
    ListServices,
    CreateService(Box<pb::ServiceSpec>),
    ScaleService {
        name: String,
        replicas: u32,
    },
    RemoveService {
        name: String,
    },
    /// A command in a container with the terminal: the TUI steps aside until it ends.
    Exec {
        target: Target,
        command: Vec<String>,
    },
    Quit,
}

/// One container of merged logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub container: String,
    /// Put before each of its lines, e.g. `web.2@node-a | `.
    pub prefix: String,
}

/// What the model reads the time from; the loop sets it, tests fix it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Wall clock (unix ms), for ages and "Up 3 minutes".
    pub wall_ms: i64,
    /// Milliseconds since the TUI started, for fading and countdowns.
    pub mono_ms: u64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.wall_ms).unwrap_or_default()
    }
}

/// How the TUI was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The agent's address, as the user gave it.
    pub agent: String,
    pub color: bool,
    pub mouse: bool,
    pub log_lines: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
    pub at_ms: u64,
}

/// The remove confirmation: of containers, or of a service (and with it its replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The service to remove; `targets` are then its replicas, to show.
    pub service: Option<String>,
    pub targets: Vec<Target>,
    /// How many of them run (they are killed first).
    pub running: usize,
    /// False: "cancel" is focused, as it is when the dialog opens.
    pub on_remove: bool,
}

/// The `:` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub input: String,
    /// What tab found when there was more than one way to complete.
    pub candidates: Vec<String>,
}

/// What takes the keys before the view does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the containers filter (applied as typed).
    Filter,
    /// Typing the logs search (highlighted as typed).
    Search,
    Command(CommandLine),
    Help {
        scroll: usize,
    },
    Confirm(Confirm),
    /// Typing a service's new replica count.
    Scale(ScalePrompt),
    /// Typing the command to run in a container (`x`).
    Exec(ExecPrompt),
}

/// The exec prompt (`x` on a container): the command, `sh` to start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPrompt {
    pub target: Target,
    pub input: String,
}

/// What `x` offers to run.
pub const DEFAULT_EXEC_COMMAND: &str = "sh";

/// The scale prompt (`s` in the services view).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalePrompt {
    pub service: String,
    pub input: String,
}

/// The `:` commands, for completion.
pub const COMMANDS: &[&str] = &[
    "nodes",
    "containers",
    "services",
    "logs",
    "exec",
    "run",
    "help",
    "quit",
];

#[derive(Debug, Clone)]
pub struct Model {
    pub config: Config,
    pub clock: Clock,
    pub size: Rect,
    pub conn: ConnState,
    /// The node whose agent answers us.
    pub answered_by: String,
    pub nodes: Nodes,
    pub containers: Containers,
    pub view: View,
    /// Where `esc` goes back to.
    pub back: Vec<View>,
    pub mode: Mode,
    pub node_list: ListState,
    pub container_list: ListState,
    /// The selected container's id: the selection follows it through updates.
    pub selected: Option<String>,
    /// The node selected in the nodes view.
    pub selected_node: Option<String>,
    /// Marked containers (`space`), for stop and remove.
    pub marks: HashSet<String>,
    /// The filter as typed.
    pub filter_input: String,
    /// The log search as typed.
    pub search_input: String,
    pub logs: Option<LogView>,
    pub detail: Option<DetailView>,
    pub form: Option<RunForm>,
    /// The last services list (polled while a services view shows).
    pub services: Services,
    pub service_list: ListState,
    /// The service selected in the services view: the selection follows its name.
    pub selected_service: Option<String>,
    /// The service whose slots the slots view shows.
    pub slots_of: Option<String>,
    pub slot_list: ListState,
    pub flash: Option<Flash>,
    /// A container to select as soon as it is listed (a run just started it).
    pub pending_select: Option<String>,
    seen_generation: u64,
    next_stream: u64,
    pub quit: bool,
}

impl Model {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            clock: Clock::default(),
            size: Rect::new(0, 0, 80, 24),
            conn: ConnState::Connecting { attempt: 0 },
            answered_by: String::new(),
            nodes: Nodes::default(),
            containers: Containers::default(),
            view: View::Nodes,
            back: Vec::new(),
            mode: Mode::Normal,
            node_list: ListState::default(),
            container_list: ListState::default(),
            selected: None,
            selected_node: None,
            marks: HashSet::new(),
            filter_input: String::new(),
            search_input: String::new(),
            logs: None,
            detail: None,
            form: None,
            services: Services::default(),
            service_list: ListState::default(),
            selected_service: None,
            slots_of: None,
            slot_list: ListState::default(),
            flash: None,
            pending_select: None,
            seen_generation: u64::MAX,
            next_stream: 0,
            quit: false,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Geometry

    /// Rows of a table page.
    pub fn table_rows(&self) -> usize {
        usize::from(layout::table_rows(self.size).height).max(1)
    }

    pub fn log_viewport(&self) -> Viewport {
        let area = layout::log_text(self.size);
        Viewport {
            rows: usize::from(area.height).max(1),
            width: usize::from(area.width).max(1),
        }
    }

    fn text_rows(&self) -> usize {
        usize::from(layout::body_inner(self.size).height).max(1)
    }

    // -----------------------------------------------------------------------------------------
    // Derived state

    /// Brings the container list's order and the cursors up to date. Cheap when nothing
    /// changed; the loop calls it once per batch of messages, before drawing.
    pub fn settle(&mut self) {
        self.containers.refresh();
        if self.containers.generation() != self.seen_generation {
            self.seen_generation = self.containers.generation();
            self.sync_container_cursor();
        }
        if let Some(id) = self.pending_select.clone()
            && let Some(pos) = self.containers.position(&id)
        {
            self.pending_select = None;
            self.selected = Some(id);
            self.container_list.cursor = pos;
        }
        let rows = self.table_rows();
        self.container_list
            .clamp(self.containers.visible_len(), rows);
        if let Some(pos) = self
            .selected_node
            .as_deref()
            .and_then(|n| self.nodes.position(n))
        {
            self.node_list.cursor = pos;
        }
        self.node_list.clamp(self.nodes.len(), rows);
        self.selected_node = self.nodes.name_at(self.node_list.cursor).map(str::to_owned);
        if let Some(pos) = self
            .selected_service
            .as_deref()
            .and_then(|n| self.services.position(n))
        {
            self.service_list.cursor = pos;
        }
        self.service_list.clamp(self.services.len(), rows);
        if self.services.loaded {
            self.selected_service = self
                .services
                .at(self.service_list.cursor)
                .map(|s| services::name(s).to_owned());
        }
        let slots = self.slots().len();
        self.slot_list.clamp(slots, rows);
    }

    /// The slots of the service the slots view is about.
    pub fn slots(&self) -> &[pb::ServiceSlotStatus] {
        self.slots_of
            .as_deref()
            .and_then(|n| self.services.get(n))
            .map_or(&[], |s| s.slots.as_slice())
    }

    /// The service selected in the services view.
    pub fn selected_service_status(&self) -> Option<&pb::ServiceStatus> {
        self.selected_service
            .as_deref()
            .and_then(|n| self.services.get(n))
    }

    fn selected_slot(&self) -> Option<&pb::ServiceSlotStatus> {
        self.slots().get(self.slot_list.cursor)
    }

    /// Keeps the selection on the same container when the list changes; when it is gone (or
    /// filtered out), the row now at the cursor's place is selected.
    fn sync_container_cursor(&mut self) {
        if let Some(pos) = self
            .selected
            .as_deref()
            .and_then(|id| self.containers.position(id))
        {
            self.container_list.cursor = pos;
        }
        self.container_list
            .clamp(self.containers.visible_len(), self.table_rows());
        self.selected = self
            .containers
            .visible_row(self.container_list.cursor)
            .map(|r| r.summary.id.clone());
    }

    fn select_cursor(&mut self) {
        self.selected = self
            .containers
            .visible_row(self.container_list.cursor)
            .map(|r| r.summary.id.clone());
    }

    /// The selected container (in the containers view).
    pub fn selected_row(&self) -> Option<&containers::Row> {
        self.selected
            .as_deref()
            .and_then(|id| self.containers.get(id))
    }

    /// The container the current view is about.
    fn current_target(&self) -> Option<Target> {
        let id = match self.view {
            // Merged logs are about a service, not one container.
            View::Logs => self
                .logs
                .as_ref()
                .filter(|l| l.service.is_none())
                .map(|l| l.container_id.clone()),
            View::Detail => self.detail.as_ref().map(|d| d.container_id.clone()),
            View::Slots => {
                let slot = self.selected_slot()?;
                if slot.container_id.is_empty() {
                    return None;
                }
                return Some(Target {
                    id: slot.container_id.clone(),
                    name: slot.container_name.clone(),
                });
            }
            View::Services => None,
            _ => self.selected.clone(),
        }?;
        let name = self
            .containers
            .get(&id)
            .map(|r| r.summary.name.clone())
            .unwrap_or_default();
        Some(Target { id, name })
    }

    /// The marked containers, or else the current one.
    fn targets(&self) -> Vec<Target> {
        if self.view == View::Containers && !self.marks.is_empty() {
            let mut targets: Vec<Target> = self
                .marks
                .iter()
                .filter_map(|id| self.containers.get(id))
                .map(|r| Target {
                    id: r.summary.id.clone(),
                    name: r.summary.name.clone(),
                })
                .collect();
            targets.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
            return targets;
        }
        self.current_target().into_iter().collect()
    }

    pub fn flash_info(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            level: Level::Info,
            text: text.into(),
            at_ms: self.clock.mono_ms,
        });
    }

    pub fn flash_error(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            level: Level::Error,
            text: text.into(),
            at_ms: self.clock.mono_ms,
        });
    }

    /// The flash to show now and whether it has faded, if it is still shown.
    pub fn visible_flash(&self) -> Option<(&Flash, bool)> {
        let flash = self.flash.as_ref()?;
        let age = self.clock.mono_ms.saturating_sub(flash.at_ms);
        (age < FLASH_GONE_MS).then_some((flash, age >= FLASH_BRIGHT_MS))
    }

    // -----------------------------------------------------------------------------------------
    // Update

    /// Applies one message; returns the work it asks for.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let mut effects = Vec::new();
        match msg {
            Msg::Key(ev) => {
                self.settle();
                self.on_key(Key::from_event(&ev), &mut effects);
                self.settle();
            }
            Msg::Mouse(ev) => {
                self.settle();
                self.on_mouse(ev);
                self.settle();
            }
            Msg::Paste(text) => self.on_paste(&text),
            Msg::Resize(w, h) => {
                self.size = Rect::new(0, 0, w, h);
                self.settle();
            }
            Msg::Tick => self.settle(),
            Msg::Conn(event) => self.conn = self.conn.on(event, self.clock.mono_ms),
            // No settle here: a burst of watch events is ordered once, before the next frame.
            Msg::Watch(event) => self.on_watch(event),
            Msg::LogLines { stream, lines } => {
                if let Some(logs) = self.logs.as_mut().filter(|l| l.stream == stream) {
                    logs.push(&lines);
                }
            }
            Msg::LogOpened { stream } => {
                if let Some(logs) = self
                    .logs
                    .as_mut()
                    .filter(|l| l.stream == stream && l.status == StreamStatus::Opening)
                {
                    logs.status = StreamStatus::Streaming;
                }
            }
            Msg::LogEnded { stream, error } => {
                if let Some(logs) = self.logs.as_mut().filter(|l| l.stream == stream) {
                    logs.status = StreamStatus::Ended(error);
                }
            }
            Msg::RunProgress(event) => {
                if let Some(RunForm {
                    phase: Phase::Running(progress),
                    ..
                }) = self.form.as_mut()
                {
                    progress.apply(event);
                }
            }
            Msg::RunFinished(result) => self.on_run_finished(result),
            Msg::Stopped(results) => self.on_stopped(results),
            Msg::Removed(results) => self.on_removed(results, &mut effects),
            Msg::Services(result) => self.services.answered(result, self.clock.mono_ms),
            Msg::ServiceWritten(result) => {
                self.services.invalidate();
                match result {
                    Ok(text) => self.flash_info(text),
                    Err(e) => self.flash_error(e),
                }
            }
            Msg::ServiceCreated { name, result } => self.on_service_created(name, result),
            Msg::ExecEnded { target, result } => self.on_exec_ended(target, result),
            Msg::Inspected { id, result } => {
                let now = self.clock.now();
                if let Some(detail) = self.detail.as_mut().filter(|d| d.container_id == id) {
                    detail.state = match result {
                        Ok(d) => DetailState::Loaded(detail::detail_lines(&d, now)),
                        Err(e) => DetailState::Failed(e),
                    };
                }
            }
        }
        if matches!(self.view, View::Services | View::Slots)
            && self.services.due(self.clock.mono_ms)
        {
            self.services.asked();
            effects.push(Effect::ListServices);
        }
        if effects.contains(&Effect::Quit) {
            self.quit = true;
        }
        effects
    }

    fn on_watch(&mut self, event: pb::WatchEvent) {
        use pb::watch_event::Event;
        match event.event {
            Some(Event::Snapshot(snapshot)) => {
                self.answered_by = snapshot.answered_by;
                self.nodes.replace_all(snapshot.nodes, self.clock.mono_ms);
                self.containers.replace_all(snapshot.containers);
                let containers = &self.containers;
                self.marks.retain(|id| containers.get(id).is_some());
            }
            Some(Event::NodeUpdated(node)) => self.nodes.upsert(node, self.clock.mono_ms),
            Some(Event::NodeRemoved(name)) => self.nodes.remove(&name),
            Some(Event::ContainerUpdated(c)) => self.containers.upsert(c),
            Some(Event::ContainerRemoved(r)) => {
                self.containers.remove(&r.id);
                self.marks.remove(&r.id);
            }
            // A newer agent's event this console does not know.
            None => {}
        }
    }

    fn on_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        if key == Key::ctrl('c') {
            effects.push(Effect::Quit);
            return;
        }
        match &self.mode {
            Mode::Help { .. } => self.on_help_key(key),
            Mode::Confirm(_) => self.on_confirm_key(key, effects),
            Mode::Scale(_) => self.on_scale_key(key, effects),
            Mode::Exec(_) => self.on_exec_key(key, effects),
            Mode::Command(_) => self.on_command_key(key, effects),
            Mode::Filter => self.on_filter_key(key),
            Mode::Search => self.on_search_key(key),
            Mode::Normal if self.view == View::Run => self.on_form_key(key, effects),
            Mode::Normal => {
                let action = keys::lookup(keys::of_view(self.view), key)
                    .or_else(|| keys::lookup(keys::GLOBAL, key));
                if let Some(action) = action {
                    self.on_action(action, effects);
                }
            }
        }
    }

    fn on_action(&mut self, action: Action, effects: &mut Vec<Effect>) {
        let rows = self.table_rows();
        let page = rows.saturating_sub(1).max(1);
        match action {
            Action::Quit => effects.push(Effect::Quit),
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::Command => self.mode = Mode::Command(CommandLine::default()),
            Action::Back => self.go_back(effects),
            Action::Containers => self.show_containers(None, effects),
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => {
                self.navigate(action, rows, page);
            }
            Action::Open => match self.view {
                View::Nodes => {
                    if let Some(node) = self.selected_node.clone() {
                        self.back.push(View::Nodes);
                        self.switch(View::Containers, effects);
                        self.containers.set_scope(Some(node));
                    }
                }
                View::Services => match self.selected_service.clone() {
                    Some(name) => self.open_slots(name, effects),
                    None => self.flash_error("no service selected"),
                },
                _ => self.open_detail(effects),
            },
            Action::Detail => self.open_detail(effects),
            Action::Logs if self.view == View::Services => self.open_service_logs(effects),
            Action::Logs => self.open_logs(effects),
            Action::Run => self.open_form(effects),
            Action::Services => self.show_services(effects),
            Action::Scale => self.open_scale(),
            Action::Exec => match self.current_target() {
                Some(target) => self.open_exec(target),
                None => self.flash_error("no container selected"),
            },
            Action::Remove if self.view == View::Services => self.confirm_service_removal(),
            Action::Stop => {
                let targets = self.targets();
                if targets.is_empty() {
                    self.flash_error("nothing selected to stop");
                    return;
                }
                self.flash_info(format!(
                    "stopping {} (SIGTERM, then SIGKILL after {DEFAULT_STOP_TIMEOUT_SECS}s)",
                    labels(&targets)
                ));
                effects.push(Effect::Stop {
                    targets,
                    timeout_secs: DEFAULT_STOP_TIMEOUT_SECS,
                });
            }
            Action::Remove => {
                let targets = self.targets();
                if targets.is_empty() {
                    self.flash_error("nothing selected to remove");
                    return;
                }
                let running = targets
                    .iter()
                    .filter(|t| {
                        self.containers
                            .get(&t.id)
                            .is_some_and(containers::Row::is_running)
                    })
                    .count();
                self.mode = Mode::Confirm(Confirm {
                    service: None,
                    targets,
                    running,
                    on_remove: false,
                });
            }
            Action::Mark => {
                if let Some(id) = self.selected.clone() {
                    if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.container_list
                        .move_by(1, self.containers.visible_len(), rows);
                    self.select_cursor();
                }
            }
            Action::Filter => self.mode = Mode::Filter,
            Action::Sort(key) => {
                self.containers.set_sort(key);
                let (key, descending) = self.containers.sort();
                self.flash_info(format!(
                    "sorted by {} {}",
                    key.word(),
                    if descending { "↓" } else { "↑" }
                ));
            }
            Action::Follow => {
                let vp = self.log_viewport();
                if let Some(l) = self.logs.as_mut() {
                    l.toggle_follow(vp);
                }
            }
            Action::Wrap => {
                if let Some(l) = self.logs.as_mut() {
                    l.wrap = !l.wrap;
                }
            }
            Action::Timestamps => {
                if let Some(l) = self.logs.as_mut() {
                    l.timestamps = !l.timestamps;
                }
            }
            Action::Search => {
                self.search_input = self
                    .logs
                    .as_ref()
                    .map(|l| l.search.needle.clone())
                    .unwrap_or_default();
                self.mode = Mode::Search;
            }
            Action::NextMatch | Action::PrevMatch => {
                let vp = self.log_viewport();
                if let Some(message) = self
                    .logs
                    .as_mut()
                    .and_then(|l| l.jump(action == Action::NextMatch, vp))
                {
                    self.flash_info(message);
                }
            }
            Action::NextField
            | Action::PrevField
            | Action::Submit
            | Action::ClearInput
            | Action::Backspace
            | Action::DeleteForward
            | Action::CursorLeft
            | Action::CursorRight
            | Action::LineStart
            | Action::LineEnd
            | Action::Complete
            | Action::Accept
            | Action::Cancel
            | Action::Confirm
            | Action::Toggle => {}
        }
    }
}

#[cfg(test)]
mod tests;
