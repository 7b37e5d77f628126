//! The detail view, the run form, and the two overlays: help and the remove confirmation.

use super::theme::Theme;
use super::{body_block, put, put_spans, width};
use crate::output::short_id;
use crate::tui::keys::{self, Binding};
use crate::tui::layout;
use crate::tui::model::detail::{DetailLine, DetailState};
use crate::tui::model::form::{self, Phase, RunForm};
use crate::tui::model::{Confirm, Model, View};
use berth_shared::quantity::format_bytes;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

// ---------------------------------------------------------------------------------------------
// Detail

const KEY_WIDTH: u16 = 15;

pub fn detail(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let Some(d) = model.detail.as_ref() else {
        body_block(buf, screen, vec![Span::raw("detail")], theme);
        return;
    };
    let name = if d.name.is_empty() {
        short_id(&d.container_id).to_owned()
    } else {
        d.name.clone()
    };
    let mut title = vec![Span::styled(format!("detail {name}"), theme.title())];
    let total = d.lines().len();
    let inner = layout::body_inner(screen);
    if total > usize::from(inner.height) {
        title.push(Span::styled(
            format!(
                " · {}-{} of {total}",
                d.scroll + 1,
                (d.scroll + usize::from(inner.height)).min(total)
            ),
            theme.dim(),
        ));
    }
    body_block(buf, screen, title, theme);
    match &d.state {
        DetailState::Loading => {
            put(
                buf,
                inner.x + 1,
                inner.y,
                "inspecting…",
                inner.width,
                theme.dim(),
            );
        }
        DetailState::Failed(e) => {
            put(
                buf,
                inner.x + 1,
                inner.y,
                &format!("cannot inspect: {e}"),
                inner.width,
                theme.error(),
            );
        }
        DetailState::Loaded(lines) => {
            for (i, line) in lines
                .iter()
                .skip(d.scroll)
                .take(usize::from(inner.height))
                .enumerate()
            {
                let y = inner.y + i as u16;
                let x = inner.x + 1;
                let w = inner.width.saturating_sub(1);
                match line {
                    DetailLine::Section(s) => {
                        put(buf, x, y, &format!("── {s}"), w, theme.title());
                    }
                    DetailLine::Field(k, v) => {
                        put(buf, x + 1, y, k, KEY_WIDTH.min(w), theme.key());
                        put(
                            buf,
                            x + 1 + KEY_WIDTH,
                            y,
                            v,
                            w.saturating_sub(KEY_WIDTH + 1),
                            theme.base(),
                        );
                    }
                    DetailLine::Text(t) => {
                        put(buf, x + 1, y, t, w.saturating_sub(1), theme.base());
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run form

const LABEL_WIDTH: u16 = 13;
const INPUT_MAX: u16 = 44;

fn input_width(inner: Rect) -> u16 {
    inner.width.saturating_sub(LABEL_WIDTH + 2).min(INPUT_MAX)
}

/// The text of a field as shown: its end when it is longer than the box.
/// The part of `value` a box `w` wide shows with the cursor at byte `cursor` in view (the
/// text scrolls as little as it must), and the cursor's column in it.
fn window_at(value: &str, cursor: usize, w: u16) -> (&str, u16) {
    let w = usize::from(w.saturating_sub(1));
    let cursor = cursor.min(value.len());
    // Start as late as needed for the cursor to fit.
    let mut start = 0;
    while width(&value[start..cursor]) > w {
        match value[start..].chars().next() {
            Some(c) => start += c.len_utf8(),
            None => break,
        }
    }
    let mut end = cursor;
    for c in value[cursor..].chars() {
        if width(&value[start..end + c.len_utf8()]) > w {
            break;
        }
        end += c.len_utf8();
    }
    (
        &value[start..end],
        u16::try_from(width(&value[start..cursor])).unwrap_or(0),
    )
}

fn visible_value(value: &str, w: u16) -> &str {
    let w = usize::from(w.saturating_sub(1));
    let mut start = 0;
    while width(&value[start..]) > w {
        match value[start..].chars().next() {
            Some(c) => start += c.len_utf8(),
            None => break,
        }
    }
    &value[start..]
}

pub fn form(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let Some(f) = model.form.as_ref() else {
        body_block(buf, screen, vec![Span::raw("run")], theme);
        return;
    };
    let running = matches!(f.phase, Phase::Running(_));
    let service = !f.field(form::FieldId::Replicas).value.trim().is_empty();
    let title = vec![
        Span::styled(
            if service {
                "create a service"
            } else {
                "run a container"
            },
            theme.title(),
        ),
        Span::styled(
            match (running, service) {
                (true, true) => " · creating…",
                (true, false) => " · running…",
                (false, true) => " · enter creates it, esc cancels",
                (false, false) => " · enter runs it, esc cancels",
            },
            theme.dim(),
        ),
    ];
    body_block(buf, screen, title, theme);
    let inner = layout::body_inner(screen);
    let iw = input_width(inner);
    let side_x = inner.x + 1 + LABEL_WIDTH + 1 + iw + 1;
    let side_w = (inner.x + inner.width).saturating_sub(side_x);
    let mut y = inner.y;
    let bottom = inner.y + inner.height;
    for (i, field) in f.fields.iter().enumerate() {
        if y >= bottom {
            return;
        }
        let focused = i == f.focus && !running;
        let label_style = if field.error.is_some() {
            theme.error()
        } else if focused {
            theme.key()
        } else {
            theme.base()
        };
        let label = format!("{:>w$}", field.label, w = usize::from(LABEL_WIDTH));
        put(buf, inner.x + 1, y, &label, LABEL_WIDTH, label_style);
        let box_x = inner.x + 1 + LABEL_WIDTH + 1;
        let box_style = if focused {
            theme.field_focus()
        } else {
            theme.dim()
        };
        buf.set_style(Rect::new(box_x, y, iw, 1), box_style);
        if field.value.is_empty() && !focused {
            put(buf, box_x, y, &"·".repeat(usize::from(iw)), iw, theme.dim());
        } else {
            let shown = if focused {
                window_at(&field.value, f.cursor(), iw).0
            } else {
                visible_value(&field.value, iw)
            };
            put(
                buf,
                box_x,
                y,
                shown,
                iw,
                if focused { box_style } else { theme.base() },
            );
        }
        if side_w > 2 {
            if let Some(e) = &field.error {
                put(buf, side_x, y, &format!("✗ {e}"), side_w, theme.error());
            } else if focused {
                put(buf, side_x, y, field.hint, side_w, theme.dim());
            }
        }
        y += 1;
    }
    y += 1;
    // The focused field in full: its error, or its hint.
    if let Some(field) = f.focused().filter(|_| !running)
        && y < bottom
    {
        let (text, style) = match &field.error {
            Some(e) => (format!("{}: {e}", field.label), theme.error()),
            None => (format!("{}: {}", field.label, field.hint), theme.dim()),
        };
        y = paragraph(
            buf,
            inner.x + 2,
            y,
            inner.width.saturating_sub(3),
            bottom,
            &text,
            style,
        );
    }
    if let Some(e) = &f.error
        && y < bottom
    {
        y = paragraph(
            buf,
            inner.x + 2,
            y,
            inner.width.saturating_sub(3),
            bottom,
            &format!("✗ {e}"),
            theme.error(),
        );
    }
    if let Phase::Running(p) = &f.phase {
        let mut lines: Vec<(String, ratatui::style::Style)> = Vec::new();
        lines.push(("sent; waiting for the agent…".into(), theme.dim()));
        if let Some((node, reason)) = &p.placed {
            let text = if reason.is_empty() {
                format!("placed on {node}")
            } else {
                format!("placed on {node}: {reason}")
            };
            lines.push((text, theme.base()));
        }
        if !p.layers.is_empty() || !p.pull_status.is_empty() {
            let (current, total) = p.bytes();
            let done = p.layers.values().filter(|l| form::layer_done(&l.0)).count();
            let mut text = format!("pulling: {done}/{} layers", p.layers.len());
            if total > 0 {
                text.push_str(&format!(
                    " {} / {}",
                    format_bytes(current),
                    format_bytes(total)
                ));
            }
            if !p.pull_status.is_empty() {
                text.push_str(&format!(" · {}", p.pull_status));
            }
            lines.push((text, theme.base()));
        }
        if let Some(id) = &p.created {
            lines.push((format!("created {}", short_id(id)), theme.base()));
        }
        for w in &p.warnings {
            lines.push((format!("warning: {w}"), theme.warn()));
        }
        if p.started {
            lines.push(("started".into(), theme.ok()));
        }
        for (text, style) in lines {
            if y >= bottom {
                break;
            }
            put(
                buf,
                inner.x + 2,
                y,
                &text,
                inner.width.saturating_sub(3),
                style,
            );
            y += 1;
        }
    }
}

/// Writes `text` wrapped at `w` columns from row `y`, stopping at `bottom`; returns the next row.
fn paragraph(
    buf: &mut Buffer,
    x: u16,
    mut y: u16,
    w: u16,
    bottom: u16,
    text: &str,
    style: ratatui::style::Style,
) -> u16 {
    let mut rest = text;
    while !rest.is_empty() && y < bottom && w > 0 {
        let mut end = 0;
        let mut used = 0;
        for (i, c) in rest.char_indices() {
            let cw = width(c.encode_utf8(&mut [0; 4]));
            if used + cw > usize::from(w) {
                break;
            }
            used += cw;
            end = i + c.len_utf8();
        }
        if end == 0 {
            break;
        }
        buf.set_stringn(x, y, &rest[..end], usize::from(w), style);
        rest = &rest[end..];
        y += 1;
    }
    y
}

/// Where the cursor blinks in the form: at the focused field's cursor.
pub fn form_cursor(model: &Model, screen: Rect) -> Option<(u16, u16)> {
    let f: &RunForm = model.form.as_ref()?;
    if !matches!(f.phase, Phase::Editing) {
        return None;
    }
    let inner = layout::body_inner(screen);
    let iw = input_width(inner);
    let field = f.focused()?;
    let y = inner.y + u16::try_from(f.focus).ok()?;
    if y >= inner.y + inner.height {
        return None;
    }
    let x = inner.x + 1 + LABEL_WIDTH + 1 + window_at(&field.value, f.cursor(), iw).1;
    Some((x, y))
}

// ---------------------------------------------------------------------------------------------
// Overlays

/// A centred rectangle of at most `w`×`h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup(buf: &mut Buffer, area: Rect, title: &str, theme: &Theme) -> Rect {
    Clear.render(area, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.key())
        .title(Line::from(Span::styled(
            format!(" {title} "),
            theme.title(),
        )));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// The sections of the help for a view: its own keys, the global ones, the input line's.
pub fn help_sections(view: View) -> Vec<(&'static str, &'static [Binding])> {
    let mut sections = vec![(view.word(), keys::of_view(view))];
    match view {
        View::Run => {}
        View::Containers => {
            sections.push(("everywhere", keys::GLOBAL));
            sections.push(("filter (/) and command (:) line", keys::INPUT));
            sections.push(("remove confirmation", keys::CONFIRM));
        }
        View::Logs => {
            sections.push(("everywhere", keys::GLOBAL));
            sections.push(("search (/) and command (:) line", keys::INPUT));
        }
        View::Services => {
            sections.push(("everywhere", keys::GLOBAL));
            sections.push(("scale (s) and command (:) line", keys::INPUT));
            sections.push(("remove confirmation", keys::CONFIRM));
        }
        _ => {
            sections.push(("everywhere", keys::GLOBAL));
            sections.push(("command (:) line", keys::INPUT));
        }
    }
    sections
}

/// The help's lines, for drawing and for knowing how far it scrolls.
fn help_lines(view: View) -> Vec<(Option<&'static str>, &'static str)> {
    let mut lines = Vec::new();
    for (i, (title, bindings)) in help_sections(view).into_iter().enumerate() {
        if i > 0 {
            lines.push((None, ""));
        }
        lines.push((None, title));
        for b in bindings {
            lines.push((Some(b.label), b.help));
        }
    }
    lines
}

pub fn help(buf: &mut Buffer, screen: Rect, model: &Model, scroll: usize, theme: &Theme) {
    let lines = help_lines(model.view);
    let area = centered(screen, 64, lines.len() as u16 + 2);
    let inner = popup(
        buf,
        area,
        &format!("keys: {} (esc closes)", model.view.word()),
        theme,
    );
    let rows = usize::from(inner.height);
    let scroll = scroll.min(lines.len().saturating_sub(rows));
    for (i, (key, text)) in lines.iter().skip(scroll).take(rows).enumerate() {
        let y = inner.y + i as u16;
        match key {
            None => {
                put(
                    buf,
                    inner.x + 1,
                    y,
                    text,
                    inner.width.saturating_sub(1),
                    theme.title(),
                );
            }
            Some(key) => {
                put(buf, inner.x + 2, y, key, 14, theme.key());
                put(
                    buf,
                    inner.x + 17,
                    y,
                    text,
                    inner.width.saturating_sub(18),
                    theme.base(),
                );
            }
        }
    }
    if lines.len() > rows {
        let more = format!(" ↑↓ {}-{} of {} ", scroll + 1, scroll + rows, lines.len());
        let x = area.x + area.width.saturating_sub(width(&more) as u16 + 1);
        put(
            buf,
            x,
            area.y + area.height - 1,
            &more,
            area.width,
            theme.dim(),
        );
    }
}

pub fn confirm(buf: &mut Buffer, screen: Rect, c: &Confirm, theme: &Theme) {
    let area = centered(screen, 56, 8);
    let inner = popup(buf, area, "remove", theme);
    let question = match (&c.service, c.targets.len()) {
        (Some(name), 0) => format!("Remove service {name}?"),
        (Some(name), 1) => format!("Remove service {name} and its replica?"),
        (Some(name), n) => format!("Remove service {name} and its {n} replicas?"),
        (None, 1) => "Remove this container?".to_owned(),
        (None, n) => format!("Remove these {n} containers?"),
    };
    put(
        buf,
        inner.x + 2,
        inner.y,
        &question,
        inner.width.saturating_sub(2),
        theme.bold(),
    );
    let names: Vec<&str> = c.targets.iter().map(|t| t.label()).collect();
    put(
        buf,
        inner.x + 2,
        inner.y + 1,
        &names.join(", "),
        inner.width.saturating_sub(3),
        theme.base(),
    );
    if c.service.is_some() {
        put(
            buf,
            inner.x + 2,
            inner.y + 2,
            "Its replicas are removed on every node.",
            inner.width.saturating_sub(3),
            theme.warn(),
        );
    } else if c.running > 0 {
        let note = if c.targets.len() == 1 {
            "It is running: it will be killed first.".to_owned()
        } else {
            format!("{} of them run: they will be killed first.", c.running)
        };
        put(
            buf,
            inner.x + 2,
            inner.y + 2,
            &note,
            inner.width.saturating_sub(3),
            theme.warn(),
        );
    }
    let (cancel, remove) = if c.on_remove {
        (theme.base(), theme.selected())
    } else {
        (theme.selected(), theme.base())
    };
    let buttons = [
        Span::styled("[ Cancel ]", cancel),
        Span::raw("   "),
        Span::styled("[ Remove ]", remove),
    ];
    let bw = 23;
    let x = inner.x + inner.width.saturating_sub(bw) / 2;
    put_spans(
        buf,
        x,
        inner.y + 4.min(inner.height.saturating_sub(1)),
        &buttons,
        inner.width,
    );
}
