//! The logs view: the buffer's lines from the model's position, stderr marked in the gutter,
//! search matches highlighted, long lines cut or wrapped.

use super::theme::Theme;
use super::{body_block, put};
use crate::tui::layout;
use crate::tui::model::Model;
use crate::tui::model::logs::{LogEntry, LogView, StreamStatus, find_ci};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;

/// The gutter mark of a stderr line.
pub const STDERR_MARK: &str = "▌";
/// The same in monochrome, where colour cannot tell the streams apart.
pub const STDERR_MARK_MONO: &str = "!";

fn title<'a>(l: &'a LogView, theme: &Theme) -> Vec<Span<'a>> {
    let what = match &l.service {
        Some(service) => format!("logs of service {service} (every replica)"),
        None => format!("logs {}", l.name),
    };
    let mut t = vec![Span::styled(what, theme.title())];
    if !l.node.is_empty() {
        t.push(Span::styled(format!(" @ {}", l.node), theme.title()));
    }
    if l.follow {
        t.push(Span::styled(" · following", theme.ok()));
    } else {
        t.push(Span::styled(
            format!(" · paused +{}", l.new_while_paused),
            theme.warn(),
        ));
    }
    if l.wrap {
        t.push(Span::raw(" · wrap"));
    }
    if l.timestamps {
        t.push(Span::raw(" · time"));
    }
    if !l.search.needle.is_empty() {
        let pos = match l.match_position() {
            Some((i, n)) => format!("{i}/{n}"),
            None => format!("{} matches", l.search.matches.len()),
        };
        t.push(Span::styled(
            format!(" · /{} {pos}", l.search.needle),
            theme.warn(),
        ));
    }
    let b = &l.buffer;
    let mut lines = format!(" · {}/{} lines", b.len(), b.capacity());
    if b.dropped() > 0 {
        lines.push_str(&format!(", {} dropped", b.dropped()));
    }
    t.push(Span::styled(lines, theme.dim()));
    match &l.status {
        StreamStatus::Opening => t.push(Span::styled(" · opening…", theme.dim())),
        StreamStatus::Streaming => {}
        StreamStatus::Ended(None) => t.push(Span::styled(" · ended", theme.dim())),
        StreamStatus::Ended(Some(e)) => t.push(Span::styled(format!(" · {e}"), theme.error())),
    }
    t
}

/// The styled pieces of one line: timestamp, then text split around search matches.
fn pieces<'a>(l: &LogView, seq: u64, entry: &'a LogEntry, theme: &Theme) -> Vec<Span<'a>> {
    let mut spans = Vec::new();
    if l.timestamps {
        spans.push(Span::styled(
            format!("{} ", entry.timestamp()),
            theme.timestamp(),
        ));
    }
    let base = if entry.stderr {
        theme.stderr_text()
    } else {
        theme.base()
    };
    let text: &str = &entry.text;
    let needle = l.search.needle.as_str();
    let mut at = 0;
    if !needle.is_empty() {
        let hit = if l.search.current == Some(seq) {
            theme.current_match()
        } else {
            theme.search_match()
        };
        while let Some(start) = find_ci(text, needle, at) {
            let end = start + needle.len();
            if start > at {
                spans.push(Span::styled(&text[at..start], base));
            }
            spans.push(Span::styled(&text[start..end], hit));
            at = end;
        }
    }
    if at < text.len() {
        spans.push(Span::styled(&text[at..], base));
    }
    spans
}

/// Splits pieces into screen rows of `width` columns.
fn wrap_rows<'a>(spans: Vec<Span<'a>>, width: usize) -> Vec<Vec<(String, Style)>> {
    let mut rows: Vec<Vec<(String, Style)>> = vec![Vec::new()];
    let mut used = 0;
    for span in spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = super::width(c.encode_utf8(&mut [0; 4]));
            if used + w > width && used > 0 {
                if !piece.is_empty()
                    && let Some(row) = rows.last_mut()
                {
                    row.push((std::mem::take(&mut piece), span.style));
                }
                rows.push(Vec::new());
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty()
            && let Some(row) = rows.last_mut()
        {
            row.push((piece, span.style));
        }
    }
    rows
}

pub fn logs(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let Some(l) = model.logs.as_ref() else {
        body_block(buf, screen, vec![Span::raw("logs")], theme);
        return;
    };
    body_block(buf, screen, title(l, theme), theme);
    let inner = layout::body_inner(screen);
    let text = layout::log_text(screen);
    let vp = model.log_viewport();
    if l.buffer.is_empty() {
        let message = match &l.status {
            StreamStatus::Opening => "opening the log stream…".to_owned(),
            StreamStatus::Streaming => {
                "nothing printed yet: following, new lines show here as they come".to_owned()
            }
            StreamStatus::Ended(None) => "the container printed nothing".to_owned(),
            StreamStatus::Ended(Some(e)) => format!("no log lines: {e}"),
        };
        put(buf, text.x, text.y, &message, text.width, theme.dim());
        return;
    }
    let width = usize::from(text.width);
    let rows = usize::from(text.height);
    // (seq, pieces of one screen row)
    let mut screen_rows: Vec<(u64, Vec<(String, Style)>)> = Vec::with_capacity(rows);
    let top = l.display_top(vp);
    if !l.wrap {
        for seq in top..l.buffer.end_seq().min(top + rows as u64) {
            if let Some(entry) = l.buffer.get(seq) {
                let row = pieces(l, seq, entry, theme)
                    .into_iter()
                    .map(|s| (s.content.into_owned(), s.style))
                    .collect();
                screen_rows.push((seq, row));
            }
        }
    } else if l.follow {
        // Bottom-aligned: the newest lines, the oldest of them possibly cut at the top.
        let mut seq = l.buffer.end_seq();
        let mut collected: Vec<(u64, Vec<(String, Style)>)> = Vec::new();
        while seq > l.buffer.first_seq() && collected.len() < rows {
            seq -= 1;
            if let Some(entry) = l.buffer.get(seq) {
                let wrapped = wrap_rows(pieces(l, seq, entry, theme), width);
                for row in wrapped.into_iter().rev() {
                    collected.push((seq, row));
                }
            }
        }
        collected.truncate(rows);
        collected.reverse();
        screen_rows = collected;
    } else {
        let mut seq = top;
        while seq < l.buffer.end_seq() && screen_rows.len() < rows {
            if let Some(entry) = l.buffer.get(seq) {
                for row in wrap_rows(pieces(l, seq, entry, theme), width) {
                    screen_rows.push((seq, row));
                }
            }
            seq += 1;
        }
        screen_rows.truncate(rows);
    }
    for (i, (seq, row)) in screen_rows.iter().enumerate() {
        let y = text.y + i as u16;
        if l.buffer.get(*seq).is_some_and(|e| e.stderr) {
            let mark = if theme.color {
                STDERR_MARK
            } else {
                STDERR_MARK_MONO
            };
            buf.set_stringn(inner.x, y, mark, 1, theme.stderr_mark());
        }
        let mut x = text.x;
        let end = text.x + text.width;
        for (piece, style) in row {
            if x >= end {
                break;
            }
            x = put(buf, x, y, piece, end - x, *style);
        }
    }
}
