//! Schema migrations, one list per engine, embedded in the binary.
//!
//! Each migration runs once, recorded with a checksum of its text so that editing an applied
//! migration is caught at start-up instead of leaving two nodes with different schemas. On
//! PostgreSQL an advisory lock makes concurrent start-ups of several nodes take turns.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row, SqlitePool};

use crate::{Result, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $dir, "/", stringify!($version), "_", $name, ".sql")),
        }),*]
    };
}

const SQLITE: &[Migration] = migrations!("sqlite":
    1 "init", 2 "webhooks", 3 "refresh", 4 "signing_keys", 5 "products", 6 "metrics", 7 "dashboard", 8 "customer_indexes",
    9 "bank_authorisation", 10 "endpoint_dialect_policy", 11 "retention", 12 "keys", 13 "erasure", 14 "consents_by_bank_id", 15 "outbox_partitions", 16 "ordering_unsettled");
const POSTGRES: &[Migration] = migrations!("postgres":
    1 "init", 2 "webhooks", 3 "refresh", 4 "signing_keys", 5 "products", 6 "metrics", 7 "dashboard", 8 "customer_indexes",
    9 "bank_authorisation", 10 "endpoint_dialect_policy", 11 "retention", 12 "keys", 13 "erasure", 14 "consents_by_bank_id", 15 "outbox_partitions", 16 "ordering_unsettled");

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS freshet_migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL
)";

/// An arbitrary constant naming freshet's migration lock among the database's advisory locks.
const PG_LOCK_KEY: i64 = 0x0f4e_5348_6d69_6772;

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which migrations still need to run, after checking the applied ones are unchanged.
fn pending<'m>(all: &'m [Migration], applied: &[(i64, String)]) -> Result<Vec<&'m Migration>> {
    for (version, sum) in applied {
        match all.iter().find(|m| m.version == *version) {
            Some(m) if checksum(m.sql) == *sum => {}
            Some(m) => {
                return Err(StoreError::Migration(format!(
                    "migration {version} ({}) was changed after it was applied",
                    m.name
                )));
            }
            None => {
                return Err(StoreError::Migration(format!(
                    "the database has migration {version}, which this freshet does not know: \
                     is it older than the one that migrated the database?"
                )));
            }
        }
    }
    Ok(all
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

macro_rules! run_migrations {
    ($tx:expr, $all:expr) => {{
        sqlx::query(LEDGER).execute(&mut *$tx).await?;
        let applied: Vec<(i64, String)> =
            sqlx::query("SELECT version, checksum FROM freshet_migrations ORDER BY version")
                .fetch_all(&mut *$tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?;
        for m in pending($all, &applied)? {
            tracing::info!(version = m.version, name = m.name, "applying migration");
            sqlx::raw_sql(m.sql)
                .execute(&mut *$tx)
                .await
                .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
            sqlx::query(
                "INSERT INTO freshet_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.sql))
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

pub(crate) async fn sqlite(writer: &SqlitePool) -> Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    run_migrations!(tx, SQLITE);
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn postgres(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    run_migrations!(tx, POSTGRES);
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_on_both_engines() {
        for all in [SQLITE, POSTGRES] {
            assert!(all.windows(2).all(|w| w[0].version < w[1].version));
        }
        assert_eq!(
            SQLITE.len(),
            POSTGRES.len(),
            "each engine needs every migration"
        );
    }

    #[test]
    fn a_changed_migration_is_refused() {
        let applied = vec![(1, "not the checksum".to_string())];
        assert!(matches!(
            pending(SQLITE, &applied),
            Err(StoreError::Migration(_))
        ));
        let unknown = vec![(99, String::new())];
        assert!(pending(SQLITE, &unknown).is_err());
        let fine = vec![(1, checksum(SQLITE[0].sql))];
        assert_eq!(pending(SQLITE, &fine).unwrap().len(), SQLITE.len() - 1);
    }

    /// Every refresh request reads its customer's consents and open tasks: SQLite must find
    /// them by the customer, not walk the application's (which migration 7's list indexes
    /// invited until migration 8).
    #[tokio::test]
    async fn a_customer_s_reads_use_the_customer_indexes_on_sqlite() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlite(&pool).await.unwrap();
        for (sql, index) in [
            (
                "SELECT id FROM consents WHERE customer_id = ?1 AND application_id = ?2 ORDER BY id",
                "consents_customer",
            ),
            (
                "SELECT id FROM refresh_tasks WHERE application_id = ?1 AND customer_id = ?2 \
                 AND status IN ('Pending', 'Running') ORDER BY id",
                "refresh_tasks_customer",
            ),
        ] {
            let plan: Vec<String> =
                sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind(uuid::Uuid::nil())
                    .bind(uuid::Uuid::nil())
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect();
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
        }
    }
}
