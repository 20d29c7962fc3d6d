//! The event log, and the fan-out of each event into deliveries.
//!
//! Recording an event inserts its deliveries in the same transaction — one per endpoint of the
//! application that is enabled, active, subscribed to the type and of a dialect that sends it —
//! so an event is never stored without its deliveries, nor delivered without being stored.

use std::collections::HashMap;

use freshet_model::{
    ApplicationId, CustomerId, EventType, Page, PageRequest,
    webhooks::{Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, WebhookEndpoint},
};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Claim, Result, Store, Tx, TxInner,
    codec::{RowExt, Ts},
    endpoints::{endpoint_columns, endpoint_from_row},
    on_pool,
    sealed::Keyring,
};

/// An event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub id: EventId,
    pub application_id: ApplicationId,
    pub event_type: EventType,
    pub customer_id: Option<CustomerId>,
    pub created_at: OffsetDateTime,
    /// The canonical payload.
    pub data: Value,
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub event_type: Option<EventType>,
    /// Only events at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub until: Option<OffsetDateTime>,
    /// Newest first (cursors then lead to older events) instead of oldest first.
    pub newest_first: bool,
}

macro_rules! columns {
    () => {
        "id, application_id, event_type, customer_id, created_at, data"
    };
}
pub(crate) use columns as event_columns;

pub(crate) fn event_from_row(r: &impl RowExt) -> Result<StoredEvent, sqlx::Error> {
    let event_type = r.text("event_type")?;
    Ok(StoredEvent {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| sqlx::Error::Decode(format!("event type {event_type}").into()))?,
        customer_id: r.opt_uuid("customer_id")?.map(CustomerId),
        created_at: r.ts("created_at")?,
        data: r.opt_json("data")?.unwrap_or(Value::Null),
    })
}

/// Where a new event goes: to every matching endpoint, or to one only (test events).
#[derive(Clone, Copy, Debug)]
pub enum Fanout<'a> {
    /// Every enabled, active, subscribed endpoint whose dialect is one of `dialects` — for
    /// those of `opted_in` only endpoints that take scheduled refreshes. Deliveries of one
    /// `series` (a refresh task's events) leave each endpoint in event order, as an ordered
    /// endpoint's deliveries of one customer do.
    Subscribers {
        dialects: &'a [&'a str],
        opted_in: &'a [&'a str],
        series: Option<&'a str>,
    },
    /// This endpoint, whatever its subscriptions. When the application has no such endpoint
    /// the event is not stored at all (see [`Written::missing`]).
    Only(EndpointId),
}

impl<'a> Fanout<'a> {
    /// Every enabled, active, subscribed endpoint whose dialect is one of `dialects`.
    pub fn to(dialects: &'a [&'a str]) -> Self {
        Self::Subscribers {
            dialects,
            opted_in: &[],
            series: None,
        }
    }
}

/// What writing a batch of events did.
#[derive(Debug, Default)]
pub struct Written {
    /// Deliveries created.
    pub deliveries: u64,
    /// Deliveries created already leased, as claims for the node that wrote them.
    pub claims: Vec<Claim>,
    /// Events not stored because the one endpoint they were for does not exist.
    pub missing: Vec<EventId>,
    /// Partitions, not held by the writer, with deliveries due now: whoever holds them should
    /// hear of it.
    pub announce: Vec<u16>,
}

impl Tx {
    /// Stores an event and creates its deliveries; returns how many.
    pub async fn record_event(&mut self, event: &StoredEvent, fanout: Fanout<'_>) -> Result<u64> {
        self.record_events(&[(event.clone(), fanout)]).await
    }
}

/// Largest batch written as one multi-row statement (SQLite allows 32,766 parameters).
const MAX_ROWS: usize = 2_000;

/// A lease to take on the deliveries a batch creates, for the node that wrote them.
#[derive(Clone, Copy)]
pub struct Lease<'a> {
    pub token: &'a str,
    pub until: OffsetDateTime,
    /// Whether the writer holds a partition: only there may it take the head of a series
    /// (whose successors the holder's claimer sends), and what it leaves elsewhere is
    /// announced to the holder.
    pub holds: &'a (dyn Fn(u16) -> bool + Sync),
}

impl Tx {
    /// Stores a batch of events and their deliveries with a handful of statements whatever the
    /// batch's size: one lookup per distinct target, then the events and the deliveries (one
    /// statement on PostgreSQL, a multi-row insert each on SQLite).
    pub async fn record_events(&mut self, batch: &[(StoredEvent, Fanout<'_>)]) -> Result<u64> {
        Ok(self.record_batch(batch, None).await?.deliveries)
    }

    /// Like [`Tx::record_events`], reporting what it did. With a `lease`, deliveries that may
    /// leave at once — to an enabled, unordered endpoint — are created already leased and
    /// returned as claims, so the node that wrote them sends them without claiming them first;
    /// the rest wait for an ordinary claim, which enforces ordering and enablement.
    pub async fn record_batch(
        &mut self,
        batch: &[(StoredEvent, Fanout<'_>)],
        lease: Option<Lease<'_>>,
    ) -> Result<Written> {
        let keys = self.keys()?;
        let mut conn = match &mut self.inner {
            TxInner::Sqlite(t) => Conn::Sqlite(t),
            TxInner::Postgres(t) => Conn::Postgres(t),
        };
        let mut all = Written::default();
        for chunk in batch.chunks(MAX_ROWS) {
            let w = write_events(&mut conn, &keys, chunk, lease).await?;
            all.deliveries += w.deliveries;
            all.claims.extend(w.claims);
            all.missing.extend(w.missing);
            all.announce.extend(w.announce);
        }
        all.announce.sort_unstable();
        all.announce.dedup();
        Ok(all)
    }
}

/// The connection a batch is written on: a transaction's, or on PostgreSQL a pooled one in
/// autocommit (see [`Store::record_batch`]).
enum Conn<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}

async fn write_events(
    conn: &mut Conn<'_>,
    keys: &Keyring,
    batch: &[(StoredEvent, Fanout<'_>)],
    lease: Option<Lease<'_>>,
) -> Result<Written> {
    let now = freshet_model::time::now();
    // Resolve each distinct target once, reading each application's subscribed endpoints
    // once however many event types the batch holds.
    let mut subscribers: HashMap<ApplicationId, Vec<WebhookEndpoint>> = HashMap::new();
    let mut targets: HashMap<(ApplicationId, String), Vec<WebhookEndpoint>> = HashMap::new();
    // Events for one endpoint each (test events): every endpoint the batch names, in one read.
    let named: Vec<EndpointId> = {
        let mut ids: Vec<EndpointId> = batch
            .iter()
            .filter_map(|(_, f)| match f {
                Fanout::Only(e) => Some(*e),
                Fanout::Subscribers { .. } => None,
            })
            .collect();
        ids.sort_unstable_by_key(|e| e.0);
        ids.dedup();
        ids
    };
    let named = read_named(conn, keys, &named).await?;
    for (event, fanout) in batch {
        let key = (event.application_id, fanout_key(event, fanout));
        if targets.contains_key(&key) {
            continue;
        }
        let found = match fanout {
            Fanout::Subscribers {
                dialects, opted_in, ..
            } => {
                let app = event.application_id;
                let all = match subscribers.entry(app) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(read_targets(conn, keys, app, Targets::Subscribers { now }).await?)
                    }
                };
                all.iter()
                    .filter(|e| {
                        dialects.contains(&e.dialect.as_str())
                            && (e.scheduled_refreshes || !opted_in.contains(&e.dialect.as_str()))
                            && e.event_types
                                .as_ref()
                                .is_none_or(|types| types.contains(&event.event_type))
                    })
                    .cloned()
                    .collect()
            }
            Fanout::Only(endpoint) => named
                .get(endpoint)
                .filter(|e| e.application_id == event.application_id)
                .cloned()
                .into_iter()
                .collect(),
        };
        targets.insert(key, found);
    }
    struct Row<'e> {
        delivery: Delivery,
        event: &'e StoredEvent,
        endpoint: &'e WebhookEndpoint,
        ordering_key: Option<String>,
        leased: bool,
    }
    // An event for one endpoint that does not exist is not an event at all.
    let (stored, missing): (Vec<_>, Vec<_>) = batch.iter().partition(|(event, fanout)| {
        !matches!(fanout, Fanout::Only(_))
            || !targets[&(event.application_id, fanout_key(event, fanout))].is_empty()
    });
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut heads = std::collections::HashSet::new();
    let mut announce = Vec::new();
    let mut series_heads = Vec::new();
    for (event, fanout) in stored.iter().copied() {
        let series = match fanout {
            Fanout::Subscribers { series, .. } => *series,
            Fanout::Only(_) => None,
        };
        for endpoint in &targets[&(event.application_id, fanout_key(event, fanout))] {
            // An ordered endpoint keeps each customer's events in order, which covers a series.
            let ordering_key = match event.customer_id {
                Some(c) if endpoint.ordered => Some(c.0.to_string()),
                _ => series.map(|s| format!("{SERIES}{s}")),
            };
            // Behind an earlier delivery of this batch with the same key: parked until that
            // one settles (`finish_attempts` moves it forward), so claims never scan it.
            let parked = ordering_key
                .as_ref()
                .is_some_and(|k| !heads.insert((endpoint.id, k.clone())));
            // What waits for an earlier delivery is left for a claim, which checks that; the
            // head of a refresh's series is checked below and may leave at once.
            // The writer sends an unordered delivery to an endpoint without limits itself,
            // whoever holds its partition: the lease makes the attempt its own, and nothing
            // about it needs the holder. Partitions govern what is claimed — retries, backlog,
            // what waits for order or for an endpoint's limits.
            let partition = crate::partition_of(endpoint.id);
            let holds = lease.is_some_and(|l| (l.holds)(partition));
            // What a writer may take for itself at all: an enabled endpoint without limits.
            let takeable = lease.is_some() && endpoint.enabled && !endpoint.limited();
            let leased = takeable && ordering_key.is_none();
            if !leased && !parked && !holds && endpoint.enabled {
                announce.push(partition);
            }
            if takeable
                && holds
                && !parked
                && let Some(key) = ordering_key.as_ref().filter(|k| k.starts_with(SERIES))
            {
                series_heads.push((rows.len(), endpoint.id, key.clone()));
            }
            rows.push(Row {
                delivery: Delivery {
                    id: DeliveryId::new(),
                    application_id: event.application_id,
                    event_id: event.id,
                    endpoint_id: endpoint.id,
                    status: if leased {
                        DeliveryStatus::Delivering
                    } else {
                        DeliveryStatus::Pending
                    },
                    attempts: 0,
                    next_attempt_at: if parked {
                        crate::deliveries::PARKED
                    } else {
                        now
                    },
                    last_status_code: None,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                },
                event,
                endpoint,
                ordering_key,
                leased,
            });
        }
    }
    // A series is written by one task, one transaction after another: a head with nothing
    // of its series still unsettled is first in line, and goes to the writer's dispatcher
    // like any unordered delivery instead of waiting for a claim.
    for (i, endpoint, key) in series_heads {
        if !unsettled_before(conn, endpoint, &key).await? {
            let row = &mut rows[i];
            row.leased = true;
            row.delivery.status = DeliveryStatus::Delivering;
        }
    }
    let leased = |r: &Row<'_>| match (r.leased, lease) {
        (true, Some(l)) => (Some(l.until), Some(l.token.to_string())),
        _ => (None, None),
    };
    match conn {
        // One fixed text per statement, the rows as arrays: prepared once per connection,
        // where a VALUES list's text changes with the batch size and is parsed and planned
        // again (and evicts its siblings from the statement cache) nearly every time.
        // The events and their deliveries in one statement: a round trip and a statement
        // fewer per batch. The deliveries' foreign-key checks run at the statement's end,
        // when the events it inserted are there to be found.
        Conn::Postgres(c) if !stored.is_empty() => {
            let mut events = EventColumns::default();
            for (e, _) in &stored {
                events.push(e);
            }
            let mut cols = DeliveryColumns::default();
            for r in &rows {
                let (until, by) = leased(r);
                cols.id.push(r.delivery.id.0);
                cols.application_id.push(r.delivery.application_id.0);
                cols.event_id.push(r.delivery.event_id.0);
                cols.endpoint_id.push(r.delivery.endpoint_id.0);
                cols.status.push(r.delivery.status.as_str());
                cols.lease_until.push(until);
                cols.leased_by.push(by);
                cols.ordering_key.push(r.ordering_key.clone());
                cols.next_attempt_at.push(r.delivery.next_attempt_at);
            }
            sqlx::query(concat!(
                "WITH e AS (INSERT INTO events (",
                columns!(),
                ") SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], \
                     $5::timestamptz[], $6::jsonb[])) \
                     INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, \
                     attempts, next_attempt_at, lease_until, leased_by, ordering_key, created_at, \
                     updated_at) SELECT id, app, event, endpoint, status, 0, next_at, lease_until, \
                     leased_by, ordering_key, $15, $15 FROM unnest($7::uuid[], $8::uuid[], \
                     $9::uuid[], $10::uuid[], $11::text[], $12::timestamptz[], $13::text[], \
                     $14::text[], $16::timestamptz[]) AS r (id, app, event, endpoint, status, \
                     lease_until, leased_by, ordering_key, next_at)"
            ))
            .bind(events.id)
            .bind(events.application_id)
            .bind(events.event_type)
            .bind(events.customer_id)
            .bind(events.created_at)
            .bind(events.data)
            .bind(cols.id)
            .bind(cols.application_id)
            .bind(cols.event_id)
            .bind(cols.endpoint_id)
            .bind(cols.status)
            .bind(cols.lease_until)
            .bind(cols.leased_by)
            .bind(cols.ordering_key)
            .bind(now)
            .bind(cols.next_attempt_at)
            .execute(&mut **c)
            .await?;
        }
        Conn::Postgres(_) => {}
        Conn::Sqlite(c) => {
            let conn = &mut **c;
            if !stored.is_empty() {
                let mut q =
                    sqlx::QueryBuilder::new(concat!("INSERT INTO events (", columns!(), ") "));
                q.push_values(&stored, |mut row, (e, _)| {
                    row.push_bind(e.id.0)
                        .push_bind(e.application_id.0)
                        .push_bind(e.event_type.as_str())
                        .push_bind(e.customer_id.map(|c| c.0))
                        .push_bind(Ts(e.created_at))
                        .push_bind(Json(&e.data));
                });
                q.build().execute(&mut *conn).await?;
            }
            if !rows.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, attempts, \
                     next_attempt_at, lease_until, leased_by, ordering_key, last_status_code, last_error, \
                     created_at, updated_at) ",
                );
                q.push_values(&rows, |mut b, r| {
                    let (until, by) = leased(r);
                    b.push_bind(r.delivery.id.0)
                        .push_bind(r.delivery.application_id.0)
                        .push_bind(r.delivery.event_id.0)
                        .push_bind(r.delivery.endpoint_id.0)
                        .push_bind(r.delivery.status.as_str())
                        .push_bind(0i64)
                        .push_bind(Ts(r.delivery.next_attempt_at))
                        .push_bind(until.map(Ts))
                        .push_bind(by)
                        .push_bind(r.ordering_key.clone())
                        .push_bind(None::<i64>)
                        .push_bind(None::<String>)
                        .push_bind(Ts(now))
                        .push_bind(Ts(now));
                });
                q.build().execute(&mut *conn).await?;
            }
        }
    }
    let claims = match lease {
        None => Vec::new(),
        Some(l) => rows
            .iter()
            .filter(|r| r.leased)
            .map(|r| Claim {
                delivery: r.delivery.clone(),
                event: r.event.clone(),
                endpoint: r.endpoint.clone(),
                token: l.token.to_string(),
                lease_until: l.until,
                body: None,
                ordering_key: r.ordering_key.clone(),
            })
            .collect(),
    };
    Ok(Written {
        deliveries: rows.len() as u64,
        claims,
        missing: missing.iter().map(|(e, _)| e.id).collect(),
        announce,
    })
}

/// The prefix of a refresh series' ordering key.
const SERIES: &str = "series:";

/// Whether an endpoint (`$1`) has a delivery with an ordering key (`$2`) not yet settled: asked
/// for the head of every refresh's series, so it must read the in-line index whatever the
/// statistics say (a test checks its generic plan).
#[doc(hidden)]
pub const UNSETTLED_IN_LINE: &str = "SELECT 1 FROM deliveries WHERE endpoint_id = $1 \
     AND ordering_key = $2 AND status IN ('pending', 'failed', 'delivering') LIMIT 1";

/// Whether `endpoint` has a delivery with ordering key `key` not yet settled.
async fn unsettled_before(conn: &mut Conn<'_>, endpoint: EndpointId, key: &str) -> Result<bool> {
    on_conn!(conn, |c| {
        let found = sqlx::query(UNSETTLED_IN_LINE)
            .bind(endpoint.0)
            .bind(key)
            .fetch_optional(&mut **c)
            .await?;
        Ok(found.is_some())
    })
}

/// Which of an application's endpoints to read as an event's targets.
enum Targets {
    /// Those that take events now: enabled, active, not a product callback.
    Subscribers { now: OffsetDateTime },
}

/// The endpoints `ids` (none a product callback), by id: the targets of events for one
/// endpoint each. The caller checks each belongs to its event's application.
async fn read_named(
    conn: &mut Conn<'_>,
    keys: &Keyring,
    ids: &[EndpointId],
) -> Result<HashMap<EndpointId, WebhookEndpoint>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = match conn {
        // One fixed text whatever the count, as the other batch statements.
        Conn::Postgres(c) => sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = ANY($1) AND product_request_id IS NULL"
        ))
        .bind(ids.iter().map(|e| e.0).collect::<Vec<_>>())
        .fetch_all(&mut **c)
        .await?
        .iter()
        .map(|r| endpoint_from_row(r, keys))
        .collect::<Result<Vec<_>, sqlx::Error>>()?,
        Conn::Sqlite(c) => {
            let mut q = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE product_request_id IS NULL AND id IN ("
            ));
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.0);
            }
            q.push(")");
            q.build()
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|r| endpoint_from_row(r, keys))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        }
    };
    Ok(rows.into_iter().map(|e| (e.id, e)).collect())
}

async fn read_targets(
    conn: &mut Conn<'_>,
    keys: &Keyring,
    app: ApplicationId,
    which: Targets,
) -> Result<Vec<WebhookEndpoint>> {
    macro_rules! select {
        ($condition:literal) => {
            concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE application_id = $1 AND product_request_id IS NULL \
                  AND ",
                $condition
            )
        };
    }
    on_conn!(conn, |conn| {
        let query = match which {
            Targets::Subscribers { now } => sqlx::query(select!("enabled AND active_from <= $2"))
                .bind(app.0)
                .bind(Ts(now)),
        };
        let rows = query.fetch_all(&mut **conn).await?;
        Ok(rows
            .iter()
            .map(|r| endpoint_from_row(r, keys))
            .collect::<Result<_, sqlx::Error>>()?)
    })
}

/// An events batch as one array per column, for PostgreSQL's `unnest`.
#[derive(Default)]
struct EventColumns<'e> {
    id: Vec<Uuid>,
    application_id: Vec<Uuid>,
    event_type: Vec<&'static str>,
    customer_id: Vec<Option<Uuid>>,
    created_at: Vec<OffsetDateTime>,
    data: Vec<Json<&'e Value>>,
}

impl<'e> EventColumns<'e> {
    fn push(&mut self, e: &'e StoredEvent) {
        self.id.push(e.id.0);
        self.application_id.push(e.application_id.0);
        self.event_type.push(e.event_type.as_str());
        self.customer_id.push(e.customer_id.map(|c| c.0));
        self.created_at.push(e.created_at);
        self.data.push(Json(&e.data));
    }
}

/// A deliveries batch as one array per column that varies between rows.
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<Uuid>,
    application_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    endpoint_id: Vec<Uuid>,
    status: Vec<&'static str>,
    lease_until: Vec<Option<OffsetDateTime>>,
    leased_by: Vec<Option<String>>,
    ordering_key: Vec<Option<String>>,
    next_attempt_at: Vec<OffsetDateTime>,
}

/// What decides an event's targets besides its application.
fn fanout_key(event: &StoredEvent, fanout: &Fanout<'_>) -> String {
    match fanout {
        Fanout::Subscribers {
            dialects, opted_in, ..
        } => format!(
            "s:{}:{}:{}",
            event.event_type.as_str(),
            dialects.join(","),
            opted_in.join(",")
        ),
        Fanout::Only(endpoint) => format!("o:{endpoint}"),
    }
}

impl Store {
    /// [`Tx::record_batch`] in a transaction of its own: what group commit writes. On
    /// PostgreSQL a batch that fits one statement is written without BEGIN and COMMIT, two
    /// round trips fewer: the statement is atomic by itself, and the endpoints read before it
    /// are as current as they would be inside a read-committed transaction (the foreign keys
    /// still refuse an endpoint deleted in between).
    pub async fn record_batch(
        &self,
        batch: &[(StoredEvent, Fanout<'_>)],
        lease: Option<Lease<'_>>,
    ) -> Result<Written> {
        match &self.backend {
            crate::Backend::Postgres(pool) if batch.len() <= MAX_ROWS => {
                let keys = self.keys()?;
                let mut c = pool.acquire().await?;
                write_events(&mut Conn::Postgres(&mut c), &keys, batch, lease).await
            }
            _ => {
                let mut tx = self.begin().await?;
                let written = tx.record_batch(batch, lease).await?;
                tx.commit().await?;
                Ok(written)
            }
        }
    }

    /// Stores an event with its deliveries in a transaction of its own.
    pub async fn record_event(&self, event: &StoredEvent, fanout: Fanout<'_>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = tx.record_event(event, fanout).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Reads an event of `app`.
    pub async fn get_event(&self, app: ApplicationId, id: EventId) -> Result<Option<StoredEvent>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM events WHERE application_id = $1 AND id = $2"
            ))
            .bind(app.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| event_from_row(&r)).transpose()?)
        })
    }

    /// Lists `app`'s events, oldest first (or newest first), filtered.
    pub async fn list_events(
        &self,
        app: ApplicationId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<StoredEvent>> {
        let far_past = OffsetDateTime::UNIX_EPOCH;
        let far_future = OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 1000);
        macro_rules! select {
            ($after:literal, $order:literal) => {
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM events WHERE application_id = $1 AND ",
                    $after,
                    " AND ($3 IS NULL OR event_type = $3) AND created_at >= $4 AND created_at < $5 \
                      ORDER BY ",
                    $order,
                    " LIMIT $6"
                )
            };
        }
        let (sql, after) = if filter.newest_first {
            let before = page.after.map(|c| c.0).unwrap_or(Uuid::max());
            (select!("id < $2", "id DESC"), before)
        } else {
            let after = page.after.map(|c| c.0).unwrap_or(Uuid::nil());
            (select!("id > $2", "id"), after)
        };
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(sql)
                .bind(app.0)
                .bind(after)
                .bind(filter.event_type.map(|t| t.as_str()))
                .bind(Ts(filter.since.unwrap_or(far_past)))
                .bind(Ts(filter.until.unwrap_or(far_future)))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(pool)
                .await?;
            let list = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Page::from_overfetch(list, page.limit, |e| e.id.0))
        })
    }
}
