//! Command mode (`:`): its keys, completion of command and container names, and the commands.

use super::*;

impl Model {
    pub(super) fn on_command_key(&mut self, key: Key, effects: &mut Vec<Effect>) {
        let names = match (&self.mode, keys::lookup(keys::INPUT, key)) {
            (Mode::Command(line), Some(Action::Complete)) => self.completion_names(&line.input),
            _ => Vec::new(),
        };
        let Mode::Command(line) = &mut self.mode else {
            return;
        };
        match keys::lookup(keys::INPUT, key) {
            Some(Action::Accept) => {
                let input = std::mem::take(&mut line.input);
                self.mode = Mode::Normal;
                self.run_command(&input, effects);
            }
            Some(Action::Cancel) => self.mode = Mode::Normal,
            Some(Action::ClearInput) => line.input.clear(),
            Some(Action::Backspace) => {
                line.input.pop();
                line.candidates.clear();
            }
            Some(Action::Complete) => complete(line, &names),
            _ => {
                if let Some(c) = key.text() {
                    line.input.push(c);
                    line.candidates.clear();
                }
            }
        }
    }

    /// Container names for `:logs` completion.
    pub(super) fn completion_names(&self, input: &str) -> Vec<String> {
        let Some((_, partial)) = input.split_once(' ') else {
            return Vec::new();
        };
        let partial = partial.trim_start();
        let mut names: Vec<String> = self
            .containers
            .iter()
            .map(|r| r.summary.name.clone())
            .filter(|n| !n.is_empty() && n.starts_with(partial))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Runs a `:` command: a view name (or a unique prefix of one), `logs NAME`, `q`.
    pub fn run_command(&mut self, input: &str, effects: &mut Vec<Effect>) {
        let mut words = input.split_whitespace();
        let Some(word) = words.next() else {
            return;
        };
        let arg = words.next();
        let command = match word {
            "q" | "q!" | "quit" | "exit" => "quit",
            "ps" | "co" => "containers",
            "svc" | "service" | "se" => "services",
            "no" => "nodes",
            w => {
                let found: Vec<&str> = COMMANDS
                    .iter()
                    .copied()
                    .filter(|c| c.starts_with(w))
                    .collect();
                match found.as_slice() {
                    [one] => *one,
                    [] => {
                        self.flash_error(format!(
                            "unknown command :{w} (try :nodes :containers :services :logs NAME :exec NAME :run :q)"
                        ));
                        return;
                    }
                    many => {
                        self.flash_error(format!(":{w} is ambiguous: {}", many.join(", ")));
                        return;
                    }
                }
            }
        };
        match command {
            "quit" => effects.push(Effect::Quit),
            "help" => self.mode = Mode::Help { scroll: 0 },
            "nodes" => {
                self.back.clear();
                self.containers.set_scope(None);
                self.form = None;
                self.detail = None;
                self.switch(View::Nodes, effects);
            }
            "containers" => {
                let scope = arg.map(str::to_owned);
                self.show_containers(scope, effects);
            }
            "run" => self.open_form(effects),
            "services" => {
                self.show_services(effects);
                if let Some(name) = arg {
                    self.selected_service = Some(name.to_owned());
                    self.open_slots(name.to_owned(), effects);
                }
            }
            "exec" => {
                let target = match arg {
                    None => self.current_target(),
                    Some(name) => self.find_container(name),
                };
                match (target, arg) {
                    (Some(target), _) => self.open_exec(target),
                    (None, Some(name)) => self.flash_error(format!("no container named {name:?}")),
                    (None, None) => self.flash_error(":exec needs a container name"),
                }
            }
            "logs" => {
                let target = match arg {
                    None => self.current_target(),
                    Some(name) => self.find_container(name),
                };
                match (target, arg) {
                    (Some(target), _) => self.open_logs_of(target, effects),
                    (None, Some(name)) => self.flash_error(format!("no container named {name:?}")),
                    (None, None) => self.flash_error(":logs needs a container name"),
                }
            }
            _ => {}
        }
    }

    /// A container by exact name, else by unique id prefix.
    pub(super) fn find_container(&self, name: &str) -> Option<Target> {
        let target = |r: &containers::Row| Target {
            id: r.summary.id.clone(),
            name: r.summary.name.clone(),
        };
        if let Some(r) = self.containers.iter().find(|r| r.summary.name == name) {
            return Some(target(r));
        }
        let mut by_id = self
            .containers
            .iter()
            .filter(|r| r.summary.id.starts_with(name));
        match (by_id.next(), by_id.next()) {
            (Some(r), None) => Some(target(r)),
            _ => None,
        }
    }
}

/// Tab in command mode: completes a command name, or a container name after `logs `.
fn complete(line: &mut CommandLine, names: &[String]) {
    let (prefix, partial, candidates): (String, &str, Vec<String>) =
        match line.input.split_once(' ') {
            None => (
                String::new(),
                line.input.as_str(),
                COMMANDS
                    .iter()
                    .filter(|c| c.starts_with(line.input.as_str()))
                    .map(|c| (*c).to_owned())
                    .collect(),
            ),
            Some((command, partial)) if "logs".starts_with(command) && !command.is_empty() => {
                ("logs ".to_owned(), partial.trim_start(), names.to_vec())
            }
            Some(_) => return,
        };
    match candidates.as_slice() {
        [] => line.candidates.clear(),
        [one] => {
            let space = if prefix.is_empty() && one == "logs" {
                " "
            } else {
                ""
            };
            line.input = format!("{prefix}{one}{space}");
            line.candidates.clear();
        }
        many => {
            let common = common_prefix(many);
            if common.len() > partial.len() {
                line.input = format!("{prefix}{common}");
            }
            line.candidates = many.to_vec();
        }
    }
}

fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut end = first.len();
    for w in &words[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(w.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(w.len()), |((i, _), _)| i),
        );
    }
    first[..end].to_owned()
}
