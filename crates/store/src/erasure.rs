//! Erasure of a customer: the rows about them go, the event log keeps its rows without the
//! personal fields, and deliveries that have not left are cancelled.
//!
//! All of it happens in one transaction, in an order chosen for concurrent writers on
//! PostgreSQL (SQLite's single writer serialises everything anyway). The customer's row is
//! locked first. The customer is deleted (the foreign keys cascade to links, consents and
//! their tokens, accounts, transactions, refresh tasks and product requests) before the
//! events are read: a refresh finishing at the same moment either committed its events
//! before — and this transaction's later statements see and scrub them — or finds its
//! sub-task gone and records nothing. Deliveries are cancelled after the scrub for the same
//! reason.
//!
//! A delivery a dispatcher already claimed holds the payload as it was, in memory. It is
//! cancelled like the others (the dispatcher's result no longer changes its status), and the
//! caller waits with [`Store::await_erased_in_flight`] until its lease has been given back or
//! has run out: a dispatcher never starts a send on a lease that ran out.

use freshet_model::{ApplicationId, CustomerId, erasure::ErasedCounts};
use serde_json::Value;
use sqlx::types::Json;
use time::{Duration, OffsetDateTime};

use crate::{
    Result, Store, StoreKind, Tx,
    codec::{RowExt, Ts},
    on_pool, on_tx,
};

/// What [`Tx::erase_customer`] did.
#[derive(Clone, Debug)]
pub struct Erased {
    /// The rows removed and changed (bank revocations are the caller's to count).
    pub counts: ErasedCounts,
    /// Until when a send claimed before the erasure may still start: the latest lease among
    /// the customer's cancelled deliveries in flight, if any.
    pub in_flight_until: Option<OffsetDateTime>,
    /// The same for product callbacks in flight, whose rows went with the product requests:
    /// with nothing left to watch, their leases are waited out.
    pub callbacks_until: Option<OffsetDateTime>,
}

impl Erased {
    /// Whether a send claimed before the erasure may still start.
    pub fn in_flight(&self) -> bool {
        self.in_flight_until.is_some() || self.callbacks_until.is_some()
    }
}

/// What the customer's delete will take with it, counted before it goes.
const COUNTS: &str = "SELECT \
    (SELECT COUNT(*) FROM consents WHERE customer_id = $1) AS consents, \
    (SELECT COUNT(access_token) + COUNT(refresh_token) FROM consents WHERE customer_id = $1) \
      AS tokens, \
    (SELECT COUNT(*) FROM links WHERE customer_id = $1) AS links, \
    (SELECT COUNT(*) FROM accounts WHERE customer_id = $1) AS accounts, \
    (SELECT COUNT(*) FROM transactions WHERE account_id IN \
      (SELECT id FROM accounts WHERE customer_id = $1)) AS transactions, \
    (SELECT COUNT(*) FROM refresh_tasks WHERE customer_id = $1) AS refresh_tasks, \
    (SELECT COUNT(*) FROM product_requests WHERE customer_id = $1) AS product_requests, \
    (SELECT COUNT(*) FROM products WHERE request_id IN \
      (SELECT id FROM product_requests WHERE customer_id = $1)) AS products";

/// A receiver's answer may echo what it was sent: the customer's attempts lose theirs.
const CLEAR_EXCERPTS: &str = "UPDATE delivery_attempts SET response_excerpt = NULL \
    WHERE response_excerpt IS NOT NULL AND delivery_id IN \
      (SELECT d.id FROM deliveries d WHERE d.event_id IN \
        (SELECT e.id FROM events e WHERE e.customer_id = $1 AND e.application_id = $2))";

/// Why a delivery was cancelled, as its `last_error` says.
pub const CANCELLED_REASON: &str = "cancelled: the customer was erased";

/// How often [`Store::await_erased_in_flight`] looks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl Tx {
    /// Erases customer `id` of `app`; `None` when `app` has no such customer.
    pub async fn erase_customer(
        &mut self,
        app: ApplicationId,
        id: CustomerId,
    ) -> Result<Option<Erased>> {
        let now = freshet_model::time::now();
        let lock = match self.kind() {
            StoreKind::Sqlite => "SELECT id FROM customers WHERE application_id = $1 AND id = $2",
            StoreKind::Postgres => {
                "SELECT id FROM customers WHERE application_id = $1 AND id = $2 FOR UPDATE"
            }
        };
        on_tx!(self, |conn| {
            let found = sqlx::query(lock)
                .bind(app.0)
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await?;
            if found.is_none() {
                return Ok(None);
            }
            let row = sqlx::query(COUNTS).bind(id.0).fetch_one(&mut *conn).await?;
            let n = |col: &str| row.i64(col).map(|v| v as u64);
            let mut counts = ErasedCounts {
                consents: n("consents")?,
                tokens: n("tokens")?,
                links: n("links")?,
                accounts: n("accounts")?,
                transactions: n("transactions")?,
                refresh_tasks: n("refresh_tasks")?,
                product_requests: n("product_requests")?,
                products: n("products")?,
                ..Default::default()
            };
            // Product callbacks hang off the product requests, which the delete below takes
            // with their deliveries: count those not sent, and note any in flight, first.
            let callbacks = sqlx::query(
                "SELECT COUNT(*) AS n, MAX(CASE WHEN d.status = 'delivering' THEN d.lease_until END) \
                 AS until FROM deliveries d WHERE d.status IN ('pending', 'failed', 'delivering') \
                 AND d.endpoint_id IN (SELECT w.id FROM webhook_endpoints w \
                   WHERE w.product_request_id IN (SELECT r.id FROM product_requests r \
                     WHERE r.customer_id = $1))",
            )
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await?;
            counts.deliveries_cancelled = callbacks.i64("n")? as u64;
            let callbacks_until = callbacks.opt_ts("until")?.filter(|t| *t > now);

            sqlx::query("DELETE FROM customers WHERE application_id = $1 AND id = $2")
                .bind(app.0)
                .bind(id.0)
                .execute(&mut *conn)
                .await?;

            let events = sqlx::query(
                "SELECT id, data FROM events WHERE customer_id = $1 AND application_id = $2",
            )
            .bind(id.0)
            .bind(app.0)
            .fetch_all(&mut *conn)
            .await?;
            for row in &events {
                let mut data: Value = row.opt_json("data")?.unwrap_or_default();
                if freshet_model::erasure::erase_personal(&mut data) {
                    sqlx::query("UPDATE events SET data = $2 WHERE id = $1")
                        .bind(row.uuid("id")?)
                        .bind(Json(&data))
                        .execute(&mut *conn)
                        .await?;
                    counts.events_scrubbed += 1;
                }
            }

            // A claimed delivery keeps its lease: the dispatcher gives it back when it
            // records its attempt, which is what the caller waits for.
            let cancelled = sqlx::query(
                "UPDATE deliveries SET status = 'cancelled', last_error = $3, updated_at = $4 \
                 WHERE status IN ('pending', 'failed', 'delivering') AND event_id IN \
                   (SELECT id FROM events WHERE customer_id = $1 AND application_id = $2) \
                 RETURNING lease_until",
            )
            .bind(id.0)
            .bind(app.0)
            .bind(CANCELLED_REASON)
            .bind(Ts(now))
            .fetch_all(&mut *conn)
            .await?;
            counts.deliveries_cancelled += cancelled.len() as u64;
            let mut in_flight_until: Option<OffsetDateTime> = None;
            for row in &cancelled {
                if let Some(until) = row.opt_ts("lease_until")?.filter(|t| *t > now) {
                    in_flight_until = Some(in_flight_until.map_or(until, |u| u.max(until)));
                }
            }

            counts.attempt_excerpts = sqlx::query(CLEAR_EXCERPTS)
                .bind(id.0)
                .bind(app.0)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(Some(Erased {
                counts,
                in_flight_until,
                callbacks_until,
            }))
        })
    }
}

impl Store {
    /// Waits until no send claimed before customer `id`'s erasure can still start: each of
    /// their cancelled deliveries that was in flight has been given back by its dispatcher or
    /// its lease has run out, and product callbacks in flight have had their leases run out.
    /// Then drops the receivers' answers those last attempts recorded.
    pub async fn await_erased_in_flight(
        &self,
        app: ApplicationId,
        id: CustomerId,
        erased: &Erased,
    ) -> Result<()> {
        // A lease's last instant, and a little for clocks read at different moments.
        let margin = Duration::milliseconds(100);
        if let Some(until) = erased.in_flight_until {
            let deadline = until + margin;
            loop {
                let now = freshet_model::time::now();
                if now >= deadline {
                    break;
                }
                let held = on_pool!(self, read, |pool| {
                    sqlx::query(
                        "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'cancelled' \
                         AND leased_by IS NOT NULL AND lease_until > $3 AND event_id IN \
                           (SELECT id FROM events WHERE customer_id = $1 AND application_id = $2)",
                    )
                    .bind(id.0)
                    .bind(app.0)
                    .bind(Ts(now))
                    .fetch_one(pool)
                    .await?
                    .i64("n")?
                });
                if held == 0 {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        if let Some(until) = erased.callbacks_until {
            let left = until + margin - freshet_model::time::now();
            if left.is_positive() {
                tokio::time::sleep(left.unsigned_abs()).await;
            }
        }
        on_pool!(self, write, |pool| {
            sqlx::query(CLEAR_EXCERPTS)
                .bind(id.0)
                .bind(app.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

#[cfg(feature = "testing")]
impl Store {
    /// Every stored event payload as the database holds it, as text: what a test searches for
    /// values that must not be there.
    pub async fn stored_event_payloads(&self) -> Result<Vec<String>> {
        let sql = match self.kind() {
            StoreKind::Sqlite => "SELECT data AS text FROM events ORDER BY id",
            StoreKind::Postgres => "SELECT data::text AS text FROM events ORDER BY id",
        };
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            Ok(rows
                .iter()
                .map(|r| r.text("text"))
                .collect::<Result<_, _>>()?)
        })
    }
}
