//! `berth`: parse the command line, run it, and let color-eyre print any failure.

use clap::Parser;
use color_eyre::eyre::{Result, WrapErr};

fn main() -> Result<()> {
    berth_console::install_error_hook()?;
    // Quiet by default: the embedded agent's logs are for whoever asks with RUST_LOG.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let cli = berth_console::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    runtime
        .block_on(berth_console::run(cli))
        .map_err(berth_console::user_facing)
}
