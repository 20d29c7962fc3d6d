//! `/v1/events` and `/v1/deliveries`: the event log and what became of each delivery.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_model::{
    EventType,
    webhooks::{Attempt, Delivery, DeliveryId, DeliveryStatus, EventId},
};
use freshet_store::{EventFilter, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    customers::ListParams,
    extract::{Query, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(get_event))
        .routes(routes!(list_event_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(list_attempts))
        .routes(routes!(retry_delivery))
}

/// An event from the log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventOut {
    id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    event_type: EventType,
    customer_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// The canonical payload (what the `standard` dialect sends as `data`).
    #[schema(value_type = Object)]
    data: Value,
}

impl From<StoredEvent> for EventOut {
    fn from(e: StoredEvent) -> Self {
        Self {
            id: e.id.0,
            event_type: e.event_type,
            customer_id: e.customer_id.map(|c| c.0),
            created_at: e.created_at,
            data: e.data,
        }
    }
}

/// A page of events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventListOut {
    data: Vec<EventOut>,
    next_cursor: Option<String>,
}

/// One event's delivery to one endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    id: Uuid,
    event_id: Uuid,
    endpoint_id: Uuid,
    status: DeliveryStatus,
    attempts: u32,
    /// When the next attempt is due (pending and failed deliveries).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    next_attempt_at: OffsetDateTime,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.0,
            event_id: d.event_id.0,
            endpoint_id: d.endpoint_id.0,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    attempted_at: OffsetDateTime,
    /// The receiver's status; absent when no response arrived.
    status_code: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
    /// The first KiB of the response body.
    response_excerpt: Option<String>,
    /// The node that made the attempt.
    node: String,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.0,
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            response_excerpt: a.response_excerpt,
            node: a.node,
        }
    }
}

/// `{data: [...]}` without paging, for short lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryListOut {
    data: Vec<DeliveryOut>,
}

/// `{data: [...]}` of attempts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptListOut {
    data: Vec<AttemptOut>,
}

/// Filters of the event log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this type, e.g. `refresh.completed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events at or after this RFC 3339 instant (`after` is accepted as a synonym).
    since: Option<String>,
    after: Option<String>,
    /// Only events before this RFC 3339 instant.
    until: Option<String>,
    /// `asc` (the default): oldest first; `desc`: newest first, and `next_cursor` leads to
    /// older events.
    order: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn instant(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::bad_field(
                field,
                "must be an RFC 3339 date-time, e.g. 2026-11-24T12:00:00Z",
            )
        })
    })
    .transpose()
}

/// Lists the event log, oldest first (or newest first with `order=desc`).
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventQuery),
    responses((status = 200, body = EventListOut), (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn list_events(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventListOut>, ApiError> {
    let event_type = q
        .event_type
        .as_deref()
        .map(|t| {
            EventType::parse(t)
                .ok_or_else(|| ApiError::bad_field("type", format!("`{t}` is not an event type")))
        })
        .transpose()?;
    let since = match (q.since.as_deref(), q.after.as_deref()) {
        (Some(s), _) => instant("since", Some(s))?,
        (None, a) => instant("after", a)?,
    };
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_field("order", "must be `asc` or `desc`")),
    };
    let filter = EventFilter {
        event_type,
        since,
        until: instant("until", q.until.as_deref())?,
        newest_first,
    };
    let page = ListParams::new(q.limit, q.cursor).page()?;
    let page = state
        .store
        .list_events(app, &filter, page)
        .await?
        .map(EventOut::from);
    Ok(Json(EventListOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}

/// Reads one event.
#[utoipa::path(
    get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = Uuid, Path)),
    responses((status = 200, body = EventOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn get_event(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EventOut>, ApiError> {
    let id = EventId(parse_id("event_id", &id)?);
    let event = state
        .store
        .get_event(app, id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    Ok(Json(event.into()))
}

/// An event's deliveries, one per endpoint it went to.
#[utoipa::path(
    get, path = "/v1/events/{event_id}/deliveries", tag = "events",
    params(("event_id" = Uuid, Path)),
    responses((status = 200, body = DeliveryListOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn list_event_deliveries(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryListOut>, ApiError> {
    let id = EventId(parse_id("event_id", &id)?);
    state
        .store
        .get_event(app, id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let list = state.store.list_event_deliveries(app, id).await?;
    Ok(Json(DeliveryListOut {
        data: list.into_iter().map(Into::into).collect(),
    }))
}

fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    parse_id("delivery_id", raw).map(DeliveryId)
}

/// Reads one delivery.
#[utoipa::path(
    get, path = "/v1/deliveries/{delivery_id}", tag = "events",
    params(("delivery_id" = Uuid, Path)),
    responses((status = 200, body = DeliveryOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn get_delivery(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    let d = state.store.get_delivery(app, delivery_id(&id)?).await?;
    d.map(|d| Json(d.into()))
        .ok_or(ApiError::NotFound("delivery"))
}

/// A delivery's attempts, oldest first, with status, latency and a response excerpt.
#[utoipa::path(
    get, path = "/v1/deliveries/{delivery_id}/attempts", tag = "events",
    params(("delivery_id" = Uuid, Path)),
    responses((status = 200, body = AttemptListOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn list_attempts(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AttemptListOut>, ApiError> {
    let id = delivery_id(&id)?;
    state
        .store
        .get_delivery(app, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let list = state.store.list_attempts(app, id).await?;
    Ok(Json(AttemptListOut {
        data: list.into_iter().map(Into::into).collect(),
    }))
}

/// Sends a delivery again now, keeping its `webhook-id`.
#[utoipa::path(
    post, path = "/v1/deliveries/{delivery_id}/retry", tag = "events",
    params(("delivery_id" = Uuid, Path)),
    responses(
        (status = 202, body = DeliveryOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn retry_delivery(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryOut>), ApiError> {
    let id = delivery_id(&id)?;
    match state.store.retry_delivery(app, id).await? {
        Some(d) => {
            state.engine.wake_dispatcher_for(d.endpoint_id).await;
            Ok((StatusCode::ACCEPTED, Json(d.into())))
        }
        None => match state.store.get_delivery(app, id).await? {
            Some(d) if d.status == DeliveryStatus::Cancelled => Err(ApiError::Conflict {
                field: "delivery_id",
                detail:
                    "this delivery was cancelled when its customer was erased; it is never sent"
                        .into(),
            }),
            Some(_) => Err(ApiError::Conflict {
                field: "delivery_id",
                detail: "this delivery is being sent right now; retry once the attempt is recorded"
                    .into(),
            }),
            None => Err(ApiError::NotFound("delivery")),
        },
    }
}
