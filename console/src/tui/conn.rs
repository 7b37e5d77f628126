//! The `Watch` connection as a state machine: connecting, connected, or waiting to reconnect
//! with a backoff. The task runs beside the UI and only sends messages; the model keeps the last
//! data (shown dimmed) while it reconnects, and the header says when the next try is.

use super::model::Msg;
pub use super::types::{ConnEvent, ConnState};
use crate::errors::status_report;
use berth_proto::v1 as pb;
use berth_shared::client::Client;
use std::time::Duration;
use tokio::sync::mpsc::Sender;

/// First wait after a lost connection.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Doubling waits from [`BACKOFF_INITIAL`] to [`BACKOFF_MAX`], back to the start once a
/// connection works.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_INITIAL,
        }
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_INITIAL;
    }
}

/// Keeps a `Watch` stream open for as long as the UI runs, forwarding every event. Returns when
/// the UI is gone (the channel is closed).
pub async fn watch(mut client: Client, address: String, tx: Sender<Msg>) {
    let mut backoff = Backoff::default();
    let mut attempt = 0u32;
    loop {
        if tx.send(Msg::Conn(ConnEvent::Connecting)).await.is_err() {
            return;
        }
        let error = match client.watch(pb::WatchRequest {}).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                let mut first = true;
                loop {
                    match stream.message().await {
                        Ok(Some(event)) => {
                            if first {
                                first = false;
                                backoff.reset();
                                attempt = 0;
                                if tx.send(Msg::Conn(ConnEvent::Connected)).await.is_err() {
                                    return;
                                }
                            }
                            if tx.send(Msg::Watch(event)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break "the agent ended the watch stream".to_owned(),
                        Err(status) => break status_report(status, &address).to_string(),
                    }
                }
            }
            Err(status) => status_report(status, &address).to_string(),
        };
        attempt = attempt.saturating_add(1);
        let retry_in = backoff.next_delay();
        let lost = ConnEvent::Lost {
            attempt,
            retry_in,
            error,
        };
        if tx.send(Msg::Conn(lost)).await.is_err() {
            return;
        }
        tokio::time::sleep(retry_in).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_INITIAL);
    }

    #[test]
    fn states_follow_events() {
        let s = ConnState::Connecting { attempt: 0 };
        let s = s.on(ConnEvent::Connected, 0);
        assert!(s.is_connected());
        let s = s.on(
            ConnEvent::Lost {
                attempt: 3,
                retry_in: Duration::from_secs(2),
                error: "boom".into(),
            },
            1_000,
        );
        assert_eq!(
            s,
            ConnState::Reconnecting {
                attempt: 3,
                retry_at_ms: 3_000,
                error: "boom".into()
            }
        );
        assert_eq!(
            s.on(ConnEvent::Connecting, 3_000),
            ConnState::Connecting { attempt: 3 }
        );
    }
}
