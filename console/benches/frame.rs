//! Frame time and filter keystrokes on a large synthetic cluster: 1,000 nodes and 20,000
//! containers, drawn on a 200×50 `TestBackend`.
//!
//! `cargo bench -p berth-console --bench frame`

use berth_console::tui::fixtures;
use berth_console::tui::model::{Model, Msg};
use berth_console::tui::view;
use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;

const NODES: usize = 1_000;
const CONTAINERS: usize = 20_000;
const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

fn key(m: &mut Model, code: KeyCode) {
    m.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn model() -> Model {
    fixtures::synthetic(NODES, CONTAINERS, WIDTH, HEIGHT)
}

fn frames(c: &mut Criterion) {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");

    let mut m = model();
    key(&mut m, KeyCode::Char('c'));
    c.bench_function("frame/containers", |b| {
        b.iter(|| {
            terminal
                .draw(|f| view::draw(f, black_box(&m)))
                .expect("drawn");
        })
    });

    // The cursor in the middle of the list: rows are found by offset, not by scanning.
    key(&mut m, KeyCode::Char('C'));
    for _ in 0..200 {
        key(&mut m, KeyCode::PageDown);
    }
    c.bench_function("frame/containers_by_cpu_scrolled", |b| {
        b.iter(|| {
            terminal
                .draw(|f| view::draw(f, black_box(&m)))
                .expect("drawn");
        })
    });

    let nodes = model();
    c.bench_function("frame/nodes", |b| {
        b.iter(|| {
            terminal
                .draw(|f| view::draw(f, black_box(&nodes)))
                .expect("drawn");
        })
    });
}

fn filtering(c: &mut Criterion) {
    let mut m = model();
    key(&mut m, KeyCode::Char('c'));
    key(&mut m, KeyCode::Char('/'));
    key(&mut m, KeyCode::Char('s'));
    key(&mut m, KeyCode::Char('v'));
    key(&mut m, KeyCode::Char('c'));
    // One narrowing keystroke (filters the shown rows in place) and one widening (refilters
    // the sorted order; nothing is sorted or allocated): a pair per iteration.
    c.bench_function("filter/keystroke_pair", |b| {
        b.iter(|| {
            key(&mut m, KeyCode::Char('4'));
            key(&mut m, KeyCode::Backspace);
        })
    });
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");
    c.bench_function("filter/keystroke_pair_and_frames", |b| {
        b.iter(|| {
            key(&mut m, KeyCode::Char('4'));
            terminal.draw(|f| view::draw(f, &m)).expect("drawn");
            key(&mut m, KeyCode::Backspace);
            terminal.draw(|f| view::draw(f, &m)).expect("drawn");
        })
    });
}

fn updates(c: &mut Criterion) {
    let mut m = model();
    key(&mut m, KeyCode::Char('c'));
    key(&mut m, KeyCode::Char('C'));
    let mut tick = 0u64;
    // What a stats round looks like: 1,000 containers change CPU, then one frame's settle
    // re-sorts (sorted by CPU, so every change moves rows).
    c.bench_function("watch/1000_cpu_updates_then_settle", |b| {
        b.iter(|| {
            tick += 1;
            for i in 0..1_000u64 {
                let n = (i * 20 + tick) % CONTAINERS as u64;
                let node = format!("node-{:04}", n % NODES as u64);
                let mut s =
                    fixtures::container(n, &format!("svc{}-{n}", n % 97), &node, "running", 0.0);
                s.cpu_percent = ((n * 7 + tick) % 1000) as f64 / 10.0;
                m.update(Msg::Watch(berth_proto::v1::WatchEvent {
                    event: Some(berth_proto::v1::watch_event::Event::ContainerUpdated(s)),
                }));
            }
            m.settle();
        })
    });
}

criterion_group!(benches, frames, filtering, updates);
criterion_main!(benches);
