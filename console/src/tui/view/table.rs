//! The nodes and containers tables. Only the rows on screen are formatted, and columns that do
//! not fit are dropped, least useful first, instead of wrapping.

use super::theme::Theme;
use super::{body_block, put, width};
use crate::tui::layout;
use crate::tui::model::{Model, SortKey, services};
use berth_proto::v1 as pb;
use berth_shared::quantity::format_bytes;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;

/// A column: its title, the widths it needs and would like, and how early it is dropped
/// (higher `drop_order` goes first).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub min: u16,
    pub pref: u16,
    pub drop_order: u8,
    pub right: bool,
    pub sort: Option<SortKey>,
}

const fn col(title: &'static str, min: u16, pref: u16, drop_order: u8) -> Column {
    Column {
        title,
        min,
        pref,
        drop_order,
        right: false,
        sort: None,
    }
}

const GAP: u16 = 1;

/// Which columns fit in `width`, and how wide each is: drops the columns with the highest
/// `drop_order` until the minimum widths fit, then grows each column to its preferred width,
/// the most important (lowest `drop_order`) first, and gives what is left to the last one.
pub fn fit(columns: &[Column], width: u16) -> Vec<(usize, u16)> {
    fit_among(columns, (0..columns.len()).collect(), width)
}

/// [`fit`] for columns fitted to their content: when the most important column (the name)
/// would still be cut, the least important columns make way for it, one at a time, as long as
/// that shows more of it.
pub fn fit_content(columns: &[Column], width: u16) -> Vec<(usize, u16)> {
    let mut kept: Vec<usize> = (0..columns.len()).collect();
    let mut best = fit_among(columns, kept.clone(), width);
    let first = |fitted: &[(usize, u16)]| {
        fitted
            .iter()
            .find(|(i, _)| columns[*i].drop_order == 0)
            .map(|&(i, w)| (i, w))
    };
    while let Some((i, w)) = first(&best) {
        if w >= columns[i].pref || kept.len() <= 2 {
            break;
        }
        let Some(pos) = (0..kept.len())
            .filter(|&p| kept[p] != i)
            .max_by_key(|&p| columns[kept[p]].drop_order)
        else {
            break;
        };
        kept.remove(pos);
        let next = fit_among(columns, kept.clone(), width);
        best = next;
    }
    best
}

fn fit_among(columns: &[Column], mut kept: Vec<usize>, width: u16) -> Vec<(usize, u16)> {
    let need = |kept: &[usize]| -> u32 {
        kept.iter().map(|&i| u32::from(columns[i].min)).sum::<u32>()
            + u32::from(GAP) * (kept.len().saturating_sub(1) as u32)
    };
    while kept.len() > 1 && need(&kept) > u32::from(width) {
        if let Some(pos) = (0..kept.len()).max_by_key(|&p| columns[kept[p]].drop_order) {
            kept.remove(pos);
        }
    }
    let mut widths: Vec<u16> = kept.iter().map(|&i| columns[i].min).collect();
    let mut spare = u32::from(width).saturating_sub(need(&kept));
    // The most important columns grow to their preferred width first: a name is shown whole
    // before an image's tag is.
    let mut by_importance: Vec<usize> = (0..kept.len()).collect();
    by_importance.sort_by_key(|&p| columns[kept[p]].drop_order);
    for p in by_importance {
        let want = u32::from(columns[kept[p]].pref.saturating_sub(widths[p]));
        let add = want.min(spare);
        widths[p] += add as u16;
        spare -= add;
    }
    if let Some(last) = widths.last_mut() {
        *last = last.saturating_add(spare as u16);
    }
    kept.into_iter().zip(widths).collect()
}

/// The widest a column grows to show its content whole.
const MAX_CONTENT_WIDTH: u16 = 64;

/// The columns with their widths fitted to what they show: `content[i]` is the widest cell of
/// column `i` on screen (`None`: keep its defaults). A column wants its content's width
/// (at least its title's, at most [`MAX_CONTENT_WIDTH`]), and needs no more than that either,
/// so an empty column gives its room to one whose content would be cut.
pub fn fitted_to_content(columns: &[Column], content: &[Option<u16>]) -> Vec<Column> {
    columns
        .iter()
        .zip(content.iter().chain(std::iter::repeat(&None)))
        .map(|(c, w)| match w {
            None => *c,
            Some(w) => {
                let title = width(c.title) as u16 + 1;
                let pref = (*w).max(title).min(MAX_CONTENT_WIDTH.max(c.pref));
                Column {
                    pref,
                    min: c.min.min(pref),
                    ..*c
                }
            }
        })
        .collect()
}

/// Widens `content[i]` to hold `text` (see [`fitted_to_content`]).
fn measure(content: &mut [Option<u16>], i: usize, text: &str) {
    let w = u16::try_from(width(text)).unwrap_or(u16::MAX);
    content[i] = Some(content[i].unwrap_or(0).max(w));
}

/// Draws the header row of a table and returns the x of each kept column.
fn header_row(
    buf: &mut Buffer,
    area: Rect,
    columns: &[Column],
    fitted: &[(usize, u16)],
    sort: Option<(SortKey, bool)>,
    theme: &Theme,
) -> Vec<u16> {
    let style = theme.column_header();
    let mut xs = Vec::with_capacity(fitted.len());
    let mut x = area.x;
    for &(i, w) in fitted {
        xs.push(x);
        let c = &columns[i];
        let mut title = c.title.to_owned();
        if let (Some(key), Some((by, descending))) = (c.sort, sort)
            && key == by
        {
            title.push(if descending { '↓' } else { '↑' });
        }
        let tx = if c.right {
            x + w.saturating_sub(width(&title) as u16)
        } else {
            x
        };
        put(buf, tx, area.y, &title, w, style);
        x = x.saturating_add(w + GAP);
    }
    xs
}

fn cell(buf: &mut Buffer, x: u16, y: u16, w: u16, column: &Column, text: &str, style: Style) {
    let tx = if column.right {
        x + w.saturating_sub(width(text) as u16)
    } else {
        x
    };
    put(buf, tx, y, text, w, style);
}

// ---------------------------------------------------------------------------------------------
// Containers

const MARK_WIDTH: u16 = 2;

pub static CONTAINER_COLUMNS: [Column; 9] = [
    Column {
        sort: Some(SortKey::Id),
        ..col("ID", 12, 12, 7)
    },
    Column {
        sort: Some(SortKey::Name),
        ..col("NAME", 10, 24, 0)
    },
    Column {
        sort: Some(SortKey::Image),
        ..col("IMAGE", 14, 28, 5)
    },
    Column {
        sort: Some(SortKey::Node),
        ..col("NODE", 10, 16, 3)
    },
    Column {
        sort: Some(SortKey::State),
        ..col("STATE", 11, 11, 1)
    },
    Column {
        sort: Some(SortKey::Age),
        ..col("STATUS", 14, 32, 4)
    },
    Column {
        sort: Some(SortKey::Cpu),
        right: true,
        ..col("CPU%", 6, 6, 2)
    },
    Column {
        sort: Some(SortKey::Memory),
        right: true,
        ..col("MEM", 9, 10, 6)
    },
    Column {
        sort: Some(SortKey::Ports),
        ..col("PORTS", 14, 30, 8)
    },
];

pub fn containers(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let c = &model.containers;
    let (key, descending) = c.sort();
    let mut title = vec![Span::styled("containers", theme.title())];
    if let Some(node) = c.scope() {
        title.push(Span::styled(format!(" on {node}"), theme.title()));
    }
    title.push(Span::raw(format!(" [{}/{}]", c.visible_len(), c.len())));
    title.push(Span::styled(
        format!(" sort {}{}", key.word(), if descending { "↓" } else { "↑" }),
        theme.dim(),
    ));
    if !c.filter().is_empty() {
        title.push(Span::styled(
            format!(" /{}", model.filter_input),
            theme.warn(),
        ));
    }
    if !model.marks.is_empty() {
        title.push(Span::styled(
            format!(" {} marked", model.marks.len()),
            theme.marked(),
        ));
    }
    body_block(buf, screen, title, theme);
    let inner = layout::body_inner(screen);
    let rows = layout::table_rows(screen);
    let table_width = inner.width.saturating_sub(MARK_WIDTH);
    let now = model.clock.now();
    let list = model.container_list;
    // What the rows on screen show in the columns whose content varies, to fit them to it.
    let mut content: Vec<Option<u16>> = vec![None; CONTAINER_COLUMNS.len()];
    for row in c.visible_rows(list.offset, usize::from(rows.height)) {
        let s = &row.summary;
        let node = model.nodes.get(&s.node).map(|n| n.status());
        let vouched = berth_shared::time::node_vouches(node);
        let live = vouched && matches!(s.state.as_str(), "running" | "restarting" | "paused");
        for (i, column) in CONTAINER_COLUMNS.iter().enumerate() {
            let text = match column.title {
                "NAME" => s.name.clone(),
                "IMAGE" => s.image.clone(),
                "NODE" => s.node.clone(),
                "STATUS" => berth_shared::time::status_on(s, node, now),
                "PORTS" if live => row.ports.clone(),
                "PORTS" => String::new(),
                _ => continue,
            };
            measure(&mut content, i, &text);
        }
    }
    let columns = fitted_to_content(&CONTAINER_COLUMNS, &content);
    let fitted = fit_content(&columns, table_width);
    let header = Rect {
        x: inner.x + MARK_WIDTH,
        ..inner
    };
    let xs = header_row(
        buf,
        header,
        &columns,
        &fitted,
        Some((key, descending)),
        theme,
    );
    if c.visible_len() == 0 {
        let text = if c.is_empty() {
            "no containers yet: press r to run one"
        } else {
            "no container matches: esc clears the filter"
        };
        put(
            buf,
            rows.x + MARK_WIDTH,
            rows.y,
            text,
            rows.width,
            theme.dim(),
        );
        return;
    }
    for (i, row) in c
        .visible_rows(list.offset, usize::from(rows.height))
        .enumerate()
    {
        let y = rows.y + i as u16;
        let s = &row.summary;
        let marked = model.marks.contains(&s.id);
        if marked {
            buf.set_stringn(rows.x, y, "●", 1, theme.marked());
        }
        // What the view says holds only while the node can vouch for it.
        let node = model.nodes.get(&s.node).map(|n| n.status());
        let vouched = berth_shared::time::node_vouches(node);
        let live = vouched && matches!(s.state.as_str(), "running" | "restarting" | "paused");
        for (&(ci, w), &x) in fitted.iter().zip(&xs) {
            let column = &columns[ci];
            let base = theme.base();
            match column.title {
                "ID" => cell(buf, x, y, w, column, row.short_id(), theme.dim()),
                "NAME" => cell(buf, x, y, w, column, &s.name, theme.bold()),
                "IMAGE" => cell(buf, x, y, w, column, &s.image, base),
                "NODE" => cell(buf, x, y, w, column, &s.node, base),
                "STATE" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &berth_shared::time::state_word(s, node),
                    if vouched {
                        theme.container_health(&s.state, &s.health)
                    } else {
                        theme.dim()
                    },
                ),
                "STATUS" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &berth_shared::time::status_on(s, node, now),
                    match (vouched, s.health.as_str()) {
                        (false, _) => theme.dim(),
                        (true, "unhealthy" | "starting") => {
                            theme.container_health(&s.state, &s.health)
                        }
                        (true, _) => base,
                    },
                ),
                "CPU%" => {
                    let text = if live {
                        format!("{:.1}", s.cpu_percent)
                    } else {
                        "-".into()
                    };
                    cell(buf, x, y, w, column, &text, base);
                }
                "MEM" => {
                    let text = if live {
                        format_bytes(s.memory_bytes)
                    } else {
                        "-".into()
                    };
                    cell(buf, x, y, w, column, &text, base);
                }
                // A container that is not running publishes nothing, as `docker ps -a` shows it.
                _ => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    if live { &row.ports } else { "" },
                    base,
                ),
            }
        }
        if list.offset + i == list.cursor {
            buf.set_style(Rect::new(rows.x, y, rows.width, 1), theme.selected());
        } else if marked {
            buf.set_style(
                Rect::new(rows.x, y, rows.width, 1),
                Style::default().add_modifier(Modifier::ITALIC),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Services

pub static SERVICE_COLUMNS: [Column; 8] = [
    col("NAME", 10, 24, 0),
    col("MODE", 10, 10, 5),
    Column {
        right: true,
        ..col("REPLICAS", 8, 8, 1)
    },
    col("IMAGE", 14, 30, 3),
    col("STATE", 11, 12, 2),
    Column {
        right: true,
        ..col("VERSION", 7, 7, 6)
    },
    Column {
        right: true,
        ..col("AGE", 5, 5, 4)
    },
    col("NOTE", 10, 40, 7),
];

/// The first line of what the services list says when it has no rows.
fn services_placeholder(model: &Model) -> &str {
    let s = &model.services;
    match (&s.error, s.loaded) {
        (Some(e), _) => e,
        (None, false) => "asking for the services…",
        (None, true) => "no services yet: press r to create one",
    }
}

pub fn services(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let s = &model.services;
    let mut title = vec![
        Span::styled("services", theme.title()),
        Span::raw(format!(" [{}]", s.len())),
    ];
    if let Some(e) = &s.error
        && !s.is_empty()
    {
        title.push(Span::styled(format!(" · not refreshed: {e}"), theme.warn()));
    }
    body_block(buf, screen, title, theme);
    let inner = layout::body_inner(screen);
    let rows = layout::table_rows(screen);
    let list = model.service_list;
    let mut content: Vec<Option<u16>> = vec![None; SERVICE_COLUMNS.len()];
    for st in s.rows(list.offset, usize::from(rows.height)) {
        let entry = st.entry.clone().unwrap_or_default();
        for (i, column) in SERVICE_COLUMNS.iter().enumerate() {
            match column.title {
                "NAME" => measure(&mut content, i, &entry.name),
                "IMAGE" => measure(&mut content, i, services::image(st)),
                "NOTE" => measure(&mut content, i, &entry.message),
                _ => {}
            }
        }
    }
    let columns = fitted_to_content(&SERVICE_COLUMNS, &content);
    let fitted = fit_content(&columns, inner.width);
    let xs = header_row(buf, inner, &columns, &fitted, None, theme);
    if s.is_empty() {
        let style = if s.error.is_some() {
            theme.error()
        } else {
            theme.dim()
        };
        put(
            buf,
            rows.x,
            rows.y,
            services_placeholder(model),
            rows.width,
            style,
        );
        return;
    }
    let now = model.clock.wall_ms;
    for (i, st) in s.rows(list.offset, usize::from(rows.height)).enumerate() {
        let y = rows.y + i as u16;
        let entry = st.entry.clone().unwrap_or_default();
        for (&(ci, w), &x) in fitted.iter().zip(&xs) {
            let column = &columns[ci];
            let base = theme.base();
            match column.title {
                "NAME" => cell(buf, x, y, w, column, &entry.name, theme.bold()),
                "MODE" => cell(buf, x, y, w, column, services::mode_word(st), base),
                "REPLICAS" => {
                    let text = format!("{}/{}", st.replicas_running, st.replicas_desired);
                    let style = if st.replicas_running < st.replicas_desired {
                        theme.warn()
                    } else {
                        base
                    };
                    cell(buf, x, y, w, column, &text, style);
                }
                "IMAGE" => cell(buf, x, y, w, column, services::image(st), base),
                "STATE" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &st.state,
                    theme.service_state(&st.state),
                ),
                "VERSION" => cell(buf, x, y, w, column, &entry.version.to_string(), base),
                "AGE" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &age(now - entry.created_unix_ms),
                    base,
                ),
                _ => cell(buf, x, y, w, column, &entry.message, theme.dim()),
            }
        }
        if list.offset + i == list.cursor {
            buf.set_style(Rect::new(rows.x, y, rows.width, 1), theme.selected());
        }
    }
}

pub static SLOT_COLUMNS: [Column; 7] = [
    col("SLOT", 4, 12, 0),
    col("CONTAINER", 12, 30, 1),
    col("ID", 12, 12, 5),
    col("NODE", 10, 16, 2),
    col("STATE", 9, 10, 3),
    Column {
        right: true,
        ..col("VERSION", 7, 7, 6)
    },
    col("ERROR", 10, 50, 4),
];

pub fn slots(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let name = model.slots_of.as_deref().unwrap_or_default();
    let status = model.services.get(name);
    let mut title = vec![Span::styled(format!("slots of {name}"), theme.title())];
    if let Some(st) = status {
        title.push(Span::raw(format!(
            " · {}/{} running · ",
            st.replicas_running, st.replicas_desired
        )));
        title.push(Span::styled(
            st.state.clone(),
            theme.service_state(&st.state),
        ));
        if !st.responsible.is_empty() {
            title.push(Span::styled(
                format!(" · reconciled by {}", st.responsible),
                theme.dim(),
            ));
        }
    }
    body_block(buf, screen, title, theme);
    let inner = layout::body_inner(screen);
    let rows = layout::table_rows(screen);
    let list = model.slot_list;
    let mut content: Vec<Option<u16>> = vec![None; SLOT_COLUMNS.len()];
    for slot in status
        .iter()
        .flat_map(|st| st.slots.iter())
        .skip(list.offset)
        .take(usize::from(rows.height))
    {
        for (i, column) in SLOT_COLUMNS.iter().enumerate() {
            match column.title {
                "SLOT" => measure(&mut content, i, &slot.slot),
                "CONTAINER" => measure(&mut content, i, &slot.container_name),
                "NODE" => measure(&mut content, i, &slot.node),
                "ERROR" => measure(&mut content, i, &slot.error),
                _ => {}
            }
        }
    }
    let columns = fitted_to_content(&SLOT_COLUMNS, &content);
    let fitted = fit_content(&columns, inner.width);
    let xs = header_row(buf, inner, &columns, &fitted, None, theme);
    let Some(st) = status else {
        let text = if model.services.loaded {
            format!("no service named {name}: it was removed, or has not reached this agent")
        } else {
            services_placeholder(model).to_owned()
        };
        put(buf, rows.x, rows.y, &text, rows.width, theme.dim());
        return;
    };
    if st.slots.is_empty() {
        put(
            buf,
            rows.x,
            rows.y,
            "no slots: the service is scaled to 0 or no node meets its constraints",
            rows.width,
            theme.dim(),
        );
        return;
    }
    for (i, slot) in st
        .slots
        .iter()
        .skip(list.offset)
        .take(usize::from(rows.height))
        .enumerate()
    {
        let y = rows.y + i as u16;
        for (&(ci, w), &x) in fitted.iter().zip(&xs) {
            let column = &columns[ci];
            let base = theme.base();
            match column.title {
                "SLOT" => cell(buf, x, y, w, column, &slot.slot, theme.bold()),
                "CONTAINER" => cell(buf, x, y, w, column, &slot.container_name, base),
                "ID" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    crate::output::short_id(&slot.container_id),
                    theme.dim(),
                ),
                "NODE" => cell(buf, x, y, w, column, &slot.node, base),
                "STATE" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &slot.state,
                    theme.container_state(&slot.state),
                ),
                "VERSION" => cell(buf, x, y, w, column, &slot.version.to_string(), base),
                _ => cell(buf, x, y, w, column, &slot.error, theme.error()),
            }
        }
        if list.offset + i == list.cursor {
            buf.set_style(Rect::new(rows.x, y, rows.width, 1), theme.selected());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

pub static NODE_COLUMNS: [Column; 9] = [
    col("NAME", 12, 20, 0),
    col("STATUS", 7, 8, 1),
    Column {
        right: true,
        ..col("CPU%", 6, 6, 2)
    },
    col("CPU 1m", 10, 20, 5),
    col("MEMORY", 17, 32, 3),
    Column {
        right: true,
        ..col("CONTAINERS", 10, 10, 4)
    },
    col("ADDRESS", 15, 21, 7),
    col("LABELS", 10, 40, 8),
    Column {
        right: true,
        ..col("AGE", 5, 5, 6)
    },
];

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last minute of CPU samples as `width` bars, one per time bucket (the highest sample in
/// it); buckets with no sample are blank.
pub fn sparkline(samples: &std::collections::VecDeque<(i64, f64)>, width: usize) -> String {
    let Some(&(newest, _)) = samples.back() else {
        return String::new();
    };
    if width == 0 {
        return String::new();
    }
    let window = crate::tui::model::nodes::CPU_HISTORY_MS;
    let start = newest - window;
    let mut buckets: Vec<Option<f64>> = vec![None; width];
    for &(t, cpu) in samples {
        let offset = (t - start).clamp(0, window);
        let i = ((offset as i128 * width as i128) / (window as i128 + 1)) as usize;
        let b = &mut buckets[i.min(width - 1)];
        *b = Some(b.map_or(cpu, |v: f64| v.max(cpu)));
    }
    buckets
        .into_iter()
        .map(|b| match b {
            None => ' ',
            Some(v) => {
                let level = ((v.clamp(0.0, 100.0) / 100.0) * 7.0).round() as usize;
                SPARKS[level.min(7)]
            }
        })
        .collect()
}

/// Room kept for the memory text beside the bar, so bars line up from row to row.
const MEMORY_TEXT_WIDTH: usize = 17;

/// `█████░░░░░  1.5GiB/8.0GiB`, the bar only when there is room for it.
pub fn memory_bar(used: u64, total: u64, width: usize) -> String {
    if total == 0 {
        return "-".into();
    }
    let text = format!(
        "{:>w$}",
        format!("{}/{}", format_bytes(used), format_bytes(total)),
        w = MEMORY_TEXT_WIDTH
    );
    let bar_width = width.saturating_sub(MEMORY_TEXT_WIDTH + 1);
    if bar_width < 4 {
        return text.trim_start().to_owned();
    }
    let filled = ((u128::from(used.min(total)) * bar_width as u128) / u128::from(total)) as usize;
    format!(
        "{}{} {text}",
        "█".repeat(filled),
        "░".repeat(bar_width - filled)
    )
}

/// `3s`, `4m`, `2h`, `5d`: how old a node's data is.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Data older than this is shown as stale.
pub const STALE_MS: i64 = 30_000;

pub fn nodes(buf: &mut Buffer, screen: Rect, model: &Model, theme: &Theme) {
    let title = vec![
        Span::styled("nodes", theme.title()),
        Span::raw(format!(" [{}]", model.nodes.len())),
    ];
    body_block(buf, screen, title, theme);
    let inner = layout::body_inner(screen);
    let rows = layout::table_rows(screen);
    let fitted = fit(&NODE_COLUMNS, inner.width);
    let xs = header_row(buf, inner, &NODE_COLUMNS, &fitted, None, theme);
    if model.nodes.is_empty() {
        put(
            buf,
            rows.x,
            rows.y,
            "waiting for the cluster's view…",
            rows.width,
            theme.dim(),
        );
        return;
    }
    let list = model.node_list;
    for (i, row) in model
        .nodes
        .rows(list.offset, usize::from(rows.height))
        .enumerate()
    {
        let y = rows.y + i as u16;
        let n = &row.node;
        let stats = n.stats.clone().unwrap_or_default();
        let status = row.status();
        let counts = model.containers.counts(&n.name);
        for (&(ci, w), &x) in fitted.iter().zip(&xs) {
            let column = &NODE_COLUMNS[ci];
            let base = theme.base();
            match column.title {
                "NAME" => cell(buf, x, y, w, column, &n.name, theme.bold()),
                "STATUS" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    // A drained node that is alive says so; one that is not says what it is.
                    if n.drained && status == pb::NodeStatus::Alive {
                        "drained"
                    } else {
                        crate::output::node_status_word(n.status)
                    },
                    if n.drained && status == pb::NodeStatus::Alive {
                        theme.node_status(pb::NodeStatus::Suspect)
                    } else {
                        theme.node_status(status)
                    },
                ),
                "CPU%" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &format!("{:.1}", stats.cpu_percent),
                    base,
                ),
                "CPU 1m" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &sparkline(&row.cpu, usize::from(w)),
                    theme.sparkline(),
                ),
                "MEMORY" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &memory_bar(
                        stats.memory_used_bytes,
                        stats.memory_total_bytes,
                        usize::from(w),
                    ),
                    theme.gauge_fill(),
                ),
                "CONTAINERS" => cell(
                    buf,
                    x,
                    y,
                    w,
                    column,
                    &format!("{}/{}", counts.running, counts.total),
                    base,
                ),
                "ADDRESS" => cell(buf, x, y, w, column, &n.address, base),
                "LABELS" => {
                    let mut labels: Vec<String> =
                        n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    labels.sort();
                    cell(buf, x, y, w, column, &labels.join(","), theme.dim());
                }
                _ => {
                    let ms = row.age_ms(model.clock.mono_ms);
                    let style = if ms > STALE_MS { theme.warn() } else { base };
                    cell(buf, x, y, w, column, &age(ms), style);
                }
            }
        }
        if !n.runtime.as_ref().is_some_and(|r| r.available) && status == pb::NodeStatus::Alive {
            // Alive but without Docker: say so where the eye is.
            let note = " no docker";
            if let Some(&(_, w)) = fitted.first() {
                let x = xs[0] + (width(&n.name) as u16 + 1).min(w);
                if x < xs[0] + w {
                    put(buf, x, y, note.trim_start(), xs[0] + w - x, theme.error());
                }
            }
        }
        if list.offset + i == list.cursor {
            buf.set_style(Rect::new(rows.x, y, rows.width, 1), theme.selected());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_dropped_least_useful_first() {
        let titles = |w| -> Vec<&str> {
            fit(&CONTAINER_COLUMNS, w)
                .into_iter()
                .map(|(i, _)| CONTAINER_COLUMNS[i].title)
                .collect()
        };
        assert_eq!(
            titles(200),
            [
                "ID", "NAME", "IMAGE", "NODE", "STATE", "STATUS", "CPU%", "MEM", "PORTS"
            ]
        );
        assert_eq!(
            titles(96),
            [
                "ID", "NAME", "IMAGE", "NODE", "STATE", "STATUS", "CPU%", "MEM"
            ]
        );
        assert_eq!(
            titles(76),
            ["NAME", "IMAGE", "NODE", "STATE", "STATUS", "CPU%"]
        );
        assert_eq!(titles(40), ["NAME", "NODE", "STATE", "CPU%"]);
        assert_eq!(titles(5), ["NAME"]);
        for w in [40, 76, 118, 198] {
            let used: u16 = fit(&CONTAINER_COLUMNS, w)
                .iter()
                .map(|&(_, cw)| cw + GAP)
                .sum();
            assert_eq!(used - GAP, w, "fills exactly {w}");
        }
    }

    #[test]
    fn sparkline_buckets_the_last_minute() {
        let samples: std::collections::VecDeque<(i64, f64)> =
            [(0, 0.0), (30_000, 50.0), (60_000, 100.0)]
                .into_iter()
                .collect();
        assert_eq!(sparkline(&samples, 3), "▁▅█");
        assert_eq!(sparkline(&samples, 6), "▁ ▅  █");
        assert_eq!(sparkline(&Default::default(), 6), "");
    }

    #[test]
    fn memory_bar_and_age() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(memory_bar(gib, 4 * gib, 26), "██░░░░░░     1.0GiB/4.0GiB");
        assert_eq!(memory_bar(gib, 4 * gib, 14), "1.0GiB/4.0GiB");
        assert_eq!(memory_bar(0, 0, 14), "-");
        assert_eq!(age(1_500), "1s");
        assert_eq!(age(125_000), "2m");
        assert_eq!(age(-5), "0s");
    }
}
