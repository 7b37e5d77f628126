//! Mouse clicks and the wheel.

use super::*;

impl Model {
    pub(super) fn on_mouse(&mut self, ev: MouseEvent) {
        if !self.config.mouse || self.mode != Mode::Normal {
            return;
        }
        let rows = self.table_rows();
        match ev.kind {
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let up = ev.kind == MouseEventKind::ScrollUp;
                match self.view {
                    View::Logs => {
                        let vp = self.log_viewport();
                        if let Some(l) = self.logs.as_mut() {
                            if up {
                                l.scroll_up(WHEEL_ROWS, vp);
                            } else {
                                l.scroll_down(WHEEL_ROWS, vp);
                            }
                        }
                    }
                    _ => {
                        let action = if up { Action::Up } else { Action::Down };
                        for _ in 0..WHEEL_ROWS {
                            self.navigate(action, rows, 1);
                        }
                    }
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                let area = layout::table_rows(self.size);
                if ev.row < area.y || ev.row >= area.y + area.height || ev.column < area.x {
                    return;
                }
                let row = usize::from(ev.row - area.y);
                match self.view {
                    View::Nodes if self.node_list.click(row, self.nodes.len(), rows) => {
                        self.selected_node =
                            self.nodes.name_at(self.node_list.cursor).map(str::to_owned);
                    }
                    View::Containers
                        if self
                            .container_list
                            .click(row, self.containers.visible_len(), rows) =>
                    {
                        self.select_cursor();
                    }
                    View::Services if self.service_list.click(row, self.services.len(), rows) => {
                        self.selected_service = self
                            .services
                            .at(self.service_list.cursor)
                            .map(|s| services::name(s).to_owned());
                    }
                    View::Slots => {
                        let len = self.slots().len();
                        self.slot_list.click(row, len, rows);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
