//! The run form (`r`): one text field per flag of `berth run`, checked with the same
//! `berth-shared` parsers the command line uses, each error shown under its field.

use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::image::ImageRef;
use berth_shared::port::PortSpec;
use berth_shared::quantity::{parse_cpus, parse_memory};
use berth_shared::service;
use berth_shared::spec::{self, ContainerSpec, EnvArg, RestartPolicy};
// The scheduler's own parser, so the form refuses exactly what the agent would.
use berth_shared::constraint::Constraint;
use clap::Parser;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    Image,
    Name,
    Replicas,
    Command,
    Env,
    Ports,
    Volumes,
    Network,
    Cpus,
    Memory,
    Restart,
    Node,
    Constraints,
    Strategy,
    Flags,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub id: FieldId,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: String,
    pub error: Option<String>,
}

/// Whether Docker's status for a layer says it is there.
pub fn layer_done(status: &str) -> bool {
    let lower = status.to_ascii_lowercase();
    lower.contains("complete") || lower.contains("already exists")
}

/// What the run's event stream has said so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunProgress {
    pub placed: Option<(String, String)>,
    /// Per layer: status, bytes done, bytes total.
    pub layers: BTreeMap<String, (String, u64, u64)>,
    /// The last pull message not about one layer.
    pub pull_status: String,
    pub created: Option<String>,
    pub warnings: Vec<String>,
    pub started: bool,
}

impl RunProgress {
    pub fn apply(&mut self, event: pb::run_event::Event) {
        use pb::run_event::Event;
        match event {
            Event::Placed(p) => self.placed = Some((p.node, p.reason)),
            Event::Pull(p) => {
                if p.layer.is_empty() || p.status.starts_with("Pulling from") {
                    self.pull_status = p.status;
                } else {
                    let layer = self.layers.entry(p.layer).or_default();
                    if p.total > 0 {
                        layer.1 = p.current;
                        layer.2 = p.total;
                    }
                    if layer_done(&p.status) {
                        layer.1 = layer.2;
                    }
                    layer.0 = p.status;
                }
            }
            Event::Created(c) => {
                self.created = Some(c.id);
                self.warnings = c.warnings;
            }
            Event::Started(_) => self.started = true,
        }
    }

    /// Bytes pulled and to pull, over every layer.
    pub fn bytes(&self) -> (u64, u64) {
        self.layers.values().fold((0, 0), |(c, t), l| {
            (c.saturating_add(l.1), t.saturating_add(l.2))
        })
    }
}

/// What a good form asks for: a one-shot run, or a service (the replicas field is set).
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    Run(pb::RunRequest),
    Service(pb::ServiceSpec),
}

impl Submission {
    pub fn into_run(self) -> Option<pb::RunRequest> {
        match self {
            Submission::Run(r) => Some(r),
            Submission::Service(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Editing,
    /// Sent; the progress so far.
    Running(RunProgress),
}

#[derive(Debug, Clone)]
pub struct RunForm {
    pub fields: Vec<Field>,
    pub focus: usize,
    pub phase: Phase,
    /// Set after the first submit: fields are then re-checked as they are typed.
    pub checked: bool,
    /// An error about the whole run (from the agent).
    pub error: Option<String>,
    /// Where the focused field is edited, as a byte offset in its value; `None`: at its end
    /// (where focusing a field puts it).
    pub cursor: Option<usize>,
}

/// A cursor move in the focused field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Left,
    Right,
    Start,
    End,
}

impl Default for RunForm {
    fn default() -> Self {
        let f = |id, label, hint| Field {
            id,
            label,
            hint,
            value: String::new(),
            error: None,
        };
        Self {
            fields: vec![
                f(
                    FieldId::Image,
                    "image",
                    "required, e.g. nginx:1.27 or registry:5000/team/app:v2",
                ),
                f(
                    FieldId::Name,
                    "name",
                    "optional; Docker picks one when empty",
                ),
                f(
                    FieldId::Replicas,
                    "replicas",
                    "empty: one container; N: a service kept at N replicas (needs a name)",
                ),
                f(
                    FieldId::Command,
                    "command",
                    "replaces the image's command; words split as a shell does",
                ),
                f(
                    FieldId::Env,
                    "env",
                    "KEY=VALUE ... (KEY alone: its value here)",
                ),
                f(
                    FieldId::Ports,
                    "ports",
                    "[ip:][host_port:]container_port[/udp] ...",
                ),
                f(
                    FieldId::Volumes,
                    "volumes",
                    "NAME:/path or /host/path:/path[:ro] ... (a named volume pins it to its node)",
                ),
                f(
                    FieldId::Network,
                    "network",
                    "a Docker network of the node, made when missing (empty: bridge)",
                ),
                f(FieldId::Cpus, "cpus", "CPU limit, e.g. 0.5 (empty: none)"),
                f(
                    FieldId::Memory,
                    "memory",
                    "memory limit, e.g. 512m, 1.5g (empty: none)",
                ),
                f(
                    FieldId::Restart,
                    "restart",
                    "no | always | unless-stopped | on-failure[:N]",
                ),
                f(
                    FieldId::Node,
                    "node",
                    "pin to this node (empty: the scheduler picks)",
                ),
                f(
                    FieldId::Constraints,
                    "constraints",
                    "label==value label!=value ... (node: its name)",
                ),
                f(FieldId::Strategy, "strategy", "spread (default) | binpack"),
                f(
                    FieldId::Flags,
                    "more flags",
                    "any other `berth run` flag: --label K=V --entrypoint E -P --init -w DIR …",
                ),
            ],
            focus: 0,
            phase: Phase::Editing,
            checked: false,
            error: None,
            cursor: None,
        }
    }
}

/// Splits `s` into words as a POSIX shell would for plain words: blanks separate, single quotes
/// keep everything, double quotes keep everything but `\"` and `\\`, a backslash outside quotes
/// escapes the next character.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

impl RunForm {
    pub fn field(&self, id: FieldId) -> &Field {
        // Every id has a field: `default` makes all of them.
        self.fields
            .iter()
            .find(|f| f.id == id)
            .unwrap_or(&self.fields[0])
    }

    pub fn field_mut(&mut self, id: FieldId) -> Option<&mut Field> {
        self.fields.iter_mut().find(|f| f.id == id)
    }

    pub fn focused(&self) -> Option<&Field> {
        self.fields.get(self.focus)
    }

    /// Moves the focus to the next (or previous) field, wrapping around; the cursor goes to
    /// the end of its text.
    pub fn move_focus(&mut self, forward: bool) {
        let n = self.fields.len();
        self.focus = if forward {
            (self.focus + 1) % n
        } else {
            (self.focus + n - 1) % n
        };
        self.cursor = None;
    }

    /// The cursor's byte offset in the focused field, on a character boundary.
    pub fn cursor(&self) -> usize {
        let value = self.focused().map_or("", |f| f.value.as_str());
        let mut at = self.cursor.unwrap_or(value.len()).min(value.len());
        while !value.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    pub fn move_cursor(&mut self, to: Move) {
        let at = self.cursor();
        let value = self.focused().map_or("", |f| f.value.as_str());
        self.cursor = Some(match to {
            Move::Start => 0,
            Move::End => value.len(),
            Move::Left => value[..at]
                .chars()
                .next_back()
                .map_or(0, |c| at - c.len_utf8()),
            Move::Right => value[at..].chars().next().map_or(at, |c| at + c.len_utf8()),
        });
    }

    /// Types `text` at the cursor, which moves past it.
    pub fn insert(&mut self, text: &str) {
        let at = self.cursor();
        self.edit(|v| v.insert_str(at, text));
        self.cursor = Some(at + text.len());
    }

    /// Deletes the character before the cursor (backspace) or under it (delete).
    pub fn delete(&mut self, before: bool) {
        let at = self.cursor();
        let value = self.focused().map_or("", |f| f.value.as_str());
        let range = if before {
            match value[..at].chars().next_back() {
                Some(c) => at - c.len_utf8()..at,
                None => return,
            }
        } else {
            match value[at..].chars().next() {
                Some(c) => at..at + c.len_utf8(),
                None => return,
            }
        };
        let start = range.start;
        self.edit(|v| {
            v.replace_range(range, "");
        });
        self.cursor = Some(start);
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut String)) {
        if let Some(field) = self.fields.get_mut(self.focus) {
            f(&mut field.value);
        }
        if self.checked {
            let _ = self.validate(|k| std::env::var(k).ok());
        }
    }

    /// Checks every field as `berth run` checks its flags, puts each error under its field,
    /// and returns the request when all are good. `lookup` reads this environment for `KEY`
    /// without a value, as `-e KEY` does.
    pub fn validate(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Option<Submission> {
        self.checked = true;
        for field in &mut self.fields {
            field.error = None;
        }
        let mut errors: Vec<(FieldId, String)> = Vec::new();
        let text = |id: FieldId| self.field(id).value.trim().to_owned();
        let mut fail = |id: FieldId, e: String| errors.push((id, e));

        let image = text(FieldId::Image);
        if image.is_empty() {
            fail(FieldId::Image, "required".into());
        } else if let Err(e) = ImageRef::parse(&image) {
            fail(FieldId::Image, message(&e));
        }
        let name = text(FieldId::Name);
        let name = (!name.is_empty()).then_some(name);
        let replicas = match text(FieldId::Replicas).as_str() {
            "" => None,
            s => match service::parse_replicas(s) {
                Ok(n) => Some(n),
                Err(e) => {
                    fail(FieldId::Replicas, message(&e));
                    Some(1)
                }
            },
        };
        match (&name, replicas) {
            (None, Some(_)) => fail(FieldId::Name, "required for a service".into()),
            (Some(n), Some(_)) => {
                if let Err(e) = service::validate_service_name(n) {
                    fail(FieldId::Name, message(&e));
                }
            }
            (Some(n), None) => {
                if let Err(e) = spec::validate_container_name(n) {
                    fail(FieldId::Name, message(&e));
                }
            }
            (None, None) => {}
        }
        let command = split_words(&self.field(FieldId::Command).value).unwrap_or_else(|e| {
            fail(FieldId::Command, e);
            Vec::new()
        });
        let mut env = Vec::new();
        match split_words(&self.field(FieldId::Env).value) {
            Err(e) => fail(FieldId::Env, e),
            Ok(words) => {
                for word in words {
                    match spec::parse_env(&word) {
                        Ok(EnvArg::Pair(k, v)) => env.push((k, v)),
                        Ok(EnvArg::Inherit(k)) => match lookup(&k) {
                            Some(v) => env.push((k, v)),
                            None => {
                                fail(FieldId::Env, format!("{k} is not set here: give KEY=VALUE"));
                                break;
                            }
                        },
                        Err(e) => {
                            fail(FieldId::Env, message(&e));
                            break;
                        }
                    }
                }
            }
        }
        let mut ports = Vec::new();
        for word in text(FieldId::Ports)
            .split([' ', ','])
            .filter(|w| !w.is_empty())
        {
            match PortSpec::parse(word) {
                Ok(p) => ports.push(p),
                Err(e) => {
                    fail(FieldId::Ports, message(&e));
                    break;
                }
            }
        }
        let mut mounts = Vec::new();
        match split_words(&self.field(FieldId::Volumes).value) {
            Err(e) => fail(FieldId::Volumes, e),
            Ok(words) => {
                for word in words {
                    match berth_shared::options::Mount::parse_volume(&word) {
                        Ok(m) => mounts.push(m),
                        Err(e) => {
                            fail(FieldId::Volumes, format!("{word}: {}", message(&e)));
                            break;
                        }
                    }
                }
            }
        }
        let network = text(FieldId::Network);
        let network = (!network.is_empty()).then_some(network);
        if let Some(n) = &network
            && let Err(e) = berth_shared::options::validate_object_name("network", "network", n)
        {
            fail(FieldId::Network, message(&e));
        }
        // The rest of `berth run`'s flags, parsed by the command line's own definitions.
        let flags = match split_words(&self.field(FieldId::Flags).value) {
            Err(e) => {
                fail(FieldId::Flags, e);
                None
            }
            Ok(words) => match crate::cli::FormFlags::try_parse_from(&words) {
                Ok(f) => Some(f),
                Err(e) => {
                    fail(FieldId::Flags, clap_message(&e));
                    None
                }
            },
        };
        let flags = flags.unwrap_or_else(|| crate::cli::FormFlags {
            detach: false,
            label: Vec::new(),
            entrypoint: None,
            env_file: Vec::new(),
            health: Default::default(),
            options: Default::default(),
        });
        if network.is_some() && flags.options.network.is_some() {
            fail(
                FieldId::Network,
                "given twice: here and as --network in more flags".into(),
            );
        }
        let health = crate::commands::run::health_check(flags.health).unwrap_or_else(|e| {
            fail(FieldId::Flags, report_message(&e));
            None
        });
        // Env files first, then the env field (its KEYs were looked up above), as `-e` wins;
        // one value a name, as `berth run` sends it.
        let pairs = env.into_iter().map(|(k, v)| EnvArg::Pair(k, v)).collect();
        let env = crate::commands::run::collect_env(&flags.env_file, pairs, &lookup)
            .unwrap_or_else(|e| {
                fail(FieldId::Flags, report_message(&e));
                Vec::new()
            });
        let mut options = crate::commands::run::run_options(flags.options);
        mounts.append(&mut options.mounts);
        options.mounts = mounts;
        options.network = network.or(options.network);
        let cpus = match text(FieldId::Cpus).as_str() {
            "" => 0.0,
            s => parse_cpus(s).unwrap_or_else(|e| {
                fail(FieldId::Cpus, message(&e));
                0.0
            }),
        };
        let memory_bytes = match text(FieldId::Memory).as_str() {
            "" => 0,
            s => parse_memory(s).unwrap_or_else(|e| {
                fail(FieldId::Memory, message(&e));
                0
            }),
        };
        let restart = match text(FieldId::Restart).as_str() {
            "" => RestartPolicy::No,
            s => RestartPolicy::parse(s).unwrap_or_else(|e| {
                fail(FieldId::Restart, message(&e));
                RestartPolicy::No
            }),
        };
        let node = text(FieldId::Node);
        if !node.is_empty()
            && let Err(e) = berth_shared::constraint::validate_node_name("node", &node)
        {
            fail(FieldId::Node, message(&e));
        }
        let mut constraints = Vec::new();
        for word in text(FieldId::Constraints)
            .split([' ', ','])
            .filter(|w| !w.is_empty())
        {
            match Constraint::parse(word) {
                Ok(c) => constraints.push(c.to_string()),
                Err(e) => {
                    fail(FieldId::Constraints, format!("{}: {}", word, message(&e)));
                    break;
                }
            }
        }
        let strategy = match text(FieldId::Strategy).as_str() {
            "" => pb::Strategy::Unspecified,
            s => berth_shared::constraint::parse_strategy(s).unwrap_or_else(|e| {
                fail(FieldId::Strategy, message(&e));
                pb::Strategy::Unspecified
            }),
        };
        let spec = ContainerSpec {
            options,
            image: ImageRef::parse(&image)
                .map(|i| i.to_string())
                .unwrap_or(image),
            // A service's replicas are named by the cluster (NAME.SLOT.SUFFIX).
            name: if replicas.is_some() {
                None
            } else {
                name.clone()
            },
            // Docker's `--entrypoint ""` sends [""], which resets the image's entrypoint.
            entrypoint: flags.entrypoint.map(|e| vec![e]),
            command,
            env,
            ports,
            cpus,
            memory_bytes,
            restart,
            labels: flags.label.into_iter().collect(),
            slot: None,
            health,
            request: None,
        };
        // The whole-spec rules (counts, lengths, clashing ports), as the agent applies them.
        if errors.is_empty()
            && let Err(e) = spec.validate()
        {
            errors.push((field_of(&e), message(&e)));
        }
        let mut submission = None;
        if errors.is_empty() {
            submission = Some(match replicas {
                None => Submission::Run(pb::RunRequest {
                    spec: Some(spec.to_proto()),
                    node,
                    constraints,
                    strategy: strategy as i32,
                    request_id: crate::commands::run::new_request_id(),
                }),
                Some(replicas) => {
                    // A pin to one node is a constraint for a service: every replica goes there.
                    if !node.is_empty() {
                        constraints.push(format!("node=={node}"));
                    }
                    let wire = pb::ServiceSpec {
                        name: name.unwrap_or_default(),
                        mode: pb::ServiceMode::Replicated as i32,
                        replicas,
                        container: Some(spec.to_proto()),
                        constraints,
                        strategy: strategy as i32,
                        update: None,
                    };
                    // The service rules, as `berth service create` and the agent apply them.
                    match service::ServiceSpec::from_proto(&wire) {
                        Ok(_) => Submission::Service(wire),
                        Err(e) => {
                            errors.push((field_of(&e), message(&e)));
                            Submission::Service(wire)
                        }
                    }
                }
            });
        }
        let ok = errors.is_empty();
        for (id, error) in errors {
            if let Some(field) = self.field_mut(id)
                && field.error.is_none()
            {
                field.error = Some(error);
            }
        }
        if let Some(first) = self.fields.iter().position(|f| f.error.is_some()) {
            self.focus = first;
        }
        submission.filter(|_| ok)
    }

    pub fn has_errors(&self) -> bool {
        self.fields.iter().any(|f| f.error.is_some())
    }
}

/// clap's first line about a bad flag, without its `error: ` (the form shows it under the
/// field).
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // The flags the form has a field for: each is refused here, pointing to its field.
    const OWN: [(&str, &str); 11] = [
        ("'--name'", "name"),
        ("'--node'", "node"),
        ("'-e'", "env"),
        ("'--env'", "env"),
        ("'-p'", "ports"),
        ("'--publish'", "ports"),
        ("'--cpus'", "cpus"),
        ("'--memory'", "memory"),
        ("'--restart'", "restart"),
        ("'--constraint'", "constraints"),
        ("'--strategy'", "strategy"),
    ];
    match OWN.iter().find(|(flag, _)| first.contains(flag)) {
        Some((_, field)) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
            format!("{first}: it has a field of its own, {field}")
        }
        _ => first.to_owned(),
    }
}

/// An eyre report's message in one line.
fn report_message(e: &color_eyre::Report) -> String {
    e.to_string()
}

/// The message of a validation error without the `invalid <field>:` its Display adds, since
/// the form shows it under the field.
fn message(e: &ValidationError) -> String {
    e.message.clone()
}

/// The form field a `ValidationError`'s field name belongs to.
fn field_of(e: &ValidationError) -> FieldId {
    let f = e.field.as_str();
    if f.starts_with("image") {
        FieldId::Image
    } else if f.starts_with("name") {
        FieldId::Name
    } else if f.starts_with("replicas") {
        FieldId::Replicas
    } else if f.starts_with("constraint") {
        FieldId::Constraints
    } else if f.starts_with("command") {
        FieldId::Command
    } else if f.starts_with("env-file") {
        FieldId::Flags
    } else if f.starts_with("env") {
        FieldId::Env
    } else if f.starts_with("port") {
        FieldId::Ports
    } else if f.starts_with("cpus") {
        FieldId::Cpus
    } else if f.starts_with("memory") {
        FieldId::Memory
    } else if f.starts_with("restart") {
        FieldId::Restart
    } else if f.starts_with("volume") {
        FieldId::Volumes
    } else if f.starts_with("network") {
        FieldId::Network
    } else {
        // Labels, the entrypoint, the health check and the other options.
        FieldId::Flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(values: &[(FieldId, &str)]) -> RunForm {
        let mut form = RunForm::default();
        for (id, v) in values {
            if let Some(f) = form.field_mut(*id) {
                f.value = (*v).to_owned();
            }
        }
        form
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn words_split_as_a_shell_splits_them() {
        assert_eq!(
            split_words(r#"--lines 3 'a b' "c \"d\"" e\ f"#).expect("ok"),
            ["--lines", "3", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(split_words("  ").expect("ok"), Vec::<String>::new());
        assert_eq!(split_words("''").expect("ok"), [""]);
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn a_good_form_becomes_the_spec_the_cli_would_send() {
        let mut f = form(&[
            (FieldId::Image, "img:1"),
            (FieldId::Name, "web"),
            (FieldId::Command, "--lines 3 --interval-ms 20"),
            (FieldId::Env, "A=1 'B=two words' C"),
            (FieldId::Ports, "8080:80, 53/udp"),
            (FieldId::Cpus, "0.5"),
            (FieldId::Memory, "512m"),
            (FieldId::Restart, "on-failure:3"),
        ]);
        f.field_mut(FieldId::Node).expect("field").value = "alpha".into();
        f.field_mut(FieldId::Constraints).expect("field").value = "zone==east, node!=b".into();
        f.field_mut(FieldId::Strategy).expect("field").value = "binpack".into();
        let request = f
            .validate(|k| (k == "C").then(|| "from-here".to_owned()))
            .and_then(Submission::into_run)
            .expect("valid");
        assert_eq!(request.node, "alpha");
        assert_eq!(request.constraints, ["zone==east", "node!=b"]);
        assert_eq!(request.strategy, pb::Strategy::Binpack as i32);
        let spec = request.spec.expect("spec");
        assert_eq!(spec.image, "img:1");
        assert_eq!(spec.name, "web");
        assert_eq!(spec.command, ["--lines", "3", "--interval-ms", "20"]);
        let env: Vec<_> = spec
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        assert_eq!(env, ["A=1", "B=two words", "C=from-here"]);
        assert_eq!(spec.ports.len(), 2);
        assert_eq!(spec.cpus, 0.5);
        assert_eq!(spec.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(spec.restart.map(|r| r.max_retries), Some(3));
        assert!(!f.has_errors());
    }

    #[test]
    fn volumes_network_and_every_other_run_flag_reach_the_spec_as_the_cli_sends_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let env_file = dir.path().join("app.env");
        std::fs::write(&env_file, "# a comment\nFROM_FILE=1\nA=file\n").expect("env file");
        let flags = format!(
            "--label team=infra --entrypoint /bin/sh -P --expose 8080 --init --read-only \
             -w /srv -u 1000:1000 --hostname web-1 --health-cmd 'true' --tmpfs /run \
             --env-file {} --pull never",
            env_file.display()
        );
        let mut f = form(&[
            (FieldId::Image, "img:1"),
            (FieldId::Env, "A=1"),
            (FieldId::Volumes, "pgdata:/data /srv/site:/site:ro"),
            (FieldId::Network, "app"),
            (FieldId::Flags, &flags),
        ]);
        let ours = f
            .validate(no_env)
            .and_then(Submission::into_run)
            .and_then(|r| r.spec)
            .unwrap_or_else(|| panic!("valid: {:?}", f.fields));
        // The same flags through `berth run` itself.
        let cli = crate::cli::Cli::try_parse_from(
            [
                "berth",
                "run",
                "-e",
                "A=1",
                "-v",
                "pgdata:/data",
                "-v",
                "/srv/site:/site:ro",
                "--network",
                "app",
            ]
            .into_iter()
            .map(str::to_owned)
            .chain(split_words(&flags).expect("words"))
            .chain(["img:1".to_owned()]),
        )
        .expect("parses");
        let Some(crate::cli::Command::Run(args)) = cli.command else {
            panic!("not run");
        };
        let theirs = crate::commands::run::prepare(*args, no_env)
            .expect("valid")
            .spec;
        assert_eq!(ours, theirs, "the form sends what `berth run` sends");
        assert_eq!(ours.labels.get("team").map(String::as_str), Some("infra"));
        let env: Vec<_> = ours
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        assert_eq!(
            env,
            ["FROM_FILE=1", "A=1"],
            "the env field wins over the file"
        );
    }

    #[test]
    fn one_value_a_name_and_docker_habits_as_berth_run_takes_them() {
        let mut f = form(&[
            (FieldId::Image, "img"),
            (FieldId::Env, "A=1 A=2"),
            (FieldId::Flags, "-d"),
        ]);
        let spec = f
            .validate(no_env)
            .and_then(Submission::into_run)
            .and_then(|r| r.spec)
            .expect("valid");
        let env: Vec<_> = spec
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        assert_eq!(env, ["A=2"], "the last value wins, as with -e A=1 -e A=2");
    }

    #[test]
    fn a_bad_volume_network_or_flag_is_shown_under_its_field() {
        for (id, value, says) in [
            (FieldId::Volumes, "data", "data"),
            (FieldId::Network, "bad name!", "network"),
            (FieldId::Flags, "--node alpha", "a field of its own, node"),
            (FieldId::Flags, "--no-such-flag", "--no-such-flag"),
            (FieldId::Flags, "--env-file /no/such/file", "env-file"),
            (FieldId::Flags, "--cap-add 'NO SUCH'", "cap-add"),
            (FieldId::Flags, "--health-retries 3", "--health-cmd"),
            (FieldId::Flags, "--stop-timeout 4000", "stop-timeout"),
        ] {
            let mut f = form(&[(FieldId::Image, "img"), (id, value)]);
            assert!(f.validate(no_env).is_none(), "{value} refused");
            let e = f.field(id).error.clone().unwrap_or_default();
            assert!(e.contains(says), "{value}: {e:?}");
            assert_eq!(
                f.focused().map(|x| x.id),
                Some(id),
                "{value}: the focus goes there"
            );
        }
    }

    #[test]
    fn each_bad_field_gets_its_own_error_and_the_focus_goes_to_the_first() {
        let mut f = form(&[
            (FieldId::Image, "UPPER/case"),
            (FieldId::Name, "-bad"),
            (FieldId::Env, "=x"),
            (FieldId::Ports, "99999:80"),
            (FieldId::Cpus, "0"),
            (FieldId::Memory, "12qq"),
            (FieldId::Restart, "sometimes"),
            (FieldId::Node, "two words"),
            (FieldId::Constraints, "zone=east"),
            (FieldId::Strategy, "random"),
        ]);
        f.focus = 5;
        assert!(f.validate(no_env).is_none());
        for id in [
            FieldId::Image,
            FieldId::Name,
            FieldId::Env,
            FieldId::Ports,
            FieldId::Cpus,
            FieldId::Memory,
            FieldId::Restart,
            FieldId::Node,
            FieldId::Constraints,
            FieldId::Strategy,
        ] {
            assert!(f.field(id).error.is_some(), "{id:?} has no error");
        }
        assert!(f.field(FieldId::Command).error.is_none());
        assert_eq!(f.focus, 0);
        assert_eq!(
            f.field(FieldId::Memory).error,
            parse_memory("12qq").err().map(|e| e.message),
            "the same words as the CLI"
        );
    }

    #[test]
    fn whole_spec_rules_apply_too_and_errors_clear_as_fields_are_fixed() {
        let mut f = form(&[(FieldId::Image, "img"), (FieldId::Ports, "8080:80 8080:81")]);
        assert!(f.validate(no_env).is_none());
        assert!(
            f.field(FieldId::Ports)
                .error
                .as_deref()
                .is_some_and(|e| e.contains("published twice")),
            "{:?}",
            f.field(FieldId::Ports).error
        );
        f.focus = f
            .fields
            .iter()
            .position(|x| x.id == FieldId::Ports)
            .expect("ports");
        f.edit(|v| *v = "8080:80".into());
        assert!(!f.has_errors(), "re-checked while typing after a submit");
        let mut empty = RunForm::default();
        assert!(empty.validate(no_env).is_none());
        assert_eq!(
            empty.field(FieldId::Image).error.as_deref(),
            Some("required")
        );
    }

    #[test]
    fn focus_wraps_around() {
        let last = RunForm::default().fields.len() - 1;
        let mut f = RunForm {
            focus: last,
            ..Default::default()
        };
        f.move_focus(true);
        assert_eq!(f.focus, 0);
        f.move_focus(false);
        assert_eq!(f.focus, last);
    }

    #[test]
    fn a_replicas_count_makes_a_service_named_by_the_name_field() {
        let mut f = form(&[
            (FieldId::Image, "img:1"),
            (FieldId::Name, "web"),
            (FieldId::Replicas, "3"),
            (FieldId::Memory, "64m"),
            (FieldId::Node, "alpha"),
            (FieldId::Constraints, "zone==east"),
        ]);
        let Some(Submission::Service(spec)) = f.validate(no_env) else {
            panic!("a service: {:?}", f.fields);
        };
        assert_eq!(spec.name, "web");
        assert_eq!(spec.replicas, 3);
        assert_eq!(spec.mode, pb::ServiceMode::Replicated as i32);
        assert_eq!(spec.constraints, ["zone==east", "node==alpha"]);
        let c = spec.container.expect("container");
        assert_eq!(c.name, "", "the cluster names replicas");
        assert_eq!(c.memory_bytes, 64 * 1024 * 1024);
        // Empty replicas: a plain run, as before.
        f.field_mut(FieldId::Replicas).expect("field").value.clear();
        assert!(matches!(f.validate(no_env), Some(Submission::Run(_))));
    }

    #[test]
    fn a_service_needs_a_name_and_a_count_the_cli_would_take() {
        for (replicas, name, field) in [
            ("3", "", FieldId::Name),
            ("-1", "web", FieldId::Replicas),
            ("abc", "web", FieldId::Replicas),
            ("100000", "web", FieldId::Replicas),
            ("2", "web.v2", FieldId::Name),
        ] {
            let mut f = form(&[
                (FieldId::Image, "img"),
                (FieldId::Name, name),
                (FieldId::Replicas, replicas),
            ]);
            assert!(f.validate(no_env).is_none(), "{replicas} {name:?}");
            assert!(
                f.field(field).error.is_some(),
                "{replicas} {name:?}: {field:?} has no error: {:?}",
                f.fields
            );
        }
        let mut f = form(&[(FieldId::Image, "img"), (FieldId::Replicas, "100000")]);
        f.validate(no_env);
        assert_eq!(
            f.field(FieldId::Replicas).error,
            service::parse_replicas("100000").err().map(|e| e.message),
            "the same words as the CLI"
        );
    }
}
