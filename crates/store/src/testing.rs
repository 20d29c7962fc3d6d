//! Fresh, isolated databases for tests (feature `testing`).
//!
//! SQLite tests get a file in a temporary directory. PostgreSQL tests get their own schema in
//! the database named by `FRESHET_TEST_POSTGRES_URL` (default: the local server's `test`
//! database), so tests run in parallel without seeing each other, and the schema is dropped
//! afterwards. An unreachable PostgreSQL fails the test loudly; only
//! `FRESHET_TEST_SKIP_POSTGRES=1` skips those tests, and CI never sets it.

use std::fmt;

use sqlx::{Connection, PgConnection};

use crate::{MASTER_KEY_FILE, MasterKey, Store, StoreOptions};

/// The default PostgreSQL for tests: the local server's `test` database.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which engine a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A migrated database of its own for one test, removed when dropped. Its store is unlocked
/// with a master key of its own, which a node under test must be given too (on SQLite it is
/// also in the development profile's key file next to the database, where a node finds it).
pub struct TestDb {
    /// The URL to hand to anything that connects by itself, such as a server under test.
    pub url: String,
    pub store: Store,
    pub master_key: MasterKey,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { admin_url: String, schema: String },
}

/// Whether PostgreSQL tests were explicitly switched off.
pub fn postgres_skipped() -> bool {
    std::env::var("FRESHET_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1")
}

/// The PostgreSQL tests use.
pub fn postgres_url() -> String {
    std::env::var("FRESHET_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

impl TestDb {
    /// A fresh database on `backend`; `None` only when PostgreSQL tests are switched off.
    pub async fn new(backend: Backend) -> Option<Self> {
        let master_key = MasterKey::generate().expect("a random master key");
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                std::fs::write(dir.path().join(MASTER_KEY_FILE), master_key.to_base64())
                    .expect("write the test master key");
                let url = format!("sqlite://{}", dir.path().join("freshet.db").display());
                (url, Cleanup::Dir(dir))
            }
            Backend::Postgres => {
                if postgres_skipped() {
                    eprintln!("FRESHET_TEST_SKIP_POSTGRES=1: skipping a PostgreSQL test");
                    return None;
                }
                let admin_url = postgres_url();
                let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin_url}: {e}. Start it, point \
                         FRESHET_TEST_POSTGRES_URL at one, or set FRESHET_TEST_SKIP_POSTGRES=1"
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create a test schema");
                conn.close().await.ok();
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                // The application name tags every connection to this schema, so the cleanup
                // can end those a node under test left in a transaction.
                let url = format!(
                    "{admin_url}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                (url, Cleanup::Schema { admin_url, schema })
            }
        };
        let mut store = Store::connect(&url, &StoreOptions::default())
            .await
            .expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        store
            .unlock(&master_key)
            .await
            .expect("unlock the test database");
        Some(Self {
            url,
            store,
            master_key,
            cleanup,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Schema { admin_url, schema } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), schema.clone());
            // Drop cannot await, and may run inside a runtime: use a private one on a thread.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&admin_url).await?;
                    // A node dropped with the test may still hold a transaction, run by the
                    // very runtime this drop blocks: end its connections rather than wait.
                    let kill = format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(kill))
                        .execute(&mut conn)
                        .await?;
                    let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
                .map_err(std::io::Error::other)
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {schema}");
            }
        }
    }
}
