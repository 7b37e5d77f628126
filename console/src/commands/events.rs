//! `berth events`: the cluster's events as the agent asked saw them, one line each (or one
//! JSON object per line), like `docker events`.

use crate::cli::{EventsArgs, OutputFormat};
use crate::errors::status_report;
use crate::output::short_id;
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::time::parse_since;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use color_eyre::eyre::{Result, WrapErr};
use std::collections::BTreeMap;
use std::io::Write;

const KINDS: [&str; 3] = ["node", "container", "placement"];

#[derive(Debug)]
pub struct EventsPlan {
    pub request: pb::EventsRequest,
    /// Stop at this time (ms); `None`: until interrupted.
    pub until_unix_ms: Option<i64>,
    pub filter: Filter,
}

/// `--filter`: keys all match; a key given more than once matches any of its values.
#[derive(Debug, Default, PartialEq)]
pub struct Filter(BTreeMap<String, Vec<String>>);

impl Filter {
    pub fn parse(items: &[String]) -> Result<Self, ValidationError> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ValidationError::new(
                    "filter",
                    format!("{item:?} is not KEY=VALUE (type=, event=, node=, name=)"),
                ));
            };
            match key {
                "type" if !KINDS.contains(&value) => {
                    return Err(ValidationError::new(
                        "filter",
                        format!("type={value:?}: the types are node, container and placement"),
                    ));
                }
                "type" | "event" | "node" | "name" => {}
                _ => {
                    return Err(ValidationError::new(
                        "filter",
                        format!("unknown key {key:?}: filter by type, event, node or name"),
                    ));
                }
            }
            if value.is_empty() {
                return Err(ValidationError::new(
                    "filter",
                    format!("{key}= has no value"),
                ));
            }
            map.entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
        Ok(Self(map))
    }

    pub fn matches(&self, e: &pb::ClusterEvent) -> bool {
        self.0.iter().all(|(key, values)| {
            let field = match key.as_str() {
                "type" => &e.kind,
                "event" => &e.action,
                "node" => &e.node,
                _ => &e.container_name,
            };
            values.iter().any(|v| v == field)
        })
    }
}

pub fn prepare(args: EventsArgs, now: DateTime<Utc>) -> Result<EventsPlan> {
    let when = |field: &'static str, s: &str| {
        parse_since(s, now)
            .map(|t| t.timestamp_millis())
            .map_err(|e| ValidationError::new(field, e.message))
    };
    let since = args
        .since
        .as_deref()
        .map(|s| when("since", s))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| when("until", s))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && u < s
    {
        return Err(ValidationError::new("until", "is before --since").into());
    }
    let now_ms = now.timestamp_millis();
    Ok(EventsPlan {
        request: pb::EventsRequest {
            // No --since: only what happens from now on.
            since_unix_ms: since.unwrap_or(now_ms),
            follow: until.is_none_or(|u| u > now_ms),
        },
        until_unix_ms: until,
        filter: Filter::parse(&args.filters)?,
    })
}

pub async fn execute(session: &mut Session, output: OutputFormat, plan: EventsPlan) -> Result<()> {
    let mut stream = session
        .client
        .events(plan.request)
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    let deadline = plan.until_unix_ms.map(|u| {
        let left = u.saturating_sub(Utc::now().timestamp_millis()).max(0);
        tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0))
    });
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.message()).await {
                Ok(m) => m,
                Err(_) => break,
            },
            None => stream.message().await,
        };
        let event = match next {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(s) => return Err(status_report(s, &session.address)),
        };
        if plan.until_unix_ms.is_some_and(|u| event.unix_ms > u) {
            break;
        }
        if !plan.filter.matches(&event) {
            continue;
        }
        let line = match output {
            OutputFormat::Json => json_line(&event),
            _ => text_line(&event),
        };
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .wrap_err("cannot write to stdout")?;
    }
    Ok(())
}

fn time_of(e: &pb::ClusterEvent) -> String {
    Utc.timestamp_millis_opt(e.unix_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| e.unix_ms.to_string())
}

/// `2026-12-04T19:40:01.123Z container died web (id=1a2b3c4d5e6f, node=n1, image=…, exit=3)`.
pub fn text_line(e: &pb::ClusterEvent) -> String {
    let mut attrs: Vec<String> = Vec::new();
    let subject = match e.kind.as_str() {
        "node" => e.node.clone(),
        _ => {
            if !e.container_id.is_empty() {
                attrs.push(format!("id={}", short_id(&e.container_id)));
            }
            if !e.node.is_empty() {
                attrs.push(format!("node={}", e.node));
            }
            match (e.container_name.as_str(), e.image.as_str()) {
                ("", "") => "-".to_owned(),
                ("", image) => image.to_owned(),
                (name, image) => {
                    if !image.is_empty() {
                        attrs.push(format!("image={image}"));
                    }
                    name.to_owned()
                }
            }
        }
    };
    if e.action == "died" {
        attrs.push(format!("exit={}", e.exit_code));
    }
    if !e.message.is_empty() && e.kind != "node" {
        let key = if e.action == "health" {
            "health"
        } else {
            "why"
        };
        attrs.push(format!("{key}={}", e.message));
    }
    let mut line = format!("{} {} {} {subject}", time_of(e), e.kind, e.action);
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// One JSON object per event; field names are stable.
pub fn json_line(e: &pb::ClusterEvent) -> String {
    let mut v = serde_json::json!({
        "time": time_of(e),
        "unix_ms": e.unix_ms,
        "type": e.kind,
        "action": e.action,
        "node": e.node,
    });
    if let Some(map) = v.as_object_mut() {
        if !e.container_id.is_empty() {
            map.insert("id".into(), e.container_id.clone().into());
        }
        if !e.container_name.is_empty() {
            map.insert("name".into(), e.container_name.clone().into());
        }
        if !e.image.is_empty() {
            map.insert("image".into(), e.image.clone().into());
        }
        if e.action == "died" {
            map.insert("exit_code".into(), e.exit_code.into());
        }
        if !e.message.is_empty() {
            map.insert("message".into(), e.message.clone().into());
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn died() -> pb::ClusterEvent {
        pb::ClusterEvent {
            unix_ms: 1_767_225_600_000,
            kind: "container".into(),
            action: "died".into(),
            node: "n1".into(),
            container_id: "1a2b3c4d5e6f7a8b".into(),
            container_name: "web".into(),
            image: "app:1".into(),
            exit_code: 3,
            ..Default::default()
        }
    }

    #[test]
    fn an_event_reads_as_one_line() {
        assert_eq!(
            text_line(&died()),
            "2026-01-01T00:00:00.000Z container died web (id=1a2b3c4d5e6f, node=n1, image=app:1, exit=3)"
        );
        let v: serde_json::Value = serde_json::from_str(&json_line(&died())).expect("json");
        assert_eq!(v["type"], "container");
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["name"], "web");
    }

    #[test]
    fn filters_match_by_key_and_refuse_what_they_do_not_know() {
        let f = Filter::parse(&[
            "type=container".into(),
            "event=died".into(),
            "event=started".into(),
        ])
        .expect("valid");
        assert!(f.matches(&died()));
        let mut other = died();
        other.action = "created".into();
        assert!(!f.matches(&other));
        let f = Filter::parse(&["name=db".into()]).expect("valid");
        assert!(!f.matches(&died()));
        for bad in ["type=vm", "colour=red", "node", "node="] {
            let e = Filter::parse(&[bad.into()]).expect_err(bad);
            assert_eq!(e.field, "filter", "{bad}");
        }
    }

    #[test]
    fn until_in_the_past_reads_what_is_kept_and_stops() {
        let now = Utc::now();
        let args = |since: Option<&str>, until: Option<&str>| EventsArgs {
            since: since.map(Into::into),
            until: until.map(Into::into),
            filters: vec![],
        };
        let p = prepare(args(Some("10m"), Some("0s")), now).expect("valid");
        assert!(!p.request.follow);
        assert_eq!(p.request.since_unix_ms, now.timestamp_millis() - 600_000);
        let p = prepare(args(None, None), now).expect("valid");
        assert!(p.request.follow);
        assert_eq!(p.request.since_unix_ms, now.timestamp_millis());
        assert!(prepare(args(Some("1m"), Some("10m")), now).is_err());
    }
}
