//! The command line, as clap types. Every value a user types is parsed here with `berth-shared`'s
//! validators (clap `value_parser`s), so a bad flag is refused before anything is sent.

use berth_shared::image::ImageRef;
use berth_shared::port::PortSpec;
use berth_shared::spec::{EnvArg, RestartPolicy};
use berth_shared::{ValidationError, labels, quantity, spec};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Berth's console: browse and drive a Berth cluster through any of its agents.
///
/// With no command, berth opens the interactive console (press ? in it for its keys). With no
/// --agent (nor BERTH_AGENT) and nothing answering on 127.0.0.1:7070, berth starts an embedded
/// single-node agent for as long as it runs.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub tui: TuiArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

const TUI: &str = "Interactive Console Options (no command)";

/// Flags of the interactive console (`berth` with no command).
#[derive(Debug, Args, Clone)]
pub struct TuiArgs {
    /// No colours (also when NO_COLOR is set): bold, reverse and marks only
    #[arg(long, help_heading = TUI)]
    pub no_color: bool,

    /// Leave the mouse to the terminal (no click to select, no wheel scrolling)
    #[arg(long, help_heading = TUI)]
    pub no_mouse: bool,

    /// Log lines kept per log view; older ones are dropped
    #[arg(long, help_heading = TUI, value_name = "N", value_parser = parse_log_lines,
          default_value_t = DEFAULT_LOG_LINES)]
    pub log_lines: usize,
}

/// Lines kept per log view unless `--log-lines` says otherwise: enough to scroll back through a
/// few minutes of a busy container, small enough (a few MiB) that a chatty one cannot grow the
/// console without limit.
pub const DEFAULT_LOG_LINES: usize = 10_000;
/// The most `--log-lines` accepts.
pub const MAX_LOG_LINES: usize = 1_000_000;

fn parse_log_lines(s: &str) -> Result<usize, ValidationError> {
    let max = MAX_LOG_LINES;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ValidationError::new(
            "log-lines",
            format!("expected a number of lines from 1 to {max}"),
        )),
    }
}

const GLOBAL: &str = "Global Options";

/// Flags every command takes (before or after the command's name).
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The agent to talk to: `host:port` or `http://host:port` [env: BERTH_AGENT] [default: the
    /// context's agent, else 127.0.0.1:7070, else an embedded agent]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "URL")]
    pub agent: Option<String>,

    /// The cluster token, sent with every call [env: BERTH_TOKEN] [default: the context's token
    /// file]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "T")]
    pub token: Option<String>,

    /// Read the cluster token from FILE (surrounding whitespace is ignored); wins over --token
    /// and BERTH_TOKEN
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Use this context's agent and token file (`berth context ls`); `default` uses none
    /// [env: BERTH_CONTEXT] [default: the one `berth context use` chose]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "NAME")]
    pub context: Option<String>,

    /// Output format
    #[arg(short, long, global = true, help_heading = GLOBAL, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// The embedded agent's node name [default: this machine's hostname]
    #[arg(long, global = true, help_heading = GLOBAL, env = "BERTH_EMBEDDED_NAME",
          value_name = "NAME", value_parser = parse_node)]
    pub embedded_name: Option<String>,

    /// The embedded agent's data dir [default: $XDG_DATA_HOME/berth, else ~/.local/share/berth]
    #[arg(long, global = true, help_heading = GLOBAL, env = "BERTH_EMBEDDED_DATA_DIR",
          value_name = "DIR")]
    pub embedded_data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people
    Table,
    /// The table with more columns
    Wide,
    /// JSON for scripts (field names are stable)
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the cluster's nodes
    Nodes(NodesArgs),
    /// List containers (running ones unless -a)
    Ps(PsArgs),
    /// Place, create and start a container (detached, like `docker run -d`)
    Run(Box<RunArgs>),
    /// Stop one or more containers
    Stop(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Show a container's details as JSON
    Inspect(InspectArgs),
    /// Print a container's logs (stdout to stdout, stderr to stderr)
    Logs(LogsArgs),
    /// Run a command in a running container, on whichever node owns it (like `docker exec`)
    Exec(ExecArgs),
    /// Copy files or directories between this machine and a container on any node (like `docker cp`)
    Cp(CpArgs),
    /// Pull an image on the node of the agent asked, one node, or every node, with progress
    Pull(PullArgs),
    /// Images on every node (repository, tag, id, size)
    Images(ImagesArgs),
    /// Live CPU, memory, network and block I/O of running containers across the cluster
    Stats(StatsArgs),
    /// Stream what happens in the cluster: nodes joining, down, left; containers created,
    /// started, died, removed; placement decisions (like `docker events`)
    Events(EventsArgs),
    /// Named volumes berth made on the cluster's nodes: ls, rm
    #[command(subcommand)]
    Volume(ObjectCommand),
    /// Docker networks berth made on the cluster's nodes: ls, rm
    #[command(subcommand)]
    Network(ObjectCommand),
    /// A node's availability: drain it, make it active again, or forget one that is gone
    #[command(subcommand)]
    Node(NodeCommand),
    /// Services: replicas the cluster keeps running (create, ls, ps, scale, update, rm, …)
    #[command(subcommand)]
    Service(ServiceCommand),
    /// The cluster secret every agent shares: `berth secret new` makes one
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Scoped console tokens: create, ls, revoke (with an admin token or the secret)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Named agents to talk to (an address and a token file): add, ls, use, rm, show
    #[command(subcommand)]
    Context(ContextCommand),
    /// This console's version and commit, and the version of the agent it talks to
    Version,
    /// Print a shell completion script: `source <(berth completion bash)`
    Completion(CompletionArgs),
    /// Write man pages (berth.1 and one a command) to DIR, or print berth.1
    Man(ManArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  source <(berth completion bash)\n  \
                        berth completion zsh > \"${fpath[1]}/_berth\"\n  \
                        berth completion fish > ~/.config/fish/completions/berth.fish")]
pub struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth man --dir /usr/local/share/man/man1\n  berth man | man -l -"
)]
pub struct ManArgs {
    /// Write every page here instead of printing berth.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Keep an agent's address (give it with --agent) and, for a cluster with a secret, the
    /// file holding its token (--token-file), under NAME
    #[command(
        after_help = "Examples:\n  berth context add home --agent 192.168.1.10:7070 \
                            --token-file ~/.config/berth/home.token\n  \
                            berth context use home"
    )]
    Add {
        /// The context's name: a letter or digit, then letters, digits, `_ . + -`
        name: String,
        /// What it is for, shown by `context ls`
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Make it the context in use
        #[arg(long = "use")]
        use_it: bool,
    },
    /// The contexts, the one in use marked with *
    #[command(alias = "list")]
    Ls,
    /// Use NAME from now on (`default`: no context)
    Use { name: String },
    /// Forget contexts (not their token files)
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Also the one in use (berth goes back to `default`)
        #[arg(short, long)]
        force: bool,
    },
    /// The name of the context a command would use now, and why
    Show,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Make a new cluster secret and print it (stdout's last line); no agent is asked. Start
    /// every agent with it (--token-file or BERTH_TOKEN): it is also the cluster's admin token
    New,
    /// Roll the cluster onto a new secret with no downtime: install it on every agent, use it,
    /// then remove the old one (the --token given, which must be the current secret). Scoped
    /// tokens pin the old CA: mint new ones afterwards
    Rotate {
        /// The new secret, from `berth secret new > FILE` (`-` reads stdin)
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// The fingerprints of every agent's secrets, the one in use first
    Ls,
    /// One step of a rotation on every agent: accept a secret too
    Install {
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// One step of a rotation on every agent: make an installed secret the one in use
    Use {
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// One step of a rotation on every agent: stop accepting a secret
    Remove {
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a console token and print it (stdout's last line; it is shown only once)
    Create(TokenCreateArgs),
    /// List the cluster's console tokens (never the tokens themselves)
    Ls,
    /// Revoke a token at every agent
    Revoke {
        /// The token's id (16 hex characters, as `berth token ls` shows)
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// nodes, ps, inspect, logs, watch, service ls/ps
    Read,
    /// read, plus run, stop, rm and the service writes
    Operate,
    /// operate, plus token management
    Admin,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token may do
    #[arg(long, value_enum)]
    pub scope: ScopeArg,
    /// How long it is valid, e.g. 12h, 30d [default: until revoked]
    #[arg(long, value_name = "D", value_parser = parse_ttl)]
    pub ttl: Option<std::time::Duration>,
    /// A label for `berth token ls` (up to 64 characters)
    #[arg(long, value_name = "N", default_value = "")]
    pub name: String,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, ValidationError> {
    let d = humantime::parse_duration(s).map_err(|e| {
        ValidationError::new(
            "ttl",
            format!("{e}; expected a duration such as 12h or 30d"),
        )
    })?;
    if d < std::time::Duration::from_secs(1) {
        return Err(ValidationError::new("ttl", "must be at least 1s"));
    }
    if d.as_secs() > 10 * 365 * 24 * 3600 {
        return Err(ValidationError::new("ttl", "must be at most ten years"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Only names, one a line
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,
    /// Print each node with this template instead of the table: {{.Name}} {{.Address}}
    /// {{.Status}} {{.CPU}} {{.Memory}} {{.Containers}} {{.Labels}} {{.Label "k"}} {{.ID}}
    /// {{.Version}} {{.Docker}} {{.Age}} {{.Drained}}; \t and \n as in Docker's
    #[arg(long, value_name = "TEMPLATE", value_parser = crate::format::nodes::Template::parse)]
    pub format: Option<crate::format::nodes::Template>,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Place nothing new on the node and move its service replicas elsewhere (containers run
    /// with `berth run` keep running)
    Drain {
        #[arg(value_name = "NODE", value_parser = parse_node)]
        name: String,
    },
    /// Place on the node again (after a drain)
    Activate {
        #[arg(value_name = "NODE", value_parser = parse_node)]
        name: String,
    },
    /// Forget a node that is down or has left: it and its containers leave every agent's view
    /// (refused for a node that is alive; one that comes back is shown again)
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(value_name = "NODE", value_parser = parse_node)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Declare a service; without -d, wait until every replica runs
    Create(Box<ServiceCreateArgs>),
    /// List services
    Ls,
    /// List a service's slots and the containers that fill them
    Ps {
        #[arg(value_name = "NAME", value_parser = parse_service_name)]
        name: String,
    },
    /// Show a service as JSON
    Inspect {
        #[arg(value_name = "NAME", value_parser = parse_service_name)]
        name: String,
    },
    /// Set the replica count of one or more services: NAME=N …
    Scale {
        #[arg(value_name = "NAME=N", required = true, value_parser = berth_shared::service::parse_scale)]
        pairs: Vec<(String, u32)>,
    },
    /// Change a service's spec; its replicas are replaced by a rolling update
    Update(Box<ServiceUpdateArgs>),
    /// Go back to the spec before the last update
    Rollback {
        #[arg(value_name = "NAME", value_parser = parse_service_name)]
        name: String,
    },
    /// Remove services and every one of their containers
    Rm {
        #[arg(value_name = "NAME", required = true, value_parser = parse_service_name)]
        names: Vec<String>,
    },
    /// Print the logs of every replica, each line prefixed with NAME.SLOT@NODE
    Logs(ServiceLogsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceMode {
    Replicated,
    Global,
}

/// `--update-*`: how a rolling update proceeds.
#[derive(Debug, Args, Clone)]
pub struct UpdateFlags {
    /// Slots replaced at a time [default: 1]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub update_parallelism: Option<u32>,
    /// Wait between batches (e.g. 10s) [default: 0s]
    #[arg(long, value_name = "D", value_parser = parse_update_wait)]
    pub update_delay: Option<std::time::Duration>,
    /// How long a new replica must keep running before the next batch [default: 5s]
    #[arg(long, value_name = "D", value_parser = parse_update_wait)]
    pub update_monitor: Option<std::time::Duration>,
    /// stop-first or start-first [default: stop-first]
    #[arg(long, value_name = "ORDER", value_parser = berth_shared::service::UpdateOrder::parse)]
    pub update_order: Option<berth_shared::service::UpdateOrder>,
    /// pause or rollback, when a new replica fails [default: pause]
    #[arg(long, value_name = "ACTION", value_parser = berth_shared::service::FailureAction::parse)]
    pub update_failure_action: Option<berth_shared::service::FailureAction>,
}

fn parse_health_wait(s: &str) -> Result<std::time::Duration, ValidationError> {
    let d = humantime::parse_duration(s)
        .map_err(|e| ValidationError::new("health", format!("{s:?} is not a duration: {e}")))?;
    if d.as_millis() > u128::from(spec::MAX_HEALTH_WAIT_MS) {
        return Err(ValidationError::new(
            "health",
            format!("{s:?} is longer than 24h"),
        ));
    }
    Ok(d)
}

fn parse_health_retries(s: &str) -> Result<u32, ValidationError> {
    match s.parse::<u32>() {
        Ok(n) if n <= spec::MAX_HEALTH_RETRIES => Ok(n),
        _ => Err(ValidationError::new(
            "health-retries",
            format!(
                "{s:?} is not a number from 0 to {}",
                spec::MAX_HEALTH_RETRIES
            ),
        )),
    }
}

fn parse_update_wait(s: &str) -> Result<std::time::Duration, ValidationError> {
    let d = humantime::parse_duration(s)
        .map_err(|e| ValidationError::new("update-delay", format!("{s:?}: {e}")))?;
    if d > berth_shared::service::MAX_UPDATE_WAIT {
        return Err(ValidationError::new("update-delay", "longer than an hour"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct ServiceCreateArgs {
    /// The service's name (replicas are named NAME.SLOT.SUFFIX)
    #[arg(long, value_name = "N", required = true, allow_hyphen_values = true,
          value_parser = parse_service_name)]
    pub name: String,
    /// How many replicas [default: 1]
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = berth_shared::service::parse_replicas)]
    pub replicas: Option<u32>,
    /// replicated (N replicas) or global (one on every node that meets the constraints)
    #[arg(long, value_enum, default_value_t = ServiceMode::Replicated)]
    pub mode: ServiceMode,
    /// Return once the service is stored, without waiting for its replicas
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub update: UpdateFlags,
    #[command(flatten)]
    pub c: ContainerArgs,
}

#[derive(Debug, Args)]
pub struct ServiceUpdateArgs {
    /// A new image
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<ImageRef>,
    /// A new replica count
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = berth_shared::service::parse_replicas)]
    pub replicas: Option<u32>,
    /// Add or replace an environment variable
    #[arg(short, long = "env", value_name = "K=V", value_parser = spec::parse_env)]
    pub env: Vec<EnvArg>,
    /// A new CPU limit
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = quantity::parse_cpus)]
    pub cpus: Option<f64>,
    /// A new memory limit
    #[arg(short, long, value_name = "SIZE", allow_hyphen_values = true, value_parser = quantity::parse_memory)]
    pub memory: Option<u64>,
    /// A new restart policy
    #[arg(long, value_name = "POLICY", value_parser = RestartPolicy::parse)]
    pub restart: Option<RestartPolicy>,
    #[command(flatten)]
    pub health: HealthFlags,
    #[command(flatten)]
    pub update: UpdateFlags,
    /// The service
    #[arg(value_name = "NAME", value_parser = parse_service_name)]
    pub name: String,
}

impl HealthFlags {
    /// Whether any health flag was given.
    pub fn given(&self) -> bool {
        self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.no_healthcheck
    }
}

impl ServiceUpdateArgs {
    pub fn changes_anything(&self) -> bool {
        let u = &self.update;
        self.image.is_some()
            || self.replicas.is_some()
            || !self.env.is_empty()
            || self.cpus.is_some()
            || self.memory.is_some()
            || self.restart.is_some()
            || self.health.given()
            || u.update_parallelism.is_some()
            || u.update_delay.is_some()
            || u.update_monitor.is_some()
            || u.update_order.is_some()
            || u.update_failure_action.is_some()
    }
}

#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// Follow the output
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each replica
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u32>,
    /// The service
    #[arg(value_name = "NAME", value_parser = parse_service_name)]
    pub name: String,
}

#[derive(Debug, Args, Default)]
#[command(
    after_help = "Filters (repeatable; all must hold, as docker ps): name=SUBSTRING, node=NODE, \
                  state=STATE (or status=), label=KEY or label=KEY=VALUE, id=PREFIX, \
                  health=starting|healthy|unhealthy, node_status=alive|suspect|down|left|gone.\n\n\
                  --format is Go-template-like, as Docker's: {{.ID}} {{.Name}} {{.Image}} \
                  {{.Node}} {{.State}} {{.Status}} {{.CPU}} {{.Memory}} {{.Ports}} \
                  {{.Created}} {{.NodeStatus}} {{.Health}} {{.Label \"KEY\"}}, and \\t for a tab; \
                  one line a container.\n\n\
                  Examples:\n  berth ps -q\n  berth ps -a -f state=exited -f node=n2\n  \
                  berth ps --format '{{.Name}}\\t{{.Node}}'"
)]
pub struct PsArgs {
    /// Show all containers (default shows only running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Only containers on this node
    #[arg(long, value_name = "N", value_parser = parse_node)]
    pub node: Option<String>,
    /// Only IDs, one a line (12 characters, as docker ps -q)
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,
    /// Keep only containers that match KEY=VALUE (repeatable)
    #[arg(short, long = "filter", value_name = "KEY=VALUE",
          value_parser = crate::format::ps::Filter::parse)]
    pub filter: Vec<crate::format::ps::Filter>,
    /// Print each container with this template instead of the table
    #[arg(long, value_name = "TEMPLATE", value_parser = crate::format::ps::Template::parse)]
    pub format: Option<crate::format::ps::Template>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container name (Docker generates one when not given)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_name)]
    pub name: Option<String>,

    /// Run on this node (skips the scheduler's choice, not its checks)
    #[arg(long, value_name = "NODE", value_parser = parse_node)]
    pub node: Option<String>,

    /// Accepted for Docker habits: berth always runs detached
    #[arg(short, long, hide = true)]
    pub detach: bool,

    #[command(flatten)]
    pub c: ContainerArgs,
}

/// What `run` and `service create` share: the container and where it may go.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// Set an environment variable: KEY=VALUE, or KEY to take its value from this environment
    #[arg(short, long = "env", value_name = "K=V", value_parser = spec::parse_env)]
    pub env: Vec<EnvArg>,

    /// Read environment variables from FILE, in Docker's format (KEY=VALUE a line, # comments,
    /// values as written); -e wins over a file, a later file over an earlier one
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Publish a port: [ip:][host_port:]container_port[/tcp|udp]
    #[arg(short, long = "publish", value_name = "SPEC", value_parser = PortSpec::parse)]
    pub publish: Vec<PortSpec>,

    /// CPU limit (e.g. 0.5, 2)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = quantity::parse_cpus)]
    pub cpus: Option<f64>,

    /// Memory limit (e.g. 512m, 1.5g)
    #[arg(short, long, value_name = "SIZE", allow_hyphen_values = true, value_parser = quantity::parse_memory)]
    pub memory: Option<u64>,

    /// Restart policy: no, always, unless-stopped, on-failure[:N]
    #[arg(long, value_name = "POLICY", value_parser = RestartPolicy::parse)]
    pub restart: Option<RestartPolicy>,

    /// Set a label: KEY=VALUE
    #[arg(short, long = "label", value_name = "K=V", value_parser = labels::parse_label)]
    pub label: Vec<(String, String)>,

    /// Replace the image's entrypoint ("" clears it)
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,

    /// Only on nodes where LABEL==VALUE or LABEL!=VALUE holds (repeatable; `node` is the
    /// node's name)
    #[arg(long = "constraint", value_name = "EXPR", value_parser = berth_shared::constraint::Constraint::parse)]
    pub constraints: Vec<berth_shared::constraint::Constraint>,

    /// spread: the least reserved node first; binpack: the fullest node that still fits
    #[arg(long, value_name = "spread|binpack", default_value = "spread",
          value_parser = berth_shared::constraint::parse_strategy)]
    pub strategy: berth_proto::v1::Strategy,

    #[command(flatten)]
    pub health: HealthFlags,

    #[command(flatten)]
    pub options: RunOptionFlags,

    /// The image to run
    #[arg(value_name = "IMAGE", value_parser = parse_image)]
    pub image: ImageRef,

    /// The command and its arguments (replace the image's command); `--` may come first
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

const MOUNTS: &str = "Mounts, Network and Process Options";

/// `docker run`'s other flags. What a node does not allow (bind mounts outside its
/// `--allow-bind` prefixes, --privileged, --network host, --cap-add beyond Docker's default
/// set) it refuses before creating anything.
#[derive(Debug, Clone, Default, Args)]
pub struct RunOptionFlags {
    /// Mount a named volume (NAME:/path, created when missing) or a host path
    /// (/host/path:/path, only where the node allows it); :ro for read-only
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]", help_heading = MOUNTS,
          value_parser = berth_shared::options::Mount::parse_volume)]
    pub volume: Vec<berth_shared::options::Mount>,
    /// Mount in Docker's key=value form: type=volume|bind|tmpfs,source=…,target=…[,readonly]
    #[arg(long, value_name = "SPEC", help_heading = MOUNTS,
          value_parser = berth_shared::options::Mount::parse_mount)]
    pub mount: Vec<berth_shared::options::Mount>,
    /// Mount a tmpfs (memory) at DST: /run[:size=64m]
    #[arg(long, value_name = "DST[:OPTS]", help_heading = MOUNTS,
          value_parser = berth_shared::options::Mount::parse_tmpfs)]
    pub tmpfs: Vec<berth_shared::options::Mount>,
    /// Connect to a Docker network of the node (a bridge, made when missing); also bridge,
    /// none, or host (where the node allows it)
    #[arg(long, visible_alias = "net", value_name = "NAME", help_heading = MOUNTS,
          value_parser = parse_network)]
    pub network: Option<String>,
    /// The container's hostname
    #[arg(long, value_name = "NAME", help_heading = MOUNTS, value_parser = parse_hostname)]
    pub hostname: Option<String>,
    /// Add NAME:IP to /etc/hosts
    #[arg(long, value_name = "NAME:IP", help_heading = MOUNTS,
          value_parser = berth_shared::options::parse_add_host)]
    pub add_host: Vec<String>,
    /// A DNS server for the container
    #[arg(long, value_name = "IP", help_heading = MOUNTS, value_parser = berth_shared::options::parse_dns)]
    pub dns: Vec<String>,
    /// Publish every exposed port to a free host port (`berth ps` shows which)
    #[arg(short = 'P', long, help_heading = MOUNTS)]
    pub publish_all: bool,
    /// Expose a port without publishing it: PORT[/tcp|udp]
    #[arg(long, value_name = "PORT", help_heading = MOUNTS,
          value_parser = berth_shared::options::parse_expose)]
    pub expose: Vec<String>,
    /// The working directory inside the container
    #[arg(short, long, value_name = "DIR", help_heading = MOUNTS, value_parser = parse_workdir)]
    pub workdir: Option<String>,
    /// Run as user, user:group, uid or uid:gid
    #[arg(short, long, value_name = "USER", help_heading = MOUNTS, value_parser = parse_user)]
    pub user: Option<String>,
    /// The signal that stops it (default SIGTERM)
    #[arg(long, value_name = "SIGNAL", help_heading = MOUNTS,
          value_parser = berth_shared::options::parse_stop_signal)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before killing it (default 10)
    #[arg(long, value_name = "SECS", help_heading = MOUNTS, value_parser = parse_stop_timeout)]
    pub stop_timeout: Option<u32>,
    /// Run an init process as PID 1 (reaps zombies, forwards signals)
    #[arg(long, help_heading = MOUNTS)]
    pub init: bool,
    /// Mount the container's root filesystem read-only
    #[arg(long, help_heading = MOUNTS)]
    pub read_only: bool,
    /// Add a Linux capability (beyond Docker's default set only where the node allows it)
    #[arg(long, value_name = "CAP", help_heading = MOUNTS, value_parser = parse_cap_add)]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (ALL for every one)
    #[arg(long, value_name = "CAP", help_heading = MOUNTS, value_parser = parse_cap_drop)]
    pub cap_drop: Vec<String>,
    /// Give the container every capability and device (only where the node allows it)
    #[arg(long, help_heading = MOUNTS)]
    pub privileged: bool,
    /// When the node pulls the image: always, missing (default) or never
    #[arg(long, value_name = "WHEN", help_heading = MOUNTS,
          value_parser = berth_shared::options::PullPolicy::parse)]
    pub pull: Option<berth_shared::options::PullPolicy>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// On this node [default: the node of the agent asked]
    #[arg(long, value_name = "NODE", conflicts_with = "all", value_parser = parse_node)]
    pub node: Option<String>,
    /// On every alive node
    #[arg(long)]
    pub all: bool,
    /// The image
    #[arg(value_name = "IMAGE", value_parser = parse_image)]
    pub image: ImageRef,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth stats\n  berth stats --no-stream web db.1")]
pub struct StatsArgs {
    /// Print one sample and exit instead of refreshing in place
    #[arg(long)]
    pub no_stream: bool,
    /// Only this node's containers
    #[arg(long, value_name = "NODE", value_parser = parse_node)]
    pub node: Option<String>,
    /// Containers by name or id prefix [default: every running container]
    #[arg(value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Events since a time the agent still keeps (its last 1000): a duration ago (10m) or
    /// RFC 3339 [default: only new ones]
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Stop at this time (a duration ago, 0s for now, or RFC 3339) [default: stream until
    /// interrupted]
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only matching events: type=node|container|placement, event=ACTION, node=NODE,
    /// name=CONTAINER (repeatable: different keys must all match, one key any of its values)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only this node's
    #[arg(long, value_name = "NODE", value_parser = parse_node)]
    pub node: Option<String>,
}

/// `berth volume …` and `berth network …`.
#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// List them on every alive node (or one), with the containers that use them
    #[command(visible_alias = "list")]
    Ls {
        /// Only this node's
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// Remove them on every node that has them (or on one); refused while a container uses one
    #[command(visible_alias = "remove")]
    Rm {
        /// Only on this node
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Names
        #[arg(value_name = "NAME", required = true, value_parser = parse_object_name)]
        names: Vec<String>,
    },
}

fn parse_object_name(s: &str) -> Result<String, ValidationError> {
    berth_shared::options::validate_object_name("name", "volume or network", s)
        .map(|()| s.to_owned())
}

fn parse_network(s: &str) -> Result<String, ValidationError> {
    berth_shared::options::validate_object_name("network", "network", s).map(|()| s.to_owned())
}

fn parse_hostname(s: &str) -> Result<String, ValidationError> {
    berth_shared::options::validate_hostname("hostname", s).map(|()| s.to_owned())
}

fn parse_cap_add(s: &str) -> Result<String, ValidationError> {
    berth_shared::options::parse_capability("cap-add", s)
}

fn parse_cap_drop(s: &str) -> Result<String, ValidationError> {
    berth_shared::options::parse_capability("cap-drop", s)
}

/// The TUI run form's `flags` field: every `berth run` flag the form has no field of its own
/// for, parsed by the same definitions as the command line.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
pub struct FormFlags {
    /// Accepted as `berth run` accepts it: a run is always detached.
    #[arg(short, long, hide = true)]
    pub detach: bool,
    #[arg(short, long = "label", value_name = "K=V", value_parser = labels::parse_label)]
    pub label: Vec<(String, String)>,
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    #[command(flatten)]
    pub health: HealthFlags,
    #[command(flatten)]
    pub options: RunOptionFlags,
}

/// Docker's HEALTHCHECK flags, for `run`, `service create` and `service update`.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthFlags {
    /// Health check command, run with the container's shell (Docker's CMD-SHELL)
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s) [default: Docker's, 30s]
    #[arg(long, value_name = "D", value_parser = parse_health_wait)]
    pub health_interval: Option<std::time::Duration>,
    /// Longest a health check may run [default: Docker's, 30s]
    #[arg(long, value_name = "D", value_parser = parse_health_wait)]
    pub health_timeout: Option<std::time::Duration>,
    /// Failures in a row before the container is unhealthy [default: Docker's, 3]
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_health_retries)]
    pub health_retries: Option<u32>,
    /// Grace after start before failures count [default: 0s]
    #[arg(long, value_name = "D", value_parser = parse_health_wait)]
    pub health_start_period: Option<std::time::Duration>,
    /// Turn off the image's own health check
    #[arg(long, conflicts_with = "health_cmd")]
    pub no_healthcheck: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for it to stop before killing it [default: the container's
    /// --stop-timeout, else 10]
    #[arg(short = 't', long = "time", visible_alias = "timeout", value_name = "SECS",
          value_parser = parse_stop_timeout)]
    pub time: Option<u32>,
    /// Container names or id prefixes
    #[arg(value_name = "NAME|ID", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove running containers too (kills them first)
    #[arg(short, long)]
    pub force: bool,
    /// Container names or id prefixes
    #[arg(value_name = "NAME|ID", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Container name or id prefix
    #[arg(value_name = "NAME|ID")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output until the container stops
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line)
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_tail)]
    pub tail: Option<Tail>,
    /// Only lines since a time: a duration ago (10m, 1h30m) or RFC 3339 (2026-01-02T10:00:00Z)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp (nanoseconds)
    #[arg(short, long)]
    pub timestamps: bool,
    /// Container name or id prefix
    #[arg(value_name = "NAME|ID")]
    pub container: String,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth exec -it web sh\n  berth exec web -- ls -l /data\n  \
                        echo hello | berth exec -i web cat"
)]
pub struct ExecArgs {
    /// Keep stdin open and send it to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (with -i, from a terminal: an interactive shell)
    #[arg(short, long)]
    pub tty: bool,
    /// Run as user, user:group, uid or uid:gid
    #[arg(short, long, value_name = "USER", value_parser = parse_user)]
    pub user: Option<String>,
    /// The working directory inside the container (an absolute path)
    #[arg(short, long, value_name = "DIR", value_parser = parse_workdir)]
    pub workdir: Option<String>,
    /// Set an environment variable: KEY=VALUE, or KEY to take its value from this environment
    #[arg(short, long = "env", value_name = "K=V", value_parser = spec::parse_env)]
    pub env: Vec<EnvArg>,
    /// Container name or id prefix
    #[arg(value_name = "NAME|ID")]
    pub container: String,
    /// The command and its arguments (after `--` when an argument starts with -)
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "One of SRC and DEST is a container path, NAME:PATH (a relative PATH is taken \
                  from /). `-` as DEST writes a tar archive to stdout; as SRC, reads one from \
                  stdin and unpacks it into the directory DEST.\n\n\
                  A file copied to an existing directory lands in it; to any other path, under \
                  that name. A directory copied to an existing directory lands in it under its \
                  own name (`DIR/.` copies its contents); to a new path, under that name.\n\n\
                  Examples:\n  berth cp web:/etc/nginx/nginx.conf .\n  \
                  berth cp ./site web:/usr/share/nginx/html\n  berth cp db:/backup - > backup.tar"
)]
pub struct CpArgs {
    /// Follow a symlink given as SRC (copy what it points to)
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Keep owners (uid and gid) in the container; otherwise copied files belong to its root
    #[arg(short, long)]
    pub archive: bool,
    /// What to copy: NAME:PATH, a local path, or - (a tar archive on stdin)
    #[arg(value_name = "SRC")]
    pub source: String,
    /// Where: NAME:PATH, a local path, or - (a tar archive to stdout)
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// `-t` and `--stop-timeout`: seconds, at most an hour, as the agent takes them.
fn parse_stop_timeout(s: &str) -> Result<u32, ValidationError> {
    let max = berth_shared::options::MAX_STOP_TIMEOUT_SECS;
    match s.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ValidationError::new(
            "stop-timeout",
            format!("expected seconds from 0 to {max}"),
        )),
    }
}

/// `--node`: a node name, by the rule `--name` follows.
fn parse_service_name(s: &str) -> Result<String, ValidationError> {
    berth_shared::service::validate_service_name(s).map(|()| s.to_owned())
}

fn parse_node(s: &str) -> Result<String, ValidationError> {
    berth_shared::constraint::validate_node_name("node", s).map(|()| s.to_owned())
}

fn parse_user(s: &str) -> Result<String, ValidationError> {
    berth_shared::exec::validate_user("user", s).map(|()| s.to_owned())
}

fn parse_workdir(s: &str) -> Result<String, ValidationError> {
    berth_shared::exec::validate_workdir("workdir", s).map(|()| s.to_owned())
}

/// `--tail`: Docker takes a count or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    All,
    Last(u32),
}

impl Tail {
    pub fn lines(self) -> Option<u32> {
        match self {
            Tail::All => None,
            Tail::Last(n) => Some(n),
        }
    }
}

fn parse_tail(s: &str) -> Result<Tail, ValidationError> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Tail::All);
    }
    s.parse::<u32>()
        .map(Tail::Last)
        .map_err(|_| ValidationError::new("tail", "expected a number of lines or \"all\""))
}

fn parse_name(s: &str) -> Result<String, ValidationError> {
    spec::validate_container_name(s).map(|()| s.to_owned())
}

fn parse_image(s: &str) -> Result<ImageRef, ValidationError> {
    ImageRef::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        match parse(&full)?.command {
            Some(Command::Run(r)) => Ok(*r),
            other => panic!("expected run, got {other:?}"),
        }
    }

    /// Asserts the arguments are refused and the message names `needle` (the field).
    #[track_caller]
    fn refused(args: &[&str], needle: &str) {
        match run_args(args) {
            Ok(r) => panic!("{args:?} was accepted: {r:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(needle),
                    "{args:?}: {msg:?} does not name {needle:?}"
                );
            }
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_memory_is_refused_naming_the_field() {
        refused(&["--memory", "-5", "img"], "invalid memory");
        refused(&["--memory", "12qq", "img"], "invalid memory");
        refused(&["-m", "0", "img"], "invalid memory");
    }

    #[test]
    fn bad_cpus_are_refused_naming_the_field() {
        refused(&["--cpus", "0", "img"], "invalid cpus");
        refused(&["--cpus", "abc", "img"], "invalid cpus");
        refused(&["--cpus", "-1", "img"], "invalid cpus");
    }

    #[test]
    fn bad_ports_are_refused_naming_the_field() {
        refused(&["-p", "99999:80", "img"], "invalid port");
        refused(&["-p", "80:80/xyz", "img"], "invalid port");
    }

    #[test]
    fn env_needs_a_key_but_not_a_value() {
        refused(&["-e", "=x", "img"], "invalid env");
        let r = run_args(&["-e", "NOVALUE=", "-e", "INHERITED", "img"]).expect("accepted");
        assert_eq!(
            r.c.env,
            vec![
                EnvArg::Pair("NOVALUE".into(), String::new()),
                EnvArg::Inherit("INHERITED".into())
            ]
        );
    }

    #[test]
    fn bad_images_are_refused_naming_the_field() {
        refused(&["UPPER/case"], "invalid image");
        refused(&["a::b"], "invalid image");
        refused(&[""], "invalid image");
        let long = "a".repeat(300);
        refused(&[&long], "invalid image");
    }

    #[test]
    fn bad_names_restart_and_labels_are_refused() {
        refused(&["--name", "-bad", "img"], "invalid name");
        refused(&["--name", "has space", "img"], "invalid name");
        refused(&["--name", "/slash", "img"], "invalid name");
        refused(&["--restart", "sometimes", "img"], "invalid restart");
        refused(&["--label", "berth.node=x", "img"], "label");
    }

    #[test]
    fn run_takes_flags_image_and_trailing_command() {
        let r = run_args(&[
            "--name",
            "web",
            "-e",
            "A=1",
            "-p",
            "8080:80",
            "--cpus",
            "0.5",
            "--memory",
            "512m",
            "--restart",
            "on-failure:3",
            "--label",
            "team=x",
            "img:1",
            "--lines",
            "3",
            "-x",
        ])
        .expect("accepted");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.c.image.tag.as_deref(), Some("1"));
        assert_eq!(r.c.cpus, Some(0.5));
        assert_eq!(r.c.memory, Some(512 * 1024 * 1024));
        assert_eq!(
            r.c.restart,
            Some(RestartPolicy::OnFailure { max_retries: 3 })
        );
        assert_eq!(r.c.label, vec![("team".to_owned(), "x".to_owned())]);
        assert_eq!(r.c.publish.len(), 1);
        assert_eq!(r.c.command, vec!["--lines", "3", "-x"]);
    }

    #[test]
    fn run_allows_double_dash_before_the_command() {
        let r = run_args(&["img", "--", "--lines", "3"]).expect("accepted");
        assert_eq!(
            crate::commands::run::command_words(&r.c.command),
            ["--lines", "3"]
        );
        let r = run_args(&["--name", "xy", "--", "img", "--lines", "3"]).expect("accepted");
        assert_eq!(
            crate::commands::run::command_words(&r.c.command),
            ["--lines", "3"]
        );
    }

    #[test]
    fn entrypoint_may_be_empty() {
        let r = run_args(&["--entrypoint", "", "img"]).expect("accepted");
        assert_eq!(r.c.entrypoint.as_deref(), Some(""));
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let c = parse(&["ps", "-a", "-o", "json", "--agent", "h:1"]).expect("accepted");
        assert_eq!(c.global.output, OutputFormat::Json);
        assert_eq!(c.global.agent.as_deref(), Some("h:1"));
        let c = parse(&["-o", "wide", "nodes"]).expect("accepted");
        assert_eq!(c.global.output, OutputFormat::Wide);
        assert!(parse(&["-o", "yaml", "nodes"]).is_err());
    }

    #[test]
    fn logs_flags() {
        let c = parse(&["logs", "-f", "--tail", "5", "--since", "10m", "-t", "web"]).expect("ok");
        let Some(Command::Logs(l)) = c.command else {
            panic!("not logs")
        };
        assert!(l.follow && l.timestamps);
        assert_eq!(l.tail, Some(Tail::Last(5)));
        assert_eq!(l.since.as_deref(), Some("10m"));
        assert!(parse(&["logs", "--tail", "-1", "web"]).is_err());
        let c = parse(&["logs", "--tail", "all", "web"]).expect("ok");
        let Some(Command::Logs(l)) = c.command else {
            panic!("not logs")
        };
        assert_eq!(l.tail, Some(Tail::All));
    }

    #[test]
    fn stop_and_rm_take_several_containers() {
        let c = parse(&["stop", "-t", "3", "a", "b"]).expect("ok");
        let Some(Command::Stop(s)) = c.command else {
            panic!("not stop")
        };
        assert_eq!((s.time, s.containers.len()), (Some(3), 2));
        let c = parse(&["stop", "a"]).expect("ok");
        let Some(Command::Stop(s)) = c.command else {
            panic!("not stop")
        };
        assert_eq!(s.time, None, "the container's own, else Docker's 10 s");
        assert!(parse(&["rm"]).is_err());
        let c = parse(&["rm", "-f", "a"]).expect("ok");
        assert!(matches!(
            c.command,
            Some(Command::Rm(RmArgs { force: true, .. }))
        ));
    }

    #[test]
    fn tui_flags_have_defaults_and_bounds() {
        let c = parse(&[]).expect("accepted");
        assert!(c.command.is_none());
        assert_eq!(c.tui.log_lines, DEFAULT_LOG_LINES);
        assert!(!c.tui.no_color && !c.tui.no_mouse);
        let c = parse(&["--no-color", "--no-mouse", "--log-lines", "50"]).expect("accepted");
        assert!(c.tui.no_color && c.tui.no_mouse);
        assert_eq!(c.tui.log_lines, 50);
        for bad in ["0", "-1", "many", "1000001"] {
            let e = parse(&[&format!("--log-lines={bad}")]).expect_err("refused");
            assert!(e.to_string().contains("invalid log-lines"), "{e}");
        }
    }

    #[test]
    fn token_file_and_token_may_both_be_given() {
        let c = parse(&["--token", "a", "--token-file", "/x", "nodes"]).expect("accepted");
        assert_eq!(c.global.token.as_deref(), Some("a"));
        assert!(c.global.token_file.is_some());
    }
}
