//! Retention: the background task that keeps the database from growing without end.
//!
//! Every `every`, the node holding the `retention` lease (one node at a time, whatever the
//! number of nodes on a PostgreSQL store) walks each application's data older than its
//! retention period and removes it in small batches — a few hundred events with their
//! deliveries and attempts per statement group, then a pause — so delivery and the API keep
//! the database between batches. The pause grows with the time the last batch took, so the
//! purge never takes more than a fixed share of the database's time: on a busy or slow
//! machine batches take longer and the purge slows down with them, instead of taking the
//! same wall-clock share from a delivery that needs it more. What is removed is counted per
//! table in `/metrics`. On SQLite the pages freed are then handed back to the file system a few thousand at a time
//! (`PRAGMA incremental_vacuum`), so the file stops growing once data leaves as fast as it
//! comes; on PostgreSQL the tables a pass purged are vacuumed (not `FULL`), so their free
//! space is reused at once whether or not autovacuum keeps up (or runs at all). The rules of
//! what may go are the store's ([`freshet_store::Store::purge_events`]).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use freshet_store::{Purged, Store, StoreError, StoreKind};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;

/// The lease's name in `maintenance_leases`.
const LEASE: &str = "retention";

/// The longest pause between batches, however long the last one took: a batch stalled once
/// (a checkpoint, a lock wait) does not hold the purge back for minutes.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// How soon a node that found the lease taken looks again.
const LEASE_RETRY: Duration = Duration::from_secs(30);

/// Tuning of the retention task.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// How long data is kept when its application sets no period; `None` keeps it forever.
    pub period: Option<Duration>,
    /// How often a pass starts.
    pub every: Duration,
    /// Events (or transactions) removed per batch.
    pub batch: u32,
    /// The least pause between batches.
    pub pause: Duration,
    /// The largest share of the time a pass spends in its batches (0 to 1): after a batch
    /// that took `t` the pass pauses at least `t × (1 − share) / share`. What delivery and the
    /// API lose while a large purge runs follows this share (see docs/benchmarks.md).
    pub share: f64,
    /// SQLite pages handed back to the file system per step.
    pub vacuum_pages: u32,
    /// This node's name as the lease holder.
    pub node: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            period: Some(Duration::from_secs(30 * 24 * 3600)),
            every: Duration::from_secs(60),
            batch: 500,
            pause: Duration::from_millis(20),
            share: 0.05,
            vacuum_pages: 2048,
            node: format!("node-{}", Uuid::now_v7().simple()),
        }
    }
}

impl RetentionConfig {
    /// The pause after a step that took `took`: long enough that the steps keep to their
    /// share of the time, and never below the configured least pause. The step's time includes
    /// any wait for the database (SQLite's one writer, PostgreSQL's locks), so the busier
    /// delivery keeps the database, the longer the purge stands aside.
    fn pause_after(&self, took: Duration) -> Duration {
        let share = self.share.clamp(0.01, 1.0);
        took.mul_f64((1.0 - share) / share)
            .min(LONGEST_PAUSE)
            .max(self.pause)
    }
}

/// The retention task of one node.
#[derive(Clone)]
pub struct Retention {
    store: Store,
    metrics: Arc<Metrics>,
    config: RetentionConfig,
}

impl Retention {
    pub fn new(store: Store, metrics: Arc<Metrics>, config: RetentionConfig) -> Self {
        Self {
            store,
            metrics,
            config,
        }
    }

    /// Runs passes until `stop`; a pass interrupted by `stop` ends after its current batch,
    /// and the lease is given up so another node can take over at once.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let wait = match self.run_once(&stop).await {
                    Ok(Some(_)) => self.config.every,
                    // Another node holds the lease: look again well before a long interval
                    // ends, in case that node is gone.
                    Ok(None) => self.config.every.min(LEASE_RETRY),
                    Err(e) => {
                        tracing::warn!(error = %e, "retention pass failed; trying again at the next");
                        self.config.every
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if let Err(e) = self.store.release_lease(LEASE, &self.config.node).await {
                tracing::warn!(error = %e, "could not give up the retention lease");
            }
        })
    }

    /// One pass, if this node holds the lease: what it removed; `None` when another node
    /// holds the lease.
    pub async fn run_once(&self, stop: &CancellationToken) -> Result<Option<Purged>, StoreError> {
        let mut total = Purged::default();
        let ttl = self.lease_ttl();
        if !self.store.take_lease(LEASE, &self.config.node, ttl).await? {
            return Ok(None);
        }
        let mut renewed = Instant::now();
        let now = freshet_model::time::now();
        let default = self
            .config
            .period
            .map(|p| time::Duration::try_from(p).unwrap_or(time::Duration::MAX));
        let started = Instant::now();
        for (app, cutoff) in self.store.retention_cutoffs(default, now).await? {
            let mut after = Uuid::nil();
            loop {
                if stop.is_cancelled() || !self.keep_lease(&mut renewed, ttl).await? {
                    return Ok(Some(total));
                }
                let began = Instant::now();
                let batch = self
                    .store
                    .purge_events(app, cutoff, after, self.config.batch)
                    .await?;
                self.count(&mut total, batch.purged);
                let Some(next) = batch.next else { break };
                after = next;
                tokio::time::sleep(self.config.pause_after(began.elapsed())).await;
            }
            loop {
                if stop.is_cancelled() || !self.keep_lease(&mut renewed, ttl).await? {
                    return Ok(Some(total));
                }
                let began = Instant::now();
                let purged = self
                    .store
                    .purge_ended_consent_data(app, cutoff, self.config.batch)
                    .await?;
                if purged.total() == 0 {
                    break;
                }
                self.count(&mut total, purged);
                tokio::time::sleep(self.config.pause_after(began.elapsed())).await;
            }
        }
        if total.total() > 0 {
            tracing::info!(
                events = total.events,
                deliveries = total.deliveries,
                attempts = total.delivery_attempts,
                accounts = total.accounts,
                transactions = total.transactions,
                took = ?started.elapsed(),
                "retention pass removed old data"
            );
            self.release_pages(stop).await?;
            self.store.vacuum_purged_tables(&total).await?;
        }
        Ok(Some(total))
    }

    /// SQLite: gives the freed pages back to the file system, a step at a time.
    async fn release_pages(&self, stop: &CancellationToken) -> Result<(), StoreError> {
        if self.store.kind() != StoreKind::Sqlite {
            return Ok(());
        }
        while !stop.is_cancelled() {
            let began = Instant::now();
            if self
                .store
                .release_free_pages(self.config.vacuum_pages)
                .await?
                == 0
            {
                break;
            }
            tokio::time::sleep(self.config.pause_after(began.elapsed())).await;
        }
        Ok(())
    }

    fn count(&self, total: &mut Purged, purged: Purged) {
        total.add(purged);
        self.metrics.rows_purged(&purged);
    }

    /// Long enough to outlast a pause and a batch many times over; renewed as the pass goes.
    fn lease_ttl(&self) -> time::Duration {
        time::Duration::seconds(120)
    }

    /// Renews the lease when a third of it is gone; `false` when another node took it.
    async fn keep_lease(
        &self,
        renewed: &mut Instant,
        ttl: time::Duration,
    ) -> Result<bool, StoreError> {
        if renewed.elapsed().as_secs_f64() < ttl.as_seconds_f64() / 3.0 {
            return Ok(true);
        }
        *renewed = Instant::now();
        self.store.take_lease(LEASE, &self.config.node, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_keeps_the_purge_to_its_share_between_the_floor_and_the_ceiling() {
        let config = RetentionConfig::default();
        let ms = Duration::from_millis;
        // 5 %: a 10 ms batch is followed by 190 ms of room for everything else.
        assert_eq!(config.pause_after(ms(10)), ms(190));
        assert_eq!(config.pause_after(Duration::ZERO), config.pause);
        assert_eq!(config.pause_after(Duration::from_secs(60)), LONGEST_PAUSE);
        let half = RetentionConfig {
            share: 0.5,
            ..RetentionConfig::default()
        };
        assert_eq!(half.pause_after(ms(100)), ms(100));
    }
}
