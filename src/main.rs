//! `freshet`: the command line.

use clap::{Parser, Subcommand};
use freshet::{
    config::{Config, ServeArgs},
    server::Server,
    telemetry,
};

#[derive(Parser)]
#[command(
    name = "freshet",
    version,
    about = "Open-banking refresh orchestration and webhook delivery engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: API, engines and (in development) the sandbox bank.
    Serve(ServeArgs),
    /// Print the configuration `serve` would use, secrets masked, and exit.
    Config(ServeArgs),
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Measure this machine: `freshet bench delivery`.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Webhook throughput and latency, end to end, against a local receiver.
    Delivery(freshet::bench::DeliveryBench),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(Config::resolve(args)?).await,
        Command::Config(args) => {
            println!("{}", Config::resolve(args)?.describe());
            Ok(())
        }
        Command::Bench(Bench::Delivery(b)) => freshet::bench::run(b).await,
        Command::Openapi => {
            println!("{}", freshet_api::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    telemetry::init(config.log_format);
    if let Some(path) = config.ensure_admin_token(&std::env::current_dir()?)? {
        tracing::info!(file = %path.display(), "admin token for /v1/applications is in this file");
    }
    let server = Server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight work");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
