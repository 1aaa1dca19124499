//! The `cauldron` binary: command line, logging, signals, exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Cauldron MQTT broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (layered over the built-in defaults; CAULDRON_* environment
    /// variables override both, `__` separating nested keys).
    #[arg(long, short = 'c', value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print the commented default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Load and validate the configuration, then exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Add, update or delete a user of an argon2id password file. The hashing cost
    /// comes from `[auth.password_file] argon2` of --config when given.
    Passwd(cauldron::passwd_cli::PasswdArgs),
    /// GET an http:// URL and exit 0 on a 2xx answer, 1 otherwise (the container
    /// health check: `cauldron probe http://127.0.0.1:9883/health`).
    Probe(cauldron::probe::ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", cauldron::config::DEFAULT_CONFIG_TOML);
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Passwd(args)) = &cli.command {
        // No tracing subscriber: nothing about a password is ever logged.
        return match passwd(args, cli.config.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cauldron passwd: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Probe(args)) = &cli.command {
        return match cauldron::probe::run(args) {
            Ok(code) => {
                println!("{} {code}", args.url);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cauldron probe: {}: {e}", args.url);
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    cauldron::contain::install_hook();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("cauldron: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn passwd(
    args: &cauldron::passwd_cli::PasswdArgs,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match config {
        Some(path) => {
            let config = cauldron::config::load(Some(path))?;
            let params = config
                .auth
                .password_file
                .map(|p| p.argon2)
                .unwrap_or_default();
            cauldron::passwd_cli::run_with(args, &params)
        }
        None => cauldron::passwd_cli::run(args),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cli_config = cli.config.clone();
    let config = cauldron::config::load(cli_config.as_deref())?;
    if cli.check_config {
        println!("configuration is valid");
        return Ok(());
    }
    if !cauldron::heap::configure() {
        tracing::warn!("the allocator refused its arena limit; freed memory may stay resident");
    }
    if let Err(e) = cauldron::heap::spawn_trimmer() {
        tracing::warn!(error = %e, "cannot start the heap trimmer; freed memory may stay resident");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let server = cauldron::server::Server::bind(config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        tokio::spawn(reload_on_sighup(server.broker(), cli.config.clone()));
        info!(version = env!("CARGO_PKG_VERSION"), "cauldron started");
        server.run(shutdown).await?;
        info!("cauldron stopped");
        Ok(())
    })
}

/// SIGINT and SIGTERM start a graceful shutdown.
async fn signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

/// SIGHUP reloads the authentication files and the TLS certificates, re-reads the
/// configuration file and swaps in a new plugin chain; when the new
/// set fails to load, the running one stays and the reason is logged.
async fn reload_on_sighup(broker: std::sync::Arc<cauldron::broker::Broker>, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            error!("cannot install the SIGHUP handler");
            return;
        };
        while hup.recv().await.is_some() {
            info!(
                "SIGHUP received, reloading the password file, jwt keys, acl rules, certificates and plugins"
            );
            for e in cauldron::server::reload_auth(&broker).await {
                error!(error = %e, "authentication reload failed; keeping the previous state of that part");
            }
            for (listener, e) in cauldron::server::reload_tls(&broker).await {
                error!(listener, error = %e, "certificate reload failed; keeping the previous certificates");
            }
            let config = match cauldron::config::load(path.as_deref()) {
                Ok(config) => config,
                Err(e) => {
                    error!(error = %e, "configuration reload failed; keeping the running plugins");
                    continue;
                }
            };
            match cauldron::server::reload_plugins(&broker, &config.plugins).await {
                Ok(()) => info!("plugins reloaded"),
                Err(e) => error!(error = %e, "plugin reload failed; keeping the running plugins"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (broker, path);
}
