//! `xapi`: parses flags, loads configuration, installs logging, runs the daemon.
use clap::Parser;
use xapi_daemon::config::{Args, Config};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::resolve(args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XAPI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(xapi_daemon::run(config))
}
