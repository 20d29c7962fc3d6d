//! freshet's storage: one interface over two engines.
//!
//! SQLite (one file, WAL, the default for a single node) and PostgreSQL (many nodes sharing
//! work) sit behind the same [`Store`]. Both run the same SQL text wherever the engines agree —
//! `$1` placeholders, `RETURNING`, `ON CONFLICT` — and differ only where they must: the column
//! codecs for times and amounts ([`codec`]) and each engine's own migrations. A single
//! conformance suite (`tests/it`) runs unchanged against both.
//!
//! SQLite gets a single-connection writer pool beside a reader pool: SQLite admits one writer
//! at a time anyway, and funnelling writes through one connection turns lock contention
//! (`SQLITE_BUSY`) into an orderly queue.

mod accounts;
mod applications;
mod backup;
mod bench_seed;
mod catch_up;
pub mod codec;
mod customers;
mod deliveries;
mod endpoint_health;
mod endpoints;
mod erasure;
mod error;
mod events;
mod health_marks;
mod keys;
mod links;
mod metrics;
mod migrate;
mod partitions;
mod products;
mod reconciled;
mod refresh;
mod retention;
pub mod sealed;
mod signing_keys;
mod task_list;
#[cfg(feature = "testing")]
pub mod testing;
mod write_health;

use std::{
    str::FromStr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use sqlx::{
    Connection, PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{
        SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
        SqliteSynchronous,
    },
};

pub use accounts::{FoundAccount, SyncPage, TxnFilter};
pub use applications::{ApiKeyRecord, Application, NewApiKey};
pub use backup::{BackupError, backup_sqlite};
pub use deliveries::{
    AttemptRecord, Claim, Finished, LimitedEndpoint, Outcome, PARKED, Recorded, Scope, TakeNext,
};
pub use endpoint_health::{EndpointHealth, FailedAttempt};
pub use endpoints::NewEndpoint;
pub use erasure::{CANCELLED_REASON, Erased};
pub use error::StoreError;
pub use events::{EventFilter, Fanout, Lease, StoredEvent, UNSETTLED_IN_LINE, Written};
pub use keys::Unlocked;
pub use links::{DueConsent, RefreshEnd};
pub use metrics::{QueueStats, UnattendedUse};
pub use partitions::{
    Held, OUTBOX_CHANNEL, PARTITIONS, announcement, fair_share, parse_announcement, partition_of,
};
pub use products::{CALLBACK_DIALECT, ProductRequestView};
pub use reconciled::{AccountChanges, KNOWN_TRANSACTIONS_PG};
pub use refresh::{AccountSummary, SubTaskEnd, TaskView};
pub use retention::{EventBatch, Purged, v7_floor};
pub use sealed::{KeyError, MASTER_KEY_FILE, MasterKey};
pub use signing_keys::{NewSigningKey, StoredSigningKey};
pub use task_list::TaskFilter;
pub use write_health::PROBE_EVERY;

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Tuning that applies when connecting.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Largest number of connections (PostgreSQL) or reader connections (SQLite).
    pub max_connections: u32,
    /// How long to wait for a connection before failing a call. Short, so that when the
    /// database is down callers hear it in seconds (503) instead of hanging.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The store: cheap to clone, shared by every part of a node.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The data keys secrets are sealed with, once [`Store::unlock`] opened them.
    keys: Option<Arc<sealed::Keyring>>,
    writes: Arc<write_health::WriteHealth>,
    /// What this node wrote about endpoints' health a moment ago.
    health_marks: Arc<health_marks::HealthMarks>,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the right pool of whichever engine the store uses.
/// The body is written once and compiled for each engine, so SQL text and row handling are
/// shared. `read` picks SQLite's reader pool, `write` its single writer.
macro_rules! on_pool {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { reader: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { writer: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A transaction: what a caller writes through it commits or rolls back as one, which is how
/// a state change and the events recording it are kept together.
pub struct Tx {
    inner: TxInner,
    /// The store's data keys, for the secrets written through the transaction.
    keys: Option<Arc<sealed::Keyring>>,
}

pub(crate) enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection, for either engine.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.inner {
            $crate::TxInner::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::TxInner::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    /// Makes everything written through this transaction durable, at once.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> StoreKind {
        match self.inner {
            TxInner::Sqlite(_) => StoreKind::Sqlite,
            TxInner::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// The data keys, for sealing and opening; an error if the store was never unlocked.
    pub(crate) fn keys(&self) -> Result<Arc<sealed::Keyring>, KeyError> {
        self.keys.clone().ok_or(KeyError::Locked)
    }
}

/// SQLite's single writer connection. A connection still counted as inside a transaction
/// when it is acquired is closed, not reused: when SQLite rolls a transaction back by itself
/// (a full disk, an I/O error, out of memory), the driver's own ROLLBACK then fails and the
/// connection would stay "inside" a transaction forever, refusing every later `BEGIN` ("at
/// non-zero transaction depth") until a restart. A new connection starts clean.
fn sqlite_writer(
    opts: &StoreOptions,
    writes: &Arc<write_health::WriteHealth>,
) -> SqlitePoolOptions {
    let on_acquire = writes.clone();
    let page_limit = writes.page_limit.clone();
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(opts.acquire_timeout)
        .before_acquire(move |conn, _| {
            let health = on_acquire.clone();
            Box::pin(async move {
                if conn.is_in_transaction() {
                    tracing::warn!(
                        "the SQLite writer was left inside a failed transaction; reconnecting"
                    );
                    health.failed();
                    return Ok(false);
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            let pages = page_limit.load(Ordering::Acquire);
            Box::pin(async move {
                if pages > 0 {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "PRAGMA max_page_count = {pages}"
                    )))
                    .execute(conn)
                    .await?;
                }
                Ok(())
            })
        })
}

/// Whether a PostgreSQL URL chooses its own TLS mode.
fn names_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("sslmode"))
    })
}

/// A host on this machine: a loopback name or address, or a Unix socket directory.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Store {
    /// Connects to `url` (`sqlite://path`, `sqlite:path`, `postgres://…`), creating a SQLite
    /// file if it does not exist. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        let writes = Arc::new(write_health::WriteHealth::default());
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut connect = PgConnectOptions::from_str(url)?;
            if !names_ssl_mode(url) && is_loopback(connect.get_host()) {
                // TLS to a database on this machine protects nothing and costs both ends
                // CPU on every statement; a URL that names an sslmode still gets it.
                connect = connect.ssl_mode(sqlx::postgres::PgSslMode::Disable);
            }
            if !url.contains("jit") {
                // Every statement here is short. JIT compiling is paid per execution and
                // triggers on estimated cost, which without statistics can be wildly high:
                // it once made a 0.2 ms read take tens of milliseconds.
                connect = connect.options([("jit", "off")]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed event survives power loss, not only a process crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let writer = sqlite_writer(opts, &writes)
                // A new file reuses the pages purges free (retention); an older file is
                // converted once by `migrate`.
                .connect_with(connect.clone().auto_vacuum(SqliteAutoVacuum::Incremental))
                .await?;
            let reader = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect.read_only(true))
                .await?;
            Backend::Sqlite { writer, reader }
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self {
            backend,
            keys: None,
            writes,
            health_marks: Arc::default(),
        })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        write_health::note(&self.writes, self.begin_tx().await)
    }

    async fn begin_tx(&self) -> Result<Tx> {
        let inner = match &self.backend {
            // IMMEDIATE: the write lock is taken (or waited for) at the start. A deferred
            // transaction that reads first cannot wait for it later: SQLite fails it at once
            // with "database is locked" whenever another process is writing the same file.
            Backend::Sqlite { writer, .. } => {
                TxInner::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?)
            }
            Backend::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            inner,
            keys: self.keys.clone(),
        })
    }

    /// Which engine this store runs on.
    pub fn kind(&self) -> StoreKind {
        match self.backend {
            Backend::Sqlite { .. } => StoreKind::Sqlite,
            Backend::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// Brings the schema up to date; safe to call from several nodes at once.
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                migrate::sqlite(writer).await?;
                retention::incremental_vacuum_on(writer).await
            }
            Backend::Postgres(pool) => migrate::postgres(pool).await,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_dropped_only_for_this_machine_and_only_unless_asked_for() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.8.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("/var/run/postgresql"));
        assert!(!is_loopback("db.internal"));
        assert!(!is_loopback("10.0.0.5"));
        assert!(!is_loopback("localhost.example.com"));

        assert!(names_ssl_mode("postgres://u@127.0.0.1/db?sslmode=require"));
        assert!(names_ssl_mode(
            "postgres://u@127.0.0.1/db?application_name=x&sslmode=prefer"
        ));
        assert!(!names_ssl_mode("postgres://u@127.0.0.1/db"));
        assert!(!names_ssl_mode(
            "postgres://u@127.0.0.1/db?application_name=sslmode"
        ));
    }
}
