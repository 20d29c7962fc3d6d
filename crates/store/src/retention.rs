//! Retention: removing what is older than an application keeps, a little at a time.
//!
//! Each call removes one small batch in one short transaction, so a purge never holds the
//! SQLite writer or PostgreSQL row locks for longer than a few milliseconds and delivery goes
//! on between batches; the caller (the engine's retention task) paces the batches. Events are
//! walked by primary key: ids are UUIDv7, so "older than the cutoff" is a range of the
//! `(application_id, id)` index, and a batch is the next few hundred ids of that range. An
//! event goes only when every one of its deliveries has settled (`succeeded` or `dead`), and
//! with it its deliveries and their attempts. Accounts and transactions go when their consent
//! ended (revoked, expired, deleted by the user) longer ago than the application keeps data.

use freshet_model::ApplicationId;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    Backend, Result, Store, StoreKind,
    applications::Application,
    codec::{RowExt, Ts},
    on_pool,
};

/// Rows a purge removed, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub deliveries: u64,
    pub delivery_attempts: u64,
    pub accounts: u64,
    pub transactions: u64,
}

impl Purged {
    /// Each table's count with its name, as `/metrics` labels it.
    pub fn by_table(&self) -> [(&'static str, u64); 5] {
        [
            ("events", self.events),
            ("deliveries", self.deliveries),
            ("delivery_attempts", self.delivery_attempts),
            ("accounts", self.accounts),
            ("transactions", self.transactions),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_table().iter().map(|(_, n)| n).sum()
    }

    pub fn add(&mut self, other: Purged) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.delivery_attempts += other.delivery_attempts;
        self.accounts += other.accounts;
        self.transactions += other.transactions;
    }
}

/// One batch of an application's old events.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventBatch {
    /// The last id the batch looked at: the next batch starts after it. `None`: no old event
    /// is left after the cursor.
    pub next: Option<Uuid>,
    pub purged: Purged,
}

/// The smallest UUIDv7 of the millisecond `at`: every v7 id made before `at` sorts below it.
pub fn v7_floor(at: OffsetDateTime) -> Uuid {
    let ms = (at.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// The old events of one batch: `$1` application, after `$2`, up to `$3`, created before `$4`.
const RANGE: &str = "e.application_id = $1 AND e.id > $2 AND e.id <= $3 AND e.created_at < $4";

/// An event some delivery of which has not settled.
const UNSETTLED: &str = "EXISTS (SELECT 1 FROM deliveries u WHERE u.event_id = e.id \
                         AND u.status NOT IN ('succeeded', 'dead'))";

impl Store {
    /// Every application with the moment before which its data goes: its own period (in
    /// days), else `default`; applications with neither keep everything and are left out.
    pub async fn retention_cutoffs(
        &self,
        default: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Vec<(ApplicationId, OffsetDateTime)>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query("SELECT id, retention_days FROM applications ORDER BY id")
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let own = r
                    .opt_i64("retention_days")?
                    .map(|d| Duration::days(d.max(1)));
                if let Some(period) = own.or(default) {
                    out.push((r.uuid("id")?.into(), now - period));
                }
            }
            Ok(out)
        })
    }

    /// Sets how many days `app`'s data is kept (`None`: the node's default). `None` when there
    /// is no such application.
    pub async fn set_retention_days(
        &self,
        app: ApplicationId,
        days: Option<u32>,
    ) -> Result<Option<(Application, Option<u32>)>> {
        on_pool!(self, write, |pool| {
            let row = sqlx::query(
                "UPDATE applications SET retention_days = $2 WHERE id = $1 \
                 RETURNING id, name, created_at, retention_days",
            )
            .bind(app.0)
            .bind(days.map(i64::from))
            .fetch_optional(pool)
            .await?;
            row.map(|r| application_row(&r)).transpose()
        })
    }

    /// `app` with its own retention period, if it has one.
    pub async fn application_retention(
        &self,
        app: ApplicationId,
    ) -> Result<Option<(Application, Option<u32>)>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT id, name, created_at, retention_days FROM applications WHERE id = $1",
            )
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            row.map(|r| application_row(&r)).transpose()
        })
    }

    /// Takes or renews the lease `name` for `holder` until `ttl` from now; `false` when
    /// another holder's lease is still running. What keeps a job to one node at a time.
    pub async fn take_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = freshet_model::time::now();
        on_pool!(self, write, |pool| {
            let row = sqlx::query(
                "INSERT INTO maintenance_leases (name, holder, lease_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 lease_until = excluded.lease_until \
                 WHERE maintenance_leases.holder = excluded.holder \
                    OR maintenance_leases.lease_until < $4 \
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(Ts(now + ttl))
            .bind(Ts(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Gives up the lease `name` if `holder` has it, so another node need not wait for it to
    /// expire (a node stopping cleanly).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM maintenance_leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Purges up to `limit` of `app`'s events created before `cutoff` and after `after`,
    /// keeping any with an unsettled delivery, in one short transaction.
    pub async fn purge_events(
        &self,
        app: ApplicationId,
        cutoff: OffsetDateTime,
        after: Uuid,
        limit: u32,
    ) -> Result<EventBatch> {
        let bound = v7_floor(cutoff);
        let lock = match self.kind() {
            // The deliveries of the batch, locked so that nothing re-queues one between the
            // check that it settled and its removal (a retry waits, then finds it gone).
            StoreKind::Postgres => Some(
                "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id \
                 WHERE e.application_id = $1 AND e.id > $2 AND e.id <= $3 AND e.created_at < $4 \
                 ORDER BY d.id FOR UPDATE OF d",
            ),
            // SQLite's one writer is the lock.
            StoreKind::Sqlite => None,
        };
        let attempts = format!(
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT d.id FROM deliveries d \
             JOIN events e ON e.id = d.event_id WHERE {RANGE} AND NOT {UNSETTLED})"
        );
        let deliveries = format!(
            "DELETE FROM deliveries WHERE event_id IN (SELECT e.id FROM events e \
             WHERE {RANGE} AND NOT {UNSETTLED})"
        );
        let events = format!(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE {RANGE} \
             AND NOT EXISTS (SELECT 1 FROM deliveries u WHERE u.event_id = e.id))"
        );
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            if lock.is_some() {
                // Each batch's few hundred rows are reached through their indexes, whatever
                // the planner believes: with or without statistics it locked the batch's
                // deliveries through a hash join over a scan of the whole table (77 ms a
                // batch on a million rows against 1.5 ms by index), which made the purge
                // crawl and cost delivery without purging. For this transaction only.
                sqlx::raw_sql(
                    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; \
                     SET LOCAL enable_mergejoin = off",
                )
                .execute(&mut *tx)
                .await?;
            }
            let ids: Vec<Uuid> = sqlx::query(
                "SELECT id FROM events WHERE application_id = $1 AND id > $2 AND id < $3 \
                 AND created_at < $4 ORDER BY id LIMIT $5",
            )
            .bind(app.0)
            .bind(after)
            .bind(bound)
            .bind(Ts(cutoff))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.uuid("id"))
            .collect::<Result<_, _>>()?;
            let Some(&last) = ids.last() else {
                return Ok(EventBatch::default());
            };
            let mut purged = Purged::default();
            if let Some(lock) = lock {
                sqlx::query(lock)
                    .bind(app.0)
                    .bind(after)
                    .bind(last)
                    .bind(Ts(cutoff))
                    .fetch_all(&mut *tx)
                    .await?;
            }
            for (sql, count) in [
                (&attempts, &mut purged.delivery_attempts),
                (&deliveries, &mut purged.deliveries),
                (&events, &mut purged.events),
            ] {
                *count = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(app.0)
                    .bind(after)
                    .bind(last)
                    .bind(Ts(cutoff))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(EventBatch {
                next: Some(last),
                purged,
            })
        })
    }

    /// Purges up to `limit` transactions of one account of `app` whose consent ended before
    /// `cutoff`, and the account once it has none left. An empty result: none is left.
    pub async fn purge_ended_consent_data(
        &self,
        app: ApplicationId,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Purged> {
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let account = sqlx::query(
                "SELECT a.id FROM consents c JOIN accounts a ON a.consent_id = c.id \
                 WHERE c.application_id = $1 \
                   AND c.status IN ('revoked', 'expired', 'deleted_by_user') \
                   AND c.updated_at < $2 LIMIT 1",
            )
            .bind(app.0)
            .bind(Ts(cutoff))
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.uuid("id"))
            .transpose()?;
            let Some(account) = account else {
                return Ok(Purged::default());
            };
            let mut purged = Purged {
                transactions: sqlx::query(
                    "DELETE FROM transactions WHERE id IN \
                     (SELECT id FROM transactions WHERE account_id = $1 LIMIT $2)",
                )
                .bind(account)
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                ..Default::default()
            };
            if purged.transactions < u64::from(limit) {
                purged.accounts = sqlx::query("DELETE FROM accounts WHERE id = $1")
                    .bind(account)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(purged)
        })
    }

    /// When the oldest event kept was created; `None` when there is none.
    pub async fn oldest_event_at(&self) -> Result<Option<OffsetDateTime>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query("SELECT created_at FROM events ORDER BY id LIMIT 1")
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| r.ts("created_at")).transpose()?)
        })
    }

    /// PostgreSQL: makes the space of the rows a pass removed reusable now (`VACUUM`, not
    /// `FULL`: it blocks neither reads nor writes), rather than whenever autovacuum comes
    /// round, which is late on busy tables and never where autovacuum is off. The vacuum keeps
    /// autovacuum's default pace (`vacuum_cost_delay` 2 ms) rather than a manual `VACUUM`'s
    /// full speed, so after a large purge it does not take the I/O and CPU delivery needs.
    /// SQLite: nothing (see [`Store::release_free_pages`]).
    pub async fn vacuum_purged_tables(&self, purged: &Purged) -> Result<()> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        let tables: Vec<&str> = purged
            .by_table()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(table, _)| *table)
            .collect();
        if tables.is_empty() {
            return Ok(());
        }
        let mut conn = pool.acquire().await?;
        // The simple protocol throughout: VACUUM refuses to run inside a transaction block,
        // and the setting must hold on this connection only, for this vacuum only.
        sqlx::raw_sql("SET vacuum_cost_delay = '2ms'")
            .execute(&mut *conn)
            .await?;
        let vacuumed = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "VACUUM (ANALYZE) {}",
            tables.join(", ")
        )))
        .execute(&mut *conn)
        .await;
        sqlx::raw_sql("RESET vacuum_cost_delay")
            .execute(&mut *conn)
            .await?;
        vacuumed?;
        Ok(())
    }

    /// SQLite: returns up to `pages` free pages to the file system (the file shrinks) and
    /// answers how many free pages are left. PostgreSQL: nothing to do (autovacuum reclaims
    /// dead rows for reuse), answers 0.
    pub async fn release_free_pages(&self, pages: u32) -> Result<u64> {
        let Backend::Sqlite { writer, .. } = &self.backend else {
            return Ok(0);
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA incremental_vacuum({pages})"
        )))
        .execute(writer)
        .await?;
        let left: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(writer)
            .await?;
        Ok(left.max(0) as u64)
    }
}

fn application_row(r: &impl RowExt) -> Result<(Application, Option<u32>)> {
    Ok((
        Application {
            id: r.uuid("id")?.into(),
            name: r.text("name")?,
            created_at: r.ts("created_at")?,
        },
        r.opt_i64("retention_days")?.map(|d| d.max(0) as u32),
    ))
}

/// Makes a SQLite file reuse and release the pages purges free (`auto_vacuum =
/// incremental`). A file created by this version already is; an older one needs one `VACUUM`
/// to switch, which rewrites the file (it takes about as long as copying it, and as much free
/// disk again) before the node starts serving.
pub(crate) async fn incremental_vacuum_on(writer: &sqlx::SqlitePool) -> Result<()> {
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(writer)
        .await?;
    if mode == 2 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    tracing::info!("switching the SQLite file to incremental auto-vacuum (one VACUUM, once)");
    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
        .execute(writer)
        .await?;
    sqlx::query("VACUUM").execute(writer).await?;
    tracing::info!(took = ?started.elapsed(), "the SQLite file reuses freed pages now");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v7_floor_sorts_between_earlier_and_later_ids() {
        let at = time::macros::datetime!(2026-11-01 12:00 UTC);
        let floor = v7_floor(at);
        let before = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (at - Duration::milliseconds(1)).unix_timestamp() as u64,
            999_000_000,
        ));
        let after = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.unix_timestamp() as u64,
            1_000_000,
        ));
        assert!(before < floor, "{before} {floor}");
        assert!(floor < after, "{floor} {after}");
    }
}
