//! The outbox: claiming due deliveries under a lease, and recording how attempts went.
//!
//! A dispatcher claims a batch in one statement — marking rows `delivering` with a lease and a
//! claim token — then sends without holding any transaction, then records every attempt of the
//! batch in one transaction. A node that dies mid-batch simply lets its leases expire; the rows
//! are claimable again and go out again (at-least-once). PostgreSQL nodes claim with
//! `FOR UPDATE SKIP LOCKED` so they never wait on each other; SQLite's single writer serialises
//! claims by construction. Order is kept in the claim itself: a delivery with an ordering key
//! (an ordered endpoint's customer, or a refresh task's series) waits while an earlier one with
//! the same key for the same endpoint is still unsettled.

use std::collections::HashMap;

use freshet_model::{
    ApplicationId, EventType,
    webhooks::{Attempt, AttemptId, Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId},
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    Result, Store, StoreKind,
    codec::{RowExt, Ts},
    endpoints::{endpoint_columns, endpoint_from_row},
    events::{StoredEvent, event_columns, event_from_row},
    health_marks::Wrote,
    on_pool,
};
use freshet_model::webhooks::WebhookEndpoint;

/// The next attempt of a delivery parked behind an earlier one with the same ordering key:
/// never due, so claims do not scan it; the earlier one's settling makes it due.
pub const PARKED: OffsetDateTime = time::macros::datetime!(9999-12-31 0:00 UTC);

/// Makes due the delivery next in line behind each settled one, if it was parked: the part
/// after `UPDATE deliveries SET next_attempt_at = <now> WHERE next_attempt_at = <parked>`,
/// up to the settled ids. By the ordering index; in the transaction that settles them, which
/// sees every parked row (a delivery is parked only behind one recorded in the same
/// transaction).
macro_rules! unpark_next {
    () => {
        " AND id IN (SELECT (SELECT n.id FROM deliveries n WHERE n.endpoint_id = s.endpoint_id \
           AND n.ordering_key = s.ordering_key AND n.event_id > s.event_id \
           AND n.status IN ('pending', 'failed', 'delivering') ORDER BY n.event_id LIMIT 1) \
         FROM deliveries s WHERE s.ordering_key IS NOT NULL \
           AND s.status IN ('succeeded', 'dead') AND s.id "
    };
}

/// Whether `f` settles a delivery something may wait in line behind: only then is the next in
/// line looked for.
fn settled(f: &Finished) -> bool {
    f.in_line && matches!(f.outcome, Outcome::Succeeded | Outcome::Dead)
}

/// A claimed delivery with everything needed to send it.
#[derive(Clone, Debug)]
pub struct Claim {
    pub delivery: Delivery,
    pub event: StoredEvent,
    pub endpoint: WebhookEndpoint,
    /// Proves the lease when recording the attempt.
    pub token: String,
    /// When the lease runs out. A send is never started after it: the delivery may by then
    /// be another node's, or cancelled by an erasure that waited for this lease to end.
    pub lease_until: OffsetDateTime,
    /// A body fixed when the delivery was created (a product for its callback URL), sent as
    /// is instead of the event rendered in the endpoint's dialect.
    pub body: Option<serde_json::Value>,
    /// Set when the delivery waited for earlier ones (an ordered endpoint, a refresh's series):
    /// once it settles, the next one may be claimed.
    pub ordering_key: Option<String>,
}

/// What an attempt found.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub attempted_at: OffsetDateTime,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub node: String,
}

/// What happens to a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Succeeded,
    Retry { at: OffsetDateTime },
    Dead,
}

/// What recording a batch of attempts found.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Each failing endpoint, with when its current run of failures began.
    pub failing: Vec<(ApplicationId, EndpointId, OffsetDateTime)>,
    /// Retries made due now because their endpoint succeeded again ([`crate::catch_up`]).
    pub brought_forward: u64,
    /// The deliveries next in line behind those the batch settled, leased to the recording
    /// node ([`TakeNext`]): its to send now.
    pub next: Vec<Claim>,
}

/// Who sends the delivery next in line behind one a batch settles, when it waited parked for
/// it. Without this it is made due and waits for a claim, which on a busy outbox reads the
/// whole due queue to find it; with it, the recording node leases it in the same statement
/// and sends it at once. Only for an endpoint the node could claim it from (enabled, no
/// limits, its partition held); the rest are made due as before.
#[derive(Clone, Copy, Debug)]
pub struct TakeNext<'a> {
    pub node: &'a str,
    pub lease: Duration,
    /// The partitions the node claims from; `None`: all of them.
    pub partitions: Option<&'a [u16]>,
}

/// The lease [`TakeNext`] writes.
struct Taking<'a> {
    token: &'a str,
    until: OffsetDateTime,
    partitions: Vec<i32>,
}

/// An attempt to record.
#[derive(Clone, Debug)]
pub struct Finished {
    pub application_id: ApplicationId,
    pub delivery_id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub token: String,
    pub attempt: AttemptRecord,
    pub outcome: Outcome,
    /// The delivery had an ordering key: settling it may let the next in line go.
    pub in_line: bool,
}

macro_rules! columns {
    () => {
        "id, application_id, event_id, endpoint_id, status, attempts, next_attempt_at, \
         last_status_code, last_error, created_at, updated_at"
    };
}

fn delivery_from_row(r: &impl RowExt) -> Result<Delivery, sqlx::Error> {
    let status = r.text("status")?;
    Ok(Delivery {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        event_id: r.uuid("event_id")?.into(),
        endpoint_id: r.uuid("endpoint_id")?.into(),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("delivery status {status}").into()))?,
        attempts: r.i64("attempts")? as u32,
        next_attempt_at: r.ts("next_attempt_at")?,
        last_status_code: r.opt_i64("last_status_code")?.map(|c| c as u16),
        last_error: r.opt_text("last_error")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn attempt_from_row(r: &impl RowExt) -> Result<Attempt, sqlx::Error> {
    Ok(Attempt {
        id: r.uuid("id")?.into(),
        delivery_id: r.uuid("delivery_id")?.into(),
        attempted_at: r.ts("attempted_at")?,
        status_code: r.opt_i64("status_code")?.map(|c| c as u16),
        latency_ms: r.i64("latency_ms")? as u64,
        error: r.opt_text("error")?,
        response_excerpt: r.opt_text("response_excerpt")?,
        node: r.text("node")?,
    })
}

/// An endpoint with a rate or concurrency limit and deliveries due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitedEndpoint {
    pub id: EndpointId,
    pub rate_limit: Option<u32>,
    pub max_in_flight: Option<u32>,
}

/// The claim's condition on the endpoint for [`Scope::Unlimited`].
macro_rules! unlimited {
    () => {
        " AND w.rate_limit IS NULL AND w.max_in_flight IS NULL"
    };
}

/// Whether a parked delivery being made due may instead be leased to the recording node
/// ([`TakeNext`]): waiting, its endpoint enabled and without limits, on PostgreSQL in one of
/// the node's partitions (`$6`), and — as the claim checks — nothing before it with its key
/// unsettled (an earlier delivery retried by hand, or one whose transaction committed late).
macro_rules! takeable {
    ($partitions:expr) => {
        concat!(
            "(deliveries.status IN ('pending', 'failed') \
              AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = deliveries.endpoint_id \
              AND w.enabled",
            unlimited!(),
            ")",
            $partitions,
            " AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = deliveries.endpoint_id \
              AND p.ordering_key = deliveries.ordering_key AND p.event_id < deliveries.event_id \
              AND p.status IN ('pending', 'failed', 'delivering')))"
        )
    };
}

/// [`takeable`] on PostgreSQL.
macro_rules! takeable_pg {
    () => {
        takeable!(concat!(
            " AND ",
            crate::partition_sql!("deliveries"),
            " = ANY($6::int4[])"
        ))
    };
}

/// The `SET` that leases a delivery made due when `$cond` holds: to `$5` until `$4`.
macro_rules! take_set {
    ($cond:expr) => {
        concat!(
            "status = CASE WHEN ",
            $cond,
            " THEN 'delivering' ELSE status END, \
             lease_until = CASE WHEN ",
            $cond,
            " THEN $4 ELSE lease_until END, \
             leased_by = CASE WHEN ",
            $cond,
            " THEN $5 ELSE leased_by END, "
        )
    };
}

/// [`takeable`] on SQLite, whose one node holds every partition.
const TAKEABLE_SQLITE: &str = takeable!("");

/// Which due deliveries a claim may take.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Any: what a test or a single sweep takes.
    All,
    /// Those of endpoints without limits, in these partitions (all when `None`): what a
    /// node's claimer takes.
    Unlimited { partitions: Option<&'a [u16]> },
    /// Those of one endpoint: a limited endpoint's share, claimed within its limits.
    Endpoint(EndpointId),
}

/// The claim statement: due, unleased (or lease expired), endpoint enabled, and for ordered
/// endpoints no earlier unsettled delivery for the same customer; `$endpoint` and `$delivery`
/// narrow it to a [`Scope`].
macro_rules! claim_sql {
    ($lock:literal, $endpoint:expr, $delivery:expr) => {
        concat!(
            "UPDATE deliveries SET status = 'delivering', lease_until = $1, leased_by = $2, \
             updated_at = $3 WHERE id IN (\
               SELECT d.id FROM deliveries d \
               WHERE d.status IN ('pending', 'failed', 'delivering') AND d.next_attempt_at <= $3 \
                 AND (d.status <> 'delivering' OR d.lease_until < $3) \
                 AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.enabled", $endpoint, ") ", $delivery, " \
                 AND (d.ordering_key IS NULL OR NOT EXISTS (\
                   SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id \
                     AND p.ordering_key = d.ordering_key AND p.event_id < d.event_id \
                     AND p.status IN ('pending', 'failed', 'delivering'))) \
               ORDER BY d.next_attempt_at LIMIT $4",
            $lock,
            ")"
        )
    };
}

impl Store {
    /// Leases up to `limit` due deliveries to `node` for `lease`.
    pub async fn claim_due(&self, node: &str, lease: Duration, limit: u32) -> Result<Vec<Claim>> {
        self.claim(node, lease, limit, Scope::All).await
    }

    /// Leases up to `limit` due deliveries within `scope` to `node` for `lease`.
    pub async fn claim(
        &self,
        node: &str,
        lease: Duration,
        limit: u32,
        scope: Scope<'_>,
    ) -> Result<Vec<Claim>> {
        // Before claiming: a node that cannot open secrets must not hold deliveries.
        let keys = self.keys()?;
        let now = freshet_model::time::now();
        let token = format!("{node}/{}", Uuid::now_v7().simple());
        let claim = match (self.kind(), scope) {
            (StoreKind::Sqlite, Scope::All) => claim_sql!("", "", ""),
            (StoreKind::Sqlite, Scope::Unlimited { .. }) => claim_sql!("", unlimited!(), ""),
            (StoreKind::Sqlite, Scope::Endpoint(_)) => claim_sql!("", "", "AND d.endpoint_id = $5"),
            (StoreKind::Postgres, Scope::All) => claim_sql!(" FOR UPDATE SKIP LOCKED", "", ""),
            (StoreKind::Postgres, Scope::Unlimited { partitions: None }) => {
                claim_sql!(" FOR UPDATE SKIP LOCKED", unlimited!(), "")
            }
            (
                StoreKind::Postgres,
                Scope::Unlimited {
                    partitions: Some(_),
                },
            ) => claim_sql!(
                " FOR UPDATE SKIP LOCKED",
                unlimited!(),
                concat!("AND ", crate::partition_sql!("d"), " = ANY($5)")
            ),
            (StoreKind::Postgres, Scope::Endpoint(_)) => {
                claim_sql!(" FOR UPDATE SKIP LOCKED", "", "AND d.endpoint_id = $5")
            }
        };
        if let Scope::Unlimited {
            partitions: Some(p),
        } = scope
            && p.is_empty()
        {
            return Ok(Vec::new());
        }
        // Planned at each execution, not from a cached generic plan: a plan cached while the
        // outbox was small (or its statistics stale, autovacuum off) walked it with sequential
        // scans once it held tens of thousands of rows, and one claim ran for minutes during
        // the PostgreSQL refresh benchmark. Planning costs well under a millisecond per batch.
        let claimed = match (&self.backend, scope) {
            (
                crate::Backend::Postgres(pool),
                Scope::Unlimited {
                    partitions: Some(p),
                },
            ) => sqlx::query(claim)
                .persistent(false)
                .bind(Ts(now + lease))
                .bind(&token)
                .bind(Ts(now))
                .bind(i64::from(limit))
                .bind(p.iter().map(|&p| i32::from(p)).collect::<Vec<_>>())
                .execute(pool)
                .await?
                .rows_affected(),
            _ => on_pool!(self, write, |pool| {
                let q = sqlx::query(claim)
                    .persistent(false)
                    .bind(Ts(now + lease))
                    .bind(&token)
                    .bind(Ts(now))
                    .bind(i64::from(limit));
                let q = match scope {
                    Scope::Endpoint(e) => q.bind(e.0),
                    _ => q,
                };
                q.execute(pool).await?.rows_affected()
            }),
        };
        if claimed == 0 {
            return Ok(Vec::new());
        }
        self.leased_to(&token, now + lease, &keys).await
    }

    /// The deliveries leased under claim `token`, with their events and endpoints, in the
    /// order they are to go.
    async fn leased_to(
        &self,
        token: &str,
        lease_until: OffsetDateTime,
        keys: &crate::sealed::Keyring,
    ) -> Result<Vec<Claim>> {
        // Three indexed reads by claim token, joined here, keep the row mappers shared. They
        // read committed data, so on SQLite they leave the single writer free.
        on_pool!(self, read, |pool| {
            let deliveries = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                ", body, ordering_key FROM deliveries WHERE leased_by = $1"
            ))
            .bind(token)
            .fetch_all(pool)
            .await?;
            let events = sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE id IN (SELECT event_id FROM deliveries WHERE leased_by = $1)"
            ))
            .bind(token)
            .fetch_all(pool)
            .await?;
            let endpoints = sqlx::query(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE id IN (SELECT endpoint_id FROM deliveries WHERE leased_by = $1)"
            ))
            .bind(token)
            .fetch_all(pool)
            .await?;
            let events: HashMap<EventId, StoredEvent> = events
                .iter()
                .map(|r| event_from_row(r).map(|e| (e.id, e)))
                .collect::<Result<_, _>>()?;
            let endpoints: HashMap<EndpointId, WebhookEndpoint> = endpoints
                .iter()
                .map(|r| endpoint_from_row(r, keys).map(|e| (e.id, e)))
                .collect::<Result<_, _>>()?;
            let mut claims = Vec::with_capacity(deliveries.len());
            for row in &deliveries {
                let delivery = delivery_from_row(row)?;
                let (Some(event), Some(endpoint)) = (
                    events.get(&delivery.event_id),
                    endpoints.get(&delivery.endpoint_id),
                ) else {
                    continue; // deleted between claim and read: nothing to send
                };
                claims.push(Claim {
                    event: event.clone(),
                    endpoint: endpoint.clone(),
                    delivery,
                    token: token.to_string(),
                    lease_until,
                    body: row.opt_json("body")?,
                    ordering_key: row.opt_text("ordering_key")?,
                });
            }
            claims.sort_by_key(|c| (c.delivery.next_attempt_at, c.delivery.event_id));
            Ok(claims)
        })
    }

    /// The enabled endpoints with limits that have deliveries due and unleased: what the
    /// holders of their partitions claim within the limits.
    pub async fn limited_endpoints_due(&self) -> Result<Vec<LimitedEndpoint>> {
        let now = freshet_model::time::now();
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(
                "SELECT w.id, w.rate_limit, w.max_in_flight FROM webhook_endpoints w \
                 WHERE w.enabled AND (w.rate_limit IS NOT NULL OR w.max_in_flight IS NOT NULL) \
                 AND EXISTS (SELECT 1 FROM deliveries d WHERE d.endpoint_id = w.id \
                   AND d.status IN ('pending', 'failed', 'delivering') AND d.next_attempt_at <= $1 \
                   AND (d.status <> 'delivering' OR d.lease_until < $1))",
            )
            .bind(Ts(now))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(LimitedEndpoint {
                        id: r.uuid("id")?.into(),
                        rate_limit: crate::endpoints::limit(r.opt_i64("rate_limit")?),
                        max_in_flight: crate::endpoints::limit(r.opt_i64("max_in_flight")?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?)
        })
    }

    /// Records a batch of attempts in one transaction. A delivery whose lease was lost to
    /// another node keeps the other node's state; its attempt is still recorded. Returns, for
    /// each failing endpoint, when its current run of failures began, and how many retries
    /// of endpoints that succeeded were brought forward.
    pub async fn finish_attempts(&self, batch: &[Finished]) -> Result<Recorded> {
        self.finish_attempts_taking(batch, None).await
    }

    /// [`finish_attempts`](Self::finish_attempts), leasing to `take`'s node the deliveries
    /// next in line that it may send ([`TakeNext`]), returned in [`Recorded::next`].
    pub async fn finish_attempts_taking(
        &self,
        batch: &[Finished],
        take: Option<TakeNext<'_>>,
    ) -> Result<Recorded> {
        if batch.is_empty() {
            return Ok(Recorded::default());
        }
        let now = freshet_model::time::now();
        // A node that cannot open secrets takes nothing: it could not send it.
        let keys = take.and_then(|_| self.keys().ok());
        let take = take.filter(|_| keys.is_some());
        let token = take.map(|t| format!("{}/{}", t.node, Uuid::now_v7().simple()));
        let taking = take.zip(token.as_deref()).map(|(t, token)| Taking {
            token,
            until: now + t.lease,
            partitions: match t.partitions {
                Some(p) => p.iter().map(|&p| i32::from(p)).collect(),
                None => (0..i32::from(crate::PARTITIONS)).collect(),
            },
        });
        let bring_forward = crate::catch_up::bring_forward_sql(self.kind());
        let mut brought_forward = 0;
        let recorded = on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut failing = HashMap::new();
            let mut wrote = Vec::new();
            let mut endpoints: HashMap<
                (ApplicationId, EndpointId),
                (Option<OffsetDateTime>, Option<OffsetDateTime>),
            > = HashMap::new();
            let unparked =
                WriteOutcomes::write_outcomes(&mut *tx, batch, now, taking.as_ref()).await?;
            // Endpoints with a failure in this batch: a receiver failing some requests is
            // not caught up with, or its retries would race through their schedule.
            let flapping: std::collections::HashSet<EndpointId> = batch
                .iter()
                .filter(|f| f.outcome != Outcome::Succeeded)
                .map(|f| f.endpoint_id)
                .collect();
            for f in batch {
                let health = endpoints
                    .entry((f.application_id, f.endpoint_id))
                    .or_insert((None, None));
                if f.outcome == Outcome::Succeeded {
                    health.0 = Some(f.attempt.attempted_at);
                    health.1 = None;
                } else if health.0.is_none() {
                    health.1.get_or_insert(f.attempt.attempted_at);
                }
            }
            // One health update per endpoint per batch: its last success, or the start of its
            // failures when the batch had none.
            // In one order on every node, so that two batches touching the same endpoints
            // cannot deadlock.
            let mut endpoints: Vec<_> = endpoints.into_iter().collect();
            endpoints.sort_by_key(|((_, endpoint), _)| endpoint.0);
            let marked = std::time::Instant::now();
            for ((app, endpoint), (success, first_failure)) in endpoints {
                if flapping.contains(&endpoint) {
                    wrote.push((endpoint, Wrote::Failure));
                }
                if let Some(at) = success {
                    let marks = &self.health_marks;
                    // Only SQLite's one node knows nothing else wrote the endpoint's health
                    // meanwhile (a failure another node marked must be cleared now).
                    if self.kind() == StoreKind::Postgres
                        || marks.success_unwritten(endpoint, marked)
                    {
                        // Not rewritten within a second of the last success: a busy
                        // endpoint's row would otherwise be updated by every batch, and
                        // concurrent batches would queue on its lock. A row the condition
                        // skips is not locked.
                        sqlx::query(
                            "UPDATE webhook_endpoints SET last_success_at = $2, failing_since = NULL \
                             WHERE id = $1 AND (failing_since IS NOT NULL OR last_success_at IS NULL \
                             OR last_success_at < $3)",
                        )
                        .bind(endpoint.0)
                        .bind(Ts(at))
                        .bind(Ts(at - Duration::SECOND))
                        .execute(&mut *tx)
                        .await?;
                        wrote.push((endpoint, Wrote::Success));
                    }
                    if !flapping.contains(&endpoint) && marks.may_have_retries(endpoint, marked) {
                        let found = sqlx::query(bring_forward)
                            .bind(endpoint.0)
                            .bind(Ts(now))
                            .bind(crate::catch_up::PER_SUCCESS)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        brought_forward += found;
                        wrote.push((endpoint, Wrote::CaughtUp { found }));
                    }
                } else if let Some(at) = first_failure {
                    let row = sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
                         WHERE id = $1 RETURNING failing_since",
                    )
                    .bind(endpoint.0)
                    .bind(Ts(at))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(since) = row
                        .map(|r| r.opt_ts("failing_since"))
                        .transpose()?
                        .flatten()
                    {
                        failing.insert((app, endpoint), since);
                    }
                }
            }
            tx.commit().await?;
            self.health_marks.committed(&wrote, marked);
            (failing, unparked)
        });
        let (failing, unparked) = recorded;
        let next = match (taking, keys) {
            (Some(t), Some(keys)) if unparked > 0 => {
                match self.leased_to(t.token, t.until, &keys).await {
                    Ok(next) => next,
                    // The attempts are recorded; what was taken goes back to the queue rather
                    // than waiting out a lease nobody will send under.
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the deliveries next in line failed; returning them to the queue");
                        if let Err(e) = self.release_claim(t.token).await {
                            tracing::warn!(error = %e, "returning the deliveries next in line failed; their lease will run out");
                        }
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        Ok(Recorded {
            failing: failing
                .into_iter()
                .map(|((app, ep), since)| (app, ep, since))
                .collect(),
            brought_forward,
            next,
        })
    }

    /// Returns the deliveries leased under claim `token` to the queue, unattempted.
    async fn release_claim(&self, token: &str) -> Result<u64> {
        on_pool!(self, write, |pool| {
            let done = sqlx::query(
                "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'failed' END, \
                 lease_until = NULL, leased_by = NULL WHERE leased_by = $1 AND status = 'delivering'",
            )
            .bind(token)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Returns every leased delivery to the queue. Only for a single-node store at start-up,
    /// when any lease must be a leftover of a previous run.
    pub async fn release_all_leases(&self) -> Result<u64> {
        on_pool!(self, write, |pool| {
            let done = sqlx::query(
                "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'failed' END, \
                 lease_until = NULL, leased_by = NULL WHERE status = 'delivering'",
            )
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Reads a delivery of `app`.
    pub async fn get_delivery(
        &self,
        app: ApplicationId,
        id: DeliveryId,
    ) -> Result<Option<Delivery>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM deliveries WHERE application_id = $1 AND id = $2"
            ))
            .bind(app.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| delivery_from_row(&r)).transpose()?)
        })
    }

    /// The deliveries of one event of `app`.
    pub async fn list_event_deliveries(
        &self,
        app: ApplicationId,
        event: EventId,
    ) -> Result<Vec<Delivery>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM deliveries WHERE application_id = $1 AND event_id = $2 ORDER BY id"
            ))
            .bind(app.0)
            .bind(event.0)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(delivery_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// The attempts of one delivery of `app`, oldest first.
    pub async fn list_attempts(
        &self,
        app: ApplicationId,
        delivery: DeliveryId,
    ) -> Result<Vec<Attempt>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(
                "SELECT a.id, a.delivery_id, a.attempted_at, a.status_code, a.latency_ms, a.error, \
                 a.response_excerpt, a.node FROM delivery_attempts a \
                 JOIN deliveries d ON d.id = a.delivery_id \
                 WHERE d.application_id = $1 AND a.delivery_id = $2 ORDER BY a.id",
            )
            .bind(app.0)
            .bind(delivery.0)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(attempt_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// Schedules a delivery of `app` to go out again now, unless it is being sent right now.
    /// `None` when there is no such delivery, it is in flight, or it was cancelled by an
    /// erasure (its customer is gone: it is never sent).
    pub async fn retry_delivery(
        &self,
        app: ApplicationId,
        id: DeliveryId,
    ) -> Result<Option<Delivery>> {
        let now = freshet_model::time::now();
        on_pool!(self, write, |pool| {
            let row = sqlx::query(concat!(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, lease_until = NULL, \
                 leased_by = NULL, updated_at = $3 \
                 WHERE application_id = $1 AND id = $2 AND status NOT IN ('delivering', 'cancelled') \
                 RETURNING ",
                columns!()
            ))
            .bind(app.0)
            .bind(id.0)
            .bind(Ts(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| delivery_from_row(&r)).transpose()?)
        })
    }

    /// Sends an endpoint's events from `[since, until)` again: settled deliveries are re-queued
    /// (keeping their `webhook-id`), and events the endpoint never had a delivery for — because
    /// it was created later, say — get one when `wanted` accepts their type and payload.
    /// Returns (re-queued, created).
    pub async fn replay_endpoint(
        &self,
        app: ApplicationId,
        endpoint: EndpointId,
        since: OffsetDateTime,
        until: OffsetDateTime,
        wanted: impl Fn(EventType, &serde_json::Value) -> bool,
    ) -> Result<(u64, u64)> {
        let now = freshet_model::time::now();
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let requeued = sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $5, lease_until = NULL, \
                 leased_by = NULL, updated_at = $5 \
                 WHERE application_id = $1 AND endpoint_id = $2 \
                   AND status NOT IN ('delivering', 'cancelled') \
                   AND event_id IN (SELECT id FROM events WHERE application_id = $1 \
                                    AND created_at >= $3 AND created_at < $4)",
            )
            .bind(app.0)
            .bind(endpoint.0)
            .bind(Ts(since))
            .bind(Ts(until))
            .bind(Ts(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let ordered: Option<bool> = sqlx::query(
                "SELECT ordered FROM webhook_endpoints WHERE application_id = $1 AND id = $2",
            )
            .bind(app.0)
            .bind(endpoint.0)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.bool("ordered"))
            .transpose()?;
            let Some(ordered) = ordered else {
                return Ok((0, 0));
            };
            let missing = sqlx::query(
                "SELECT e.id, e.event_type, e.customer_id, e.data FROM events e \
                 WHERE e.application_id = $1 AND e.created_at >= $3 AND e.created_at < $4 \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.endpoint_id = $2) \
                 ORDER BY e.id",
            )
            .bind(app.0)
            .bind(endpoint.0)
            .bind(Ts(since))
            .bind(Ts(until))
            .fetch_all(&mut *tx)
            .await?;
            let mut created = 0;
            for row in &missing {
                let event_type = EventType::parse(&row.text("event_type")?);
                let data: serde_json::Value = row.opt_json("data")?.unwrap_or_default();
                if !event_type.is_some_and(|t| wanted(t, &data)) {
                    continue;
                }
                let key = row
                    .opt_uuid("customer_id")?
                    .filter(|_| ordered)
                    .map(|c| c.to_string());
                sqlx::query(
                    "INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, \
                     attempts, next_attempt_at, lease_until, leased_by, ordering_key, \
                     last_status_code, last_error, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, NULL, $6, NULL, NULL, $5, $5)",
                )
                .bind(DeliveryId::new().0)
                .bind(app.0)
                .bind(row.uuid("id")?)
                .bind(endpoint.0)
                .bind(Ts(now))
                .bind(key)
                .execute(&mut *tx)
                .await?;
                created += 1;
            }
            tx.commit().await?;
            Ok((requeued, created))
        })
    }
}

/// Writes a batch's outcomes: every delivery's new state and every attempt, one statement each.
/// A row whose lease another node took over (claim token no longer matches) is left as that
/// node has it; its attempt is still recorded.
trait WriteOutcomes {
    /// Answers how many deliveries next in line it made due or, with `take`, leased.
    async fn write_outcomes(
        &mut self,
        batch: &[Finished],
        now: OffsetDateTime,
        take: Option<&Taking<'_>>,
    ) -> Result<u64, sqlx::Error>;
}

fn verdict(f: &Finished, now: OffsetDateTime) -> (&'static str, OffsetDateTime) {
    match f.outcome {
        Outcome::Succeeded => ("succeeded", now),
        Outcome::Retry { at } => ("failed", at),
        Outcome::Dead => ("dead", now),
    }
}

/// PostgreSQL takes the rows as arrays under one fixed text, so each statement is parsed and
/// planned once per connection, not once per batch size.
impl WriteOutcomes for sqlx::PgConnection {
    async fn write_outcomes(
        &mut self,
        batch: &[Finished],
        now: OffsetDateTime,
        take: Option<&Taking<'_>>,
    ) -> Result<u64, sqlx::Error> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut tokens = Vec::with_capacity(batch.len());
        let mut statuses = Vec::with_capacity(batch.len());
        let mut next = Vec::with_capacity(batch.len());
        let mut codes = Vec::with_capacity(batch.len());
        let mut errors = Vec::with_capacity(batch.len());
        let mut attempt_ids = Vec::with_capacity(batch.len());
        let mut endpoints = Vec::with_capacity(batch.len());
        let mut attempted = Vec::with_capacity(batch.len());
        let mut latencies = Vec::with_capacity(batch.len());
        let mut excerpts = Vec::with_capacity(batch.len());
        let mut nodes = Vec::with_capacity(batch.len());
        for f in batch {
            let (status, at) = verdict(f, now);
            ids.push(f.delivery_id.0);
            tokens.push(f.token.as_str());
            statuses.push(status);
            next.push(at);
            codes.push(f.attempt.status_code.map(i64::from));
            errors.push(f.attempt.error.as_deref());
            attempt_ids.push(AttemptId::new().0);
            endpoints.push(f.endpoint_id.0);
            attempted.push(f.attempt.attempted_at);
            latencies.push(f.attempt.latency_ms as i64);
            excerpts.push(f.attempt.response_excerpt.as_deref());
            nodes.push(f.attempt.node.as_str());
        }
        sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN deliveries.status = 'cancelled' \
             THEN 'cancelled' ELSE v.status END, attempts = deliveries.attempts + 1, \
             next_attempt_at = v.next_attempt_at, lease_until = NULL, leased_by = NULL, \
             last_status_code = v.last_status_code, last_error = CASE WHEN \
             deliveries.status = 'cancelled' THEN deliveries.last_error ELSE v.last_error END, \
             updated_at = $7 \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::int8[], \
             $6::text[]) AS v (id, token, status, next_attempt_at, last_status_code, last_error) \
             WHERE deliveries.id = v.id AND deliveries.leased_by = v.token",
        )
        // Planned for each batch, not once per connection: a generic plan made while the
        // table was small (a hash join over a scan of it) would be kept as it grows, for as long
        // as nothing analyses the table. Parsing this short text costs little.
        .persistent(false)
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&next)
        .bind(&codes)
        .bind(&errors)
        .bind(now)
        .execute(&mut *self)
        .await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (id, delivery_id, endpoint_id, attempted_at, status_code, \
             latency_ms, error, response_excerpt, node) SELECT * FROM unnest($1::uuid[], \
             $2::uuid[], $3::uuid[], $4::timestamptz[], $5::int8[], $6::int8[], $7::text[], \
             $8::text[], $9::text[])",
        )
        .bind(&attempt_ids)
        .bind(&ids)
        .bind(&endpoints)
        .bind(&attempted)
        .bind(&codes)
        .bind(&latencies)
        .bind(&errors)
        .bind(&excerpts)
        .bind(&nodes)
        .execute(&mut *self)
        .await?;
        let settled: Vec<_> = batch
            .iter()
            .filter(|f| settled(f))
            .map(|f| f.delivery_id.0)
            .collect();
        if settled.is_empty() {
            return Ok(0);
        }
        // Without `take`, no partition: nothing is taken, everything found is made due.
        let (until, token, partitions) = match take {
            Some(t) => (t.until, Some(t.token), t.partitions.as_slice()),
            None => (now, None, &[][..]),
        };
        let unparked = sqlx::query(concat!(
            "UPDATE deliveries SET ",
            take_set!(takeable_pg!()),
            "next_attempt_at = $1 WHERE next_attempt_at = $2",
            unpark_next!(),
            "= ANY($3::uuid[]))"
        ))
        // Planned for each batch: a generic plan made while the table was small scans it for
        // the settled ids instead of reading them by key.
        .persistent(false)
        .bind(now)
        .bind(PARKED)
        .bind(&settled)
        .bind(until)
        .bind(token)
        .bind(partitions)
        .execute(&mut *self)
        .await?
        .rows_affected();
        Ok(unparked)
    }
}

impl WriteOutcomes for sqlx::SqliteConnection {
    async fn write_outcomes(
        &mut self,
        batch: &[Finished],
        now: OffsetDateTime,
        take: Option<&Taking<'_>>,
    ) -> Result<u64, sqlx::Error> {
        let mut q = sqlx::QueryBuilder::new(
            "WITH v (id, token, status, next_attempt_at, last_status_code, last_error) AS (",
        );
        q.push_values(batch, |mut row, f| {
            let (status, next) = verdict(f, now);
            row.push_bind(f.delivery_id.0)
                .push_bind(f.token.clone())
                .push_bind(status)
                .push_bind(Ts(next))
                .push_bind(f.attempt.status_code.map(i64::from))
                .push_bind(f.attempt.error.clone());
        });
        q.push(
            ") UPDATE deliveries SET status = CASE WHEN deliveries.status = 'cancelled' \
             THEN 'cancelled' ELSE v.status END, attempts = deliveries.attempts + 1, \
             next_attempt_at = v.next_attempt_at, lease_until = NULL, leased_by = NULL, \
             last_status_code = v.last_status_code, last_error = CASE WHEN \
             deliveries.status = 'cancelled' THEN deliveries.last_error ELSE v.last_error END, \
             updated_at = ",
        );
        q.push_bind(Ts(now));
        q.push(" FROM v WHERE deliveries.id = v.id AND deliveries.leased_by = v.token");
        q.build().execute(&mut *self).await?;
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO delivery_attempts (id, delivery_id, endpoint_id, attempted_at, status_code, \
             latency_ms, error, response_excerpt, node) ",
        );
        q.push_values(batch, |mut row, f| {
            row.push_bind(AttemptId::new().0)
                .push_bind(f.delivery_id.0)
                .push_bind(f.endpoint_id.0)
                .push_bind(Ts(f.attempt.attempted_at))
                .push_bind(f.attempt.status_code.map(i64::from))
                .push_bind(f.attempt.latency_ms as i64)
                .push_bind(f.attempt.error.clone())
                .push_bind(f.attempt.response_excerpt.clone())
                .push_bind(f.attempt.node.clone());
        });
        q.build().execute(&mut *self).await?;
        if !batch.iter().any(settled) {
            return Ok(0);
        }
        {
            let mut q = sqlx::QueryBuilder::new("UPDATE deliveries SET ");
            if let Some(t) = take {
                q.push(format_args!(
                    "status = CASE WHEN {TAKEABLE_SQLITE} THEN 'delivering' ELSE status END, \
                     lease_until = CASE WHEN {TAKEABLE_SQLITE} THEN "
                ));
                q.push_bind(Ts(t.until));
                q.push(format_args!(
                    " ELSE lease_until END, leased_by = CASE WHEN {TAKEABLE_SQLITE} THEN "
                ));
                q.push_bind(t.token.to_string());
                q.push(" ELSE leased_by END, ");
            }
            q.push("next_attempt_at = ");
            q.push_bind(Ts(now));
            q.push(" WHERE next_attempt_at = ");
            q.push_bind(Ts(PARKED));
            q.push(concat!(unpark_next!(), "IN ("));
            let mut ids = q.separated(", ");
            for f in batch.iter().filter(|f| settled(f)) {
                ids.push_bind(f.delivery_id.0);
            }
            q.push("))");
            Ok(q.build().execute(&mut *self).await?.rows_affected())
        }
    }
}
