//! Old, settled history written straight into the store, for `freshet bench retention`: a
//! million rows through the API would take longer than the measurement they set up.

use freshet_model::{ApplicationId, webhooks::EndpointId};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, codec::Ts, on_pool};

/// Events written per transaction.
const CHUNK: usize = 1000;

impl Store {
    /// Writes `n` `endpoint.test` events of `app` created at `at` (a millisecond apart), each
    /// with one succeeded delivery to `endpoint` and its one attempt: `3 n` rows a purge may
    /// remove. Ids are UUIDv7 of their creation time, as the node's own are.
    pub async fn seed_settled_events(
        &self,
        app: ApplicationId,
        endpoint: EndpointId,
        n: usize,
        at: OffsetDateTime,
    ) -> Result<()> {
        let data = Json(serde_json::json!({"seeded": true}));
        let mut done = 0;
        while done < n {
            let rows: Vec<(Uuid, Uuid, Uuid, OffsetDateTime)> = (done..(done + CHUNK).min(n))
                .map(|i| {
                    let t = at + time::Duration::milliseconds(i as i64);
                    let ts = uuid::Timestamp::from_unix(
                        uuid::NoContext,
                        t.unix_timestamp() as u64,
                        t.nanosecond(),
                    );
                    (Uuid::new_v7(ts), Uuid::new_v7(ts), Uuid::new_v7(ts), t)
                })
                .collect();
            done += rows.len();
            on_pool!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO events (id, application_id, event_type, customer_id, created_at, data) ",
                );
                q.push_values(&rows, |mut r, (event, _, _, t)| {
                    r.push_bind(*event)
                        .push_bind(app.0)
                        .push_bind("endpoint.test")
                        .push_bind(None::<Uuid>)
                        .push_bind(Ts(*t))
                        .push_bind(&data);
                });
                q.build().execute(&mut *tx).await?;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, \
                     attempts, next_attempt_at, last_status_code, created_at, updated_at) ",
                );
                q.push_values(&rows, |mut r, (event, delivery, _, t)| {
                    r.push_bind(*delivery)
                        .push_bind(app.0)
                        .push_bind(*event)
                        .push_bind(endpoint.0)
                        .push_bind("succeeded")
                        .push_bind(1_i64)
                        .push_bind(Ts(*t))
                        .push_bind(204_i64)
                        .push_bind(Ts(*t))
                        .push_bind(Ts(*t));
                });
                q.build().execute(&mut *tx).await?;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO delivery_attempts (id, delivery_id, endpoint_id, attempted_at, \
                     status_code, latency_ms, node) ",
                );
                q.push_values(&rows, |mut r, (_, delivery, attempt, t)| {
                    r.push_bind(*attempt)
                        .push_bind(*delivery)
                        .push_bind(endpoint.0)
                        .push_bind(Ts(*t))
                        .push_bind(204_i64)
                        .push_bind(3_i64)
                        .push_bind("seed");
                });
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
            });
        }
        Ok(())
    }

    /// What the store occupies: the SQLite file with its WAL, or the PostgreSQL tables that
    /// retention trims (with their indexes and TOAST), in bytes, by name.
    pub async fn storage_sizes(&self) -> Result<Vec<(String, u64)>> {
        match &self.backend {
            crate::Backend::Sqlite { writer, .. } => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(writer)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(writer)
                    .await?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(writer)
                    .await?;
                Ok(vec![
                    ("file".into(), (pages * size).max(0) as u64),
                    ("free pages".into(), (free * size).max(0) as u64),
                ])
            }
            crate::Backend::Postgres(pool) => {
                let mut out = Vec::new();
                for table in ["events", "deliveries", "delivery_attempts"] {
                    let bytes: i64 =
                        sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
                            .bind(table)
                            .fetch_one(pool)
                            .await?;
                    out.push((table.to_string(), bytes.max(0) as u64));
                }
                Ok(out)
            }
        }
    }
}
