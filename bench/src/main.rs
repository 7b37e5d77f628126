//! `berth-bench`: Berth's benchmarks, each against its baseline measured in the same run.
//!
//! `berth-bench all` runs every benchmark (about 15 minutes on 2 cores) and writes
//! `bench/results/<date>.md` and `.json`; `berth-bench NAME` runs one. They print figures and never
//! fail on a number. See bench/README.md for what each figure means.

mod agent;
mod benches;
mod cleanup;
mod machine;
mod procs;
mod report;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tokio::sync::OnceCell;

use report::{Report, Row};

/// Any error, with a message saying what was being done.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error that is just a message.
pub fn err(message: impl Into<String>) -> Error {
    message.into().into()
}

/// Other builds' processes first seen during the run, per benchmark running then, per kind.
static BUSY: Mutex<BTreeMap<&'static str, BTreeMap<String, usize>>> = Mutex::new(BTreeMap::new());
/// The benchmark running now (for [`BUSY`]).
static CURRENT: Mutex<&'static str> = Mutex::new("start-up");

/// The label every container a benchmark makes carries (`berth-bench.run=<run id>`; `berth.` keys are reserved).
pub const LABEL: &str = "berth-bench.run";

#[derive(Debug, Parser)]
#[command(
    name = "berth-bench",
    about = "Berth's benchmarks: each figure against its baseline, measured in the same run",
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
    #[command(flatten)]
    opts: Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Bench {
    /// Every benchmark below, in order (about 15 minutes on 2 cores)
    All,
    /// `berth run` until running, local and through a peer, vs `docker run -d` and a swarm service
    RunLatency,
    /// `berth ps -a` vs `docker ps -a` with 200 containers
    Ps,
    /// `berth logs` vs `docker logs` of a container that printed 1,000,000 lines
    Logs,
    /// Line delay of `berth logs -f` vs `docker logs -f` (p50, p99)
    Follow,
    /// RSS and CPU of an idle agent with 0, 100 and 500 running containers
    Footprint,
    /// Hollow-node cluster (in-memory runtime): convergence, failure detection, gossip, placements
    Scale,
    /// The console: TUI frame time (criterion), start-to-first-output and memory of `berth`
    Console,
    /// Services: create 30 replicas vs a swarm service; kill -9 of a node until its replica
    /// runs elsewhere
    Services,
    /// Hollow nodes with services (issue 9): 200 services × 5 replicas on 100 nodes from nothing,
    /// restore after kill -9 of 10 nodes, gossip with and without services
    HollowServices,
    /// Security on vs off (issue 10): run, ps, follow and placements/s over TLS vs plaintext;
    /// gossip bytes at N hollow nodes, sealed vs plain
    Security,
}

impl Bench {
    const EACH: [Bench; 10] = [
        Bench::RunLatency,
        Bench::Ps,
        Bench::Logs,
        Bench::Follow,
        Bench::Footprint,
        Bench::Scale,
        Bench::Console,
        Bench::Services,
        Bench::HollowServices,
        Bench::Security,
    ];

    fn name(self) -> &'static str {
        match self {
            Bench::All => "all",
            Bench::RunLatency => "run-latency",
            Bench::Ps => "ps",
            Bench::Logs => "logs",
            Bench::Follow => "follow",
            Bench::Footprint => "footprint",
            Bench::Scale => "scale",
            Bench::Console => "console",
            Bench::Services => "services",
            Bench::HollowServices => "hollow-services",
            Bench::Security => "security",
        }
    }
}

/// Every knob, for every benchmark (each uses its own).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Rounds of every benchmark that counts rounds (overrides the per-benchmark defaults)
    #[arg(long, global = true)]
    pub rounds: Option<usize>,

    /// run-latency: rounds (each: docker run, berth local, berth via a peer, swarm)
    #[arg(long, global = true, default_value_t = 10)]
    pub run_rounds: usize,

    /// ps: containers listed
    #[arg(long, global = true, default_value_t = 200)]
    pub ps_containers: usize,
    /// ps: rounds
    #[arg(long, global = true, default_value_t = 10)]
    pub ps_rounds: usize,

    /// logs: lines the container prints
    #[arg(long, global = true, default_value_t = 1_000_000)]
    pub logs_lines: u64,
    /// logs: rounds
    #[arg(long, global = true, default_value_t = 3)]
    pub logs_rounds: usize,

    /// security: rounds (each runs every command against the open pair and the secured one)
    #[arg(long, global = true, default_value_t = 5)]
    pub security_rounds: usize,
    /// security: hollow nodes for the gossip figure, sealed and plain
    #[arg(long, global = true, default_value_t = 100)]
    pub security_nodes: usize,

    /// follow: rounds (each follows with berth, then docker, or the other way round)
    #[arg(long, global = true, default_value_t = 3)]
    pub follow_rounds: usize,
    /// follow: seconds each follower reads per round
    #[arg(long, global = true, default_value_t = 5)]
    pub follow_secs: u64,
    /// follow: milliseconds between the workload's lines
    #[arg(long, global = true, default_value_t = 10)]
    pub follow_interval_ms: u64,

    /// footprint: running containers for each window (comma-separated)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "0,100,500"
    )]
    pub footprint_counts: Vec<usize>,
    /// footprint: seconds sampled for each count
    #[arg(long, global = true, default_value_t = 60)]
    pub footprint_secs: u64,

    /// scale: cluster sizes (comma-separated)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "10,50,100"
    )]
    pub scale_nodes: Vec<usize>,
    /// scale: placements through one agent, and again through all of them
    #[arg(long, global = true, default_value_t = 10_000)]
    pub scale_placements: usize,
    /// scale: time limit of each placement phase, in seconds (the rate is of what was placed)
    #[arg(long, global = true, default_value_t = 30)]
    pub scale_placement_secs: u64,
    /// scale: Run calls in flight through the one entry agent
    #[arg(long, global = true, default_value_t = 16)]
    pub scale_inflight: usize,
    /// scale: Run calls in flight per agent when placing through all of them
    #[arg(long, global = true, default_value_t = 2)]
    pub scale_inflight_per_agent: usize,
    /// scale: seconds over which gossip traffic is measured
    #[arg(long, global = true, default_value_t = 10)]
    pub scale_gossip_secs: u64,

    /// hollow-services: hollow nodes
    #[arg(long, global = true, default_value_t = 100)]
    pub hollow_nodes: usize,
    /// hollow-services: services created
    #[arg(long, global = true, default_value_t = 200)]
    pub hollow_services: usize,
    /// hollow-services: replicas of each service
    #[arg(long, global = true, default_value_t = 5)]
    pub hollow_replicas: usize,
    /// hollow-services: agents killed at once with SIGKILL (never the polled one)
    #[arg(long, global = true, default_value_t = 10)]
    pub hollow_kill: usize,
    /// hollow-services: every agent's --reschedule-after
    #[arg(long, global = true, default_value = "0s")]
    pub hollow_reschedule_after: String,
    /// hollow-services: seconds over which gossip traffic is measured
    #[arg(long, global = true, default_value_t = 10)]
    pub hollow_gossip_secs: u64,

    /// console: rounds of each command
    #[arg(long, global = true, default_value_t = 10)]
    pub console_rounds: usize,
    /// console: skip the criterion TUI frame benchmark
    #[arg(long, global = true)]
    pub no_criterion: bool,

    /// Where berthd and berth are [default: the directory of this executable]
    #[arg(long, global = true, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Where results are written [default: bench/results in the workspace]
    #[arg(long, global = true, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Print the table only; write no results file
    #[arg(long, global = true)]
    pub no_write: bool,
}

impl Options {
    fn rounds(&self, default: usize) -> usize {
        self.rounds.unwrap_or(default).max(1)
    }
}

/// What every benchmark shares: the options, the binaries, this run's id and the workload image.
pub struct Ctx {
    pub opts: Options,
    pub berthd: PathBuf,
    pub berth: PathBuf,
    /// Unique per run; the value of [`LABEL`] on every container made.
    pub run_id: String,
    /// In `all`, the `ps` figures are taken on the footprint agent's fleet when it reaches
    /// `--ps-containers` (saving a fleet of its own), not by a `ps` run of their own.
    pub ps_in_footprint: bool,
    image: OnceCell<String>,
    remarks: Mutex<Vec<String>>,
}

impl Ctx {
    /// The workload image (built once, through the Docker API, by the test kit).
    pub async fn image(&self) -> Result<String> {
        self.image
            .get_or_try_init(|| async {
                berth_testkit::workload_image()
                    .await
                    .map_err(|e| err(format!("cannot build the workload image: {e}")))
            })
            .await
            .cloned()
    }

    /// A remark printed under the table.
    pub fn remark(&self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("note: {text}");
        self.remarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text);
    }

    pub fn rounds(&self, default: usize) -> usize {
        self.opts.rounds(default)
    }
}

/// The workspace root (this crate's parent).
pub fn workspace_dir() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn find_binaries(opts: &Options) -> Result<(PathBuf, PathBuf)> {
    let find = |name: &str| -> Result<PathBuf> {
        match &opts.bin_dir {
            Some(dir) => {
                let path = dir.join(name);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(err(format!("{} is missing", path.display())))
                }
            }
            None => berth_testkit::bin_path(name).map_err(|e| {
                err(format!(
                    "{e} (build them with `cargo build --release -p berth-agent -p berth-console`, \
                     or use `just bench`)"
                ))
            }),
        }
    };
    Ok((find("berthd")?, find("berth")?))
}

async fn run_one(ctx: &Ctx, bench: Bench) -> Result<Vec<Row>> {
    eprintln!("== {} ==", bench.name());
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = bench.name();
    let t0 = Instant::now();
    let rows = match bench {
        Bench::All => Ok(Vec::new()),
        Bench::RunLatency => benches::run_latency::run(ctx).await,
        Bench::Ps => benches::ps::run(ctx).await,
        Bench::Logs => benches::logs::run(ctx).await,
        Bench::Follow => benches::follow::run(ctx).await,
        Bench::Footprint => benches::footprint::run(ctx).await,
        Bench::Scale => benches::scale::run(ctx).await,
        Bench::Console => benches::console::run(ctx).await,
        Bench::Services => benches::services::run(ctx).await,
        Bench::HollowServices => benches::hollow_services::run(ctx).await,
        Bench::Security => benches::security::run(ctx).await,
    };
    eprintln!(
        "== {} done in {:.0} s ==",
        bench.name(),
        t0.elapsed().as_secs_f64()
    );
    rows
}

async fn run_all(ctx: &Ctx, bench: Bench) -> (Vec<Row>, Vec<(String, String)>) {
    let list: Vec<Bench> = if bench == Bench::All {
        Bench::EACH
            .into_iter()
            .filter(|b| !(*b == Bench::Ps && ctx.ps_in_footprint))
            .collect()
    } else {
        vec![bench]
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for b in list {
        match run_one(ctx, b).await {
            Ok(mut r) => {
                // What a benchmark measured so far is printed as it goes.
                rows.append(&mut r);
            }
            Err(e) => {
                eprintln!("{} failed: {e}", b.name());
                failures.push((b.name().to_owned(), e.to_string()));
            }
        }
        // Whatever a benchmark left registered goes before the next one starts.
        cleanup::everything().await;
    }
    (rows, failures)
}

enum Ended {
    Done(Vec<Row>, Vec<(String, String)>),
    Signal(&'static str),
}

async fn signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(real_main(cli));
    std::process::ExitCode::from(code)
}

async fn real_main(cli: Cli) -> u8 {
    let (berthd, berth) = match find_binaries(&cli.opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            return 2;
        }
    };
    let started = chrono::Utc::now();
    let t0 = Instant::now();
    let mut machine = machine::describe().await;
    if machine.load_at_start >= 1.0 || !machine.busy_at_start.is_empty() {
        eprintln!(
            "warning: the machine is busy (load {:.2}{}): figures will be noisy",
            machine.load_at_start,
            if machine.busy_at_start.is_empty() {
                String::new()
            } else {
                format!("; running: {}", machine.busy_at_start.join(", "))
            }
        );
    }
    let ctx = Ctx {
        opts: cli.opts.clone(),
        berthd,
        berth,
        run_id: berth_testkit::unique("bench"),
        ps_in_footprint: cli.bench == Bench::All
            && cli
                .opts
                .footprint_counts
                .iter()
                .any(|c| *c >= cli.opts.ps_containers),
        image: OnceCell::new(),
        remarks: Mutex::new(Vec::new()),
    };
    eprintln!(
        "berth-bench {}: run id {} (containers labelled {LABEL}={})",
        cli.bench.name(),
        ctx.run_id,
        ctx.run_id
    );
    let bench = cli.bench;
    // Other builds starting during the run make its figures noisy: note which benchmarks saw
    // them, and how many processes of each kind.
    let watcher = tokio::spawn(async {
        let mut seen = std::collections::BTreeSet::new();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let bench = *CURRENT.lock().unwrap_or_else(|p| p.into_inner());
            for p in procs::busy_processes() {
                if seen.insert(p.clone()) {
                    let name = p.split('[').next().unwrap_or(&p).to_owned();
                    if seen.len() == 1 {
                        eprintln!("warning: {p} started during {bench}: figures will be noisy");
                    }
                    *BUSY
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(bench)
                        .or_default()
                        .entry(name)
                        .or_default() += 1;
                }
            }
        }
    });
    let ended = {
        let work = run_all(&ctx, bench);
        tokio::pin!(work);
        tokio::select! {
            (rows, failures) = &mut work => Ended::Done(rows, failures),
            name = signal() => Ended::Signal(name),
        }
        // `work` (and every guard inside it) is dropped here.
    };
    let (rows, failures) = match ended {
        Ended::Done(rows, failures) => (rows, failures),
        Ended::Signal(name) => {
            eprintln!("berth-bench: {name}: cleaning up containers, swarm and processes");
            cleanup::everything().await;
            return 130;
        }
    };
    cleanup::everything().await;
    watcher.abort();
    machine.load_at_end = procs::load1();
    machine.busy_during = BUSY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(bench, kinds)| {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            format!("{bench} ({})", kinds.join(", "))
        })
        .collect();
    let report = Report {
        benchmark: bench.name().to_owned(),
        started: started.format("%Y-%m-%d %H:%M UTC").to_string(),
        duration_secs: t0.elapsed().as_secs_f64(),
        command: std::iter::once("berth-bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        machine,
        rows,
        failures,
        remarks: ctx
            .remarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    };
    println!("{}", report.table());
    for (b, e) in &report.failures {
        println!("failed: {b}: {e}");
    }
    if !cli.opts.no_write {
        let dir = cli
            .opts
            .results_dir
            .clone()
            .unwrap_or_else(|| workspace_dir().join("bench").join("results"));
        let date = started.format("%Y-%m-%d").to_string();
        let stem = if bench == Bench::All {
            date
        } else {
            format!("{date}-{}", bench.name())
        };
        match report.write(&dir, &stem) {
            Ok((md, json)) => eprintln!("wrote {} and {}", md.display(), json.display()),
            Err(e) => {
                eprintln!(
                    "berth-bench: cannot write the results to {}: {e}",
                    dir.display()
                );
                return 1;
            }
        }
    }
    0
}
