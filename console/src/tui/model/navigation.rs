//! Moving between views and within lists: the cursor keys, `esc`, and opening a view.

use super::*;

impl Model {
    pub(super) fn navigate(&mut self, action: Action, rows: usize, page: usize) {
        let delta: isize = match action {
            Action::Up => -1,
            Action::Down => 1,
            Action::PageUp => -(page as isize),
            Action::PageDown => page as isize,
            _ => 0,
        };
        match self.view {
            View::Nodes => {
                let len = self.nodes.len();
                match action {
                    Action::Top => self.node_list.to_top(len, rows),
                    Action::Bottom => self.node_list.to_bottom(len, rows),
                    _ => self.node_list.move_by(delta, len, rows),
                }
                self.selected_node = self.nodes.name_at(self.node_list.cursor).map(str::to_owned);
            }
            View::Containers => {
                let len = self.containers.visible_len();
                match action {
                    Action::Top => self.container_list.to_top(len, rows),
                    Action::Bottom => self.container_list.to_bottom(len, rows),
                    _ => self.container_list.move_by(delta, len, rows),
                }
                self.select_cursor();
            }
            View::Logs => {
                let vp = self.log_viewport();
                let page = vp.rows.saturating_sub(1).max(1);
                if let Some(l) = self.logs.as_mut() {
                    match action {
                        Action::Up => l.scroll_up(1, vp),
                        Action::Down => l.scroll_down(1, vp),
                        Action::PageUp => l.scroll_up(page, vp),
                        Action::PageDown => l.scroll_down(page, vp),
                        Action::Top => l.to_oldest(vp),
                        _ => l.resume(),
                    }
                }
            }
            View::Detail => {
                let rows = self.text_rows();
                if let Some(d) = self.detail.as_mut() {
                    let max = d.lines().len().saturating_sub(rows);
                    d.scroll = match action {
                        Action::Top => 0,
                        Action::Bottom => max,
                        _ => d.scroll.saturating_add_signed(delta).min(max),
                    };
                }
            }
            View::Services => {
                let len = self.services.len();
                match action {
                    Action::Top => self.service_list.to_top(len, rows),
                    Action::Bottom => self.service_list.to_bottom(len, rows),
                    _ => self.service_list.move_by(delta, len, rows),
                }
                self.selected_service = self
                    .services
                    .at(self.service_list.cursor)
                    .map(|s| services::name(s).to_owned());
            }
            View::Slots => {
                let len = self.slots().len();
                match action {
                    Action::Top => self.slot_list.to_top(len, rows),
                    Action::Bottom => self.slot_list.to_bottom(len, rows),
                    _ => self.slot_list.move_by(delta, len, rows),
                }
            }
            View::Run => {}
        }
    }

    /// Changes view; leaving the logs closes their stream.
    pub(super) fn switch(&mut self, to: View, effects: &mut Vec<Effect>) {
        if self.view == View::Logs && to != View::Logs {
            self.logs = None;
            effects.push(Effect::CloseLogs);
        }
        self.mode = Mode::Normal;
        self.view = to;
    }

    pub(super) fn go_back(&mut self, effects: &mut Vec<Effect>) {
        if self.view == View::Containers && !self.containers.filter().is_empty() {
            self.filter_input.clear();
            self.containers.set_filter("");
            return;
        }
        if self.view == View::Containers && !self.marks.is_empty() {
            self.marks.clear();
            return;
        }
        // A view whose state is gone (the logs closed when the detail opened over them) is
        // skipped.
        let mut to = None;
        while let Some(view) = self.back.pop() {
            let alive = match view {
                View::Logs => self.logs.is_some() && self.view != View::Logs,
                View::Detail => self.detail.is_some() && self.view != View::Detail,
                View::Run => self.form.is_some() && self.view != View::Run,
                View::Slots => self.slots_of.is_some() && self.view != View::Slots,
                View::Nodes | View::Containers | View::Services => true,
            };
            if alive {
                to = Some(view);
                break;
            }
        }
        let to = to.unwrap_or(match self.view {
            View::Nodes | View::Containers | View::Services => View::Nodes,
            View::Slots => View::Services,
            _ if self.logs.as_ref().is_some_and(|l| l.service.is_some()) => View::Services,
            _ => View::Containers,
        });
        if self.view == View::Slots {
            self.slots_of = None;
        }
        if self.view == View::Run {
            self.form = None;
        }
        if self.view == View::Detail {
            self.detail = None;
        }
        if to == View::Nodes && self.view == View::Containers {
            self.containers.set_scope(None);
        }
        self.switch(to, effects);
    }

    pub(super) fn push(&mut self, to: View, effects: &mut Vec<Effect>) {
        if self.view != to {
            self.back.push(self.view);
        }
        self.switch(to, effects);
    }

    pub(super) fn show_containers(&mut self, scope: Option<String>, effects: &mut Vec<Effect>) {
        self.back.clear();
        self.form = None;
        self.detail = None;
        self.containers.set_scope(scope);
        self.switch(View::Containers, effects);
    }

    pub(super) fn open_detail(&mut self, effects: &mut Vec<Effect>) {
        let Some(target) = self.current_target() else {
            self.flash_error("no container selected");
            return;
        };
        self.detail = Some(DetailView {
            container_id: target.id.clone(),
            name: target.name,
            state: DetailState::Loading,
            scroll: 0,
        });
        effects.push(Effect::Inspect { id: target.id });
        self.push(View::Detail, effects);
    }

    pub(super) fn open_logs(&mut self, effects: &mut Vec<Effect>) {
        let Some(target) = self.current_target() else {
            self.flash_error("no container selected");
            return;
        };
        self.open_logs_of(target, effects);
    }

    pub(super) fn open_logs_of(&mut self, target: Target, effects: &mut Vec<Effect>) {
        let node = self
            .containers
            .get(&target.id)
            .map(|r| r.summary.node.clone())
            .unwrap_or_default();
        self.next_stream += 1;
        let stream = self.next_stream;
        if self.view == View::Logs {
            effects.push(Effect::CloseLogs);
        }
        self.logs = Some(LogView::new(
            target.id.clone(),
            target.name,
            node,
            stream,
            self.config.log_lines,
        ));
        self.search_input.clear();
        self.push(View::Logs, effects);
        effects.push(Effect::OpenLogs {
            stream,
            container: target.id,
            tail: u32::try_from(self.config.log_lines).unwrap_or(u32::MAX),
        });
    }

    pub(super) fn show_services(&mut self, effects: &mut Vec<Effect>) {
        self.back.clear();
        self.form = None;
        self.detail = None;
        self.slots_of = None;
        self.switch(View::Services, effects);
    }

    pub(super) fn open_slots(&mut self, name: String, effects: &mut Vec<Effect>) {
        if self.slots_of.as_deref() != Some(&name) {
            self.slot_list = ListState::default();
        }
        self.slots_of = Some(name);
        self.push(View::Slots, effects);
    }

    /// Every replica's logs in one view, each line prefixed with its slot and node.
    pub(super) fn open_service_logs(&mut self, effects: &mut Vec<Effect>) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let name = services::name(s).to_owned();
        let sources: Vec<LogSource> = services::replicas(s)
            .map(|slot| LogSource {
                container: slot.container_id.clone(),
                prefix: services::log_prefix(&name, slot),
            })
            .collect();
        if sources.is_empty() {
            self.flash_error(format!("service {name} has no replicas yet"));
            return;
        }
        self.next_stream += 1;
        let stream = self.next_stream;
        let mut view = LogView::new(
            String::new(),
            name.clone(),
            String::new(),
            stream,
            self.config.log_lines,
        );
        view.service = Some(name);
        let per_source = self.config.log_lines / sources.len();
        self.logs = Some(view);
        self.search_input.clear();
        self.push(View::Logs, effects);
        effects.push(Effect::OpenMergedLogs {
            stream,
            sources,
            tail: u32::try_from(per_source.max(1)).unwrap_or(u32::MAX),
        });
    }
}
