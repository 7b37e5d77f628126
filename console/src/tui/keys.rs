//! Every key the TUI knows, per view, in one table: [`lookup`] reads it to turn a key into an
//! [`Action`], and the help overlay (`?`) prints it, so the two cannot disagree.

use super::types::{SortKey, View};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as the tables spell it: shift is folded into the character (`N`, not shift+`n`),
/// because terminals disagree on whether they report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn ch(c: char) -> Self {
        Self {
            code: KeyCode::Char(c),
            mods: KeyModifiers::NONE,
        }
    }

    pub const fn ctrl(c: char) -> Self {
        Self {
            code: KeyCode::Char(c),
            mods: KeyModifiers::CONTROL,
        }
    }

    pub const fn code(code: KeyCode) -> Self {
        Self {
            code,
            mods: KeyModifiers::NONE,
        }
    }

    /// The key of an event, normalised as the tables spell keys.
    pub fn from_event(ev: &KeyEvent) -> Self {
        let mut mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        if ev.code == KeyCode::BackTab {
            mods = KeyModifiers::NONE;
        }
        if let KeyCode::Char(_) = ev.code {
            // Shift is in the character already.
        } else if ev.modifiers.contains(KeyModifiers::SHIFT) && ev.code != KeyCode::BackTab {
            mods |= KeyModifiers::SHIFT;
        }
        Self {
            code: ev.code,
            mods,
        }
    }

    /// A printable character typed without ctrl or alt, for text fields.
    pub fn text(&self) -> Option<char> {
        match self.code {
            KeyCode::Char(c) if self.mods.is_empty() && !c.is_control() => Some(c),
            _ => None,
        }
    }
}

/// What a key asks for. The model decides what it means in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Command,
    Back,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// `enter`: drill in (a node's containers, a container's detail).
    Open,
    Containers,
    /// The services view.
    Services,
    /// Ask for a service's new replica count.
    Scale,
    /// A shell (or another command) in the selected container.
    Exec,
    Detail,
    Logs,
    Run,
    Stop,
    Remove,
    Mark,
    Filter,
    Sort(SortKey),
    Follow,
    Wrap,
    Timestamps,
    Search,
    NextMatch,
    PrevMatch,
    NextField,
    PrevField,
    Submit,
    ClearInput,
    Backspace,
    /// `delete`: the character under the cursor (form fields).
    DeleteForward,
    /// Cursor moves in a form field.
    CursorLeft,
    CursorRight,
    LineStart,
    LineEnd,
    Complete,
    Accept,
    Cancel,
    Confirm,
    Toggle,
}

/// One row of a key table.
#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in help and the footer.
    pub label: &'static str,
    pub help: &'static str,
    pub action: Action,
    /// The word shown for it in the footer line, if it is shown there.
    pub footer: Option<&'static str>,
}

const fn b(
    keys: &'static [Key],
    label: &'static str,
    help: &'static str,
    action: Action,
    footer: Option<&'static str>,
) -> Binding {
    Binding {
        keys,
        label,
        help,
        action,
        footer,
    }
}

const UP: &[Key] = &[Key::code(KeyCode::Up), Key::ch('k')];
const DOWN: &[Key] = &[Key::code(KeyCode::Down), Key::ch('j')];
const PAGE_UP: &[Key] = &[Key::code(KeyCode::PageUp), Key::ctrl('b')];
const PAGE_DOWN: &[Key] = &[Key::code(KeyCode::PageDown), Key::ctrl('f')];
const TOP: &[Key] = &[Key::ch('g'), Key::code(KeyCode::Home)];
const BOTTOM: &[Key] = &[Key::ch('G'), Key::code(KeyCode::End)];
const ESC: &[Key] = &[Key::code(KeyCode::Esc)];
const ENTER: &[Key] = &[Key::code(KeyCode::Enter)];

/// Keys every view takes (except inside the run form, where they are text).
pub static GLOBAL: &[Binding] = &[
    b(
        &[Key::ch('?'), Key::code(KeyCode::F(1))],
        "?",
        "help (this list)",
        Action::Help,
        Some("help"),
    ),
    b(
        &[Key::ch(':')],
        ":",
        "command: :nodes :containers :services [NAME] :logs NAME :exec NAME :run :q",
        Action::Command,
        None,
    ),
    b(&[Key::ch('q')], "q", "quit", Action::Quit, Some("quit")),
    b(
        &[Key::ctrl('c')],
        "ctrl-c",
        "quit (anywhere)",
        Action::Quit,
        None,
    ),
];

pub static NODES: &[Binding] = &[
    b(UP, "↑/k", "up", Action::Up, None),
    b(DOWN, "↓/j", "down", Action::Down, None),
    b(PAGE_UP, "pgup/ctrl-b", "page up", Action::PageUp, None),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "first node", Action::Top, None),
    b(BOTTOM, "G/end", "last node", Action::Bottom, None),
    b(
        ENTER,
        "enter",
        "show the node's containers",
        Action::Open,
        Some("open"),
    ),
    b(
        &[Key::ch('c')],
        "c",
        "all containers (every node)",
        Action::Containers,
        Some("containers"),
    ),
    b(
        &[Key::ch('v')],
        "v",
        "services",
        Action::Services,
        Some("services"),
    ),
    b(
        &[Key::ch('r')],
        "r",
        "run a container",
        Action::Run,
        Some("run"),
    ),
];

pub static CONTAINERS: &[Binding] = &[
    b(UP, "↑/k", "up", Action::Up, None),
    b(DOWN, "↓/j", "down", Action::Down, None),
    b(PAGE_UP, "pgup/ctrl-b", "page up", Action::PageUp, None),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "first row", Action::Top, None),
    b(BOTTOM, "G/end", "last row", Action::Bottom, None),
    b(
        &[Key::code(KeyCode::Enter), Key::ch('d')],
        "enter/d",
        "detail (inspect)",
        Action::Detail,
        Some("detail"),
    ),
    b(&[Key::ch('l')], "l", "logs", Action::Logs, Some("logs")),
    b(
        &[Key::ch('x')],
        "x",
        "shell in it (exec; the command can be changed)",
        Action::Exec,
        Some("shell"),
    ),
    b(
        &[Key::ch('r')],
        "r",
        "run a container",
        Action::Run,
        Some("run"),
    ),
    b(
        &[Key::ch('s')],
        "s",
        "stop (grace period, then kill)",
        Action::Stop,
        Some("stop"),
    ),
    b(
        &[Key::ctrl('d')],
        "ctrl-d",
        "remove (asks first)",
        Action::Remove,
        Some("remove"),
    ),
    b(
        &[Key::ch(' ')],
        "space",
        "mark / unmark for stop and remove",
        Action::Mark,
        None,
    ),
    b(&[Key::ch('v')], "v", "services", Action::Services, None),
    b(
        &[Key::ch('/')],
        "/",
        "filter by name, image, node, state",
        Action::Filter,
        Some("filter"),
    ),
    b(
        ESC,
        "esc",
        "clear the filter, then back to nodes",
        Action::Back,
        None,
    ),
    b(
        &[Key::ch('N')],
        "N",
        "sort by name (again: reverse)",
        Action::Sort(SortKey::Name),
        None,
    ),
    b(
        &[Key::ch('D')],
        "D",
        "sort by id",
        Action::Sort(SortKey::Id),
        None,
    ),
    b(
        &[Key::ch('I')],
        "I",
        "sort by image",
        Action::Sort(SortKey::Image),
        None,
    ),
    b(
        &[Key::ch('O')],
        "O",
        "sort by node",
        Action::Sort(SortKey::Node),
        None,
    ),
    b(
        &[Key::ch('S')],
        "S",
        "sort by state",
        Action::Sort(SortKey::State),
        None,
    ),
    b(
        &[Key::ch('A')],
        "A",
        "sort by age (status)",
        Action::Sort(SortKey::Age),
        None,
    ),
    b(
        &[Key::ch('C')],
        "C",
        "sort by CPU %",
        Action::Sort(SortKey::Cpu),
        None,
    ),
    b(
        &[Key::ch('M')],
        "M",
        "sort by memory",
        Action::Sort(SortKey::Memory),
        None,
    ),
    b(
        &[Key::ch('P')],
        "P",
        "sort by ports",
        Action::Sort(SortKey::Ports),
        None,
    ),
];

pub static SERVICES: &[Binding] = &[
    b(UP, "↑/k", "up", Action::Up, None),
    b(DOWN, "↓/j", "down", Action::Down, None),
    b(PAGE_UP, "pgup/ctrl-b", "page up", Action::PageUp, None),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "first service", Action::Top, None),
    b(BOTTOM, "G/end", "last service", Action::Bottom, None),
    b(
        ENTER,
        "enter",
        "show the service's slots",
        Action::Open,
        Some("slots"),
    ),
    b(
        &[Key::ch('l')],
        "l",
        "logs of every replica, merged",
        Action::Logs,
        Some("logs"),
    ),
    b(
        &[Key::ch('s')],
        "s",
        "scale (type the replica count)",
        Action::Scale,
        Some("scale"),
    ),
    b(
        &[Key::ctrl('d')],
        "ctrl-d",
        "remove the service and its replicas (asks first)",
        Action::Remove,
        Some("remove"),
    ),
    b(
        &[Key::ch('r')],
        "r",
        "create a service (the run form, 1 replica)",
        Action::Run,
        Some("create"),
    ),
    b(
        &[Key::ch('c')],
        "c",
        "all containers (every node)",
        Action::Containers,
        None,
    ),
    b(ESC, "esc", "back", Action::Back, Some("back")),
];

pub static SLOTS: &[Binding] = &[
    b(UP, "↑/k", "up", Action::Up, None),
    b(DOWN, "↓/j", "down", Action::Down, None),
    b(PAGE_UP, "pgup/ctrl-b", "page up", Action::PageUp, None),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "first slot", Action::Top, None),
    b(BOTTOM, "G/end", "last slot", Action::Bottom, None),
    b(
        &[Key::code(KeyCode::Enter), Key::ch('d')],
        "enter/d",
        "the slot's container (inspect)",
        Action::Detail,
        Some("detail"),
    ),
    b(
        &[Key::ch('l')],
        "l",
        "the slot's logs",
        Action::Logs,
        Some("logs"),
    ),
    b(
        ESC,
        "esc",
        "back to the services",
        Action::Back,
        Some("back"),
    ),
];

pub static LOGS: &[Binding] = &[
    b(UP, "↑/k", "scroll up (pauses follow)", Action::Up, None),
    b(DOWN, "↓/j", "scroll down", Action::Down, None),
    b(
        PAGE_UP,
        "pgup/ctrl-b",
        "page up (pauses follow)",
        Action::PageUp,
        None,
    ),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "oldest line kept", Action::Top, None),
    b(
        BOTTOM,
        "G/end",
        "newest line, follow again",
        Action::Bottom,
        Some("end"),
    ),
    b(
        &[Key::ch('f')],
        "f",
        "follow on/off",
        Action::Follow,
        Some("follow"),
    ),
    b(
        &[Key::ch('w')],
        "w",
        "wrap long lines on/off",
        Action::Wrap,
        Some("wrap"),
    ),
    b(
        &[Key::ch('t')],
        "t",
        "timestamps on/off",
        Action::Timestamps,
        Some("time"),
    ),
    b(
        &[Key::ch('/')],
        "/",
        "search",
        Action::Search,
        Some("search"),
    ),
    b(&[Key::ch('n')], "n", "next match", Action::NextMatch, None),
    b(
        &[Key::ch('N')],
        "N",
        "previous match",
        Action::PrevMatch,
        None,
    ),
    b(
        &[Key::ch('d')],
        "d",
        "detail (inspect)",
        Action::Detail,
        None,
    ),
    b(ESC, "esc", "back", Action::Back, Some("back")),
];

pub static DETAIL: &[Binding] = &[
    b(UP, "↑/k", "scroll up", Action::Up, None),
    b(DOWN, "↓/j", "scroll down", Action::Down, None),
    b(PAGE_UP, "pgup/ctrl-b", "page up", Action::PageUp, None),
    b(
        PAGE_DOWN,
        "pgdn/ctrl-f",
        "page down",
        Action::PageDown,
        None,
    ),
    b(TOP, "g/home", "top", Action::Top, None),
    b(BOTTOM, "G/end", "bottom", Action::Bottom, None),
    b(&[Key::ch('l')], "l", "logs", Action::Logs, Some("logs")),
    b(
        &[Key::ch('x')],
        "x",
        "shell in it (exec)",
        Action::Exec,
        Some("shell"),
    ),
    b(&[Key::ch('s')], "s", "stop", Action::Stop, Some("stop")),
    b(
        &[Key::ctrl('d')],
        "ctrl-d",
        "remove (asks first)",
        Action::Remove,
        Some("remove"),
    ),
    b(ESC, "esc", "back", Action::Back, Some("back")),
];

/// The run form: letters are text here, so only these keys act.
pub static FORM: &[Binding] = &[
    b(
        &[Key::code(KeyCode::Tab), Key::code(KeyCode::Down)],
        "tab/↓",
        "next field",
        Action::NextField,
        Some("next"),
    ),
    b(
        &[Key::code(KeyCode::BackTab), Key::code(KeyCode::Up)],
        "shift-tab/↑",
        "previous field",
        Action::PrevField,
        None,
    ),
    b(
        ENTER,
        "enter",
        "run it (checks every field first)",
        Action::Submit,
        Some("run"),
    ),
    b(
        &[Key::ctrl('u')],
        "ctrl-u",
        "clear the field",
        Action::ClearInput,
        None,
    ),
    b(
        &[Key::code(KeyCode::Backspace)],
        "backspace",
        "delete the character before the cursor",
        Action::Backspace,
        None,
    ),
    b(
        &[Key::code(KeyCode::Delete), Key::ctrl('d')],
        "delete/ctrl-d",
        "delete the character under the cursor",
        Action::DeleteForward,
        None,
    ),
    b(
        &[Key::code(KeyCode::Left)],
        "←",
        "cursor left",
        Action::CursorLeft,
        None,
    ),
    b(
        &[Key::code(KeyCode::Right)],
        "→",
        "cursor right",
        Action::CursorRight,
        None,
    ),
    b(
        &[Key::code(KeyCode::Home), Key::ctrl('a')],
        "home/ctrl-a",
        "to the start of the field",
        Action::LineStart,
        None,
    ),
    b(
        &[Key::code(KeyCode::End), Key::ctrl('e')],
        "end/ctrl-e",
        "to the end of the field",
        Action::LineEnd,
        None,
    ),
    b(
        &[Key::code(KeyCode::F(1))],
        "F1",
        "help (this list)",
        Action::Help,
        Some("help"),
    ),
    b(ESC, "esc", "cancel", Action::Back, Some("cancel")),
    b(&[Key::ctrl('c')], "ctrl-c", "quit", Action::Quit, None),
];

/// One-line inputs: the filter (`/`), the log search (`/`) and command mode (`:`).
pub static INPUT: &[Binding] = &[
    b(ENTER, "enter", "accept", Action::Accept, None),
    b(
        ESC,
        "esc",
        "cancel (the filter: clear it)",
        Action::Cancel,
        None,
    ),
    b(
        &[Key::code(KeyCode::Tab)],
        "tab",
        "complete (command mode)",
        Action::Complete,
        None,
    ),
    b(
        &[Key::ctrl('u')],
        "ctrl-u",
        "clear",
        Action::ClearInput,
        None,
    ),
    b(
        &[Key::code(KeyCode::Backspace)],
        "backspace",
        "delete a character",
        Action::Backspace,
        None,
    ),
    b(&[Key::ctrl('c')], "ctrl-c", "quit", Action::Quit, None),
];

/// The remove confirmation.
pub static CONFIRM: &[Binding] = &[
    b(
        &[
            Key::code(KeyCode::Left),
            Key::code(KeyCode::Right),
            Key::code(KeyCode::Tab),
            Key::code(KeyCode::BackTab),
            Key::ch('h'),
            Key::ch('l'),
        ],
        "←/→/tab",
        "switch button",
        Action::Toggle,
        Some("switch"),
    ),
    b(
        ENTER,
        "enter",
        "press the button (cancel by default)",
        Action::Accept,
        Some("press"),
    ),
    b(
        &[Key::ch('y')],
        "y",
        "remove",
        Action::Confirm,
        Some("remove"),
    ),
    b(
        &[Key::ch('n'), Key::code(KeyCode::Esc)],
        "n/esc",
        "cancel",
        Action::Cancel,
        Some("cancel"),
    ),
    b(&[Key::ctrl('c')], "ctrl-c", "quit", Action::Quit, None),
];

/// The help overlay.
pub static HELP: &[Binding] = &[
    b(UP, "↑/k", "scroll up", Action::Up, None),
    b(DOWN, "↓/j", "scroll down", Action::Down, None),
    b(
        &[
            Key::code(KeyCode::Esc),
            Key::ch('?'),
            Key::ch('q'),
            Key::code(KeyCode::F(1)),
        ],
        "esc/?/q",
        "close",
        Action::Back,
        Some("close"),
    ),
    b(&[Key::ctrl('c')], "ctrl-c", "quit", Action::Quit, None),
];

/// The keys of a view, without the global ones.
pub fn of_view(view: View) -> &'static [Binding] {
    match view {
        View::Nodes => NODES,
        View::Containers => CONTAINERS,
        View::Logs => LOGS,
        View::Detail => DETAIL,
        View::Run => FORM,
        View::Services => SERVICES,
        View::Slots => SLOTS,
    }
}

/// The action bound to `key` in `table`, if any.
pub fn lookup(table: &[Binding], key: Key) -> Option<Action> {
    table
        .iter()
        .find(|binding| binding.keys.contains(&key))
        .map(|binding| binding.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_one_view() {
        for view in [
            View::Nodes,
            View::Containers,
            View::Logs,
            View::Detail,
            View::Run,
            View::Services,
            View::Slots,
        ] {
            let mut seen: Vec<Key> = Vec::new();
            let tables: &[&[Binding]] = if view == View::Run {
                &[FORM]
            } else {
                &[of_view(view), GLOBAL]
            };
            for binding in tables.iter().flat_map(|t| t.iter()) {
                for key in binding.keys {
                    assert!(!seen.contains(key), "{view:?}: {key:?} is bound twice");
                    seen.push(*key);
                }
            }
        }
    }

    /// The README's section on the TUI lists every key of every table.
    #[test]
    fn the_readme_section_lists_every_key() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let doc = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for table in [
            GLOBAL, NODES, CONTAINERS, SERVICES, SLOTS, LOGS, DETAIL, FORM, INPUT, CONFIRM,
        ] {
            for binding in table {
                let row = format!("| `{}` | {} |", binding.label, binding.help);
                assert!(doc.contains(&row), "{} does not list {row}", path.display());
            }
        }
    }

    #[test]
    fn shift_is_folded_into_the_character() {
        let ev = KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Key::ch('N'));
        let ev = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Key::code(KeyCode::BackTab));
        let ev = KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(&ev), Key::ctrl('d'));
        assert_eq!(Key::ctrl('d').text(), None);
        assert_eq!(Key::ch('x').text(), Some('x'));
    }
}
