//! Types the TUI's modules share, so none of them has to import another that imports it back:
//! the views, the containers table's sort keys, and the connection's state.

use std::time::Duration;

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

/// A column the table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Id,
    Name,
    Image,
    Node,
    State,
    /// Creation time (the STATUS column reads it as "Up 3 minutes").
    Age,
    Cpu,
    Memory,
    Ports,
}

impl SortKey {
    pub fn word(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Name => "name",
            SortKey::Image => "image",
            SortKey::Node => "node",
            SortKey::State => "state",
            SortKey::Age => "age",
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
            SortKey::Ports => "ports",
        }
    }

    /// Numbers and ages read best biggest (newest) first; words A to Z.
    pub fn descending_by_default(self) -> bool {
        matches!(self, SortKey::Age | SortKey::Cpu | SortKey::Memory)
    }
}

/// What the watch task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    Connecting,
    /// The first event (the snapshot) arrived.
    Connected,
    /// The stream broke or could not start; the next try is in `retry_in`.
    Lost {
        attempt: u32,
        retry_in: Duration,
        error: String,
    },
}

/// The connection as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
    },
    Connected,
    Reconnecting {
        attempt: u32,
        /// On the model's monotonic clock.
        retry_at_ms: u64,
        error: String,
    },
}

impl ConnState {
    /// The next state, given an event at `now_ms` (monotonic).
    pub fn on(&self, event: ConnEvent, now_ms: u64) -> ConnState {
        match event {
            ConnEvent::Connecting => ConnState::Connecting {
                attempt: match self {
                    ConnState::Reconnecting { attempt, .. } => *attempt,
                    _ => 0,
                },
            },
            ConnEvent::Connected => ConnState::Connected,
            ConnEvent::Lost {
                attempt,
                retry_in,
                error,
            } => ConnState::Reconnecting {
                attempt,
                retry_at_ms: now_ms
                    .saturating_add(u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX)),
                error,
            },
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, ConnState::Connected)
    }
}
