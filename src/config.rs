//! Configuration: one typed [`Config`], resolved once at start-up.
//!
//! Sources, strongest first: command-line flags, `FRESHET_*` environment variables (clap reads
//! both, flags winning), a TOML file (`--config` / `FRESHET_CONFIG`), then defaults. Every value
//! is checked here, so a bad setting stops the process at start with a message naming it
//! rather than failing later. Secrets are [`SecretString`]s and never print.

use std::{
    fs,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use freshet_engine::delivery::target::{Cidr, TargetPolicy};
use freshet_store::MasterKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What freshet is set up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// For trying freshet out: sandbox bank mounted, loopback webhook targets allowed.
    Development,
    /// No sandbox, loopback targets refused, the admin token required.
    Production,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `freshet serve` settings as flags and environment variables; all optional so the TOML file
/// and defaults can fill what is not given.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (by their flag names, with underscores).
    #[arg(long, env = "FRESHET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FRESHET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://…` [default: sqlite://./freshet.db].
    #[arg(long, env = "FRESHET_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// development (default) or production.
    #[arg(long, env = "FRESHET_PROFILE", value_enum)]
    pub profile: Option<Profile>,
    /// Shorthand for `--profile production`.
    #[arg(long, conflicts_with = "profile")]
    pub production: bool,
    /// Bearer token that guards /v1/applications.
    #[arg(long, env = "FRESHET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "FRESHET_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// text or json [default: text].
    #[arg(long, env = "FRESHET_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Seconds to let in-flight work finish after SIGTERM/Ctrl-C [default: 30].
    #[arg(long, env = "FRESHET_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Largest number of database connections [default: 16].
    #[arg(long, env = "FRESHET_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Seconds a webhook receiver has to answer [default: 15].
    #[arg(long, env = "FRESHET_DELIVERY_TIMEOUT_SECONDS")]
    pub delivery_timeout_seconds: Option<u64>,
    /// Seconds a claimed delivery stays this node's; a node that dies loses its claims after
    /// this [default: 45]. Must exceed the delivery timeout by 5 s.
    #[arg(long, env = "FRESHET_DELIVERY_LEASE_SECONDS")]
    pub delivery_lease_seconds: Option<u64>,
    /// Seconds a node holds its share of the outbox partitions without renewing it (PostgreSQL;
    /// renewed every third of it): a node that stops loses its partitions to the others after
    /// this [default: 10].
    #[arg(long, env = "FRESHET_PARTITION_LEASE_SECONDS")]
    pub partition_lease_seconds: Option<u64>,
    /// IP ranges webhooks may target despite being private (comma-separated CIDRs).
    #[arg(long, env = "FRESHET_ALLOW_TARGETS", value_delimiter = ',')]
    pub allow_targets: Option<Vec<String>>,
    /// This node's name in leases and attempt logs [default: generated].
    #[arg(long, env = "FRESHET_NODE_NAME")]
    pub node_name: Option<String>,
    /// Mount the sandbox bank at /sandbox [default: true in development, false in production].
    #[arg(long, env = "FRESHET_SANDBOX")]
    pub sandbox: Option<bool>,
    /// The seed the sandbox bank's data derives from [default: 1].
    #[arg(long, env = "FRESHET_SANDBOX_SEED")]
    pub sandbox_seed: Option<u64>,
    /// The URL customers' browsers and banks reach this node at, for the OAuth callback
    /// [default: http://LISTEN].
    #[arg(long, env = "FRESHET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Scheduled refreshes per consent and day [default: 4].
    #[arg(long, env = "FRESHET_REFRESHES_PER_DAY")]
    pub refreshes_per_day: Option<u32>,
    /// Seconds between the refresh scheduler's passes [default: 10].
    #[arg(long, env = "FRESHET_REFRESH_TICK_SECONDS")]
    pub refresh_tick_seconds: Option<u64>,
    /// Seconds a bank has to answer one call [default: 30].
    #[arg(long, env = "FRESHET_BANK_TIMEOUT_SECONDS")]
    pub bank_timeout_seconds: Option<u64>,
    /// Connect to the sandbox bank at this URL (one `freshet sandbox` serves) rather than the
    /// mounted one.
    #[arg(long, env = "FRESHET_SANDBOX_URL")]
    pub sandbox_url: Option<String>,
    /// Seconds `/metrics` reuses what it read from the database (queue, unattended budget),
    /// so frequent scrapes cannot load it; 0 reads at every scrape [default: 5].
    #[arg(long, env = "FRESHET_METRICS_CACHE_SECONDS")]
    pub metrics_cache_seconds: Option<u64>,
    /// Days a consent is asked for when a link names no expiry [default: 90].
    #[arg(long, env = "FRESHET_DEFAULT_CONSENT_DAYS")]
    pub default_consent_days: Option<i64>,
    /// The provider registry: a TOML file naming the banks this node may use and how it
    /// proves who it is to each (docs/providers.md). The only source of providers in
    /// production; in development it replaces the sandbox banks.
    #[arg(long, env = "FRESHET_PROVIDERS")]
    pub providers: Option<PathBuf>,
    /// Seconds a connection has to send a request's headers; idle connections close after
    /// this too [default: 10].
    #[arg(long, env = "FRESHET_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a request body may pause before the request is answered 408 [default: 30].
    #[arg(long, env = "FRESHET_BODY_IDLE_TIMEOUT_SECONDS")]
    pub body_idle_timeout_seconds: Option<u64>,
    /// Connections served at once; more wait to be accepted [default: 4096].
    #[arg(long, env = "FRESHET_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Failed authentications a client address may make at once and per minute; beyond,
    /// it is answered 429. 0 switches this off [default: 30].
    #[arg(long, env = "FRESHET_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// A file holding the master key that seals secrets at rest: the base64 of 32 random
    /// bytes (`freshet keys new FILE` writes one). `FRESHET_MASTER_KEY` may hold the key
    /// itself instead [default in development: freshet-master-key next to the SQLite
    /// database, created on first start].
    #[arg(long, env = "FRESHET_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself: from `FRESHET_MASTER_KEY` only, never a flag (flags show in
    /// process listings).
    #[arg(skip)]
    pub master_key: Option<SecretString>,
    /// Days events (with their deliveries and attempts) and the accounts and transactions of
    /// ended consents are kept, unless an application sets its own; 0 keeps them forever
    /// [default: 30].
    #[arg(long, env = "FRESHET_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Seconds between the retention task's passes [default: 60].
    #[arg(long, env = "FRESHET_RETENTION_EVERY_SECONDS")]
    pub retention_every_seconds: Option<u64>,
    /// The retention period in seconds, replacing --retention-days: for tests and benches
    /// that cannot wait days.
    #[arg(long, env = "FRESHET_RETENTION_SECONDS", hide = true)]
    pub retention_seconds: Option<u64>,
    /// The least milliseconds the retention task pauses between batches; the pause also
    /// grows with each batch's time, so the purge takes at most 5 % of the database's time
    /// [default: 20].
    #[arg(long, env = "FRESHET_RETENTION_PAUSE_MS")]
    pub retention_pause_ms: Option<u64>,
}

/// The TOML file: the same settings, by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub profile: Option<Profile>,
    pub admin_token: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub shutdown_grace_seconds: Option<u64>,
    pub db_max_connections: Option<u32>,
    pub delivery_timeout_seconds: Option<u64>,
    pub delivery_lease_seconds: Option<u64>,
    pub partition_lease_seconds: Option<u64>,
    pub allow_targets: Option<Vec<String>>,
    pub node_name: Option<String>,
    pub sandbox: Option<bool>,
    pub sandbox_seed: Option<u64>,
    pub public_url: Option<String>,
    pub refreshes_per_day: Option<u32>,
    pub refresh_tick_seconds: Option<u64>,
    pub bank_timeout_seconds: Option<u64>,
    pub sandbox_url: Option<String>,
    pub metrics_cache_seconds: Option<u64>,
    pub default_consent_days: Option<i64>,
    pub providers: Option<PathBuf>,
    pub header_read_timeout_seconds: Option<u64>,
    pub body_idle_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub auth_failures_per_minute: Option<u32>,
    pub master_key_file: Option<PathBuf>,
    pub retention_days: Option<u32>,
    pub retention_every_seconds: Option<u64>,
    pub retention_seconds: Option<u64>,
    pub retention_pause_ms: Option<u64>,
}

/// Seconds in a day.
const DAY: u64 = 24 * 3600;

/// Where the development profile keeps a generated admin token when none is configured.
pub const ADMIN_TOKEN_FILE: &str = "freshet-admin-token";

/// The resolved configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: SecretString,
    pub profile: Profile,
    pub admin_token: Option<SecretString>,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    pub db_max_connections: u32,
    pub delivery_timeout: Duration,
    pub delivery_lease: Duration,
    /// How long a node holds its outbox partitions without renewing them.
    pub partition_lease: Duration,
    /// Ranges webhooks may target despite their kind.
    pub allow_targets: Vec<Cidr>,
    pub node_name: String,
    /// The sandbox bank is mounted at `/sandbox`.
    pub sandbox: bool,
    pub sandbox_seed: u64,
    /// Where this node is reachable; `None`: `http://` and the listening address.
    pub public_url: Option<String>,
    pub refreshes_per_day: u32,
    pub refresh_tick: Duration,
    pub bank_timeout: Duration,
    /// A sandbox bank elsewhere, whose banks this node connects to.
    pub sandbox_url: Option<String>,
    /// How long `/metrics` reuses the database facts it read.
    pub metrics_cache: Duration,
    /// Days a consent is asked for when a link names no expiry.
    pub default_consent_days: i64,
    /// The provider registry file.
    pub providers: Option<PathBuf>,
    /// The HTTP server's timeouts and connection limit (the body limit is `max_body_bytes`).
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    /// Failed authentications per client address and minute; 0: unlimited.
    pub auth_failures_per_minute: u32,
    /// The file holding the master key.
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (`FRESHET_MASTER_KEY`, or given by an embedder); wins over the
    /// file. With neither, development uses a generated one (see `crate::keys`).
    pub master_key: Option<MasterKey>,
    /// How long data is kept when its application sets no period; `None`: forever.
    pub retention: Option<Duration>,
    /// How often the retention task runs.
    pub retention_every: Duration,
    /// The retention task's pause between batches.
    pub retention_pause: Duration,
}

impl Config {
    /// Defaults for a node on `database_url`: what tests and embedders start from.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: SecretString::from(database_url.into()),
            profile: Profile::Development,
            admin_token: None,
            max_body_bytes: 1024 * 1024,
            log_format: LogFormat::Text,
            shutdown_grace: Duration::from_secs(30),
            db_max_connections: 16,
            delivery_timeout: Duration::from_secs(15),
            delivery_lease: Duration::from_secs(45),
            partition_lease: Duration::from_secs(10),
            allow_targets: Vec::new(),
            node_name: default_node_name(),
            sandbox: true,
            sandbox_seed: 1,
            public_url: None,
            refreshes_per_day: 4,
            refresh_tick: Duration::from_secs(10),
            bank_timeout: Duration::from_secs(30),
            sandbox_url: None,
            metrics_cache: Duration::from_secs(5),
            default_consent_days: 90,
            providers: None,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            auth_failures_per_minute: freshet_api::throttle::DEFAULT_PER_MINUTE,
            master_key_file: None,
            master_key: None,
            retention: Some(Duration::from_secs(30 * DAY)),
            retention_every: Duration::from_secs(60),
            retention_pause: Duration::from_millis(20),
        }
    }

    /// Resolves flags and environment (`args`) over the TOML file over defaults.
    pub fn resolve(mut args: ServeArgs) -> anyhow::Result<Self> {
        if args.master_key.is_none() {
            args.master_key = std::env::var("FRESHET_MASTER_KEY")
                .ok()
                .map(SecretString::from);
        }
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// The precedence rule itself, without touching the file system.
    pub fn merge(args: ServeArgs, file: FileConfig) -> anyhow::Result<Self> {
        let d = Self::new("sqlite://./freshet.db");
        let profile = if args.production {
            Profile::Production
        } else {
            args.profile.or(file.profile).unwrap_or(d.profile)
        };
        let config = Self {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            database_url: args
                .database_url
                .or(file.database_url)
                .map(SecretString::from)
                .unwrap_or(d.database_url),
            profile,
            admin_token: args
                .admin_token
                .or(file.admin_token)
                .map(SecretString::from),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            log_format: args.log_format.or(file.log_format).unwrap_or(d.log_format),
            shutdown_grace: args
                .shutdown_grace_seconds
                .or(file.shutdown_grace_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.shutdown_grace),
            db_max_connections: args
                .db_max_connections
                .or(file.db_max_connections)
                .unwrap_or(d.db_max_connections),
            delivery_timeout: args
                .delivery_timeout_seconds
                .or(file.delivery_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.delivery_timeout),
            delivery_lease: args
                .delivery_lease_seconds
                .or(file.delivery_lease_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.delivery_lease),
            partition_lease: args
                .partition_lease_seconds
                .or(file.partition_lease_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.partition_lease),
            allow_targets: args
                .allow_targets
                .or(file.allow_targets)
                .unwrap_or_default()
                .iter()
                .map(|c| c.trim().parse::<Cidr>())
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("allow_targets: {e}"))?,
            node_name: args.node_name.or(file.node_name).unwrap_or(d.node_name),
            sandbox: args
                .sandbox
                .or(file.sandbox)
                .unwrap_or(profile == Profile::Development),
            sandbox_seed: args
                .sandbox_seed
                .or(file.sandbox_seed)
                .unwrap_or(d.sandbox_seed),
            public_url: args
                .public_url
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            refreshes_per_day: args
                .refreshes_per_day
                .or(file.refreshes_per_day)
                .unwrap_or(d.refreshes_per_day),
            refresh_tick: args
                .refresh_tick_seconds
                .or(file.refresh_tick_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.refresh_tick),
            bank_timeout: args
                .bank_timeout_seconds
                .or(file.bank_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.bank_timeout),
            sandbox_url: args
                .sandbox_url
                .or(file.sandbox_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            metrics_cache: args
                .metrics_cache_seconds
                .or(file.metrics_cache_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.metrics_cache),
            default_consent_days: args
                .default_consent_days
                .or(file.default_consent_days)
                .unwrap_or(d.default_consent_days),
            providers: args.providers.or(file.providers),
            header_read_timeout: args
                .header_read_timeout_seconds
                .or(file.header_read_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.header_read_timeout),
            body_idle_timeout: args
                .body_idle_timeout_seconds
                .or(file.body_idle_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.body_idle_timeout),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            auth_failures_per_minute: args
                .auth_failures_per_minute
                .or(file.auth_failures_per_minute)
                .unwrap_or(d.auth_failures_per_minute),
            master_key_file: args.master_key_file.or(file.master_key_file),
            master_key: args
                .master_key
                .map(|k| MasterKey::from_base64(k.expose_secret()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("FRESHET_MASTER_KEY: {e}"))?,
            retention: match (
                args.retention_seconds.or(file.retention_seconds),
                args.retention_days.or(file.retention_days),
            ) {
                (Some(0), _) | (None, Some(0)) => None,
                (Some(secs), _) => Some(Duration::from_secs(secs)),
                (None, Some(days)) => Some(Duration::from_secs(u64::from(days) * DAY)),
                (None, None) => d.retention,
            },
            retention_every: args
                .retention_every_seconds
                .or(file.retention_every_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.retention_every),
            retention_pause: args
                .retention_pause_ms
                .or(file.retention_pause_ms)
                .map(Duration::from_millis)
                .unwrap_or(d.retention_pause),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self
            .retention
            .is_some_and(|r| r > Duration::from_secs(36_500 * DAY))
        {
            bail!("retention_days: must be at most 36500 (0 keeps data forever)");
        }
        if self.retention_every.is_zero() {
            bail!("retention_every_seconds: must be at least 1");
        }
        let url = self.database_url.expose_secret();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            bail!("database_url: must start with sqlite:, postgres:// or postgresql://");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes: must be at least 1024");
        }
        if !(1..=300).contains(&self.delivery_timeout.as_secs()) {
            bail!("delivery_timeout_seconds: must be between 1 and 300");
        }
        if self.partition_lease < Duration::from_secs(2) {
            bail!("partition_lease_seconds: must be at least 2 (a node renews every third of it)");
        }
        if self.delivery_lease < self.delivery_timeout + Duration::from_secs(5) {
            bail!("delivery_lease_seconds: must exceed delivery_timeout_seconds by at least 5");
        }
        if self.node_name.is_empty() || self.node_name.len() > 64 {
            bail!("node_name: must be 1 to 64 characters");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url: must start with http:// or https://");
        }
        if let Some(url) = &self.sandbox_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("sandbox_url: must start with http:// or https://");
        }
        if !(1..=96).contains(&self.refreshes_per_day) {
            bail!("refreshes_per_day: must be between 1 and 96");
        }
        if !(1..=300).contains(&self.bank_timeout.as_secs()) {
            bail!("bank_timeout_seconds: must be between 1 and 300");
        }
        if self.refresh_tick.is_zero() {
            bail!("refresh_tick_seconds: must be at least 1");
        }
        if self.metrics_cache > Duration::from_secs(300) {
            bail!("metrics_cache_seconds: must be at most 300");
        }
        if !(1..=3650).contains(&self.default_consent_days) {
            bail!("default_consent_days: must be between 1 and 3650");
        }
        if !(1..=3600).contains(&self.header_read_timeout.as_secs()) {
            bail!("header_read_timeout_seconds: must be between 1 and 3600");
        }
        if !(1..=3600).contains(&self.body_idle_timeout.as_secs()) {
            bail!("body_idle_timeout_seconds: must be between 1 and 3600");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            bail!("max_connections: must be between 1 and 1000000");
        }
        if self.db_max_connections == 0 {
            bail!("db_max_connections: must be at least 1");
        }
        if let Some(token) = &self.admin_token
            && token.expose_secret().len() < 16
        {
            bail!("admin_token: must be at least 16 characters");
        }
        if self.profile == Profile::Production && self.admin_token.is_none() {
            bail!("admin_token: the production profile needs FRESHET_ADMIN_TOKEN");
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            bail!("master_key_file: give the master key once, in FRESHET_MASTER_KEY or in a file");
        }
        if self.profile == Profile::Production
            && self.master_key.is_none()
            && self.master_key_file.is_none()
        {
            bail!(
                "master_key_file: the production profile needs a master key \
                 (--master-key-file or FRESHET_MASTER_KEY)"
            );
        }
        Ok(())
    }

    /// In development, a node without an admin token uses the one in `dir/freshet-admin-token`,
    /// creating it (readable by its owner only) on first start, so the quick start needs no
    /// setting and the token never appears in a log.
    pub fn ensure_admin_token(&mut self, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        if self.admin_token.is_some() || self.profile == Profile::Production {
            return Ok(None);
        }
        let path = dir.join(ADMIN_TOKEN_FILE);
        let token = match fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let token = random_token();
                write_private(&path, &token)
                    .with_context(|| format!("writing the admin token to {}", path.display()))?;
                token
            }
        };
        self.admin_token = Some(token.into());
        Ok(Some(path))
    }

    /// The settings as an operator may see them, secrets masked.
    pub fn describe(&self) -> String {
        let mask = |s: &Option<SecretString>| if s.is_some() { "<set>" } else { "<unset>" };
        format!(
            "listen = {}\ndatabase_url = {}\nprofile = {:?}\nadmin_token = {}\nmax_body_bytes = {}\n\
             log_format = {:?}\nshutdown_grace_seconds = {}\ndb_max_connections = {}\n\
             delivery_timeout_seconds = {}\nallow_targets = {:?}\nnode_name = {}\n\
             sandbox = {}\nsandbox_seed = {}\npublic_url = {}\nrefreshes_per_day = {}\n\
             refresh_tick_seconds = {}\nbank_timeout_seconds = {}\nmetrics_cache_seconds = {}\n\
             default_consent_days = {}\nproviders = {}\n\
             header_read_timeout_seconds = {}\nbody_idle_timeout_seconds = {}\nmax_connections = {}\n\
             auth_failures_per_minute = {}\nmaster_key = {}\n\
             retention_days = {}\nretention_every_seconds = {}",
            self.listen,
            redact_url(self.database_url.expose_secret()),
            self.profile,
            mask(&self.admin_token),
            self.max_body_bytes,
            self.log_format,
            self.shutdown_grace.as_secs(),
            self.db_max_connections,
            self.delivery_timeout.as_secs(),
            self.allow_targets,
            self.node_name,
            self.sandbox,
            self.sandbox_seed,
            self.public_url.as_deref().unwrap_or("<listen address>"),
            self.refreshes_per_day,
            self.refresh_tick.as_secs(),
            self.bank_timeout.as_secs(),
            self.metrics_cache.as_secs(),
            self.default_consent_days,
            self.providers
                .as_ref()
                .map_or("<none>".to_string(), |p| p.display().to_string()),
            self.header_read_timeout.as_secs(),
            self.body_idle_timeout.as_secs(),
            self.max_connections,
            self.auth_failures_per_minute,
            match (&self.master_key, &self.master_key_file) {
                (Some(k), _) => format!("FRESHET_MASTER_KEY (fingerprint {})", k.fingerprint()),
                (None, Some(path)) => path.display().to_string(),
                (None, None) => "<development: generated next to the database>".to_string(),
            },
            self.retention
                .map_or("0 (kept forever)".to_string(), |r| format!(
                    "{}",
                    r.as_secs_f64() / DAY as f64
                )),
            self.retention_every.as_secs(),
        )
    }
}

impl Config {
    /// The HTTP server's limits.
    pub fn serve_limits(&self) -> crate::serve::ServeLimits {
        crate::serve::ServeLimits {
            header_read_timeout: self.header_read_timeout,
            body_idle_timeout: self.body_idle_timeout,
            max_connections: self.max_connections,
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// What webhooks may target: loopback only in development, allow-listed ranges in both.
    pub fn target_policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_loopback: self.profile == Profile::Development,
            allowed: self.allow_targets.clone(),
        }
    }
}

fn default_node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "freshet".into());
    format!("{host}-{}", std::process::id())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_thirty_days_unless_set_and_zero_keeps_everything() {
        let c = Config::merge(ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(c.retention, Some(Duration::from_secs(30 * DAY)));
        let file = FileConfig {
            retention_days: Some(7),
            ..Default::default()
        };
        let c = Config::merge(ServeArgs::default(), file).unwrap();
        assert_eq!(c.retention, Some(Duration::from_secs(7 * DAY)));
        let args = ServeArgs {
            retention_days: Some(0),
            ..Default::default()
        };
        let file = FileConfig {
            retention_days: Some(7),
            ..Default::default()
        };
        assert_eq!(Config::merge(args, file).unwrap().retention, None);
        let args = ServeArgs {
            retention_days: Some(7),
            retention_seconds: Some(90),
            ..Default::default()
        };
        let c = Config::merge(args, FileConfig::default()).unwrap();
        assert_eq!(c.retention, Some(Duration::from_secs(90)));
        let args = ServeArgs {
            retention_every_seconds: Some(0),
            ..Default::default()
        };
        assert!(Config::merge(args, FileConfig::default()).is_err());
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let args = ServeArgs {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Default::default()
        };
        let file = FileConfig {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            max_body_bytes: Some(4096),
            ..Default::default()
        };
        let c = Config::merge(args, file).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.db_max_connections, 16);
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.body_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections, 4096);
        assert_eq!(c.database_url.expose_secret(), "sqlite://./freshet.db");
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |args: ServeArgs| {
            Config::merge(args, FileConfig::default())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(ServeArgs {
                database_url: Some("mysql://x".into()),
                ..Default::default()
            })
            .starts_with("database_url")
        );
        assert!(
            bad(ServeArgs {
                max_body_bytes: Some(10),
                ..Default::default()
            })
            .starts_with("max_body_bytes")
        );
        assert!(
            bad(ServeArgs {
                max_connections: Some(0),
                ..Default::default()
            })
            .starts_with("max_connections")
        );
        assert!(
            bad(ServeArgs {
                header_read_timeout_seconds: Some(0),
                ..Default::default()
            })
            .starts_with("header_read_timeout_seconds")
        );
        assert!(
            bad(ServeArgs {
                production: true,
                ..Default::default()
            })
            .starts_with("admin_token")
        );
        assert!(
            bad(ServeArgs {
                admin_token: Some("short".into()),
                ..Default::default()
            })
            .starts_with("admin_token")
        );
    }

    #[test]
    fn toml_rejects_unknown_settings() {
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:1\"").is_err());
        let f: FileConfig =
            toml::from_str("profile = \"production\"\nmax_body_bytes = 2048").unwrap();
        assert_eq!(f.profile, Some(Profile::Production));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./freshet.db"), "sqlite://./freshet.db");
    }

    #[test]
    fn development_token_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Config::new("sqlite://x");
        let path = a.ensure_admin_token(dir.path()).unwrap().unwrap();
        let mut b = Config::new("sqlite://x");
        b.ensure_admin_token(dir.path()).unwrap();
        assert_eq!(
            a.admin_token.unwrap().expose_secret(),
            b.admin_token.unwrap().expose_secret()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
