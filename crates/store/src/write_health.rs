//! Whether the store can write, as `/healthz` reports it.
//!
//! A store can answer reads and refuse every write: a full disk does exactly that. Pinging
//! proves only the first, so a node once answered `ok` while every write failed. The truth
//! comes from a write: a probe commits a row of a few pages (new pages, as a real insert
//! needs) and removes the previous one. Probes are spaced out ([`PROBE_EVERY`]) so a load
//! balancer polling `/healthz` cannot turn them into load; but a writer found broken (left
//! inside a transaction SQLite had already rolled back) marks the store failing at once, and
//! while it is failing every check probes again, so recovery shows as soon as it happens.
//!
//! The SQLite writer's own repair is in [`crate::Store::connect`]: a connection still counted
//! as inside a transaction when it is acquired is closed and replaced, never reused.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// How long a successful probe vouches for the store.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Bytes the probe writes: more than a page, so a store that cannot grow refuses it.
const PROBE_BYTES: usize = 8 * 1024;

/// Shared by every clone of a store.
#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    /// Set when a write was seen failing; cleared by a successful probe.
    failing: AtomicBool,
    /// When the last successful probe ran.
    last_ok: Mutex<Option<Instant>>,
    /// SQLite only, for tests: a page limit every new writer connection applies (0: none).
    pub(crate) page_limit: Arc<AtomicU64>,
}

impl WriteHealth {
    /// Records that a write failed: the next check probes rather than trusting a past probe.
    pub(crate) fn failed(&self) {
        self.failing.store(true, Ordering::Release);
    }
}

impl Store {
    /// Whether the store can write now: `Ok` when a recent probe committed, or a new one does.
    pub async fn check_writes(&self) -> Result<()> {
        let mut last_ok = self.writes.last_ok.lock().await;
        let failing = self.writes.failing.load(Ordering::Acquire);
        if !failing && last_ok.is_some_and(|at| at.elapsed() < PROBE_EVERY) {
            return Ok(());
        }
        match self.probe_write().await {
            Ok(()) => {
                *last_ok = Some(Instant::now());
                self.writes.failing.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                *last_ok = None;
                self.writes.failed();
                Err(e)
            }
        }
    }

    /// Commits a fresh probe row, then removes the older ones: inserting first means the
    /// probe needs new space, not the space the last probe's row frees.
    async fn probe_write(&self) -> Result<()> {
        let mut filler = Vec::with_capacity(PROBE_BYTES);
        while filler.len() < PROBE_BYTES {
            // Mostly random bytes: PostgreSQL would compress a run of zeros to nothing.
            filler.extend_from_slice(Uuid::now_v7().as_bytes());
        }
        let id = Uuid::now_v7();
        let mut tx = self.begin().await?;
        crate::on_tx!(&mut tx, |conn| {
            sqlx::query("INSERT INTO write_probes (id, filler) VALUES ($1, $2)")
                .bind(id)
                .bind(&filler)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM write_probes WHERE id <> $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        });
        tx.commit().await
    }

    /// Makes every SQLite writer connection refuse to grow the file beyond `pages` (`None`:
    /// no limit): a full disk, simulated without filling one. Applied to the current writer
    /// connection and to any that replaces it.
    #[cfg(feature = "testing")]
    pub async fn limit_sqlite_pages(&self, pages: Option<u64>) -> Result<()> {
        // SQLite's own ceiling when no limit is set.
        let n = pages.unwrap_or(4_294_967_294);
        self.writes
            .page_limit
            .store(pages.unwrap_or(0), Ordering::Release);
        crate::on_pool!(self, write, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {n}")))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The SQLite file's page count (0 on PostgreSQL): where a page limit starts to bite.
    #[cfg(feature = "testing")]
    pub async fn sqlite_page_count(&self) -> Result<u64> {
        if self.kind() != crate::StoreKind::Sqlite {
            return Ok(0);
        }
        crate::on_pool!(self, write, |pool| {
            let n: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(pool)
                .await?;
            Ok(n.max(0) as u64)
        })
    }
}

/// Reports a write failure to the store's health, passing the result through.
pub(crate) fn note<T>(health: &WriteHealth, r: Result<T, StoreError>) -> Result<T, StoreError> {
    if r.is_err() {
        health.failed();
    }
    r
}
