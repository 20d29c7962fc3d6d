//! The database facts `/metrics` reports: the outbox's backlog and the unattended budget used
//! today. They are shared by every node, so they are read at scrape time rather than counted
//! by each node; each is one grouped query answered from an index (migration 6).

use time::{Date, OffsetDateTime};

use crate::{Result, Store, accounts::ymd, codec::RowExt, on_pool};

/// The outbox as operators watch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Unsettled deliveries (waiting, retrying or in flight) to enabled endpoints.
    pub depth: u64,
    /// The earliest next attempt among those: how long the most overdue one has waited.
    pub oldest_due: Option<OffsetDateTime>,
    /// Unsettled deliveries to disabled endpoints, which wait until the endpoint is enabled.
    pub parked: u64,
    /// Deliveries due now to endpoints with a rate or concurrency limit, not yet sent: what
    /// the limits hold back.
    pub waiting_for_limits: u64,
}

/// How many authorised consents of a provider made `used` unattended refreshes today.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnattendedUse {
    pub provider_id: String,
    pub used: u32,
    pub consents: u64,
}

impl Store {
    /// The outbox's backlog, split by whether the endpoint takes deliveries.
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        // Grouping by endpoint first reads the deliveries from the index alone and joins the
        // endpoints once each, not once per delivery.
        let sql = "SELECT w.enabled AS enabled, \
                   CAST(CASE WHEN w.rate_limit IS NULL AND w.max_in_flight IS NULL THEN 0 ELSE 1 END AS BIGINT) AS limited, \
                   CAST(SUM(q.n) AS BIGINT) AS n, CAST(SUM(q.due) AS BIGINT) AS due, \
                   MIN(q.oldest) AS oldest FROM (\
                     SELECT endpoint_id, COUNT(*) AS n, MIN(next_attempt_at) AS oldest, \
                     SUM(CASE WHEN status <> 'delivering' AND next_attempt_at <= $1 THEN 1 ELSE 0 END) AS due \
                     FROM deliveries WHERE status IN ('pending', 'failed', 'delivering') \
                     GROUP BY endpoint_id) q \
                   JOIN webhook_endpoints w ON w.id = q.endpoint_id GROUP BY 1, 2";
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(sql)
                .bind(crate::codec::Ts(freshet_model::time::now()))
                .fetch_all(pool)
                .await?;
            let mut stats = QueueStats::default();
            for r in &rows {
                let n = r.i64("n")?.max(0) as u64;
                if r.bool("enabled")? {
                    stats.depth += n;
                    let oldest = r.opt_ts("oldest")?;
                    stats.oldest_due = match (stats.oldest_due, oldest) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if r.i64("limited")? == 1 {
                        stats.waiting_for_limits += r.i64("due")?.max(0) as u64;
                    }
                } else {
                    stats.parked += n;
                }
            }
            Ok(stats)
        })
    }

    /// For each provider and count of unattended refreshes made on `day`, how many authorised
    /// consents made that many; consents that made none are left out.
    pub async fn unattended_use(&self, day: Date) -> Result<Vec<UnattendedUse>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(
                "SELECT provider_id, unattended_used, COUNT(*) AS consents FROM consents \
                 WHERE status = 'authorised' AND unattended_day = $1 AND unattended_used > 0 \
                 GROUP BY provider_id, unattended_used ORDER BY provider_id, unattended_used",
            )
            .bind(ymd(day))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(UnattendedUse {
                        provider_id: r.text("provider_id")?,
                        used: r.i64("unattended_used")?.clamp(0, i64::from(u32::MAX)) as u32,
                        consents: r.i64("consents")?.max(0) as u64,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?)
        })
    }
}
