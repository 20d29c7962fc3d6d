//! How each webhook endpoint's deliveries have gone lately: attempts and successes since an
//! instant, and the last failure, for a page of endpoints in one statement.
//!
//! An attempt succeeded when its receiver answered 2xx; anything else, no answer included,
//! is a failure. Both questions are answered from indexes on `delivery_attempts` keyed by
//! endpoint (migration 7): the window is a range scan, the last failure one probe of a
//! partial index of failures.

use std::collections::HashMap;

use freshet_model::{ApplicationId, webhooks::EndpointId};
use sqlx::QueryBuilder;
use time::OffsetDateTime;

use crate::{
    Result, Store,
    codec::{RowExt, Ts},
    on_pool,
};

/// One endpoint's recent record.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointHealth {
    /// Attempts since the window's start.
    pub attempts: u64,
    /// Of those, the ones answered 2xx.
    pub succeeded: u64,
    /// The most recent failed attempt, however long ago.
    pub last_failure: Option<FailedAttempt>,
    /// Deliveries due now and not yet sent: for a limited endpoint, what its limits hold back.
    pub waiting: u64,
}

/// A failed attempt, as the health summary shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedAttempt {
    pub at: OffsetDateTime,
    /// The receiver's status; `None` when no response arrived.
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

impl Store {
    /// The health of each of `endpoints` (endpoints of other applications are left out), with
    /// attempts counted from `since`.
    pub async fn endpoint_health(
        &self,
        app: ApplicationId,
        endpoints: &[EndpointId],
        since: OffsetDateTime,
    ) -> Result<HashMap<EndpointId, EndpointHealth>> {
        if endpoints.is_empty() {
            return Ok(HashMap::new());
        }
        on_pool!(self, read, |pool| {
            let mut q = QueryBuilder::new(
                "SELECT x.endpoint_id, COALESCE(w.attempts, 0) AS attempts, \
                 COALESCE(w.succeeded, 0) AS succeeded, f.attempted_at AS failed_at, \
                 f.status_code AS failed_status, f.error AS failed_error, x.waiting FROM (\
                   SELECT e.id AS endpoint_id, (SELECT count(*) FROM deliveries d \
                     WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'failed') \
                     AND d.next_attempt_at <= ",
            );
            q.push_bind(Ts(freshet_model::time::now()));
            q.push(
                ") AS waiting, (SELECT b.id FROM delivery_attempts b \
                 WHERE b.endpoint_id = e.id AND COALESCE(b.status_code, 0) NOT BETWEEN 200 AND 299 \
                 ORDER BY b.attempted_at DESC LIMIT 1) AS failure_id \
                 FROM webhook_endpoints e WHERE e.application_id = ",
            );
            q.push_bind(app.0);
            q.push(" AND e.id IN (");
            let mut ids = q.separated(", ");
            for id in endpoints {
                ids.push_bind(id.0);
            }
            q.push(
                ")) x LEFT JOIN delivery_attempts f ON f.id = x.failure_id \
                 LEFT JOIN (SELECT endpoint_id, count(*) AS attempts, \
                   sum(CASE WHEN COALESCE(status_code, 0) BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS succeeded \
                   FROM delivery_attempts WHERE attempted_at >= ",
            );
            q.push_bind(Ts(since));
            q.push(" AND endpoint_id IN (");
            let mut ids = q.separated(", ");
            for id in endpoints {
                ids.push_bind(id.0);
            }
            q.push(") GROUP BY endpoint_id) w ON w.endpoint_id = x.endpoint_id");
            let rows = q.build().fetch_all(pool).await?;
            let mut out = HashMap::with_capacity(rows.len());
            for r in &rows {
                let last_failure = match r.opt_ts("failed_at")? {
                    Some(at) => Some(FailedAttempt {
                        at,
                        status_code: r.opt_i64("failed_status")?.map(|c| c as u16),
                        error: r.opt_text("failed_error")?,
                    }),
                    None => None,
                };
                out.insert(
                    EndpointId(r.uuid("endpoint_id")?),
                    EndpointHealth {
                        attempts: r.i64("attempts")?.max(0) as u64,
                        succeeded: r.i64("succeeded")?.max(0) as u64,
                        last_failure,
                        waiting: r.i64("waiting")?.max(0) as u64,
                    },
                );
            }
            Ok(out)
        })
    }
}
