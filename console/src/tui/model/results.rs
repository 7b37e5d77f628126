//! What stop, remove and exec calls answer.

use super::*;

impl Model {
    pub(super) fn on_stopped(&mut self, results: Vec<(Target, Result<bool, String>)>) {
        let mut stopped = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(_) => {
                    self.marks.remove(&target.id);
                    stopped.push(target);
                }
                Err(e) => failed.push(format!("{}: {e}", target.label())),
            }
        }
        if failed.is_empty() {
            self.flash_info(format!("stopped {}", labels(&stopped)));
        } else {
            self.flash_error(format!("cannot stop {}", failed.join("; ")));
        }
    }

    pub(super) fn on_removed(
        &mut self,
        results: Vec<(Target, Result<(), String>)>,
        effects: &mut Vec<Effect>,
    ) {
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for (target, result) in results {
            match result {
                Ok(()) => {
                    self.marks.remove(&target.id);
                    self.containers.remove(&target.id);
                    removed.push(target);
                }
                Err(e) => failed.push(format!("{}: {e}", target.label())),
            }
        }
        // A view about a removed container has nothing left to show.
        let gone = |id: &str| removed.iter().any(|t| t.id == id);
        let about_removed = match self.view {
            View::Detail => self.detail.as_ref().is_some_and(|d| gone(&d.container_id)),
            View::Logs => self.logs.as_ref().is_some_and(|l| gone(&l.container_id)),
            _ => false,
        };
        if about_removed {
            self.show_containers(self.containers.scope().map(str::to_owned), effects);
        }
        if failed.is_empty() {
            self.flash_info(format!("removed {}", labels(&removed)));
        } else {
            self.flash_error(format!("cannot remove {}", failed.join("; ")));
        }
    }

    pub(super) fn on_exec_ended(&mut self, target: Target, result: Result<i32, String>) {
        match result {
            Ok(0) => self.flash_info(format!("the session in {} ended", target.name)),
            Ok(code @ (126 | 127)) => self.flash_error(format!(
                "the command could not run in {} (status {code}): is it in the image?",
                target.name
            )),
            Ok(code) => self.flash_info(format!(
                "the session in {} ended with status {code}",
                target.name
            )),
            Err(e) => self.flash_error(format!("cannot exec in {}: {e}", target.name)),
        }
    }
}

/// `web`, `web, db`, `web, db and 3 more`.
pub(super) fn labels(targets: &[Target]) -> String {
    const SHOWN: usize = 3;
    let names: Vec<&str> = targets.iter().take(SHOWN).map(Target::label).collect();
    let mut text = names.join(", ");
    if targets.len() > SHOWN {
        text.push_str(&format!(" and {} more", targets.len() - SHOWN));
    }
    text
}
