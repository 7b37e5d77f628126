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

pub use containers::{Containers, SortKey};
pub use list::ListState;

use super::conn::{ConnEvent, ConnState};
use super::keys::{self, Action, Key};
use super::layout;
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

/// The views, as `:` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Nodes,
    Containers,
    Logs,
    Detail,
    Run,
    Services,
    /// One service's slots.
    Slots,
}

impl View {
    pub fn word(self) -> &'static str {
        match self {
            View::Nodes => "nodes",
            View::Containers => "containers",
            View::Logs => "logs",
            View::Detail => "detail",
            View::Run => "run",
            View::Services => "services",
            View::Slots => "slots",
        }
    }
}

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

    fn navigate(&mut self, action: Action, rows: usize, page: usize) {
        let delta: isize = match action {
            Action::Up => -1,
            Action::Down => 1,
            Action::PageUp => -(page as isize),
            Action::PageDown => page as isize,
            _ => 0,
        };
        match self.view {
            View::Nodes => {
                let len = self.nodes.len();
                match action {
                    Action::Top => self.node_list.to_top(len, rows),
                    Action::Bottom => self.node_list.to_bottom(len, rows),
                    _ => self.node_list.move_by(delta, len, rows),
                }
                self.selected_node = self.nodes.name_at(self.node_list.cursor).map(str::to_owned);
            }
            View::Containers => {
                let len = self.containers.visible_len();
                match action {
                    Action::Top => self.container_list.to_top(len, rows),
                    Action::Bottom => self.container_list.to_bottom(len, rows),
                    _ => self.container_list.move_by(delta, len, rows),
                }
                self.select_cursor();
            }
            View::Logs => {
                let vp = self.log_viewport();
                let page = vp.rows.saturating_sub(1).max(1);
                if let Some(l) = self.logs.as_mut() {
                    match action {
                        Action::Up => l.scroll_up(1, vp),
                        Action::Down => l.scroll_down(1, vp),
                        Action::PageUp => l.scroll_up(page, vp),
                        Action::PageDown => l.scroll_down(page, vp),
                        Action::Top => l.to_oldest(vp),
                        _ => l.resume(),
                    }
                }
            }
            View::Detail => {
                let rows = self.text_rows();
                if let Some(d) = self.detail.as_mut() {
                    let max = d.lines().len().saturating_sub(rows);
                    d.scroll = match action {
                        Action::Top => 0,
                        Action::Bottom => max,
                        _ => d.scroll.saturating_add_signed(delta).min(max),
                    };
                }
            }
            View::Services => {
                let len = self.services.len();
                match action {
                    Action::Top => self.service_list.to_top(len, rows),
                    Action::Bottom => self.service_list.to_bottom(len, rows),
                    _ => self.service_list.move_by(delta, len, rows),
                }
                self.selected_service = self
                    .services
                    .at(self.service_list.cursor)
                    .map(|s| services::name(s).to_owned());
            }
            View::Slots => {
                let len = self.slots().len();
                match action {
                    Action::Top => self.slot_list.to_top(len, rows),
                    Action::Bottom => self.slot_list.to_bottom(len, rows),
                    _ => self.slot_list.move_by(delta, len, rows),
                }
            }
            View::Run => {}
        }
    }

    /// Changes view; leaving the logs closes their stream.
    fn switch(&mut self, to: View, effects: &mut Vec<Effect>) {
        if self.view == View::Logs && to != View::Logs {
            self.logs = None;
            effects.push(Effect::CloseLogs);
        }
        self.mode = Mode::Normal;
        self.view = to;
    }

    fn go_back(&mut self, effects: &mut Vec<Effect>) {
        if self.view == View::Containers && !self.containers.filter().is_empty() {
            self.filter_input.clear();
            self.containers.set_filter("");
            return;
        }
        if self.view == View::Containers && !self.marks.is_empty() {
            self.marks.clear();
            return;
        }
        // A view whose state is gone (the logs closed when the detail opened over them) is
        // skipped.
        let mut to = None;
        while let Some(view) = self.back.pop() {
            let alive = match view {
                View::Logs => self.logs.is_some() && self.view != View::Logs,
                View::Detail => self.detail.is_some() && self.view != View::Detail,
                View::Run => self.form.is_some() && self.view != View::Run,
                View::Slots => self.slots_of.is_some() && self.view != View::Slots,
                View::Nodes | View::Containers | View::Services => true,
            };
            if alive {
                to = Some(view);
                break;
            }
        }
        let to = to.unwrap_or(match self.view {
            View::Nodes | View::Containers | View::Services => View::Nodes,
            View::Slots => View::Services,
            _ if self.logs.as_ref().is_some_and(|l| l.service.is_some()) => View::Services,
            _ => View::Containers,
        });
        if self.view == View::Slots {
            self.slots_of = None;
        }
        if self.view == View::Run {
            self.form = None;
        }
        if self.view == View::Detail {
            self.detail = None;
        }
        if to == View::Nodes && self.view == View::Containers {
            self.containers.set_scope(None);
        }
        self.switch(to, effects);
    }

    fn push(&mut self, to: View, effects: &mut Vec<Effect>) {
        if self.view != to {
            self.back.push(self.view);
        }
        self.switch(to, effects);
    }

    fn show_containers(&mut self, scope: Option<String>, effects: &mut Vec<Effect>) {
        self.back.clear();
        self.form = None;
        self.detail = None;
        self.containers.set_scope(scope);
        self.switch(View::Containers, effects);
    }

    fn open_detail(&mut self, effects: &mut Vec<Effect>) {
        let Some(target) = self.current_target() else {
            self.flash_error("no container selected");
            return;
        };
        self.detail = Some(DetailView {
            container_id: target.id.clone(),
            name: target.name,
            state: DetailState::Loading,
            scroll: 0,
        });
        effects.push(Effect::Inspect { id: target.id });
        self.push(View::Detail, effects);
    }

    fn open_logs(&mut self, effects: &mut Vec<Effect>) {
        let Some(target) = self.current_target() else {
            self.flash_error("no container selected");
            return;
        };
        self.open_logs_of(target, effects);
    }

    fn open_logs_of(&mut self, target: Target, effects: &mut Vec<Effect>) {
        let node = self
            .containers
            .get(&target.id)
            .map(|r| r.summary.node.clone())
            .unwrap_or_default();
        self.next_stream += 1;
        let stream = self.next_stream;
        if self.view == View::Logs {
            effects.push(Effect::CloseLogs);
        }
        self.logs = Some(LogView::new(
            target.id.clone(),
            target.name,
            node,
            stream,
            self.config.log_lines,
        ));
        self.search_input.clear();
        self.push(View::Logs, effects);
        effects.push(Effect::OpenLogs {
            stream,
            container: target.id,
            tail: u32::try_from(self.config.log_lines).unwrap_or(u32::MAX),
        });
    }

    fn open_form(&mut self, effects: &mut Vec<Effect>) {
        if self.form.is_none() {
            let mut form = RunForm::default();
            // From the services views the form makes a service: one replica unless changed.
            if matches!(self.view, View::Services | View::Slots)
                && let Some(f) = form.field_mut(form::FieldId::Replicas)
            {
                f.value = "1".into();
            }
            self.form = Some(form);
        }
        self.push(View::Run, effects);
    }

    fn show_services(&mut self, effects: &mut Vec<Effect>) {
        self.back.clear();
        self.form = None;
        self.detail = None;
        self.slots_of = None;
        self.switch(View::Services, effects);
    }

    fn open_slots(&mut self, name: String, effects: &mut Vec<Effect>) {
        if self.slots_of.as_deref() != Some(&name) {
            self.slot_list = ListState::default();
        }
        self.slots_of = Some(name);
        self.push(View::Slots, effects);
    }

    /// Every replica's logs in one view, each line prefixed with its slot and node.
    fn open_service_logs(&mut self, effects: &mut Vec<Effect>) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let name = services::name(s).to_owned();
        let sources: Vec<LogSource> = services::replicas(s)
            .map(|slot| LogSource {
                container: slot.container_id.clone(),
                prefix: services::log_prefix(&name, slot),
            })
            .collect();
        if sources.is_empty() {
            self.flash_error(format!("service {name} has no replicas yet"));
            return;
        }
        self.next_stream += 1;
        let stream = self.next_stream;
        let mut view = LogView::new(
            String::new(),
            name.clone(),
            String::new(),
            stream,
            self.config.log_lines,
        );
        view.service = Some(name);
        let per_source = self.config.log_lines / sources.len();
        self.logs = Some(view);
        self.search_input.clear();
        self.push(View::Logs, effects);
        effects.push(Effect::OpenMergedLogs {
            stream,
            sources,
            tail: u32::try_from(per_source.max(1)).unwrap_or(u32::MAX),
        });
    }

    fn open_scale(&mut self) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let name = services::name(s).to_owned();
        if services::is_global(s) {
            self.flash_error(format!(
                "{name} is global: it runs one replica per node and cannot be scaled"
            ));
            return;
        }
        self.mode = Mode::Scale(ScalePrompt {
            service: name,
            input: s.replicas_desired.to_string(),
        });
    }

    fn confirm_service_removal(&mut self) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let targets: Vec<Target> = services::replicas(s)
            .map(|slot| Target {
                id: slot.container_id.clone(),
                name: slot.container_name.clone(),
            })
            .collect();
        let running = services::replicas(s)
            .filter(|slot| slot.state == "running")
            .count();
        self.mode = Mode::Confirm(Confirm {
            service: Some(services::name(s).to_owned()),
            targets,
            running,
            on_remove: false,
        });
    }

    /// The exec prompt for `target`, if it runs.
    fn open_exec(&mut self, target: Target) {
        let running = self
            .containers
            .get(&target.id)
            .is_some_and(containers::Row::is_running);
        if !running {
            self.flash_error(format!(
                "{} is not running: exec needs a running container",
                target.name
            ));
            return;
        }
        self.mode = Mode::Exec(ExecPrompt {
            target,
            input: DEFAULT_EXEC_COMMAND.to_owned(),
        });
    }

    fn on_exec_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Exec(prompt) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let target = prompt.target.clone();
                let input = std::mem::take(&mut prompt.input);
                self.mode = Mode::Normal;
                let command: Vec<String> = input.split_whitespace().map(str::to_owned).collect();
                let spec = berth_shared::exec::ExecSpec {
                    container: target.id.clone(),
                    command: command.clone(),
                    tty: true,
                    stdin: true,
                    user: None,
                    workdir: None,
                    env: Vec::new(),
                    size: None,
                };
                match spec.validate() {
                    Ok(()) => effects.push(Effect::Exec { target, command }),
                    Err(e) => self.flash_error(format!("cannot exec in {}: {e}", target.name)),
                }
            }
            Some(Action::Cancel) => self.mode = Mode::Normal,
            Some(Action::ClearInput) => prompt.input.clear(),
            Some(Action::Backspace) => {
                prompt.input.pop();
            }
            _ => {
                if let Some(c) = key.text() {
                    prompt.input.push(c);
                }
            }
        }
    }

    fn on_exec_ended(&mut self, target: Target, result: Result<i32, String>) {
        match result {
            Ok(0) => self.flash_info(format!("the session in {} ended", target.name)),
            Ok(code @ (126 | 127)) => self.flash_error(format!(
                "the command could not run in {} (status {code}): is it in the image?",
                target.name
            )),
            Ok(code) => self.flash_info(format!(
                "the session in {} ended with status {code}",
                target.name
            )),
            Err(e) => self.flash_error(format!("cannot exec in {}: {e}", target.name)),
        }
    }

    fn on_scale_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Scale(prompt) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let name = std::mem::take(&mut prompt.service);
                let input = std::mem::take(&mut prompt.input);
                self.mode = Mode::Normal;
                match berth_shared::service::parse_replicas(input.trim()) {
                    Ok(replicas) => {
                        self.flash_info(format!("scaling {name} to {replicas}"));
                        effects.push(Effect::ScaleService { name, replicas });
                    }
                    Err(e) => self.flash_error(format!("cannot scale {name}: {e}")),
                }
            }
            Some(Action::Cancel) => {
                self.mode = Mode::Normal;
                self.flash_info("scale cancelled");
            }
            Some(Action::ClearInput) => prompt.input.clear(),
            Some(Action::Backspace) => {
                prompt.input.pop();
            }
            _ => {
                if let Some(c) = key.text() {
                    prompt.input.push(c);
                }
            }
        }
    }

    fn on_service_created(&mut self, name: String, result: Result<String, String>) {
        match result {
            Ok(text) => {
                self.services.invalidate();
                self.form = None;
                self.back.clear();
                self.slots_of = None;
                let mut effects = Vec::new();
                self.switch(View::Services, &mut effects);
                self.selected_service = Some(name);
                self.flash_info(text);
            }
            Err(message) => self.run_failed(message),
        }
    }

    fn on_help_key(&mut self, key: Key) {
        let Mode::Help { scroll } = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::HELP, key) {
            Some(Action::Up) => *scroll = scroll.saturating_sub(1),
            Some(Action::Down) => *scroll = scroll.saturating_add(1),
            Some(Action::Back) => self.mode = Mode::Normal,
            _ => {}
        }
    }

    fn on_confirm_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Confirm(confirm) = &mut self.mode else {
            return;
        };
        let remove = match keys::lookup(keys::CONFIRM, key) {
            Some(Action::Toggle) => {
                confirm.on_remove = !confirm.on_remove;
                return;
            }
            Some(Action::Accept) => confirm.on_remove,
            Some(Action::Confirm) => true,
            Some(Action::Cancel) => false,
            _ => return,
        };
        let targets = std::mem::take(&mut confirm.targets);
        let service = confirm.service.take();
        self.mode = Mode::Normal;
        if let Some(name) = service {
            if remove {
                self.flash_info(format!("removing service {name} and its replicas"));
                effects.push(Effect::RemoveService { name });
            } else {
                self.flash_info("remove cancelled");
            }
            return;
        }
        if remove {
            self.flash_info(format!("removing {}", labels(&targets)));
            effects.push(Effect::Remove {
                targets,
                force: true,
            });
        } else {
            self.flash_info("remove cancelled");
        }
    }

    fn on_filter_key(&mut self, key: Key) {
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => self.mode = Mode::Normal,
            Some(Action::Cancel) => {
                self.filter_input.clear();
                self.mode = Mode::Normal;
            }
            Some(Action::ClearInput) => self.filter_input.clear(),
            Some(Action::Backspace) => {
                self.filter_input.pop();
            }
            _ => match key.text() {
                Some(c) => self.filter_input.push(c),
                None => return,
            },
        }
        self.containers.set_filter(&self.filter_input);
    }

    fn on_search_key(&mut self, key: Key) {
        let vp = self.log_viewport();
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                self.mode = Mode::Normal;
                if let Some(message) = self.logs.as_mut().and_then(|l| l.jump(true, vp)) {
                    self.flash_info(message);
                }
                return;
            }
            Some(Action::Cancel) => {
                self.search_input.clear();
                self.mode = Mode::Normal;
            }
            Some(Action::ClearInput) => self.search_input.clear(),
            Some(Action::Backspace) => {
                self.search_input.pop();
            }
            _ => match key.text() {
                Some(c) => self.search_input.push(c),
                None => return,
            },
        }
        if let Some(l) = self.logs.as_mut() {
            l.set_search(&self.search_input);
        }
    }

    fn on_form_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let action = keys::lookup(keys::FORM, key);
        let Some(form) = self.form.as_mut() else {
            self.go_back(effects);
            return;
        };
        let running = matches!(form.phase, Phase::Running(_));
        match action {
            Some(Action::Back) => {
                if running {
                    self.flash_info(
                        "the run goes on; it shows in the containers view when it starts",
                    );
                }
                self.go_back(effects);
            }
            Some(Action::Quit) => effects.push(Effect::Quit),
            Some(Action::Help) => self.mode = Mode::Help { scroll: 0 },
            _ if running => {}
            Some(Action::NextField) => form.move_focus(true),
            Some(Action::PrevField) => form.move_focus(false),
            Some(Action::ClearInput) => {
                form.edit(String::clear);
                form.cursor = None;
            }
            Some(Action::Backspace) => form.delete(true),
            Some(Action::DeleteForward) => form.delete(false),
            Some(Action::CursorLeft) => form.move_cursor(form::Move::Left),
            Some(Action::CursorRight) => form.move_cursor(form::Move::Right),
            Some(Action::LineStart) => form.move_cursor(form::Move::Start),
            Some(Action::LineEnd) => form.move_cursor(form::Move::End),
            Some(Action::Submit) => {
                form.error = None;
                match form.validate(|k| std::env::var(k).ok()) {
                    Some(form::Submission::Run(request)) => {
                        form.phase = Phase::Running(form::RunProgress::default());
                        effects.push(Effect::Run(Box::new(request)));
                    }
                    Some(form::Submission::Service(spec)) => {
                        form.phase = Phase::Running(form::RunProgress::default());
                        effects.push(Effect::CreateService(Box::new(spec)));
                    }
                    None => self.flash_error("the form has errors: see the fields in red"),
                }
            }
            _ => {
                if let Some(c) = key.text() {
                    form.insert(c.encode_utf8(&mut [0; 4]));
                }
            }
        }
    }

    fn on_paste(&mut self, text: &str) {
        let text: String = text.chars().filter(|c| !c.is_control()).collect();
        match &mut self.mode {
            Mode::Filter => {
                self.filter_input.push_str(&text);
                self.containers.set_filter(&self.filter_input);
            }
            Mode::Search => {
                self.search_input.push_str(&text);
                if let Some(l) = self.logs.as_mut() {
                    l.set_search(&self.search_input);
                }
            }
            Mode::Command(line) => line.input.push_str(&text),
            Mode::Scale(prompt) => prompt.input.push_str(&text),
            Mode::Exec(prompt) => prompt.input.push_str(&text),
            Mode::Normal if self.view == View::Run => {
                if let Some(form) = self.form.as_mut()
                    && form.phase == Phase::Editing
                {
                    form.insert(&text);
                }
            }
            _ => {}
        }
    }

    fn on_command_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let names = match (&self.mode, keys::lookup(keys::INPUT, key)) {
            (Mode::Command(line), Some(Action::Complete)) => self.completion_names(&line.input),
            _ => Vec::new(),
        };
        let Mode::Command(line) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let input = std::mem::take(&mut line.input);
                self.mode = Mode::Normal;
                self.run_command(&input, effects);
            }
            Some(Action::Cancel) => self.mode = Mode::Normal,
            Some(Action::ClearInput) => line.input.clear(),
            Some(Action::Backspace) => {
                line.input.pop();
                line.candidates.clear();
            }
            Some(Action::Complete) => complete(line, &names),
            _ => {
                if let Some(c) = key.text() {
                    line.input.push(c);
                    line.candidates.clear();
                }
            }
        }
    }

    /// Container names for `:logs` completion.
    fn completion_names(&self, input: &str) -> Vec<String> {
        let Some((_, partial)) = input.split_once(' ') else {
            return Vec::new();
        };
        let partial = partial.trim_start();
        let mut names: Vec<String> = self
            .containers
            .iter()
            .map(|r| r.summary.name.clone())
            .filter(|n| !n.is_empty() && n.starts_with(partial))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Runs a `:` command: a view name (or a unique prefix of one), `logs NAME`, `q`.
    pub fn run_command(&mut self, input: &str, effects: &mut Vec<Effect>) {
        let mut words = input.split_whitespace();
        let Some(word) = words.next() else {
            return;
        };
        let arg = words.next();
        let command = match word {
            "q" | "q!" | "quit" | "exit" => "quit",
            "ps" | "co" => "containers",
            "svc" | "service" | "se" => "services",
            "no" => "nodes",
            w => {
                let found: Vec<&str> = COMMANDS
                    .iter()
                    .copied()
                    .filter(|c| c.starts_with(w))
                    .collect();
                match found.as_slice() {
                    [one] => *one,
                    [] => {
                        self.flash_error(format!(
                            "unknown command :{w} (try :nodes :containers :services :logs NAME :exec NAME :run :q)"
                        ));
                        return;
                    }
                    many => {
                        self.flash_error(format!(":{w} is ambiguous: {}", many.join(", ")));
                        return;
                    }
                }
            }
        };
        match command {
            "quit" => effects.push(Effect::Quit),
            "help" => self.mode = Mode::Help { scroll: 0 },
            "nodes" => {
                self.back.clear();
                self.containers.set_scope(None);
                self.form = None;
                self.detail = None;
                self.switch(View::Nodes, effects);
            }
            "containers" => {
                let scope = arg.map(str::to_owned);
                self.show_containers(scope, effects);
            }
            "run" => self.open_form(effects),
            "services" => {
                self.show_services(effects);
                if let Some(name) = arg {
                    self.selected_service = Some(name.to_owned());
                    self.open_slots(name.to_owned(), effects);
                }
            }
            "exec" => {
                let target = match arg {
                    None => self.current_target(),
                    Some(name) => self.find_container(name),
                };
                match (target, arg) {
                    (Some(target), _) => self.open_exec(target),
                    (None, Some(name)) => self.flash_error(format!("no container named {name:?}")),
                    (None, None) => self.flash_error(":exec needs a container name"),
                }
            }
            "logs" => {
                let target = match arg {
                    None => self.current_target(),
                    Some(name) => self.find_container(name),
                };
                match (target, arg) {
                    (Some(target), _) => self.open_logs_of(target, effects),
                    (None, Some(name)) => self.flash_error(format!("no container named {name:?}")),
                    (None, None) => self.flash_error(":logs needs a container name"),
                }
            }
            _ => {}
        }
    }

    /// A container by exact name, else by unique id prefix.
    fn find_container(&self, name: &str) -> Option<Target> {
        let target = |r: &containers::Row| Target {
            id: r.summary.id.clone(),
            name: r.summary.name.clone(),
        };
        if let Some(r) = self.containers.iter().find(|r| r.summary.name == name) {
            return Some(target(r));
        }
        let mut by_id = self
            .containers
            .iter()
            .filter(|r| r.summary.id.starts_with(name));
        match (by_id.next(), by_id.next()) {
            (Some(r), None) => Some(target(r)),
            _ => None,
        }
    }

    fn on_mouse(&mut self, ev: MouseEvent) {
        if !self.config.mouse || self.mode != Mode::Normal {
            return;
        }
        let rows = self.table_rows();
        match ev.kind {
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let up = ev.kind == MouseEventKind::ScrollUp;
                match self.view {
                    View::Logs => {
                        let vp = self.log_viewport();
                        if let Some(l) = self.logs.as_mut() {
                            if up {
                                l.scroll_up(WHEEL_ROWS, vp);
                            } else {
                                l.scroll_down(WHEEL_ROWS, vp);
                            }
                        }
                    }
                    _ => {
                        let action = if up { Action::Up } else { Action::Down };
                        for _ in 0..WHEEL_ROWS {
                            self.navigate(action, rows, 1);
                        }
                    }
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                let area = layout::table_rows(self.size);
                if ev.row < area.y || ev.row >= area.y + area.height || ev.column < area.x {
                    return;
                }
                let row = usize::from(ev.row - area.y);
                match self.view {
                    View::Nodes if self.node_list.click(row, self.nodes.len(), rows) => {
                        self.selected_node =
                            self.nodes.name_at(self.node_list.cursor).map(str::to_owned);
                    }
                    View::Containers
                        if self
                            .container_list
                            .click(row, self.containers.visible_len(), rows) =>
                    {
                        self.select_cursor();
                    }
                    View::Services if self.service_list.click(row, self.services.len(), rows) => {
                        self.selected_service = self
                            .services
                            .at(self.service_list.cursor)
                            .map(|s| services::name(s).to_owned());
                    }
                    View::Slots => {
                        let len = self.slots().len();
                        self.slot_list.click(row, len, rows);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn on_run_finished(&mut self, result: Result<Option<pb::ContainerSummary>, String>) {
        let in_form = self.view == View::Run;
        match result {
            Ok(Some(summary)) => {
                let text = format!("started {} on {}", summary.name, summary.node);
                let id = summary.id.clone();
                // The watch stream brings it too, maybe later: list it now.
                let shown = self.containers.scope().is_none_or(|n| n == summary.node);
                self.containers.upsert(summary);
                if !shown {
                    self.containers.set_scope(None);
                }
                self.filter_input.clear();
                self.containers.set_filter("");
                self.form = None;
                if in_form {
                    self.back.clear();
                    let mut effects = Vec::new();
                    self.switch(View::Containers, &mut effects);
                }
                self.pending_select = Some(id);
                self.flash_info(text);
            }
            Ok(None) => {
                let message = "the agent ended the run before the container started".to_owned();
                self.run_failed(message);
            }
            Err(message) => self.run_failed(message),
        }
    }

    fn run_failed(&mut self, message: String) {
        match self.form.as_mut() {
            Some(form) if matches!(form.phase, Phase::Running(_)) => {
                form.phase = Phase::Editing;
                form.error = Some(message.clone());
            }
            _ => {}
        }
        self.flash_error(format!("run failed: {message}"));
    }

    fn on_stopped(&mut self, results: Vec<(Target, Result<bool, String>)>) {
        let mut stopped = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(_) => {
                    self.marks.remove(&target.id);
                    stopped.push(target);
                }
                Err(e) => failed.push(format!("{}: {e}", target.label())),
            }
        }
        if failed.is_empty() {
            self.flash_info(format!("stopped {}", labels(&stopped)));
        } else {
            self.flash_error(format!("cannot stop {}", failed.join("; ")));
        }
    }

    fn on_removed(
        &mut self,
        results: Vec<(Target, Result<(), String>)>,
        effects: &mut Vec<Effect>,
    ) {
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(()) => {
                    self.marks.remove(&target.id);
                    self.containers.remove(&target.id);
                    removed.push(target);
                }
                Err(e) => failed.push(format!("{}: {e}", target.label())),
            }
        }
        // A view about a removed container has nothing left to show.
        let gone = |id: &str| removed.iter().any(|t| t.id == id);
        let about_removed = match self.view {
            View::Detail => self.detail.as_ref().is_some_and(|d| gone(&d.container_id)),
            View::Logs => self.logs.as_ref().is_some_and(|l| gone(&l.container_id)),
            _ => false,
        };
        if about_removed {
            self.show_containers(self.containers.scope().map(str::to_owned), effects);
        }
        if failed.is_empty() {
            self.flash_info(format!("removed {}", labels(&removed)));
        } else {
            self.flash_error(format!("cannot remove {}", failed.join("; ")));
        }
    }
}

/// `web`, `web, db`, `web, db and 3 more`.
fn labels(targets: &[Target]) -> String {
    const SHOWN: usize = 3;
    let names: Vec<&str> = targets.iter().take(SHOWN).map(Target::label).collect();
    let mut text = names.join(", ");
    if targets.len() > SHOWN {
        text.push_str(&format!(" and {} more", targets.len() - SHOWN));
    }
    text
}

/// Tab in command mode: completes a command name, or a container name after `logs `.
fn complete(line: &mut CommandLine, names: &[String]) {
    let (prefix, partial, candidates): (String, &str, Vec<String>) =
        match line.input.split_once(' ') {
            None => (
                String::new(),
                line.input.as_str(),
                COMMANDS
                    .iter()
                    .filter(|c| c.starts_with(line.input.as_str()))
                    .map(|c| (*c).to_owned())
                    .collect(),
            ),
            Some((command, partial)) if "logs".starts_with(command) && !command.is_empty() => {
                ("logs ".to_owned(), partial.trim_start(), names.to_vec())
            }
            Some(_) => return,
        };
    match candidates.as_slice() {
        [] => line.candidates.clear(),
        [one] => {
            let space = if prefix.is_empty() && one == "logs" {
                " "
            } else {
                ""
            };
            line.input = format!("{prefix}{one}{space}");
            line.candidates.clear();
        }
        many => {
            let common = common_prefix(many);
            if common.len() > partial.len() {
                line.input = format!("{prefix}{common}");
            }
            line.candidates = many.to_vec();
        }
    }
}

fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut end = first.len();
    for w in &words[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(w.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(w.len()), |((i, _), _)| i),
        );
    }
    first[..end].to_owned()
}

#[cfg(test)]
mod tests;
