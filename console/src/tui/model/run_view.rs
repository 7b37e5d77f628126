//! The run form's view: opening it, its keys, and what a run or a service creation answers.

use super::*;

impl Model {
    pub(super) fn open_form(&mut self, effects: &mut Vec<Effect>) {
        if self.form.is_none() {
            let mut form = RunForm::default();
            // From the services views the form makes a service: one replica unless changed.
            if matches!(self.view, View::Services | View::Slots)
                && let Some(f) = form.field_mut(form::FieldId::Replicas)
            {
                f.value = "1".into();
            }
            self.form = Some(form);
        }
        self.push(View::Run, effects);
    }

    pub(super) fn on_form_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let action = keys::lookup(keys::FORM, key);
        let Some(form) = self.form.as_mut() else {
            self.go_back(effects);
            return;
        };
        let running = matches!(form.phase, Phase::Running(_));
        match action {
            Some(Action::Back) => {
                if running {
                    self.flash_info(
                        "the run goes on; it shows in the containers view when it starts",
                    );
                }
                self.go_back(effects);
            }
            Some(Action::Quit) => effects.push(Effect::Quit),
            Some(Action::Help) => self.mode = Mode::Help { scroll: 0 },
            _ if running => {}
            Some(Action::NextField) => form.move_focus(true),
            Some(Action::PrevField) => form.move_focus(false),
            Some(Action::ClearInput) => {
                form.edit(String::clear);
                form.cursor = None;
            }
            Some(Action::Backspace) => form.delete(true),
            Some(Action::DeleteForward) => form.delete(false),
            Some(Action::CursorLeft) => form.move_cursor(form::Move::Left),
            Some(Action::CursorRight) => form.move_cursor(form::Move::Right),
            Some(Action::LineStart) => form.move_cursor(form::Move::Start),
            Some(Action::LineEnd) => form.move_cursor(form::Move::End),
            Some(Action::Submit) => {
                form.error = None;
                match form.validate(|k| std::env::var(k).ok()) {
                    Some(form::Submission::Run(request)) => {
                        form.phase = Phase::Running(form::RunProgress::default());
                        effects.push(Effect::Run(Box::new(request)));
                    }
                    Some(form::Submission::Service(spec)) => {
                        form.phase = Phase::Running(form::RunProgress::default());
                        effects.push(Effect::CreateService(Box::new(spec)));
                    }
                    None => self.flash_error("the form has errors: see the fields in red"),
                }
            }
            _ => {
                if let Some(c) = key.text() {
                    form.insert(c.encode_utf8(&mut [0; 4]));
                }
            }
        }
    }

    pub(super) fn on_run_finished(&mut self, result: Result<Option<pb::ContainerSummary>, String>) {
        let in_form = self.view == View::Run;
        match result {
            Ok(Some(summary)) => {
                let text = format!("started {} on {}", summary.name, summary.node);
                let id = summary.id.clone();
                // The watch stream brings it too, maybe later: list it now.
                let shown = self.containers.scope().is_none_or(|n| n == summary.node);
                self.containers.upsert(summary);
                if !shown {
                    self.containers.set_scope(None);
                }
                self.filter_input.clear();
                self.containers.set_filter("");
                self.form = None;
                if in_form {
                    self.back.clear();
                    let mut effects = Vec::new();
                    self.switch(View::Containers, &mut effects);
                }
                self.pending_select = Some(id);
                self.flash_info(text);
            }
            Ok(None) => {
                let message = "the agent ended the run before the container started".to_owned();
                self.run_failed(message);
            }
            Err(message) => self.run_failed(message),
        }
    }

    pub(super) fn run_failed(&mut self, message: String) {
        match self.form.as_mut() {
            Some(form) if matches!(form.phase, Phase::Running(_)) => {
                form.phase = Phase::Editing;
                form.error = Some(message.clone());
            }
            _ => {}
        }
        self.flash_error(format!("run failed: {message}"));
    }

    pub(super) fn on_service_created(&mut self, name: String, result: Result<String, String>) {
        match result {
            Ok(text) => {
                self.services.invalidate();
                self.form = None;
                self.back.clear();
                self.slots_of = None;
                let mut effects = Vec::new();
                self.switch(View::Services, &mut effects);
                self.selected_service = Some(name);
                self.flash_info(text);
            }
            Err(message) => self.run_failed(message),
        }
    }
}
