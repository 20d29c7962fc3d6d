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
    about = "Open-banking refresh orchestration and webhook delivery engine",
    after_help = freshet::cli::EXIT_CODES
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
    /// Copy a SQLite store to FILE while nodes keep serving (PostgreSQL: see
    /// docs/operations.md, "Backups").
    Backup(BackupArgs),
    /// Receive webhooks locally: verify each signature, print a line per event, optionally
    /// forward to your app.
    Listen(freshet::listen::Listen),
    /// Run the sandbox bank alone (it is also mounted at /sandbox by `freshet serve`).
    Sandbox(SandboxArgs),
    /// Measure this machine: `freshet bench delivery`, `freshet bench refresh`.
    #[command(subcommand)]
    Bench(Bench),
    /// The master key that seals secrets at rest: `freshet keys new`, `freshet keys rotate`.
    #[command(subcommand)]
    Keys(freshet::keys::Keys),
    #[command(flatten)]
    Api(freshet::cli::Command),
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The file to write; it must not exist.
    file: std::path::PathBuf,
    /// The store to copy, as `serve` finds it: --database-url, FRESHET_DATABASE_URL or the
    /// configuration file.
    #[command(
        flatten,
        next_help_heading = "Options of serve (only --config and --database-url matter here)"
    )]
    store: ServeArgs,
}

#[derive(clap::Args)]
struct SandboxArgs {
    #[command(subcommand)]
    command: Option<SandboxCommand>,
    /// Address to listen on [default: 127.0.0.1:8090, or 127.0.0.1:8443 with --strict].
    #[arg(long, env = "FRESHET_SANDBOX_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Serve over HTTPS with mutual TLS, each bank enforcing its standard's security profile
    /// (see docs/sandbox.md, "Strict mode"). Needs --pki.
    #[arg(long, requires = "pki")]
    strict: bool,
    /// The directory `freshet sandbox pki` wrote (server certificate, CA, client's keys).
    #[arg(long, requires = "strict", value_name = "DIR")]
    pki: Option<std::path::PathBuf>,
    /// The seed its data derives from.
    #[arg(long, env = "FRESHET_SANDBOX_SEED", default_value_t = 1)]
    seed: u64,
    /// Calls per consent, day and endpoint without the customer present.
    #[arg(long, default_value_t = 4)]
    unattended_per_day: u32,
    /// Its public URL, when behind a proxy (links it returns use it).
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Write a test PKI for the strict sandbox and DIR/providers.toml for its five banks.
    Pki {
        /// The directory to write (created if needed).
        dir: std::path::PathBuf,
        /// The address the strict sandbox will serve; its host goes into the server
        /// certificate and the registry's URLs.
        #[arg(long, default_value = "https://127.0.0.1:8443")]
        url: String,
        /// Overwrite a directory that is not empty.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Webhook throughput and latency, end to end, against a local receiver.
    Delivery(freshet::bench::DeliveryBench),
    /// Refresh throughput against the sandbox bank: a first import, then a steady cycle.
    Refresh(freshet::bench_refresh::RefreshBench),
    /// What purging a million old rows costs delivery, and the store's size in a steady run.
    Retention(freshet::bench_retention::RetentionBench),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(Config::resolve(args)?).await,
        Command::Config(args) => {
            println!("{}", Config::resolve(args)?.describe());
            Ok(())
        }
        Command::Sandbox(args) => sandbox(args).await,
        Command::Listen(args) => freshet::listen::run(args).await,
        Command::Bench(Bench::Delivery(b)) => freshet::bench::run(b).await,
        Command::Bench(Bench::Refresh(b)) => freshet::bench_refresh::run(b).await,
        Command::Keys(command) => freshet::keys::run(command).await,
        Command::Bench(Bench::Retention(b)) => freshet::bench_retention::run(b).await,
        Command::Api(command) => std::process::exit(freshet::cli::run(command).await),
        Command::Backup(args) => backup(args).await,
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

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let config = Config::resolve(args.store)?;
    let url = config.database_url.expose_secret();
    let started = std::time::Instant::now();
    freshet_store::backup_sqlite(url, &args.file).await?;
    let bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({bytes} bytes, {} ms)",
        freshet::config::redact_url(url),
        args.file.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    if let Some(SandboxCommand::Pki { dir, url, force }) = &args.command {
        freshet_sandbox::write_pki(dir, url, *force)?;
        println!(
            "wrote a test PKI and {} for {url} into {}",
            freshet_sandbox::PROVIDERS_FILE,
            dir.display()
        );
        return Ok(());
    }
    telemetry::init(freshet::config::LogFormat::Text);
    let sandbox = freshet_sandbox::Sandbox::new(freshet_sandbox::SandboxConfig {
        seed: args.seed,
        unattended_per_day: args.unattended_per_day,
        public_url: args.public_url,
        ..Default::default()
    });
    if let Some(dir) = args.pki.filter(|_| args.strict) {
        let config = freshet_sandbox::StrictConfig::load(&dir)?;
        let addr = args.listen.unwrap_or(([127, 0, 0, 1], 8443).into());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, seed = args.seed, pki = %dir.display(),
            "the strict sandbox bank is serving over HTTPS");
        freshet_sandbox::serve_strict(listener, config, sandbox, shutdown_signal()).await?;
        return Ok(());
    }
    let addr = args.listen.unwrap_or(([127, 0, 0, 1], 8090).into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, seed = args.seed, "the sandbox bank is serving");
    axum::serve(listener, freshet_sandbox::router(sandbox))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
