//! Styles, in colour or monochrome. Monochrome (`NO_COLOR`, `--no-color`) uses only bold,
//! reverse, underline and dim, and every state is also written as a word or a mark, so nothing
//! depends on colour to be read.

use berth_proto::v1 as pb;
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn pick(&self, color: Style, mono: Style) -> Style {
        if self.color { color } else { mono }
    }

    pub fn base(&self) -> Style {
        Style::default()
    }

    pub fn dim(&self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }

    pub fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn title(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            self.bold(),
        )
    }

    pub fn header_bar(&self) -> Style {
        self.pick(
            Style::default().fg(Color::White).bg(Color::Blue),
            Style::default().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn column_header(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }

    pub fn selected(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Black).bg(Color::Cyan),
            Style::default().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn marked(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Magenta)
                .add_modifier(Modifier::BOLD),
            self.bold(),
        )
    }

    pub fn key(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            self.bold(),
        )
    }

    pub fn error(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            self.bold(),
        )
    }

    pub fn info(&self) -> Style {
        self.pick(Style::default().fg(Color::Green), self.base())
    }

    pub fn warn(&self) -> Style {
        self.pick(Style::default().fg(Color::Yellow), self.bold())
    }

    pub fn ok(&self) -> Style {
        self.pick(Style::default().fg(Color::Green), self.base())
    }

    pub fn stderr_mark(&self) -> Style {
        self.pick(Style::default().fg(Color::Red), self.bold())
    }

    pub fn stderr_text(&self) -> Style {
        self.pick(Style::default().fg(Color::LightRed), self.base())
    }

    pub fn timestamp(&self) -> Style {
        self.pick(Style::default().fg(Color::DarkGray), self.dim())
    }

    pub fn search_match(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Black).bg(Color::Yellow),
            Style::default().add_modifier(Modifier::UNDERLINED),
        )
    }

    pub fn current_match(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Black)
                .bg(Color::LightMagenta)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    pub fn field_focus(&self) -> Style {
        self.pick(
            Style::default().fg(Color::White).bg(Color::DarkGray),
            Style::default().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn gauge_fill(&self) -> Style {
        self.pick(Style::default().fg(Color::Green), self.base())
    }

    pub fn sparkline(&self) -> Style {
        self.pick(Style::default().fg(Color::Cyan), self.base())
    }

    pub fn node_status(&self, status: pb::NodeStatus) -> Style {
        if !self.color {
            return match status {
                pb::NodeStatus::Alive => self.base(),
                _ => self.bold(),
            };
        }
        let color = match status {
            pb::NodeStatus::Alive => Color::Green,
            pb::NodeStatus::Suspect => Color::Yellow,
            pb::NodeStatus::Down => Color::Red,
            pb::NodeStatus::Left => Color::DarkGray,
            pb::NodeStatus::Unspecified => Color::Magenta,
        };
        Style::default().fg(color)
    }

    /// A service's state (`service ls`'s words).
    pub fn service_state(&self, state: &str) -> Style {
        if !self.color {
            return match state {
                "converged" => self.base(),
                _ => self.bold(),
            };
        }
        match state {
            "converged" => Style::default().fg(Color::Green),
            "converging" | "updating" => Style::default().fg(Color::Yellow),
            _ => Style::default().fg(Color::Red),
        }
    }

    /// A container's state, coloured by its health too: running but unhealthy is not green.
    pub fn container_health(&self, state: &str, health: &str) -> Style {
        match (state, health) {
            ("running", "unhealthy") if self.color => Style::default().fg(Color::Red),
            ("running", "unhealthy") => self.bold(),
            ("running", "starting") if self.color => Style::default().fg(Color::Yellow),
            _ => self.container_state(state),
        }
    }

    pub fn container_state(&self, state: &str) -> Style {
        if !self.color {
            return match state {
                "running" => self.base(),
                "dead" | "restarting" => self.bold(),
                _ => self.dim(),
            };
        }
        match state {
            "running" => Style::default().fg(Color::Green),
            "paused" | "restarting" | "created" | "removing" => Style::default().fg(Color::Yellow),
            "dead" => Style::default().fg(Color::Red),
            _ => Style::default().fg(Color::DarkGray),
        }
    }
}
