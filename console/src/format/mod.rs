//! What scripted output looks like beyond `-o json`: `--format` templates (Docker's Go-template
//! fields: `{{.Name}}`, `{{.Label "key"}}`, `\t`, `\n`, nothing more), each command naming its
//! fields, and `ps`'s filters. The flags' parsers live here, so `cli` needs no command module.

pub mod nodes;
pub mod ps;

use berth_shared::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
    Label(String),
}

impl Template {
    /// A template whose `{{.Field}}`s are among `fields`; anything else is refused, naming them.
    pub fn parse(s: &str, fields: &'static [&'static str]) -> Result<Self, ValidationError> {
        let bad = |m: String| ValidationError::new("format", m);
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Text(unescape(&rest[..start])));
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| bad("a {{ is not closed".into()))?;
            let action = after[..end].trim();
            let field = action
                .strip_prefix('.')
                .ok_or_else(|| bad(format!("{{{{{action}}}}}: a field starts with a dot")))?;
            if let Some(key) = field.strip_prefix("Label ") {
                let key = key.trim().trim_matches('"');
                parts.push(Part::Label(key.to_owned()));
            } else {
                let known = fields
                    .iter()
                    .find(|f| **f == field)
                    .ok_or_else(|| bad(format!("no field {field:?}: {}", fields.join(", "))))?;
                parts.push(Part::Field(known));
            }
            rest = &after[end + 2..];
        }
        parts.push(Part::Text(unescape(rest)));
        Ok(Template(parts))
    }

    /// The text, with `field(name)` for each field and `label(key)` for each label.
    pub fn render(&self, field: impl Fn(&str) -> String, label: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Label(k) => out.push_str(&label(k)),
                Part::Field(f) => out.push_str(&field(f)),
            }
        }
        out
    }
}

/// `\t` and `\n` as Docker's --format takes them.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}
