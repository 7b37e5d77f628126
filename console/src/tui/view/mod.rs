//! Drawing: a pure function of the [`Model`] onto a ratatui frame. Nothing here changes the
//! model or waits for anything, so a frame costs the same whatever the network does, and every
//! screen can be checked on a `TestBackend`.

mod logs;
mod panels;
mod table;
pub mod theme;

use super::conn::ConnState;
use super::keys::{self, Binding};
use super::layout;
use super::model::{Level, Mode, Model, View};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use theme::Theme;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, model: &Model) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    render(buf, area, model);
    if let Some((x, y)) = cursor(model, area) {
        frame.set_cursor_position((x, y));
    }
}

/// Renders into a buffer (what [`draw`] does, without the cursor).
pub fn render(buf: &mut Buffer, area: Rect, model: &Model) {
    let theme = Theme {
        color: model.config.color,
    };
    let a = layout::areas(area);
    header(buf, a.header, model, &theme);
    flash(buf, a.flash, model, &theme);
    if a.body.height >= 3 && a.body.width >= 10 {
        match model.view {
            View::Nodes => table::nodes(buf, area, model, &theme),
            View::Containers => table::containers(buf, area, model, &theme),
            View::Logs => logs::logs(buf, area, model, &theme),
            View::Detail => panels::detail(buf, area, model, &theme),
            View::Run => panels::form(buf, area, model, &theme),
            View::Services => table::services(buf, area, model, &theme),
            View::Slots => table::slots(buf, area, model, &theme),
        }
        if !model.conn.is_connected() {
            // The last data stays, dimmed, while we reconnect.
            buf.set_style(a.body, Style::default().add_modifier(Modifier::DIM));
        }
    }
    footer(buf, a.footer, model, &theme);
    match &model.mode {
        Mode::Help { scroll } => panels::help(buf, area, model, *scroll, &theme),
        Mode::Confirm(confirm) => panels::confirm(buf, area, confirm, &theme),
        _ => {}
    }
}

/// Where the terminal cursor goes: at the end of the text being typed.
fn cursor(model: &Model, area: Rect) -> Option<(u16, u16)> {
    let footer = layout::areas(area).footer;
    let at = |prefix: &str, text: &str| {
        let x = footer.x + width(prefix) as u16 + width(text) as u16;
        (x.min(footer.right().saturating_sub(1)), footer.y)
    };
    match &model.mode {
        Mode::Filter => Some(at(FILTER_PROMPT, &model.filter_input)),
        Mode::Search => Some(at(SEARCH_PROMPT, &model.search_input)),
        Mode::Command(line) => Some(at(":", &line.input)),
        Mode::Scale(p) => Some(at(&scale_prompt(&p.service), &p.input)),
        Mode::Exec(p) => Some(at(&exec_prompt(&p.target.name), &p.input)),
        Mode::Normal if model.view == View::Run => panels::form_cursor(model, area),
        _ => None,
    }
}

const FILTER_PROMPT: &str = "filter: ";

fn scale_prompt(service: &str) -> String {
    format!("scale {service} to: ")
}

fn exec_prompt(container: &str) -> String {
    format!("exec in {container}: ")
}
const SEARCH_PROMPT: &str = "search: ";

/// Display width of a string (wide characters count two).
pub(crate) fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Writes `text` at (x, y), at most `max` columns, cut with `…` when longer.
pub(crate) fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, max: u16, style: Style) -> u16 {
    if max == 0 {
        return x;
    }
    if width(text) <= usize::from(max) {
        return buf.set_stringn(x, y, text, usize::from(max), style).0;
    }
    let (end, _) = buf.set_stringn(x, y, text, usize::from(max - 1), style);
    buf.set_stringn(end, y, "…", 1, style).0
}

/// Writes spans one after another, cut at `max` columns.
pub(crate) fn put_spans(buf: &mut Buffer, x: u16, y: u16, spans: &[Span<'_>], max: u16) -> u16 {
    let mut cursor = x;
    let end = x.saturating_add(max);
    for span in spans {
        if cursor >= end {
            break;
        }
        cursor = put(buf, cursor, y, &span.content, end - cursor, span.style);
    }
    cursor
}

fn block<'a>(title: Line<'a>, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(title)
}

/// The body's bordered block with a title.
pub(crate) fn body_block(buf: &mut Buffer, screen: Rect, title: Vec<Span<'_>>, theme: &Theme) {
    let body = layout::areas(screen).body;
    let mut spans = vec![Span::raw(" ")];
    spans.extend(title);
    spans.push(Span::raw(" "));
    block(Line::from(spans), theme).render(body, buf);
}

fn header(buf: &mut Buffer, area: Rect, model: &Model, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let bar = theme.header_bar();
    buf.set_style(area, bar);
    let counts = model.nodes.status_counts();
    let mut nodes = format!(
        "{} node{}",
        model.nodes.len(),
        if model.nodes.len() == 1 { "" } else { "s" }
    );
    let words = ["alive", "suspect", "down", "left", "unknown"];
    let unusual: Vec<String> = counts
        .iter()
        .zip(words)
        .skip(1)
        .filter(|(n, _)| **n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    if !unusual.is_empty() {
        nodes.push_str(&format!(" ({})", unusual.join(", ")));
    }
    let agent = if model.answered_by.is_empty() {
        model.config.agent.clone()
    } else {
        format!("{} ({})", model.config.agent, model.answered_by)
    };
    let (conn, conn_style) = conn_text(&model.conn, model.clock.mono_ms, theme);
    // The connection first: it is what matters when it is broken, and a narrow screen cuts
    // the end of the line.
    let spans = vec![
        Span::styled(" berth ", bar.add_modifier(Modifier::BOLD)),
        Span::styled("│ ", bar),
        Span::styled(conn, bar.patch(conn_style).add_modifier(Modifier::BOLD)),
        Span::styled(" │ ", bar),
        Span::styled(agent, bar),
        Span::styled(
            format!(
                " │ {nodes} │ {} container{}",
                model.containers.len(),
                if model.containers.len() == 1 { "" } else { "s" }
            ),
            bar,
        ),
    ];
    put_spans(buf, area.x, area.y, &spans, area.width);
}

/// The connection as the header says it.
pub(crate) fn conn_text(conn: &ConnState, now_ms: u64, theme: &Theme) -> (String, Style) {
    match conn {
        ConnState::Connected => ("● connected".into(), theme.base()),
        ConnState::Connecting { attempt: 0 } => ("◌ connecting…".into(), theme.base()),
        ConnState::Connecting { attempt } => (
            format!("◌ reconnecting… (attempt {})", attempt + 1),
            theme.warn(),
        ),
        ConnState::Reconnecting {
            attempt,
            retry_at_ms,
            error,
        } => {
            let secs = retry_at_ms.saturating_sub(now_ms).div_ceil(1000);
            (
                format!("⟳ reconnecting in {secs}s (attempt {attempt}): {error}"),
                theme.warn(),
            )
        }
    }
}

fn flash(buf: &mut Buffer, area: Rect, model: &Model, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    if let Some((flash, faded)) = model.visible_flash() {
        let (mark, style) = match flash.level {
            Level::Info => ("✓ ", theme.info()),
            Level::Error => ("✗ ", theme.error()),
        };
        let style = if faded {
            style.add_modifier(Modifier::DIM)
        } else {
            style
        };
        let spans = [
            Span::styled(mark, style),
            Span::styled(flash.text.as_str(), style),
        ];
        put_spans(
            buf,
            area.x + 1,
            area.y,
            &spans,
            area.width.saturating_sub(1),
        );
        return;
    }
    // Nothing to say: where we are.
    let mut crumbs: Vec<String> = model.back.iter().map(|v| v.word().to_owned()).collect();
    crumbs.push(model.view.word().to_owned());
    put(
        buf,
        area.x + 1,
        area.y,
        &crumbs.join(" › "),
        area.width.saturating_sub(1),
        theme.dim(),
    );
}

fn footer(buf: &mut Buffer, area: Rect, model: &Model, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let input = |prompt: &'static str, text: &str, hint: &'static str| {
        vec![
            Span::styled(prompt, theme.key()),
            Span::raw(text.to_owned()),
            Span::styled(hint, theme.dim()),
        ]
    };
    let spans: Vec<Span<'_>> = match &model.mode {
        Mode::Filter => input(
            FILTER_PROMPT,
            &model.filter_input,
            "   enter keep · esc clear",
        ),
        Mode::Search => input(
            SEARCH_PROMPT,
            &model.search_input,
            "   enter find · esc clear",
        ),
        Mode::Command(line) => {
            let mut spans = input(":", &line.input, "");
            if line.candidates.is_empty() {
                spans.push(Span::styled(
                    "   tab complete · enter run · esc cancel",
                    theme.dim(),
                ));
            } else {
                spans.push(Span::styled(
                    format!("   {}", line.candidates.join("  ")),
                    theme.dim(),
                ));
            }
            spans
        }
        Mode::Scale(p) => vec![
            Span::styled(scale_prompt(&p.service), theme.key()),
            Span::raw(p.input.clone()),
            Span::styled("   enter scale · esc cancel", theme.dim()),
        ],
        Mode::Exec(p) => vec![
            Span::styled(exec_prompt(&p.target.name), theme.key()),
            Span::raw(p.input.clone()),
            Span::styled("   enter open a terminal · esc cancel", theme.dim()),
        ],
        Mode::Help { .. } => hints(&[keys::HELP], theme),
        Mode::Confirm(_) => hints(&[keys::CONFIRM], theme),
        Mode::Normal if model.view == View::Run => hints(&[keys::FORM], theme),
        Mode::Normal => hints(&[keys::of_view(model.view), keys::GLOBAL], theme),
    };
    put_spans(buf, area.x, area.y, &spans, area.width);
}

/// `label help` for every binding marked for the footer.
fn hints(tables: &[&'static [Binding]], theme: &Theme) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for binding in tables.iter().flat_map(|t| t.iter()) {
        if let Some(word) = binding.footer {
            spans.push(Span::styled(format!(" {}", binding.label), theme.key()));
            spans.push(Span::raw(format!(" {word} ")));
        }
    }
    spans
}

#[cfg(test)]
mod tests;
