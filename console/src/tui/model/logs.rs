//! One container's log lines: a bounded buffer, follow and pause, wrapping, timestamps and
//! search. Positions are sequence numbers (the n-th line received), so a paused view stays on
//! the same lines while new ones arrive and old ones are dropped.

use berth_proto::v1 as pb;
use chrono::{DateTime, SecondsFormat, Utc};
use ratatui::text::Span;
use std::collections::VecDeque;

/// Bytes of one line kept; the rest is cut (and said so), which bounds memory per line.
pub const MAX_LINE_BYTES: usize = 4_096;
/// Width of a timestamp prefix: RFC 3339 with milliseconds, then a space.
pub const TIMESTAMP_WIDTH: usize = 25;

/// One received line, made safe to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stderr: bool,
    pub unix_ns: i64,
    pub text: Box<str>,
}

impl LogEntry {
    pub fn from_proto(line: &pb::LogLine) -> Self {
        Self {
            stderr: line.stream == pb::log_line::Stream::Stderr as i32,
            unix_ns: line.timestamp_unix_ns,
            text: sanitize(&line.line, MAX_LINE_BYTES),
        }
    }

    /// `2026-01-02T03:04:05.678Z`.
    pub fn timestamp(&self) -> String {
        DateTime::<Utc>::from_timestamp_nanos(self.unix_ns)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Columns the line takes unwrapped.
    pub fn width(&self, timestamps: bool) -> usize {
        Span::raw(&*self.text).width() + if timestamps { TIMESTAMP_WIDTH } else { 0 }
    }
}

/// Text a terminal can draw: invalid UTF-8 replaced, escape sequences (colours, cursor moves)
/// dropped, tabs expanded to 8-column stops, other control characters shown as `�`, and at
/// most `max_bytes` of input kept (with a note of how much was cut).
pub fn sanitize(bytes: &[u8], max_bytes: usize) -> Box<str> {
    let kept = &bytes[..bytes.len().min(max_bytes)];
    let text = String::from_utf8_lossy(kept);
    let mut out = String::with_capacity(text.len());
    let mut column = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => {
                let n = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', n));
                column += n;
            }
            '\r' if chars.peek().is_none() => {}
            c if c.is_control() => {
                out.push('\u{fffd}');
                column += 1;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    if bytes.len() > max_bytes {
        out.push_str(&format!(" …[{} more bytes]", bytes.len() - max_bytes));
    }
    out.into_boxed_str()
}

/// The last `capacity` lines, numbered from the first line ever received.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: VecDeque<LogEntry>,
    capacity: usize,
    first_seq: u64,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            first_seq: 0,
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&mut self, entry: LogEntry) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.first_seq += 1;
        }
        self.lines.push_back(entry);
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number of the oldest line kept.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// One past the newest line's sequence number.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.lines.len() as u64
    }

    /// How many lines were dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.first_seq
    }

    pub fn get(&self, seq: u64) -> Option<&LogEntry> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.lines.get(index)
    }
}

/// Where the view is: its size, which wrapping depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub rows: usize,
    /// Columns for the text (after the stderr marker).
    pub width: usize,
}

/// What the log stream is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    Opening,
    Streaming,
    /// The stream ended: the container stopped (`None`) or an error.
    Ended(Option<String>),
}

/// `/` in the logs: a case-insensitive (ASCII) substring, every matching line, and the one
/// `n`/`N` last went to.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub needle: String,
    pub matches: VecDeque<u64>,
    pub current: Option<u64>,
}

/// Byte offset of the first case-insensitive (ASCII) occurrence of `needle` in `hay` at or
/// after `from`. Allocates nothing.
pub fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (from..=h.len() - n.len())
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n) && hay.is_char_boundary(i))
}

#[derive(Debug, Clone)]
pub struct LogView {
    pub container_id: String,
    pub name: String,
    pub node: String,
    /// Set for a service's merged logs: every replica's lines, each prefixed with its slot
    /// and node (`container_id` is then empty).
    pub service: Option<String>,
    /// Which log stream feeds this view: lines of an older stream are ignored.
    pub stream: u64,
    pub buffer: LogBuffer,
    pub follow: bool,
    pub wrap: bool,
    pub timestamps: bool,
    /// The first line shown while paused.
    pub top: u64,
    /// Lines received since the view was paused.
    pub new_while_paused: u64,
    pub search: Search,
    pub status: StreamStatus,
}

impl LogView {
    pub fn new(
        container_id: String,
        name: String,
        node: String,
        stream: u64,
        capacity: usize,
    ) -> Self {
        Self {
            container_id,
            name,
            node,
            service: None,
            stream,
            buffer: LogBuffer::new(capacity),
            follow: true,
            wrap: false,
            timestamps: false,
            top: 0,
            new_while_paused: 0,
            search: Search::default(),
            status: StreamStatus::Opening,
        }
    }

    pub fn push(&mut self, lines: &[pb::LogLine]) {
        for line in lines {
            let entry = LogEntry::from_proto(line);
            let seq = self.buffer.end_seq();
            if !self.search.needle.is_empty()
                && find_ci(&entry.text, &self.search.needle, 0).is_some()
            {
                self.search.matches.push_back(seq);
            }
            self.buffer.push(entry);
        }
        let first = self.buffer.first_seq();
        while self.search.matches.front().is_some_and(|&s| s < first) {
            self.search.matches.pop_front();
        }
        if self.search.current.is_some_and(|c| c < first) {
            self.search.current = None;
        }
        if !self.follow {
            self.new_while_paused += lines.len() as u64;
            self.top = self.top.max(first);
        }
        if self.status == StreamStatus::Opening {
            self.status = StreamStatus::Streaming;
        }
    }

    /// Rows one line takes on screen.
    pub fn height(&self, entry: &LogEntry, width: usize) -> usize {
        if !self.wrap || width == 0 {
            return 1;
        }
        entry.width(self.timestamps).div_ceil(width).max(1)
    }

    /// The first line shown when following: the newest lines that fit.
    pub fn tail_top(&self, vp: Viewport) -> u64 {
        let (first, end) = (self.buffer.first_seq(), self.buffer.end_seq());
        if !self.wrap {
            return end.saturating_sub(vp.rows as u64).max(first);
        }
        let mut used = 0;
        let mut seq = end;
        while seq > first {
            let h = self
                .buffer
                .get(seq - 1)
                .map_or(1, |e| self.height(e, vp.width));
            if used + h > vp.rows {
                break;
            }
            used += h;
            seq -= 1;
        }
        if seq == end && end > first {
            // One line taller than the screen: show (the end of) it.
            seq = end - 1;
        }
        seq
    }

    /// The first line on screen.
    pub fn display_top(&self, vp: Viewport) -> u64 {
        if self.follow {
            self.tail_top(vp)
        } else {
            self.top.clamp(
                self.buffer.first_seq(),
                self.tail_top(vp).max(self.buffer.first_seq()),
            )
        }
    }

    fn pause(&mut self, vp: Viewport) {
        if self.follow {
            self.top = self.tail_top(vp);
            self.follow = false;
            self.new_while_paused = 0;
        }
    }

    /// Scrolling up pauses following.
    pub fn scroll_up(&mut self, n: usize, vp: Viewport) {
        self.pause(vp);
        self.top = self
            .top
            .saturating_sub(n as u64)
            .max(self.buffer.first_seq());
    }

    /// Scrolling down stops at the newest line; it does not resume following (`G` does).
    pub fn scroll_down(&mut self, n: usize, vp: Viewport) {
        if self.follow {
            return;
        }
        self.top = (self.top + n as u64).min(self.tail_top(vp));
    }

    pub fn to_oldest(&mut self, vp: Viewport) {
        self.pause(vp);
        self.top = self.buffer.first_seq();
    }

    pub fn resume(&mut self) {
        self.follow = true;
        self.new_while_paused = 0;
    }

    pub fn toggle_follow(&mut self, vp: Viewport) {
        if self.follow {
            self.pause(vp);
        } else {
            self.resume();
        }
    }

    /// Sets the search text; matches are found over the whole buffer once, then kept up to date
    /// as lines arrive.
    pub fn set_search(&mut self, text: &str) {
        if text == self.search.needle {
            return;
        }
        self.search.needle.clear();
        self.search.needle.push_str(text);
        self.search.matches.clear();
        self.search.current = None;
        if text.is_empty() {
            return;
        }
        for seq in self.buffer.first_seq()..self.buffer.end_seq() {
            if let Some(entry) = self.buffer.get(seq)
                && find_ci(&entry.text, text, 0).is_some()
            {
                self.search.matches.push_back(seq);
            }
        }
    }

    /// Goes to the next (or previous) matching line, wrapping around; pauses following so the
    /// match stays on screen. Returns what to tell the user, if anything.
    pub fn jump(&mut self, forward: bool, vp: Viewport) -> Option<String> {
        if self.search.needle.is_empty() {
            return Some("no search: press / first".to_owned());
        }
        let matches = &self.search.matches;
        if matches.is_empty() {
            return Some(format!("no line matches {:?}", self.search.needle));
        }
        let here = self
            .search
            .current
            .unwrap_or_else(|| self.display_top(vp).saturating_sub(u64::from(forward)));
        let mut wrapped = false;
        let target = if forward {
            let i = matches.partition_point(|&s| s <= here);
            matches.get(i).copied().or_else(|| {
                wrapped = true;
                matches.front().copied()
            })
        } else {
            let i = matches.partition_point(|&s| s < here);
            i.checked_sub(1)
                .and_then(|i| matches.get(i).copied())
                .or_else(|| {
                    wrapped = true;
                    matches.back().copied()
                })
        }?;
        self.search.current = Some(target);
        self.pause(vp);
        // The match a third of the way down, so what led to it shows too.
        self.top = target
            .saturating_sub((vp.rows / 3) as u64)
            .max(self.buffer.first_seq())
            .min(self.tail_top(vp));
        wrapped.then(|| {
            if forward {
                "search wrapped to the oldest line".to_owned()
            } else {
                "search wrapped to the newest line".to_owned()
            }
        })
    }

    /// `3/20`: which match is current, of how many.
    pub fn match_position(&self) -> Option<(usize, usize)> {
        let current = self.search.current?;
        let i = self.search.matches.partition_point(|&s| s < current);
        Some((i + 1, self.search.matches.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn line(text: &str, stderr: bool) -> pb::LogLine {
        pb::LogLine {
            stream: if stderr {
                pb::log_line::Stream::Stderr as i32
            } else {
                pb::log_line::Stream::Stdout as i32
            },
            timestamp_unix_ns: 1_767_225_600_000_000_000,
            line: text.as_bytes().to_vec(),
        }
    }

    fn view(capacity: usize, n: usize) -> LogView {
        let mut v = LogView::new("id".into(), "web".into(), "a".into(), 1, capacity);
        let lines: Vec<_> = (1..=n).map(|i| line(&format!("line {i}"), false)).collect();
        v.push(&lines);
        v
    }

    const VP: Viewport = Viewport {
        rows: 10,
        width: 40,
    };

    #[test]
    fn the_buffer_keeps_only_the_newest_lines() {
        let v = view(100, 250);
        assert_eq!(v.buffer.len(), 100);
        assert_eq!(v.buffer.first_seq(), 150);
        assert_eq!(v.buffer.dropped(), 150);
        assert_eq!(v.buffer.get(150).map(|e| &*e.text), Some("line 151"));
        assert_eq!(v.buffer.get(249).map(|e| &*e.text), Some("line 250"));
        assert!(v.buffer.get(149).is_none());
    }

    #[test]
    fn follow_shows_the_tail_and_scrolling_up_pauses_it() {
        let mut v = view(1000, 100);
        assert!(v.follow);
        assert_eq!(v.display_top(VP), 90);
        v.scroll_up(5, VP);
        assert!(!v.follow);
        assert_eq!(v.display_top(VP), 85);
        v.push(&[line("more", false)]);
        assert_eq!(
            v.display_top(VP),
            85,
            "paused: new lines do not move the view"
        );
        assert_eq!(v.new_while_paused, 1);
        v.scroll_down(100, VP);
        assert_eq!(v.display_top(VP), 91, "stops at the end");
        assert!(!v.follow, "scrolling down does not resume");
        v.resume();
        v.push(&[line("again", false)]);
        assert_eq!(v.display_top(VP), 92);
        v.toggle_follow(VP);
        assert!(!v.follow);
        v.toggle_follow(VP);
        assert!(v.follow);
    }

    #[test]
    fn a_paused_view_moves_when_its_lines_are_dropped() {
        let mut v = view(20, 20);
        v.to_oldest(VP);
        assert_eq!(v.display_top(VP), 0);
        let more: Vec<_> = (0..5).map(|i| line(&format!("x{i}"), false)).collect();
        v.push(&more);
        assert_eq!(v.display_top(VP), 5, "the oldest kept line");
    }

    #[test]
    fn wrapping_counts_rows_per_line() {
        let mut v = view(100, 0);
        v.wrap = true;
        v.push(&[
            line(&"a".repeat(100), false),
            line("b", false),
            line("c", false),
        ]);
        let vp = Viewport { rows: 4, width: 40 };
        assert_eq!(v.height(v.buffer.get(0).expect("line"), 40), 3);
        assert_eq!(
            v.tail_top(vp),
            1,
            "the long line does not fit beside the two short ones"
        );
        let vp = Viewport { rows: 5, width: 40 };
        assert_eq!(v.tail_top(vp), 0);
        v.timestamps = true;
        assert_eq!(v.height(v.buffer.get(1).expect("line"), 40), 1);
        assert_eq!(v.height(v.buffer.get(0).expect("line"), 40), 4);
    }

    #[test]
    fn search_finds_next_and_previous_and_wraps() {
        let mut v = view(1000, 100);
        v.set_search("LINE 5");
        assert_eq!(
            v.search.matches.iter().copied().collect::<Vec<_>>(),
            [4, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58]
        );
        // From the top of the screen (following: line 91), forward wraps to the first.
        assert_eq!(
            v.jump(true, VP).as_deref(),
            Some("search wrapped to the oldest line")
        );
        assert_eq!(v.search.current, Some(4));
        assert!(!v.follow);
        assert_eq!(v.match_position(), Some((1, 11)));
        assert_eq!(v.jump(true, VP), None);
        assert_eq!(v.search.current, Some(49));
        let top = v.display_top(VP);
        assert!((top..top + 10).contains(&49), "the match is on screen");
        v.jump(false, VP);
        assert_eq!(v.search.current, Some(4));
        v.jump(false, VP);
        assert_eq!(v.search.current, Some(58), "wrapped to the newest");
        v.push(&[line("line 5000", false)]);
        assert_eq!(
            v.search.matches.back(),
            Some(&100),
            "new lines are searched as they come"
        );
        v.set_search("nothing like it");
        assert!(
            v.jump(true, VP)
                .is_some_and(|m| m.contains("no line matches"))
        );
    }

    #[test]
    fn sanitize_strips_escapes_and_controls_and_caps_length() {
        assert_eq!(&*sanitize(b"\x1b[31mred\x1b[0m ok", 100), "red ok");
        assert_eq!(&*sanitize(b"a\tb", 100), "a       b");
        assert_eq!(
            &*sanitize(b"bell\x07 \xff end\r", 100),
            "bell\u{fffd} \u{fffd} end"
        );
        assert_eq!(&*sanitize(b"\x1b]0;title\x07after", 100), "after");
        assert_eq!(&*sanitize(&[b'x'; 10], 4), "xxxx …[6 more bytes]");
    }

    #[test]
    fn find_ci_is_case_insensitive_and_allocation_free() {
        assert_eq!(find_ci("Hello World", "world", 0), Some(6));
        assert_eq!(find_ci("Hello World", "o", 5), Some(7));
        assert_eq!(find_ci("héllo", "llo", 0), Some(3));
        assert_eq!(find_ci("abc", "", 0), None);
    }
}
