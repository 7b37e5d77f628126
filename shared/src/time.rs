//! Times as people read them: `--since 10m|RFC3339`, and Docker-style status text.

use crate::ValidationError;
use crate::error::quoted;
use chrono::{DateTime, Utc};

/// How far ahead of `now` a `--since` time may be: clocks on two machines disagree a little.
pub const MAX_SINCE_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Parses `--since`: a duration ago (`10m`, `1h30m`, `45s`, via humantime) or an RFC 3339 time
/// (`2026-11-22T10:00:00Z`), or a unix timestamp in seconds. Field name: `since`.
/// Times more than [`MAX_SINCE_CLOCK_SKEW`] ahead of `now` are refused.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ValidationError> {
    let err = |m: String| ValidationError::new("since", m);
    let t = s.trim();
    if t.is_empty() {
        return Err(err(
            "empty: give a duration (10m, 1h30m), an RFC 3339 time or unix seconds".into(),
        ));
    }
    if t.starts_with('-') {
        return Err(err(format!("{} is negative", quoted(t))));
    }
    let time = if t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or_else(|| err(format!("unix time {} is out of range", quoted(t))))?
    } else if let Ok(ago) = humantime::parse_duration(t) {
        chrono::Duration::from_std(ago)
            .ok()
            .and_then(|ago| now.checked_sub_signed(ago))
            .ok_or_else(|| err(format!("{} is too long ago", quoted(t))))?
    } else if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        time.with_timezone(&Utc)
    } else {
        return Err(err(format!(
            "{} is not a duration (10m, 1h30m), an RFC 3339 time (2026-11-22T10:00:00Z) \
             or unix seconds",
            quoted(t)
        )));
    };
    if time > now + MAX_SINCE_CLOCK_SKEW {
        return Err(err(format!(
            "{} is in the future ({})",
            quoted(t),
            time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(time)
}

/// Docker's human duration: `Less than a second`, `1 second`, `3 seconds`, `About a minute`,
/// `3 minutes`, `About an hour`, `3 hours`, `2 days`, `3 weeks`, `4 months`, `2 years`.
/// This is go-units' `HumanDuration` step for step, including its rounding (hours to the
/// nearest, everything else truncated). Negative durations read `Less than a second`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let exact_hours = d.num_milliseconds() as f64 / 3_600_000.0;
    let hours = (exact_hours + 0.5) as i64;
    if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", d.num_hours() / 24 / 365)
    }
}

/// Whether the view's word on a node's containers still holds: the node is alive, or suspect
/// (not heard from for a moment: a flapping node is not written off). Down, left, or gone from
/// the view (`None`): their last known state may no longer be true.
pub fn node_vouches(node: Option<berth_proto::v1::NodeStatus>) -> bool {
    use berth_proto::v1::NodeStatus;
    matches!(node, Some(NodeStatus::Alive | NodeStatus::Suspect))
}

/// The word for a node's status as `ps` and `-o json` give it (`gone`: not in the view).
pub fn node_status_word(node: Option<berth_proto::v1::NodeStatus>) -> &'static str {
    use berth_proto::v1::NodeStatus;
    match node {
        Some(NodeStatus::Alive) => "alive",
        Some(NodeStatus::Suspect) => "suspect",
        Some(NodeStatus::Down) => "down",
        Some(NodeStatus::Left) => "left",
        Some(NodeStatus::Unspecified) => "unknown",
        None => "gone",
    }
}

/// `ps`'s STATE of a container on a node with status `node`: Docker's word while the node
/// vouches for it, else the last word known, marked `?` (`running?`).
pub fn state_word(
    c: &berth_proto::v1::ContainerSummary,
    node: Option<berth_proto::v1::NodeStatus>,
) -> String {
    if node_vouches(node) {
        c.state.clone()
    } else {
        format!("{}?", c.state)
    }
}

/// `ps`'s STATUS: as [`status_text`] while the node vouches for the container, else that its
/// state is unknown and why (`node down?`).
pub fn status_on(
    c: &berth_proto::v1::ContainerSummary,
    node: Option<berth_proto::v1::NodeStatus>,
    now: DateTime<Utc>,
) -> String {
    if node_vouches(node) {
        status_text(c, now)
    } else {
        format!("node {}?", node_status_word(node))
    }
}

/// The status column of `berth ps`, as `docker ps` writes it: `Created`, `Up 3 minutes`,
/// `Restarting (1) 5 seconds ago`, `Exited (137) 2 minutes ago`, `Paused` suffix, `Removing`, `Dead`.
///
/// A time of 0 is unknown, and its part is left out (`Up`, `Exited (0)`); `Paused` reads
/// `Up 3 minutes (Paused)` as Docker writes it. An unknown state is shown capitalised.
pub fn status_text(c: &berth_proto::v1::ContainerSummary, now: DateTime<Utc>) -> String {
    let since = |unix_ms: i64| {
        (unix_ms != 0)
            .then(|| DateTime::from_timestamp_millis(unix_ms))
            .flatten()
            .map(|t| human_duration(now - t))
    };
    let up = || match since(c.started_unix_ms) {
        Some(d) => format!("Up {d}"),
        None => "Up".to_owned(),
    };
    let ago = |word: &str| match since(c.finished_unix_ms) {
        Some(d) => format!("{word} ({}) {d} ago", c.exit_code),
        None => format!("{word} ({})", c.exit_code),
    };
    let health = match c.health.as_str() {
        "starting" => " (health: starting)",
        "healthy" => " (healthy)",
        "unhealthy" => " (unhealthy)",
        _ => "",
    };
    match c.state.as_str() {
        "created" => "Created".into(),
        "running" => format!("{}{health}", up()),
        "paused" => format!("{} (Paused)", up()),
        "restarting" => ago("Restarting"),
        "exited" => ago("Exited"),
        "removing" => "Removing".into(),
        "dead" => "Dead".into(),
        other => {
            let mut chars = other.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::ContainerSummary;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn human(secs: i64) -> String {
        human_duration(TimeDelta::seconds(secs))
    }

    #[test]
    fn human_duration_matches_go_units() {
        const MIN: i64 = 60;
        const HOUR: i64 = 60 * MIN;
        const DAY: i64 = 24 * HOUR;
        let cases = [
            (-5, "Less than a second"),
            (0, "Less than a second"),
            (1, "1 second"),
            (2, "2 seconds"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * MIN + 59, "59 minutes"),
            (HOUR, "About an hour"),
            (HOUR + 29 * MIN, "About an hour"),
            // Hours round to the nearest: 1h30m is 2 hours.
            (HOUR + 30 * MIN, "2 hours"),
            (47 * HOUR, "47 hours"),
            (47 * HOUR + 30 * MIN, "2 days"),
            (48 * HOUR, "2 days"),
            (13 * DAY, "13 days"),
            (14 * DAY, "2 weeks"),
            (59 * DAY, "8 weeks"),
            (60 * DAY, "2 months"),
            (729 * DAY, "24 months"),
            (730 * DAY, "2 years"),
            (3 * 365 * DAY + 100 * DAY, "3 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(secs), want, "{secs} s");
        }
        assert_eq!(
            human_duration(TimeDelta::milliseconds(999)),
            "Less than a second"
        );
        assert_eq!(human_duration(TimeDelta::milliseconds(1999)), "1 second");
    }

    fn summary(
        state: &str,
        started_ago: Option<i64>,
        finished_ago: Option<i64>,
        exit: i64,
    ) -> ContainerSummary {
        let ms = |ago: Option<i64>| {
            ago.map_or(0, |s| (now() - TimeDelta::seconds(s)).timestamp_millis())
        };
        ContainerSummary {
            state: state.into(),
            started_unix_ms: ms(started_ago),
            finished_unix_ms: ms(finished_ago),
            exit_code: exit,
            ..Default::default()
        }
    }

    #[test]
    fn a_container_on_a_node_that_cannot_vouch_is_unknown() {
        use berth_proto::v1::NodeStatus;
        let c = summary("running", Some(180), None, 0);
        let now = Utc::now();
        for (node, state, status) in [
            (Some(NodeStatus::Alive), "running", "Up"),
            (Some(NodeStatus::Suspect), "running", "Up"),
            (Some(NodeStatus::Down), "running?", "node down?"),
            (Some(NodeStatus::Left), "running?", "node left?"),
            (None, "running?", "node gone?"),
        ] {
            assert_eq!(state_word(&c, node), state, "{node:?}");
            assert!(status_on(&c, node, now).starts_with(status), "{node:?}");
        }
    }

    #[test]
    fn status_text_matches_docker_ps() {
        let cases = [
            (summary("created", None, None, 0), "Created"),
            (summary("running", Some(180), None, 0), "Up 3 minutes"),
            (
                summary("running", Some(0), None, 0),
                "Up Less than a second",
            ),
            (summary("running", None, None, 0), "Up"),
            (
                summary("paused", Some(180), None, 0),
                "Up 3 minutes (Paused)",
            ),
            (
                summary("restarting", Some(600), Some(5), 1),
                "Restarting (1) 5 seconds ago",
            ),
            (
                summary("exited", Some(600), Some(120), 137),
                "Exited (137) 2 minutes ago",
            ),
            (summary("exited", Some(600), None, 0), "Exited (0)"),
            (summary("removing", Some(600), None, 0), "Removing"),
            (summary("dead", Some(600), Some(60), 0), "Dead"),
            (summary("weird", None, None, 0), "Weird"),
            (summary("", None, None, 0), ""),
        ];
        for (c, want) in cases {
            assert_eq!(status_text(&c, now()), want, "{}", c.state);
        }
    }

    #[test]
    fn since_accepts_durations_times_and_unix_seconds() {
        let n = now();
        assert_eq!(parse_since("10m", n), Ok(n - TimeDelta::minutes(10)));
        assert_eq!(parse_since("1h30m", n), Ok(n - TimeDelta::minutes(90)));
        assert_eq!(parse_since("45s", n), Ok(n - TimeDelta::seconds(45)));
        assert_eq!(
            parse_since("2026-11-22T10:00:00Z", n),
            Ok(n - TimeDelta::hours(2))
        );
        assert_eq!(
            parse_since("2026-11-22T11:00:00+01:00", n),
            Ok(n - TimeDelta::hours(2))
        );
        assert_eq!(
            parse_since("1700000000", n).map(|t| t.timestamp()),
            Ok(1_700_000_000)
        );
        assert_eq!(parse_since("0", n).map(|t| t.timestamp()), Ok(0));
        // A little clock skew is tolerated.
        assert_eq!(
            parse_since("2026-11-22T12:00:30Z", n),
            Ok(n + TimeDelta::seconds(30))
        );
    }

    #[test]
    fn since_refuses_bad_input() {
        let n = now();
        let refused = |s: &str| {
            let e = parse_since(s, n).expect_err(s);
            assert_eq!(e.field, "since");
            e.message
        };
        assert!(refused("").starts_with("empty"));
        assert!(refused("-10m").contains("negative"));
        assert!(refused("-5").contains("negative"));
        assert!(refused("yesterday").contains("\"yesterday\" is not a duration"));
        assert!(refused("10x").contains("is not a duration"));
        assert!(refused("2026-11-22").contains("is not a duration"));
        assert!(refused("2026-11-22T12:05:00Z").contains("in the future"));
        assert!(refused("99999999999").contains("in the future"));
        assert!(refused("999999999999999999").contains("out of range"));
        assert!(refused("99999999999999999999").contains("out of range"));
        assert!(refused("100000000000y").contains("too long ago"));
    }
}
