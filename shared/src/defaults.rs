//! Defaults shared by the agent and the console. Each is overridden by the flag named beside it.

/// `berthd --listen` / `berth --agent`: loopback only unless a token is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// `berth stop -t`: grace period between SIGTERM and SIGKILL, as `docker stop`.
pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 10;
/// Env var names, as the flags' `env =` attributes use them.
pub const ENV_AGENT: &str = "BERTH_AGENT";
pub const ENV_TOKEN: &str = "BERTH_TOKEN";
