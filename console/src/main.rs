//! `berth`: parse the command line, run it, and let color-eyre print any failure.

use clap::Parser;
use color_eyre::eyre::{Result, WrapErr};

fn main() -> Result<()> {
    no_backtraces_for_user_errors();
    berth_console::install_error_hook()?;
    let cli = berth_console::cli::Cli::parse();
    // Quiet by default: the embedded agent's logs are for whoever asks with RUST_LOG. The TUI
    // owns the screen, so there they go to a file instead of stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env());
        if cli.command.is_none() {
            let path = std::env::temp_dir().join("berth-tui.log");
            if let Ok(file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                let _ = builder
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .try_init();
            }
        } else {
            let _ = builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
    // A command is one request and its answer (or one stream, for `logs -f`): on one thread, the
    // connection task and the printing task hand each message over without waking another
    // thread, which is most of what `berth logs -f` added to `docker logs -f`. The TUI draws,
    // reads the terminal and keeps a watch stream at once, so it gets the worker threads.
    let runtime = if cli.command.is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .wrap_err("cannot start the async runtime")?;
    let result = runtime.block_on(berth_console::run(cli));
    // `berth exec`: the command's status is ours; it has said what it had to.
    if let Err(e) = &result
        && let Some(exited) = e.downcast_ref::<berth_console::commands::exec::Exited>()
    {
        std::process::exit(exited.0);
    }
    result.map_err(berth_console::user_facing)
}

/// A refused flag or an unknown container is not a crash: with `RUST_BACKTRACE=1` set (as
/// many developers' shells have it) color-eyre would capture and resolve a backtrace for every
/// error, 0.7 s and 100+ MB for a one-line message. `RUST_LIB_BACKTRACE=0` turns that off for
/// errors (panics still follow `RUST_BACKTRACE`); set `RUST_LIB_BACKTRACE=1` to see where an
/// error was made.
#[allow(unsafe_code)]
fn no_backtraces_for_user_errors() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the first thing `main` does, before any thread exists (no runtime, no
        // logger, nothing spawned), so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
