//! Keys and events in, model and effects out.

use super::*;
use crate::tui::fixtures::{self, container};
use crossterm::event::{KeyCode, KeyModifiers, MouseEventKind};

fn key(m: &mut Model, code: KeyCode) -> Vec<Effect> {
    m.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ctrl(m: &mut Model, c: char) -> Vec<Effect> {
    m.update(Msg::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )))
}

/// Types each character as a key press; returns every effect.
fn typed(m: &mut Model, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| key(m, KeyCode::Char(c)))
        .collect()
}

fn watch(m: &mut Model, event: pb::watch_event::Event) {
    m.update(Msg::Watch(pb::WatchEvent { event: Some(event) }));
}

fn shown(m: &Model) -> Vec<String> {
    m.containers
        .visible_rows(0, usize::MAX)
        .map(|r| r.summary.name.clone())
        .collect()
}

fn selected_name(m: &Model) -> Option<String> {
    m.selected_row().map(|r| r.summary.name.clone())
}

/// The small fixture, in the containers view.
fn containers_view() -> Model {
    let mut m = fixtures::small(true, 120, 40);
    typed(&mut m, "c");
    assert_eq!(m.view, View::Containers);
    m
}

#[test]
fn starts_on_nodes_and_enter_shows_that_nodes_containers() {
    let mut m = fixtures::small(true, 120, 40);
    assert_eq!(m.view, View::Nodes);
    assert_eq!(m.selected_node.as_deref(), Some("alpha"));
    key(&mut m, KeyCode::Down);
    assert_eq!(m.selected_node.as_deref(), Some("beta-long-node-name"));
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.view, View::Containers);
    assert_eq!(shown(&m), ["db", "old-worker"]);
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Nodes);
    assert_eq!(m.containers.scope(), None);
    assert_eq!(
        m.selected_node.as_deref(),
        Some("beta-long-node-name"),
        "kept"
    );
}

#[test]
fn filter_applies_as_typed_enter_keeps_it_and_esc_clears_it() {
    let mut m = containers_view();
    typed(&mut m, "/web");
    assert_eq!(m.mode, Mode::Filter);
    assert_eq!(shown(&m), ["web-1", "web-2"]);
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Backspace);
    typed(&mut m, "LPHA");
    assert_eq!(m.filter_input, "wLPHA");
    assert_eq!(shown(&m), Vec::<String>::new());
    ctrl(&mut m, 'u');
    typed(&mut m, "alpha");
    assert_eq!(
        shown(&m),
        ["batch-job", "web-1", "web-2"],
        "node names match"
    );
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(shown(&m).len(), 3, "enter keeps the filter");
    typed(&mut m, "j");
    assert_eq!(
        selected_name(&m).as_deref(),
        Some("web-1"),
        "keys act on the list again"
    );
    key(&mut m, KeyCode::Esc);
    assert_eq!(shown(&m).len(), 6, "esc clears it");
    assert_eq!(m.view, View::Containers, "and only then goes back");
    typed(&mut m, "/db");
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(shown(&m).len(), 6, "esc while typing clears too");
}

#[test]
fn shift_letters_sort_and_the_same_letter_reverses() {
    let mut m = containers_view();
    assert_eq!(m.containers.sort(), (SortKey::Name, false));
    typed(&mut m, "C");
    assert_eq!(m.containers.sort(), (SortKey::Cpu, true));
    assert_eq!(shown(&m)[..3], ["db", "web-1", "web-2"]);
    typed(&mut m, "C");
    assert_eq!(m.containers.sort(), (SortKey::Cpu, false));
    typed(&mut m, "O");
    assert_eq!(m.containers.sort(), (SortKey::Node, false));
    assert_eq!(shown(&m)[0], "batch-job");
    for (letter, sort) in [
        ('N', SortKey::Name),
        ('D', SortKey::Id),
        ('I', SortKey::Image),
        ('S', SortKey::State),
        ('A', SortKey::Age),
        ('M', SortKey::Memory),
        ('P', SortKey::Ports),
    ] {
        typed(&mut m, &letter.to_string());
        assert_eq!(m.containers.sort().0, sort, "{letter}");
    }
}

#[test]
fn the_selection_follows_its_container_through_updates() {
    let mut m = containers_view();
    typed(&mut m, "C");
    typed(&mut m, "gjj");
    assert_eq!(selected_name(&m).as_deref(), Some("web-2"));
    // web-2 becomes the busiest: it moves to the top, and stays selected.
    watch(
        &mut m,
        pb::watch_event::Event::ContainerUpdated(container(2, "web-2", "alpha", "running", 99.0)),
    );
    // A new container arrives above it too.
    watch(
        &mut m,
        pb::watch_event::Event::ContainerUpdated(container(7, "hot", "alpha", "running", 100.0)),
    );
    m.update(Msg::Tick);
    assert_eq!(shown(&m)[..2], ["hot", "web-2"]);
    assert_eq!(selected_name(&m).as_deref(), Some("web-2"));
    assert_eq!(m.container_list.cursor, 1);
    // It goes away: the row now in its place is selected.
    let id = container(2, "", "", "", 0.0).id;
    watch(
        &mut m,
        pb::watch_event::Event::ContainerRemoved(pb::ContainerRemoved {
            id,
            node: "alpha".into(),
        }),
    );
    m.update(Msg::Tick);
    assert_eq!(m.container_list.cursor, 1);
    assert_eq!(selected_name(&m).as_deref(), Some("db"));
    // A fresh snapshot (after a reconnect) keeps it too.
    watch(
        &mut m,
        pb::watch_event::Event::Snapshot(pb::ClusterSnapshot {
            nodes: vec![],
            containers: vec![
                container(3, "db", "beta-long-node-name", "running", 1.0),
                container(9, "zzz", "alpha", "running", 50.0),
            ],
            answered_by: "alpha".into(),
        }),
    );
    m.update(Msg::Tick);
    assert_eq!(shown(&m), ["zzz", "db"]);
    assert_eq!(selected_name(&m).as_deref(), Some("db"));
}

#[test]
fn watch_events_wait_for_the_next_frame_to_be_ordered() {
    let mut m = containers_view();
    let generation = m.containers.generation();
    for i in 0..100 {
        m.update(Msg::Watch(pb::WatchEvent {
            event: Some(pb::watch_event::Event::ContainerUpdated(container(
                100 + i,
                &format!("n{i}"),
                "alpha",
                "running",
                1.0,
            ))),
        }));
    }
    assert_eq!(
        m.containers.generation(),
        generation,
        "not re-sorted per event"
    );
    m.settle();
    assert_eq!(m.containers.visible_len(), 106);
}

#[test]
fn logs_follow_pause_resume_and_stay_bounded() {
    let mut m = containers_view();
    m.config.log_lines = 50;
    typed(&mut m, "jj"); // batch-job, cache, db
    let effects = typed(&mut m, "l");
    let Some(Effect::OpenLogs {
        stream,
        container,
        tail,
    }) = effects.first().cloned()
    else {
        panic!("no OpenLogs in {effects:?}");
    };
    assert_eq!(container, fixtures::container(3, "", "", "", 0.0).id);
    assert_eq!(tail, 50);
    assert_eq!(m.view, View::Logs);
    let lines = |from: usize, n: usize| -> Vec<pb::LogLine> {
        (from..from + n)
            .map(|i| pb::LogLine {
                stream: if i % 10 == 0 { 2 } else { 1 },
                timestamp_unix_ns: 0,
                line: format!("line {i}").into_bytes(),
            })
            .collect()
    };
    m.update(Msg::LogLines {
        stream,
        lines: lines(0, 30),
    });
    // Lines of an older stream are ignored.
    m.update(Msg::LogLines {
        stream: stream + 99,
        lines: lines(0, 30),
    });
    let logs = |m: &Model| m.logs.clone().expect("logs open");
    assert_eq!(logs(&m).buffer.len(), 30);
    assert!(logs(&m).follow);
    typed(&mut m, "k");
    assert!(!logs(&m).follow, "scrolling up pauses");
    let top = logs(&m).display_top(m.log_viewport());
    m.update(Msg::LogLines {
        stream,
        lines: lines(30, 5),
    });
    assert_eq!(
        logs(&m).display_top(m.log_viewport()),
        top,
        "paused: the view holds still"
    );
    assert_eq!(logs(&m).new_while_paused, 5);
    key(&mut m, KeyCode::End);
    assert!(logs(&m).follow, "end resumes");
    typed(&mut m, "f");
    assert!(!logs(&m).follow);
    typed(&mut m, "G");
    assert!(logs(&m).follow);
    // A chatty container: the buffer keeps the newest 50 lines, however many come.
    for batch in 0..100 {
        m.update(Msg::LogLines {
            stream,
            lines: lines(35 + batch * 500, 500),
        });
    }
    let l = logs(&m);
    assert_eq!(l.buffer.len(), 50);
    assert_eq!(l.buffer.dropped(), 50_035 - 50);
    assert_eq!(
        l.buffer.get(l.buffer.end_seq() - 1).map(|e| &*e.text),
        Some("line 50034")
    );
    typed(&mut m, "wt");
    assert!(logs(&m).wrap && logs(&m).timestamps);
    m.update(Msg::LogEnded {
        stream,
        error: None,
    });
    assert_eq!(logs(&m).status, StreamStatus::Ended(None));
    let effects = key(&mut m, KeyCode::Esc);
    assert_eq!(effects, [Effect::CloseLogs]);
    assert_eq!(m.view, View::Containers);
    assert!(m.logs.is_none(), "the buffer is freed");
}

#[test]
fn a_container_that_prints_nothing_is_said_to_have_printed_nothing() {
    let mut m = containers_view();
    let effects = typed(&mut m, "l");
    let Some(Effect::OpenLogs { stream, .. }) = effects.first().cloned() else {
        panic!("no logs");
    };
    let logs = |m: &Model| m.logs.clone().expect("logs open");
    assert_eq!(logs(&m).status, StreamStatus::Opening);
    m.update(Msg::LogOpened { stream });
    assert_eq!(
        logs(&m).status,
        StreamStatus::Streaming,
        "open, with no lines"
    );
    // A late open of an older stream changes nothing.
    m.update(Msg::LogEnded {
        stream,
        error: None,
    });
    m.update(Msg::LogOpened { stream });
    assert_eq!(logs(&m).status, StreamStatus::Ended(None));
}

#[test]
fn log_search_highlights_as_typed_and_n_goes_to_matches() {
    let mut m = containers_view();
    let effects = typed(&mut m, "l");
    let Some(Effect::OpenLogs { stream, .. }) = effects.first().cloned() else {
        panic!("no logs");
    };
    let lines = (0..100)
        .map(|i| pb::LogLine {
            stream: 1,
            timestamp_unix_ns: 0,
            line: format!("request {i} {}", if i % 25 == 0 { "ERROR" } else { "ok" }).into_bytes(),
        })
        .collect();
    m.update(Msg::LogLines { stream, lines });
    typed(&mut m, "/error");
    assert_eq!(m.mode, Mode::Search);
    assert_eq!(m.logs.as_ref().map(|l| l.search.matches.len()), Some(4));
    key(&mut m, KeyCode::Enter);
    let current = |m: &Model| m.logs.as_ref().and_then(|l| l.search.current);
    assert_eq!(
        current(&m),
        Some(75),
        "the first match from the top of the screen"
    );
    typed(&mut m, "n");
    assert_eq!(current(&m), Some(0), "wrapped around");
    assert!(m.flash.as_ref().is_some_and(|f| f.text.contains("wrapped")));
    typed(&mut m, "n");
    assert_eq!(current(&m), Some(25));
    typed(&mut m, "nN");
    assert_eq!(current(&m), Some(25));
    typed(&mut m, "N");
    assert_eq!(current(&m), Some(0));
    assert!(m.logs.as_ref().is_some_and(|l| !l.follow));
}

#[test]
fn stop_acts_on_the_selection_or_the_marks() {
    let mut m = containers_view();
    typed(&mut m, "jj");
    let effects = typed(&mut m, "s");
    assert_eq!(
        effects,
        [Effect::Stop {
            targets: vec![Target {
                id: container(3, "", "", "", 0.0).id,
                name: "db".into()
            }],
            timeout_secs: DEFAULT_STOP_TIMEOUT_SECS
        }]
    );
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.text.contains("SIGKILL after 10s"))
    );
    // Mark two (space moves down), then stop both.
    typed(&mut m, "g  ");
    assert_eq!(m.marks.len(), 2);
    let effects = typed(&mut m, "s");
    let Some(Effect::Stop { targets, .. }) = effects.first() else {
        panic!("{effects:?}");
    };
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["batch-job", "cache"]);
    m.update(Msg::Stopped(vec![
        (targets[0].clone(), Ok(true)),
        (targets[1].clone(), Err("boom".into())),
    ]));
    assert_eq!(m.marks.len(), 1, "the one that failed stays marked");
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.level == Level::Error && f.text.contains("cache: boom"))
    );
    key(&mut m, KeyCode::Esc);
    assert!(m.marks.is_empty(), "esc clears the marks");
}

#[test]
fn remove_asks_first_and_enter_cancels_by_default() {
    let mut m = containers_view();
    let effects = ctrl(&mut m, 'd');
    assert!(effects.is_empty());
    assert!(matches!(&m.mode, Mode::Confirm(c) if !c.on_remove && c.targets.len() == 1));
    let effects = key(&mut m, KeyCode::Enter);
    assert!(effects.is_empty(), "enter on the default button cancels");
    assert_eq!(m.mode, Mode::Normal);
    ctrl(&mut m, 'd');
    assert!(typed(&mut m, "n").is_empty());
    ctrl(&mut m, 'd');
    key(&mut m, KeyCode::Tab);
    let effects = key(&mut m, KeyCode::Enter);
    let Some(Effect::Remove {
        targets,
        force: true,
    }) = effects.first()
    else {
        panic!("{effects:?}");
    };
    assert_eq!(targets[0].name, "batch-job");
    m.update(Msg::Removed(vec![(targets[0].clone(), Ok(()))]));
    m.settle();
    assert!(!shown(&m).contains(&"batch-job".to_owned()));
    ctrl(&mut m, 'd');
    assert!(
        matches!(typed(&mut m, "y").first(), Some(Effect::Remove { .. })),
        "y removes"
    );
    // A running container: the dialog says it is killed first.
    typed(&mut m, "/db");
    key(&mut m, KeyCode::Enter);
    ctrl(&mut m, 'd');
    assert!(matches!(&m.mode, Mode::Confirm(c) if c.running == 1));
}

#[test]
fn the_run_form_checks_fields_sends_the_request_and_selects_the_new_container() {
    let mut m = containers_view();
    typed(&mut m, "r");
    assert_eq!(m.view, View::Run);
    // q and : are text here.
    typed(&mut m, "q:");
    assert!(!m.quit);
    ctrl(&mut m, 'u');
    let effects = key(&mut m, KeyCode::Enter);
    assert!(effects.is_empty());
    let form = m.form.clone().expect("form");
    assert_eq!(
        form.field(form::FieldId::Image).error.as_deref(),
        Some("required")
    );
    typed(&mut m, "img:1");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "new-one");
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "--lines 3");
    // Past env, ports, volumes and network.
    for _ in 0..5 {
        key(&mut m, KeyCode::Tab);
    }
    typed(&mut m, "lots");
    let effects = key(&mut m, KeyCode::Enter);
    assert!(effects.is_empty(), "bad cpus");
    let form = m.form.clone().expect("form");
    assert!(form.field(form::FieldId::Cpus).error.is_some());
    assert_eq!(
        form.focused().map(|f| f.id),
        Some(form::FieldId::Cpus),
        "focus on the bad field"
    );
    ctrl(&mut m, 'u');
    typed(&mut m, "0.5");
    let effects = key(&mut m, KeyCode::Enter);
    let Some(Effect::Run(request)) = effects.first() else {
        panic!("{effects:?}");
    };
    let spec = request.spec.clone().expect("spec");
    assert_eq!(
        (spec.image.as_str(), spec.name.as_str(), spec.cpus),
        ("img:1", "new-one", 0.5)
    );
    assert_eq!(spec.command, ["--lines", "3"]);
    assert!(typed(&mut m, "x").is_empty(), "no editing while it runs");
    m.update(Msg::RunProgress(pb::run_event::Event::Placed(pb::Placed {
        node: "alpha".into(),
        reason: "least loaded".into(),
    })));
    assert!(
        matches!(&m.form.as_ref().expect("form").phase, Phase::Running(p) if p.placed.is_some())
    );
    let new = container(42, "new-one", "alpha", "running", 0.0);
    m.update(Msg::RunFinished(Ok(Some(new.clone()))));
    m.settle();
    assert_eq!(m.view, View::Containers);
    assert!(m.form.is_none());
    assert_eq!(selected_name(&m).as_deref(), Some("new-one"));
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.text == "started new-one on alpha")
    );
}

#[test]
fn a_refused_run_goes_back_to_the_form_with_the_agents_message() {
    let mut m = containers_view();
    typed(&mut m, "r");
    typed(&mut m, "img");
    let effects = key(&mut m, KeyCode::Enter);
    assert_eq!(effects.len(), 1);
    m.update(Msg::RunFinished(Err("no node has room for it".into())));
    let form = m.form.clone().expect("form");
    assert_eq!(form.phase, Phase::Editing);
    assert_eq!(form.error.as_deref(), Some("no node has room for it"));
    assert_eq!(m.view, View::Run);
    // Submitted again, the old error goes: it was about the last try.
    let effects = key(&mut m, KeyCode::Enter);
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert_eq!(m.form.as_ref().and_then(|f| f.error.clone()), None);
    m.update(Msg::RunFinished(Err("no node has room for it".into())));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Containers);
    // From the logs to the detail and back: the logs closed, so back goes past them.
    typed(&mut m, "l");
    typed(&mut m, "d");
    assert_eq!(m.view, View::Detail);
    assert!(m.logs.is_none());
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Containers);
}

#[test]
fn command_mode_switches_views_with_completion() {
    let mut m = fixtures::small(true, 120, 40);
    typed(&mut m, ":co");
    key(&mut m, KeyCode::Tab);
    assert!(matches!(&m.mode, Mode::Command(l) if l.input == "containers"));
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.view, View::Containers);
    typed(&mut m, ":n");
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.view, View::Nodes, "a unique prefix is enough");
    typed(&mut m, ":lo");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "we");
    key(&mut m, KeyCode::Tab);
    match &m.mode {
        Mode::Command(l) => {
            assert_eq!(l.input, "logs web-");
            assert_eq!(l.candidates, ["web-1", "web-2"]);
        }
        other => panic!("{other:?}"),
    }
    typed(&mut m, "2");
    let effects = key(&mut m, KeyCode::Enter);
    assert!(
        matches!(effects.first(), Some(Effect::OpenLogs { .. })),
        "{effects:?}"
    );
    assert_eq!(m.logs.as_ref().map(|l| l.name.as_str()), Some("web-2"));
    typed(&mut m, ":logs nope");
    key(&mut m, KeyCode::Enter);
    assert!(m.flash.as_ref().is_some_and(|f| f.level == Level::Error));
    typed(&mut m, ":run");
    let effects = key(&mut m, KeyCode::Enter);
    assert_eq!(effects, [Effect::CloseLogs]);
    assert_eq!(m.view, View::Run);
    key(&mut m, KeyCode::Esc);
    typed(&mut m, ":bogus");
    key(&mut m, KeyCode::Enter);
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.text.contains("unknown command"))
    );
    typed(&mut m, ":q");
    assert_eq!(key(&mut m, KeyCode::Enter), [Effect::Quit]);
    assert!(m.quit);
}

#[test]
fn help_opens_and_closes_and_quit_keys_quit() {
    let mut m = containers_view();
    typed(&mut m, "?");
    assert_eq!(m.mode, Mode::Help { scroll: 0 });
    typed(&mut m, "jj");
    assert_eq!(m.mode, Mode::Help { scroll: 2 });
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.mode, Mode::Normal);
    assert_eq!(typed(&mut m, "q"), [Effect::Quit]);
    let mut m = containers_view();
    typed(&mut m, "r");
    assert_eq!(
        ctrl(&mut m, 'c'),
        [Effect::Quit],
        "ctrl-c quits from anywhere"
    );
}

#[test]
fn the_last_data_stays_while_reconnecting() {
    let mut m = containers_view();
    m.clock.mono_ms = 5_000;
    m.update(Msg::Conn(ConnEvent::Lost {
        attempt: 2,
        retry_in: std::time::Duration::from_millis(500),
        error: "connection refused".into(),
    }));
    assert_eq!(
        m.conn,
        ConnState::Reconnecting {
            attempt: 2,
            retry_at_ms: 5_500,
            error: "connection refused".into()
        }
    );
    assert_eq!(shown(&m).len(), 6);
    m.update(Msg::Conn(ConnEvent::Connecting));
    m.update(Msg::Conn(ConnEvent::Connected));
    assert!(m.conn.is_connected());
}

#[test]
fn the_mouse_selects_and_scrolls_unless_turned_off() {
    let mut m = containers_view();
    let rows = layout::table_rows(m.size);
    let click = |row: u16| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    m.update(click(rows.y + 2));
    assert_eq!(selected_name(&m).as_deref(), Some("db"));
    m.update(click(rows.y + 30));
    assert_eq!(selected_name(&m).as_deref(), Some("db"), "no row there");
    m.update(Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 10,
        row: 10,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(m.container_list.cursor, 5);
    m.config.mouse = false;
    m.update(click(rows.y));
    assert_eq!(m.container_list.cursor, 5);
}

#[test]
fn flash_messages_fade_then_go() {
    let mut m = containers_view();
    m.flash_info("hello");
    assert_eq!(m.visible_flash().map(|(_, faded)| faded), Some(false));
    m.clock.mono_ms += FLASH_BRIGHT_MS;
    assert_eq!(m.visible_flash().map(|(_, faded)| faded), Some(true));
    m.clock.mono_ms += FLASH_GONE_MS;
    assert!(m.visible_flash().is_none());
}

#[test]
fn detail_loads_and_scrolls() {
    let mut m = containers_view();
    let effects = key(&mut m, KeyCode::Enter);
    let id = container(4, "", "", "", 0.0).id;
    assert_eq!(effects, [Effect::Inspect { id: id.clone() }]);
    assert_eq!(m.view, View::Detail);
    let detail = pb::ContainerDetail {
        summary: Some(container(4, "batch-job", "alpha", "exited", 0.0)),
        runtime_json: format!(
            "{{\"Id\":\"{id}\",\"Many\":[{}]}}",
            (0..100)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        ..Default::default()
    };
    m.update(Msg::Inspected {
        id,
        result: Ok(Box::new(detail)),
    });
    let lines = m.detail.as_ref().map(|d| d.lines().len()).unwrap_or(0);
    assert!(lines > 100, "{lines}");
    typed(&mut m, "G");
    assert_eq!(
        m.detail.as_ref().map(|d| d.scroll),
        Some(lines - m.text_rows())
    );
    typed(&mut m, "g");
    assert_eq!(m.detail.as_ref().map(|d| d.scroll), Some(0));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Containers);
    // From the logs to the detail and back: the logs closed, so back goes past them.
    typed(&mut m, "l");
    typed(&mut m, "d");
    assert_eq!(m.view, View::Detail);
    assert!(m.logs.is_none());
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Containers);
}

// ---------------------------------------------------------------------------------------------
// Services

fn services_view() -> Model {
    let (m, effects) = fixtures::services_view(true, 120, 40);
    assert_eq!(effects, [Effect::ListServices]);
    assert_eq!(m.view, View::Services);
    m
}

#[test]
fn the_services_view_polls_while_shown_one_call_at_a_time() {
    let mut m = fixtures::small(true, 120, 40);
    assert!(
        !m.update(Msg::Tick).contains(&Effect::ListServices),
        "not shown: no poll"
    );
    let effects = typed(&mut m, ":services");
    assert!(effects.is_empty());
    let effects = key(&mut m, KeyCode::Enter);
    assert_eq!(effects, [Effect::ListServices]);
    m.clock.mono_ms += 5_000;
    assert!(m.update(Msg::Tick).is_empty(), "one call at a time");
    m.update(Msg::Services(Ok(fixtures::services())));
    assert!(m.update(Msg::Tick).is_empty(), "answered just now");
    m.clock.mono_ms += services::POLL_MS;
    assert_eq!(m.update(Msg::Tick), [Effect::ListServices]);
    m.update(Msg::Services(Err("agent unreachable".into())));
    assert_eq!(m.services.len(), 3, "the last list stays");
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Nodes);
    m.clock.mono_ms += 10 * services::POLL_MS;
    assert!(
        m.update(Msg::Tick).is_empty(),
        "left the view: no more polls"
    );
}

#[test]
fn services_are_sorted_and_the_selection_follows_the_name() {
    let mut m = services_view();
    let names: Vec<&str> = m.services.names().collect();
    assert_eq!(names, ["agent", "batch", "web"]);
    typed(&mut m, "G");
    assert_eq!(m.selected_service.as_deref(), Some("web"));
    let mut fewer = fixtures::services();
    fewer.retain(|s| services::name(s) != "agent");
    m.update(Msg::Services(Ok(fewer)));
    m.settle();
    assert_eq!(m.selected_service.as_deref(), Some("web"), "kept");
    assert_eq!(m.service_list.cursor, 1);
}

#[test]
fn enter_shows_a_services_slots_and_a_slot_opens_its_container() {
    let mut m = services_view();
    typed(&mut m, "G");
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.view, View::Slots);
    assert_eq!(m.slots_of.as_deref(), Some("web"));
    let slots: Vec<&str> = m.slots().iter().map(|s| s.slot.as_str()).collect();
    assert_eq!(slots, ["1", "2", "3"]);
    key(&mut m, KeyCode::Down);
    let effects = typed(&mut m, "l");
    let Some(Effect::OpenLogs { container, .. }) = effects.first() else {
        panic!("{effects:?}");
    };
    assert_eq!(container, &fixtures::slot_container_id(12));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Slots);
    key(&mut m, KeyCode::Down);
    let effects = key(&mut m, KeyCode::Enter);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Inspect { .. })),
        "the pending slot has no container: {effects:?}"
    );
    assert!(m.flash.is_some());
    key(&mut m, KeyCode::Up);
    let effects = key(&mut m, KeyCode::Enter);
    assert!(effects.contains(&Effect::Inspect {
        id: fixtures::slot_container_id(12)
    }));
    assert_eq!(m.view, View::Detail);
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Services);
    assert_eq!(m.slots_of, None);
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Nodes);
}

#[test]
fn l_merges_every_replicas_logs_with_slot_and_node_prefixes() {
    let mut m = services_view();
    typed(&mut m, "G");
    let effects = typed(&mut m, "l");
    let Some(Effect::OpenMergedLogs { sources, .. }) = effects.first() else {
        panic!("{effects:?}");
    };
    let prefixes: Vec<&str> = sources.iter().map(|s| s.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        ["web.1@alpha | ", "web.2@beta-long-node-name | "],
        "the pending slot has no logs"
    );
    assert_eq!(m.view, View::Logs);
    assert_eq!(
        m.logs.as_ref().and_then(|l| l.service.as_deref()),
        Some("web")
    );
    // `d` in merged logs is about no one container.
    assert!(
        !typed(&mut m, "d")
            .iter()
            .any(|e| matches!(e, Effect::Inspect { .. }))
    );
    let effects = key(&mut m, KeyCode::Esc);
    assert!(effects.contains(&Effect::CloseLogs));
    assert_eq!(m.view, View::Services);
}

#[test]
fn s_scales_with_the_count_typed_and_refuses_what_the_cli_refuses() {
    let mut m = services_view();
    typed(&mut m, "G");
    typed(&mut m, "s");
    assert_eq!(
        m.mode,
        Mode::Scale(ScalePrompt {
            service: "web".into(),
            input: "3".into()
        })
    );
    ctrl(&mut m, 'u');
    typed(&mut m, "5");
    let effects = key(&mut m, KeyCode::Enter);
    assert_eq!(
        effects,
        [Effect::ScaleService {
            name: "web".into(),
            replicas: 5
        }]
    );
    assert_eq!(m.mode, Mode::Normal);
    m.update(Msg::Services(Ok(fixtures::services())));
    let effects = m.update(Msg::ServiceWritten(Ok("scaled web to 5".into())));
    assert_eq!(
        effects,
        [Effect::ListServices],
        "a write asks again at once"
    );
    for bad in ["abc", "-1", "100000"] {
        typed(&mut m, "s");
        ctrl(&mut m, 'u');
        typed(&mut m, bad);
        let effects = key(&mut m, KeyCode::Enter);
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::ScaleService { .. })),
            "{bad}: {effects:?}"
        );
        assert!(
            m.flash
                .as_ref()
                .is_some_and(|f| f.level == Level::Error && f.text.contains("replicas")),
            "{bad}: {:?}",
            m.flash
        );
    }
    typed(&mut m, "s");
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.mode, Mode::Normal, "esc cancels");
    typed(&mut m, "g");
    assert_eq!(m.selected_service.as_deref(), Some("agent"));
    typed(&mut m, "s");
    assert_eq!(m.mode, Mode::Normal, "a global service has no count");
    assert!(m.flash.as_ref().is_some_and(|f| f.text.contains("global")));
}

#[test]
fn ctrl_d_removes_a_service_only_after_the_confirmation() {
    let mut m = services_view();
    typed(&mut m, "G");
    ctrl(&mut m, 'd');
    let Mode::Confirm(c) = &m.mode else {
        panic!("{:?}", m.mode);
    };
    assert_eq!(c.service.as_deref(), Some("web"));
    assert_eq!(c.targets.len(), 2, "its two replicas");
    assert!(!c.on_remove, "cancel first");
    let effects = key(&mut m, KeyCode::Enter);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::RemoveService { .. }))
    );
    ctrl(&mut m, 'd');
    let effects = typed(&mut m, "y");
    assert!(effects.contains(&Effect::RemoveService { name: "web".into() }));
}

#[test]
fn the_run_form_creates_a_service_when_replicas_is_set() {
    let mut m = services_view();
    typed(&mut m, "r");
    assert_eq!(m.view, View::Run);
    let form = m.form.clone().expect("form");
    assert_eq!(form.field(form::FieldId::Replicas).value, "1");
    typed(&mut m, "img:1");
    key(&mut m, KeyCode::Tab);
    typed(&mut m, "api");
    key(&mut m, KeyCode::Tab);
    ctrl(&mut m, 'u');
    typed(&mut m, "4");
    let effects = key(&mut m, KeyCode::Enter);
    let Some(Effect::CreateService(spec)) = effects.first() else {
        panic!("{effects:?}");
    };
    assert_eq!((spec.name.as_str(), spec.replicas), ("api", 4));
    m.update(Msg::ServiceCreated {
        name: "api".into(),
        result: Err("invalid image: not found".into()),
    });
    assert_eq!(m.view, View::Run, "an error stays in the form");
    assert!(m.form.as_ref().is_some_and(|f| f.error.is_some()));
    key(&mut m, KeyCode::Enter);
    m.update(Msg::ServiceCreated {
        name: "api".into(),
        result: Ok("created service api".into()),
    });
    assert_eq!(m.view, View::Services);
    assert!(m.form.is_none());
    assert_eq!(m.selected_service.as_deref(), Some("api"));
    // From the containers view the form runs a container, as before.
    let mut m = containers_view();
    typed(&mut m, "r");
    assert_eq!(
        m.form
            .as_ref()
            .map(|f| f.field(form::FieldId::Replicas).value.clone()),
        Some(String::new())
    );
}

#[test]
fn services_command_with_a_name_opens_its_slots() {
    let mut m = fixtures::small(true, 120, 40);
    typed(&mut m, ":svc web");
    key(&mut m, KeyCode::Enter);
    assert_eq!(m.view, View::Slots);
    assert_eq!(m.slots_of.as_deref(), Some("web"));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.view, View::Services);
}

#[test]
fn x_offers_sh_runs_what_is_typed_and_refuses_a_stopped_container() {
    let mut m = containers_view();
    // Sorted by name: batch-job, cache, db, ...
    let db = Target {
        id: container(3, "", "", "", 0.0).id,
        name: "db".into(),
    };
    typed(&mut m, "jj");
    assert_eq!(selected_name(&m).as_deref(), Some("db"));
    assert!(typed(&mut m, "x").is_empty());
    assert_eq!(
        m.mode,
        Mode::Exec(ExecPrompt {
            target: db.clone(),
            input: DEFAULT_EXEC_COMMAND.into()
        })
    );
    assert_eq!(
        key(&mut m, KeyCode::Enter),
        [Effect::Exec {
            target: db.clone(),
            command: vec!["sh".into()]
        }]
    );
    assert_eq!(m.mode, Mode::Normal);

    // Another command; esc cancels.
    typed(&mut m, "x");
    ctrl(&mut m, 'u');
    typed(&mut m, "psql -U app");
    assert_eq!(
        key(&mut m, KeyCode::Enter),
        [Effect::Exec {
            target: db.clone(),
            command: vec!["psql".into(), "-U".into(), "app".into()]
        }]
    );
    typed(&mut m, "x");
    assert!(key(&mut m, KeyCode::Esc).is_empty());
    assert_eq!(m.mode, Mode::Normal);
    // An empty command runs nothing.
    typed(&mut m, "x");
    ctrl(&mut m, 'u');
    assert!(key(&mut m, KeyCode::Enter).is_empty());
    assert!(m.flash.as_ref().is_some_and(|f| f.level == Level::Error));

    // The session's end is said; a program that is not there is an error.
    m.update(Msg::ExecEnded {
        target: db.clone(),
        result: Ok(127),
    });
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.level == Level::Error && f.text.contains("is it in the image"))
    );

    // batch-job has exited: no prompt.
    typed(&mut m, "g");
    assert_eq!(selected_name(&m).as_deref(), Some("batch-job"));
    assert!(typed(&mut m, "x").is_empty());
    assert_eq!(m.mode, Mode::Normal);
    assert!(
        m.flash
            .as_ref()
            .is_some_and(|f| f.text.contains("batch-job is not running"))
    );

    // :exec NAME opens the prompt for that container.
    typed(&mut m, ":exec web-1");
    key(&mut m, KeyCode::Enter);
    assert!(matches!(&m.mode, Mode::Exec(p) if p.target.name == "web-1"));
}

/// A form field edits in place: ←/→, home/end (ctrl-a/ctrl-e), backspace before the cursor and
/// delete under it, pasting at it; another field's cursor starts at its end.
#[test]
fn form_fields_edit_at_the_cursor() {
    let mut m = containers_view();
    typed(&mut m, "r");
    typed(&mut m, "img");
    let value = |m: &Model| {
        m.form
            .as_ref()
            .and_then(|f| f.focused())
            .map(|f| f.value.clone())
            .unwrap_or_default()
    };
    key(&mut m, KeyCode::Left);
    key(&mut m, KeyCode::Left);
    typed(&mut m, "X");
    assert_eq!(value(&m), "iXmg");
    key(&mut m, KeyCode::Home);
    key(&mut m, KeyCode::Delete);
    assert_eq!(value(&m), "Xmg");
    key(&mut m, KeyCode::End);
    key(&mut m, KeyCode::Backspace);
    assert_eq!(value(&m), "Xm");
    ctrl(&mut m, 'a');
    key(&mut m, KeyCode::Right);
    m.update(Msg::Paste("é:1".into()));
    assert_eq!(value(&m), "Xé:1m");
    key(&mut m, KeyCode::Backspace);
    assert_eq!(value(&m), "Xé:m", "a whole character, not a byte");
    // Left at the start and right at the end stay put.
    key(&mut m, KeyCode::Home);
    key(&mut m, KeyCode::Left);
    ctrl(&mut m, 'e');
    key(&mut m, KeyCode::Right);
    typed(&mut m, "!");
    assert_eq!(value(&m), "Xé:m!");
    // Away and back: the cursor is at the end again.
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::BackTab);
    typed(&mut m, "?");
    assert_eq!(value(&m), "Xé:m!?");
}
