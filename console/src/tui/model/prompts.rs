//! The one-line prompts and overlays: exec and scale prompts, help, the remove confirmation,
//! the filter and the log search, and pasting into whichever has the focus.

use super::*;

impl Model {
    pub(super) fn open_scale(&mut self) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let name = services::name(s).to_owned();
        if services::is_global(s) {
            self.flash_error(format!(
                "{name} is global: it runs one replica per node and cannot be scaled"
            ));
            return;
        }
        self.mode = Mode::Scale(ScalePrompt {
            service: name,
            input: s.replicas_desired.to_string(),
        });
    }

    pub(super) fn confirm_service_removal(&mut self) {
        let Some(s) = self.selected_service_status() else {
            self.flash_error("no service selected");
            return;
        };
        let targets: Vec<Target> = services::replicas(s)
            .map(|slot| Target {
                id: slot.container_id.clone(),
                name: slot.container_name.clone(),
            })
            .collect();
        let running = services::replicas(s)
            .filter(|slot| slot.state == "running")
            .count();
        self.mode = Mode::Confirm(Confirm {
            service: Some(services::name(s).to_owned()),
            targets,
            running,
            on_remove: false,
        });
    }

    /// The exec prompt for `target`, if it runs.
    pub(super) fn open_exec(&mut self, target: Target) {
        let running = self
            .containers
            .get(&target.id)
            .is_some_and(containers::Row::is_running);
        if !running {
            self.flash_error(format!(
                "{} is not running: exec needs a running container",
                target.name
            ));
            return;
        }
        self.mode = Mode::Exec(ExecPrompt {
            target,
            input: DEFAULT_EXEC_COMMAND.to_owned(),
        });
    }

    pub(super) fn on_exec_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Exec(prompt) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let target = prompt.target.clone();
                let input = std::mem::take(&mut prompt.input);
                self.mode = Mode::Normal;
                let command: Vec<String> = input.split_whitespace().map(str::to_owned).collect();
                let spec = berth_shared::exec::ExecSpec {
                    container: target.id.clone(),
                    command: command.clone(),
                    tty: true,
                    stdin: true,
                    user: None,
                    workdir: None,
                    env: Vec::new(),
                    size: None,
                };
                match spec.validate() {
                    Ok(()) => effects.push(Effect::Exec { target, command }),
                    Err(e) => self.flash_error(format!("cannot exec in {}: {e}", target.name)),
                }
            }
            Some(Action::Cancel) => self.mode = Mode::Normal,
            Some(Action::ClearInput) => prompt.input.clear(),
            Some(Action::Backspace) => {
                prompt.input.pop();
            }
            _ => {
                if let Some(c) = key.text() {
                    prompt.input.push(c);
                }
            }
        }
    }

    pub(super) fn on_scale_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Scale(prompt) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let name = std::mem::take(&mut prompt.service);
                let input = std::mem::take(&mut prompt.input);
                self.mode = Mode::Normal;
                match berth_shared::service::parse_replicas(input.trim()) {
                    Ok(replicas) => {
                        self.flash_info(format!("scaling {name} to {replicas}"));
                        effects.push(Effect::ScaleService { name, replicas });
                    }
                    Err(e) => self.flash_error(format!("cannot scale {name}: {e}")),
                }
            }
            Some(Action::Cancel) => {
                self.mode = Mode::Normal;
                self.flash_info("scale cancelled");
            }
            Some(Action::ClearInput) => prompt.input.clear(),
            Some(Action::Backspace) => {
                prompt.input.pop();
            }
            _ => {
                if let Some(c) = key.text() {
                    prompt.input.push(c);
                }
            }
        }
    }

    pub(super) fn on_help_key(&mut self, key: Key) {
        let Mode::Help { scroll } = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::HELP, key) {
            Some(Action::Up) => *scroll = scroll.saturating_sub(1),
            Some(Action::Down) => *scroll = scroll.saturating_add(1),
            Some(Action::Back) => self.mode = Mode::Normal,
            _ => {}
        }
    }

    pub(super) fn on_confirm_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let Mode::Confirm(confirm) = &mut self.mode else {
            return;
        };
        let remove = match keys::lookup(keys::CONFIRM, key) {
            Some(Action::Toggle) => {
                confirm.on_remove = !confirm.on_remove;
                return;
            }
            Some(Action::Accept) => confirm.on_remove,
            Some(Action::Confirm) => true,
            Some(Action::Cancel) => false,
            _ => return,
        };
        let targets = std::mem::take(&mut confirm.targets);
        let service = confirm.service.take();
        self.mode = Mode::Normal;
        if let Some(name) = service {
            if remove {
                self.flash_info(format!("removing service {name} and its replicas"));
                effects.push(Effect::RemoveService { name });
            } else {
                self.flash_info("remove cancelled");
            }
            return;
        }
        if remove {
            self.flash_info(format!("removing {}", labels(&targets)));
            effects.push(Effect::Remove {
                targets,
                force: true,
            });
        } else {
            self.flash_info("remove cancelled");
        }
    }

    pub(super) fn on_filter_key(&mut self, key: Key) {
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => self.mode = Mode::Normal,
            Some(Action::Cancel) => {
                self.filter_input.clear();
                self.mode = Mode::Normal;
            }
            Some(Action::ClearInput) => self.filter_input.clear(),
            Some(Action::Backspace) => {
                self.filter_input.pop();
            }
            _ => match key.text() {
                Some(c) => self.filter_input.push(c),
                None => return,
            },
        }
        self.containers.set_filter(&self.filter_input);
    }

    pub(super) fn on_search_key(&mut self, key: Key) {
        let vp = self.log_viewport();
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                self.mode = Mode::Normal;
                if let Some(message) = self.logs.as_mut().and_then(|l| l.jump(true, vp)) {
                    self.flash_info(message);
                }
                return;
            }
            Some(Action::Cancel) => {
                self.search_input.clear();
                self.mode = Mode::Normal;
            }
            Some(Action::ClearInput) => self.search_input.clear(),
            Some(Action::Backspace) => {
                self.search_input.pop();
            }
            _ => match key.text() {
                Some(c) => self.search_input.push(c),
                None => return,
            },
        }
        if let Some(l) = self.logs.as_mut() {
            l.set_search(&self.search_input);
        }
    }

    pub(super) fn on_paste(&mut self, text: &str) {
        let text: String = text.chars().filter(|c| !c.is_control()).collect();
        match &mut self.mode {
            Mode::Filter => {
                self.filter_input.push_str(&text);
                self.containers.set_filter(&self.filter_input);
            }
            Mode::Search => {
                self.search_input.push_str(&text);
                if let Some(l) = self.logs.as_mut() {
                    l.set_search(&self.search_input);
                }
            }
            Mode::Command(line) => line.input.push_str(&text),
            Mode::Scale(prompt) => prompt.input.push_str(&text),
            Mode::Exec(prompt) => prompt.input.push_str(&text),
            Mode::Normal if self.view == View::Run => {
                if let Some(form) = self.form.as_mut()
                    && form.phase == Phase::Editing
                {
                    form.insert(&text);
                }
            }
            _ => {}
        }
    }
}
