//! Snapshot tests: every view drawn on a `TestBackend` from fixed data, as text. Colours are
//! checked apart (a snapshot shows only the characters).

use super::*;
use crate::tui::conn::ConnEvent;
use crate::tui::fixtures::{self, NOW_MS};
use crate::tui::model::{Effect, Msg};
use berth_proto::v1 as pb;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

fn terminal(model: &Model) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(model.size.width, model.size.height))
        .expect("a test terminal");
    terminal.draw(|frame| draw(frame, model)).expect("drawn");
    terminal
}

/// The screen as text, one line per row, trailing blanks cut.
fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen(model: &Model) -> String {
    text(terminal(model).backend().buffer())
}

fn key(m: &mut Model, code: KeyCode) -> Vec<Effect> {
    m.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(m: &mut Model, s: &str) {
    for c in s.chars() {
        key(m, KeyCode::Char(c));
    }
}

fn containers(color: bool, w: u16, h: u16) -> Model {
    let mut m = fixtures::small(color, w, h);
    typed(&mut m, "c");
    m
}

/// The logs of `db` with numbered lines, every fifth on stderr.
fn logs(w: u16, h: u16, n: usize) -> Model {
    let mut m = containers(true, w, h);
    typed(&mut m, "jj");
    let effects = key(&mut m, KeyCode::Char('l'));
    let Some(Effect::OpenLogs { stream, .. }) = effects.first().cloned() else {
        panic!("{effects:?}");
    };
    let lines = (1..=n)
        .map(|i| pb::LogLine {
            stream: if i % 5 == 0 { 2 } else { 1 },
            timestamp_unix_ns: (NOW_MS + i as i64 * 1_250) * 1_000_000,
            line: if i % 5 == 0 {
                format!("err {i}: upstream timed out").into_bytes()
            } else if i == 7 {
                format!("line {i}: {}", "a long line that goes on and on ".repeat(5)).into_bytes()
            } else {
                format!("line {i}: GET /api/items/{i} 200").into_bytes()
            },
        })
        .collect();
    m.update(Msg::LogLines { stream, lines });
    m.settle();
    m
}

#[test]
fn nodes_view() {
    insta::assert_snapshot!("nodes_120x40", screen(&fixtures::small(true, 120, 40)));
}

#[test]
fn nodes_view_at_80x24_drops_columns() {
    insta::assert_snapshot!("nodes_80x24", screen(&fixtures::small(true, 80, 24)));
}

#[test]
fn containers_view() {
    insta::assert_snapshot!("containers_120x40", screen(&containers(true, 120, 40)));
}

#[test]
fn containers_view_at_80x24_drops_low_priority_columns() {
    let s = screen(&containers(true, 80, 24));
    assert!(!s.contains("PORTS") && !s.contains(" ID "), "{s}");
    insta::assert_snapshot!("containers_80x24", s);
}

#[test]
fn containers_filtered_sorted_and_marked() {
    let mut m = containers(true, 120, 30);
    typed(&mut m, "C/web");
    key(&mut m, KeyCode::Enter);
    typed(&mut m, " ");
    insta::assert_snapshot!("containers_filtered", screen(&m));
}

#[test]
fn containers_of_one_node_with_the_filter_being_typed() {
    let mut m = fixtures::small(true, 100, 20);
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "/ru");
    insta::assert_snapshot!("containers_scoped_typing", screen(&m));
}

#[test]
fn monochrome_uses_no_colour_and_stays_readable() {
    let mut m = containers(false, 100, 24);
    typed(&mut m, " ");
    let t = terminal(&m);
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    // The selection shows as reverse video, the mark as a character.
    let rows = crate::tui::layout::table_rows(m.size);
    let selected = &buf[(rows.x + 4, rows.y + 1)];
    assert!(
        selected.modifier.contains(Modifier::REVERSED),
        "{selected:?}"
    );
    assert_eq!(buf[(rows.x, rows.y)].symbol(), "●");
    insta::assert_snapshot!("containers_monochrome", text(buf));

    let nodes = fixtures::small(false, 100, 24);
    let t = terminal(&nodes);
    assert!(
        t.backend()
            .buffer()
            .content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    insta::assert_snapshot!("nodes_monochrome", text(t.backend().buffer()));
}

#[test]
fn colour_marks_states() {
    let m = containers(true, 120, 40);
    let t = terminal(&m);
    let buf = t.backend().buffer();
    let find = |needle: &str| -> Option<(u16, u16)> {
        for y in 0..buf.area.height {
            let line: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect();
            if let Some(i) = line.find(needle) {
                return Some((line[..i].chars().count() as u16, y));
            }
        }
        None
    };
    let (x, y) = find("created").expect("a created container");
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
    // The restarting one is on gamma, which is down: its last state is not vouched for, so it
    // is dimmed, marked `?`, and its status says why — never coloured as live.
    let (x, y) = find("restartin").expect("the container on the down node");
    assert!(
        !matches!(buf[(x, y)].fg, Color::Yellow | Color::Green),
        "{:?}",
        buf[(x, y)].fg
    );
    assert!(find("node down?").is_some(), "its status says why, whole");
    assert!(find("restarting?").is_some(), "the mark is not cut off");
    let nodes = fixtures::small(true, 120, 40);
    let t = terminal(&nodes);
    let buf = t.backend().buffer();
    let line = |y: u16| -> String {
        (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_owned())
            .collect()
    };
    let y = (3..buf.area.height)
        .find(|&y| line(y).contains("down"))
        .expect("a down node");
    let x = line(y)
        .find("down")
        .map(|i| line(y)[..i].chars().count() as u16)
        .expect("x");
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

#[test]
fn the_logs_of_a_container_that_printed_nothing_say_so() {
    let mut m = containers(true, 100, 24);
    let effects = key(&mut m, KeyCode::Char('l'));
    let Some(Effect::OpenLogs { stream, .. }) = effects.first().cloned() else {
        panic!("{effects:?}");
    };
    assert!(screen(&m).contains("opening the log stream"));
    m.update(Msg::LogOpened { stream });
    let open = screen(&m);
    assert!(open.contains("nothing printed yet"), "{open}");
    assert!(!open.contains("opening the log stream"), "{open}");
    m.update(Msg::LogEnded {
        stream,
        error: None,
    });
    assert!(screen(&m).contains("the container printed nothing"));
}

#[test]
fn logs_following_with_stderr_marked() {
    insta::assert_snapshot!("logs_follow", screen(&logs(100, 24, 60)));
}

#[test]
fn logs_paused_with_search_matches() {
    let mut m = logs(100, 24, 60);
    typed(&mut m, "/err 1");
    key(&mut m, KeyCode::Enter);
    insta::assert_snapshot!("logs_search", screen(&m));
    let t = terminal(&m);
    let buf = t.backend().buffer();
    let highlighted = buf
        .content()
        .iter()
        .filter(|c| c.bg == Color::Yellow || c.bg == Color::LightMagenta)
        .count();
    assert!(
        highlighted >= 5 * 2,
        "matches are highlighted ({highlighted} cells)"
    );
}

#[test]
fn logs_wrapped_with_timestamps() {
    let mut m = logs(80, 24, 12);
    typed(&mut m, "wt");
    insta::assert_snapshot!("logs_wrap_time", screen(&m));
}

#[test]
fn detail_view() {
    let mut m = containers(true, 100, 30);
    typed(&mut m, "jj");
    let effects = key(&mut m, KeyCode::Enter);
    let Some(Effect::Inspect { id }) = effects.first().cloned() else {
        panic!("{effects:?}");
    };
    let mut summary = fixtures::container(3, "db", "beta-long-node-name", "running", 55.0);
    summary.cpus = 1.5;
    summary.memory_limit_bytes = 512 * 1024 * 1024;
    let detail = pb::ContainerDetail {
        summary: Some(summary),
        spec: Some(pb::ContainerSpec {
            image: "registry.local/team/db:1.3".into(),
            name: "db".into(),
            command: vec!["--port".into(), "5432".into()],
            env: vec![pb::EnvVar {
                key: "MODE".into(),
                value: "primary".into(),
            }],
            cpus: 1.5,
            memory_bytes: 512 * 1024 * 1024,
            restart: Some(pb::RestartPolicy {
                kind: pb::restart_policy::Kind::OnFailure as i32,
                max_retries: 3,
            }),
            ..Default::default()
        }),
        runtime_json: r#"{"Id":"abc","State":{"Running":true,"Pid":4242}}"#.into(),
        error: String::new(),
        oom_killed: false,
    };
    m.update(Msg::Inspected {
        id,
        result: Ok(Box::new(detail)),
    });
    insta::assert_snapshot!("detail", screen(&m));
}

#[test]
fn run_form_with_validation_errors() {
    let mut m = containers(true, 100, 24);
    typed(&mut m, "r");
    typed(&mut m, "UPPER/Case");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "-bad");
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "--lines 3");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "A=1 =x");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "99999:80");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "pgdata");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "bad name!");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "0");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "12qq");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "sometimes");
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "zone=east");
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "--node alpha");
    assert!(key(&mut m, KeyCode::Enter).is_empty(), "refused");
    insta::assert_snapshot!("run_form_errors", screen(&m));
}

#[test]
fn run_form_showing_progress() {
    let mut m = containers(true, 100, 24);
    typed(&mut m, "r");
    typed(&mut m, "registry.local/team/app:2");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "app");
    assert_eq!(key(&mut m, KeyCode::Enter).len(), 1);
    use pb::run_event::Event;
    for event in [
        Event::Placed(pb::Placed {
            node: "alpha".into(),
            reason: "spread: least reserved".into(),
        }),
        Event::Pull(pb::PullProgress {
            status: "Pulling from team/app".into(),
            layer: "2".into(),
            current: 0,
            total: 0,
        }),
        Event::Pull(pb::PullProgress {
            status: "Downloading".into(),
            layer: "aaaa".into(),
            current: 3 << 20,
            total: 10 << 20,
        }),
        Event::Pull(pb::PullProgress {
            status: "Pull complete".into(),
            layer: "bbbb".into(),
            current: 0,
            total: 0,
        }),
    ] {
        m.update(Msg::RunProgress(event));
    }
    insta::assert_snapshot!("run_form_progress", screen(&m));
}

#[test]
fn remove_confirmation_defaults_to_cancel() {
    let mut m = containers(true, 100, 24);
    typed(&mut m, "  ");
    m.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('d'),
        KeyModifiers::CONTROL,
    )));
    let t = terminal(&m);
    let s = text(t.backend().buffer());
    insta::assert_snapshot!("confirm_remove", s);
    // "Cancel" is the highlighted button.
    let buf = t.backend().buffer();
    let y = (0..buf.area.height)
        .find(|&y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .contains("[ Cancel ]")
        })
        .expect("buttons");
    let row: Vec<&ratatui::buffer::Cell> = (0..buf.area.width).map(|x| &buf[(x, y)]).collect();
    let cancel_x = row.iter().position(|c| c.symbol() == "C").expect("C");
    let remove_x = row.iter().position(|c| c.symbol() == "R").expect("R");
    assert_eq!(row[cancel_x].bg, Color::Cyan);
    assert_ne!(row[remove_x].bg, Color::Cyan);
}

#[test]
fn help_lists_the_views_keys() {
    let mut m = containers(true, 80, 24);
    typed(&mut m, "?");
    insta::assert_snapshot!("help_containers_80x24", screen(&m));
    let mut m = logs(100, 40, 5);
    typed(&mut m, "?");
    let s = screen(&m);
    for key in ["f ", "w ", "t ", "n ", "N ", "G/end", "/ "] {
        assert!(s.contains(key), "{key:?} missing from\n{s}");
    }
    insta::assert_snapshot!("help_logs", s);
}

#[test]
fn reconnecting_keeps_the_data_dimmed_and_counts_down() {
    let mut m = containers(true, 100, 16);
    m.update(Msg::Conn(ConnEvent::Lost {
        attempt: 3,
        retry_in: std::time::Duration::from_millis(2_400),
        error: "cannot reach agent at 127.0.0.1:7070: connection refused".into(),
    }));
    let t = terminal(&m);
    let buf = t.backend().buffer();
    let s = text(buf);
    assert!(s.contains("reconnecting in 3s (attempt 3)"), "{s}");
    assert!(s.contains("web-1"), "the last data stays");
    let body = crate::tui::layout::areas(m.size).body;
    assert!(
        buf[(body.x + 5, body.y + 2)]
            .modifier
            .contains(Modifier::DIM)
    );
    insta::assert_snapshot!("reconnecting", s);
}

#[test]
fn command_line_shows_completions() {
    let mut m = containers(true, 100, 12);
    typed(&mut m, ":logs web");
    key(&mut m, KeyCode::Tab);
    insta::assert_snapshot!("command_completion", screen(&m));
}

#[test]
fn every_view_draws_at_any_size_without_panicking() {
    for (w, h) in [(1, 1), (5, 2), (12, 4), (30, 8), (80, 24), (250, 80)] {
        let mut models = vec![
            fixtures::small(true, w, h),
            containers(false, w, h),
            logs(w, h, 30),
        ];
        let mut m = containers(true, w, h);
        typed(&mut m, "r");
        models.push(m);
        let mut m = containers(true, w, h);
        key(&mut m, KeyCode::Enter);
        models.push(m);
        let mut m = containers(true, w, h);
        typed(&mut m, "?");
        models.push(m);
        for m in &models {
            let _ = screen(m);
        }
    }
}

#[test]
fn services_view() {
    let (m, _) = fixtures::services_view(true, 120, 24);
    let s = screen(&m);
    insta::assert_snapshot!("services_120x24", s);
    for want in [
        "2/3",
        "converging",
        "global",
        "paused",
        "update to version 2 failed",
    ] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
}

#[test]
fn services_view_at_80x24_keeps_name_replicas_and_state() {
    let (m, _) = fixtures::services_view(true, 80, 24);
    let s = screen(&m);
    insta::assert_snapshot!("services_80x24", s);
    for want in ["NAME", "REPLICAS", "STATE", "2/3"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
}

#[test]
fn services_view_before_the_first_answer_and_when_empty() {
    let mut m = fixtures::small(true, 100, 12);
    let mut effects = Vec::new();
    m.run_command("services", &mut effects);
    assert!(screen(&m).contains("asking for the services…"));
    m.update(Msg::Services(Ok(Vec::new())));
    assert!(screen(&m).contains("no services yet: press r to create one"));
    m.update(Msg::Services(Err("cannot reach 127.0.0.1:7070".into())));
    assert!(screen(&m).contains("cannot reach 127.0.0.1:7070"));
}

#[test]
fn slots_view_shows_each_slot_with_its_error() {
    let (mut m, _) = fixtures::services_view(true, 120, 24);
    typed(&mut m, "G");
    key(&mut m, KeyCode::Enter);
    let s = screen(&m);
    insta::assert_snapshot!("slots_120x24", s);
    for want in [
        "slots of web · 2/3 running · converging · reconciled by alpha",
        "web.2.d4e5f6",
        "pending",
        "no node has 512.0MiB of memory free",
    ] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
}

#[test]
fn scale_prompt_and_service_removal_confirmation() {
    let (mut m, _) = fixtures::services_view(true, 100, 24);
    typed(&mut m, "G");
    typed(&mut m, "s");
    typed(&mut m, "0");
    let s = screen(&m);
    assert!(s.contains("scale web to: 30"), "{s}");
    key(&mut m, KeyCode::Esc);
    m.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('d'),
        KeyModifiers::CONTROL,
    )));
    let s = screen(&m);
    insta::assert_snapshot!("confirm_remove_service", s);
    assert!(s.contains("Remove service web and its 2 replicas?"), "{s}");
}

/// Health shows as Docker's ps writes it, and running but unhealthy is not green.
#[test]
fn an_unhealthy_container_is_not_shown_healthy() {
    let mut m = containers(true, 200, 40);
    let mut sick = fixtures::container(1, "web-1", "alpha", "running", 12.5);
    sick.health = "unhealthy".into();
    m.update(Msg::Watch(pb::WatchEvent {
        event: Some(pb::watch_event::Event::ContainerUpdated(sick)),
    }));
    m.settle();
    let t = terminal(&m);
    let buf = t.backend().buffer();
    let (y, line) = (0..buf.area.height)
        .map(|y| {
            let line: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect();
            (y, line)
        })
        .find(|(_, l)| l.contains("web-1 "))
        .expect("web-1's row");
    assert!(line.contains("(unhealthy)"), "{line}");
    let x = line[..line.find("running").expect("its state")]
        .chars()
        .count() as u16;
    assert_eq!(buf[(x, y)].fg, Color::Red, "{line}");
}

/// Columns fit what they show before anything is cut: in 120 columns a 30-character name is
/// whole, and a column with nothing in it takes no more than its title.
#[test]
fn columns_fit_their_content_before_they_cut_it() {
    let mut m = containers(true, 120, 40);
    let long = "a-thirty-character-name-here-x";
    assert_eq!(long.len(), 30);
    let mut c = fixtures::container(7, long, "alpha", "running", 1.0);
    c.ports.clear();
    m.update(Msg::Watch(pb::WatchEvent {
        event: Some(pb::watch_event::Event::ContainerUpdated(c)),
    }));
    m.settle();
    let s = screen(&m);
    assert!(s.contains(&format!("{long} ")), "the name is whole:\n{s}");

    let col = |title: &str| {
        table::CONTAINER_COLUMNS
            .iter()
            .position(|c| c.title == title)
            .expect("a column")
    };
    // Column index → width, for the columns kept.
    let widths = |content: &[Option<u16>], width: u16| -> std::collections::HashMap<usize, u16> {
        let columns = table::fitted_to_content(&table::CONTAINER_COLUMNS, content);
        table::fit_content(&columns, width).into_iter().collect()
    };
    // NAME 30 wide, PORTS empty everywhere: NAME is whole, and PORTS, the least important,
    // makes way for it rather than keep its 14 columns.
    let mut content = vec![None; table::CONTAINER_COLUMNS.len()];
    content[col("NAME")] = Some(30);
    content[col("PORTS")] = Some(0);
    let w = widths(&content, 118);
    assert_eq!(w.get(&col("NAME")), Some(&30), "{w:?}");
    assert!(w.get(&col("PORTS")).is_none_or(|p| *p <= 6), "{w:?}");
    // With room to spare nothing is dropped and every column has what it wants.
    let wide = widths(&content, 200);
    let columns = table::fitted_to_content(&table::CONTAINER_COLUMNS, &content);
    assert_eq!(wide.len(), columns.len(), "{wide:?}");
    for (i, w) in &wide {
        assert!(*w >= columns[*i].pref, "{}: {wide:?}", columns[*i].title);
    }
}

/// The terminal's cursor stands where the form edits, not always after the text.
#[test]
fn the_form_cursor_follows_the_edit_point() {
    let mut m = containers(true, 100, 30);
    typed(&mut m, "r");
    typed(&mut m, "img");
    let at_end = panels::form_cursor(&m, m.size).expect("a cursor");
    key(&mut m, KeyCode::Left);
    key(&mut m, KeyCode::Left);
    let moved = panels::form_cursor(&m, m.size).expect("a cursor");
    assert_eq!((moved.0 + 2, moved.1), at_end);
}
