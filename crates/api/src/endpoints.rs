//! `/v1/webhook-endpoints`: where and how an application receives its events.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_engine::{
    delivery::retry::policy_for,
    webhooks::{EndpointError, EndpointFields, EndpointPatch},
};
use freshet_model::{
    EventType, Patch,
    webhooks::{EndpointId, WebhookEndpoint},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    customers::ListParams,
    endpoint_health::{EndpointHealthOut, health_of},
    extract::{JsonBody, Query, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(replay))
}

/// A new webhook endpoint.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// http or https; private, link-local and metadata addresses are refused. `tatra`: no
    /// query parameters.
    url: String,
    /// `standard` (default), `bud`, `tatra`, `klavi` or `yodlee`: the wire format deliveries
    /// are rendered in (see docs/dialects.md).
    dialect: Option<String>,
    /// The event types to receive, each one the dialect sends; absent = every type it sends.
    event_types: Option<Vec<String>>,
    description: Option<String>,
    /// Sent verbatim as the `Authorization` header of every delivery. `tatra`: must match
    /// `^[ a-zA-Z0-9=+/]*$`.
    security_header: Option<String>,
    /// `immediate` or `next_hour` (the default for `tatra`).
    activation: Option<String>,
    /// Deliver one customer's events in order.
    ordered: Option<bool>,
    /// Klavi's `partnerAppId` (defaults to the application id).
    partner_app_id: Option<String>,
    /// Waits in seconds before each retry; absent = the default schedule.
    retry_schedule: Option<Vec<u32>>,
    /// `bud`, `tatra`, `yodlee`: also receive the messages of scheduled refreshes (by default
    /// only refreshes a client asked for, and for `yodlee` the first import, are reported; see
    /// docs/dialects.md). Default false; no effect on `standard` and `klavi`.
    scheduled_refreshes: Option<bool>,
    /// Deliveries per second at most (1 to 100000), whichever node sends; a burst above it
    /// waits in the outbox. Absent = no limit.
    rate_limit: Option<i64>,
    /// Deliveries awaiting this receiver's answer at once, at most (1 to 100000). Absent = no
    /// limit.
    max_in_flight: Option<i64>,
}

/// Changes to an endpoint: absent fields stay, `null` clears.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    event_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    security_header: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    activation: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    ordered: Patch<bool>,
    /// `false` stops deliveries (they wait); `true` resumes them.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    enabled: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    partner_app_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<u32>>)]
    retry_schedule: Patch<Vec<u32>>,
    /// See `scheduled_refreshes` on creation.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    scheduled_refreshes: Patch<bool>,
    /// See `rate_limit` on creation; `null` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    rate_limit: Patch<i64>,
    /// See `max_in_flight` on creation; `null` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    max_in_flight: Patch<i64>,
}

/// A webhook endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    id: Uuid,
    url: String,
    dialect: String,
    #[schema(value_type = Option<Vec<String>>)]
    event_types: Option<Vec<EventType>>,
    description: Option<String>,
    /// `active`, `scheduled` (before `active_from`) or `disabled`.
    status: &'static str,
    enabled: bool,
    disabled_reason: Option<String>,
    ordered: bool,
    /// Whether a security header is set (its value is never shown again).
    has_security_header: bool,
    partner_app_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    active_from: OffsetDateTime,
    /// How the endpoint starts, and starts again when re-enabled: `immediate` or `next_hour`.
    activation: String,
    /// Whether a vendor dialect also receives scheduled refreshes' messages.
    scheduled_refreshes: bool,
    /// The endpoint's own retry schedule, if it has one.
    retry_schedule: Option<Vec<u32>>,
    /// Deliveries per second at most, if limited.
    rate_limit: Option<u32>,
    /// Deliveries awaiting the receiver's answer at once at most, if limited.
    max_in_flight: Option<u32>,
    /// The retry schedule and timeout in force.
    delivery: DeliveryOut,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    /// The signing secret: present when the endpoint is created or its secret rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// How its deliveries have gone: present when endpoints are read (listed or fetched).
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<EndpointHealthOut>,
}

/// How deliveries to an endpoint are retried and timed: its own schedule, else its vendor's
/// where the vendor documents one (Yodlee, Klavi), else freshet's.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// `endpoint` (its own `retry_schedule`), `yodlee`, `klavi`, or `freshet`.
    source: &'static str,
    /// The waits before each retry, in seconds; after the last the delivery is dead.
    retry_schedule_seconds: Vec<f64>,
    /// The receiver's time to answer, in seconds; `null`: the node's
    /// `--delivery-timeout-seconds`.
    timeout_seconds: Option<f64>,
}

impl DeliveryOut {
    fn of(e: &WebhookEndpoint) -> Self {
        let p = policy_for(&e.dialect, e.retry_schedule.as_deref());
        Self {
            source: p.source,
            retry_schedule_seconds: p.retries.waits().iter().map(|w| w.as_secs_f64()).collect(),
            timeout_seconds: p.timeout.map(|t| t.as_secs_f64()),
        }
    }
}

impl EndpointOut {
    fn new(e: WebhookEndpoint, show_secret: bool) -> Self {
        let now = freshet_model::time::now();
        let delivery = DeliveryOut::of(&e);
        Self {
            id: e.id.0,
            status: if !e.enabled {
                "disabled"
            } else if e.active_from > now {
                "scheduled"
            } else {
                "active"
            },
            url: e.url,
            dialect: e.dialect,
            event_types: e.event_types,
            description: e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            ordered: e.ordered,
            has_security_header: e.security_header.is_some(),
            partner_app_id: e.partner_app_id,
            active_from: e.active_from,
            activation: e.activation,
            scheduled_refreshes: e.scheduled_refreshes,
            retry_schedule: e.retry_schedule,
            rate_limit: e.rate_limit,
            max_in_flight: e.max_in_flight,
            delivery,
            last_success_at: e.last_success_at,
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secret: show_secret.then_some(e.secret),
            health: None,
        }
    }

    fn with_health(mut self, health: Option<EndpointHealthOut>) -> Self {
        self.health = health;
        self
    }
}

/// A page of endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointListOut {
    data: Vec<EndpointOut>,
    next_cursor: Option<String>,
}

/// An endpoint's signing secrets.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretOut {
    secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    previous_secret: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    previous_secret_until: Option<OffsetDateTime>,
}

/// Rotation options.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the old secret keeps signing, in seconds (default 86400, at most 604800).
    overlap_seconds: Option<i64>,
}

/// A test event's payload.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// Anything; it travels inside the event (load tools stamp their send time here).
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// The test event sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOut {
    event_id: Uuid,
}

/// A replay's range.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// RFC 3339; events at or after this instant.
    since: String,
    /// RFC 3339; events before this instant (default: now).
    until: Option<String>,
}

/// What a replay queued.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplayOut {
    /// Deliveries sent again, keeping their `webhook-id`.
    requeued: u64,
    /// Deliveries created for events the endpoint never had.
    created: u64,
}

fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    parse_id("endpoint_id", raw).map(EndpointId)
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Invalid(errors) => ApiError::Validation(errors),
            EndpointError::Store(e) => e.into(),
        }
    }
}

fn instant(field: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::bad_field(
            field,
            "must be an RFC 3339 date-time, e.g. 2026-11-24T12:00:00Z",
        )
    })
}

/// Creates an endpoint; the answer carries its signing secret.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "webhooks",
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn create_endpoint(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<EndpointIn>,
) -> Result<(StatusCode, Json<EndpointOut>), ApiError> {
    let fields = EndpointFields {
        url: b.url,
        dialect: b.dialect,
        event_types: b.event_types,
        description: b.description,
        security_header: b.security_header,
        activation: b.activation,
        ordered: b.ordered,
        partner_app_id: b.partner_app_id,
        retry_schedule: b.retry_schedule,
        scheduled_refreshes: b.scheduled_refreshes,
        rate_limit: b.rate_limit,
        max_in_flight: b.max_in_flight,
    };
    let e = state.endpoints.create(app, fields).await?;
    Ok((StatusCode::CREATED, Json(EndpointOut::new(e, true))))
}

/// Lists endpoints, oldest first, each with its health.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints", tag = "webhooks",
    params(ListParams),
    responses((status = 200, body = EndpointListOut)),
    security(("api_key" = []))
)]
async fn list_endpoints(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<EndpointListOut>, ApiError> {
    let page = state.store.list_endpoints(app, p.page()?).await?;
    let mut health = health_of(&state, app, &page.data).await?;
    let page = page.map(|e| {
        let h = health.remove(&e.id);
        EndpointOut::new(e, false).with_health(h)
    });
    Ok(Json(EndpointListOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}

/// Reads an endpoint, with its health.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    responses((status = 200, body = EndpointOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn get_endpoint(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    let e = state
        .store
        .get_endpoint(app, endpoint_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let health = health_of(&state, app, std::slice::from_ref(&e))
        .await?
        .remove(&e.id);
    Ok(Json(EndpointOut::new(e, false).with_health(health)))
}

/// Changes an endpoint.
#[utoipa::path(
    patch, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    request_body = EndpointPatchIn,
    responses(
        (status = 200, body = EndpointOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn update_endpoint(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<EndpointPatchIn>,
) -> Result<Json<EndpointOut>, ApiError> {
    let patch = EndpointPatch {
        url: b.url,
        event_types: b.event_types,
        description: b.description,
        security_header: b.security_header,
        activation: b.activation,
        ordered: b.ordered,
        enabled: b.enabled,
        partner_app_id: b.partner_app_id,
        retry_schedule: b.retry_schedule,
        scheduled_refreshes: b.scheduled_refreshes,
        rate_limit: b.rate_limit,
        max_in_flight: b.max_in_flight,
    };
    let e = state
        .endpoints
        .update(app, endpoint_id(&id)?, patch)
        .await?;
    let e = e.ok_or(ApiError::NotFound("webhook endpoint"))?;
    state.engine.wake_dispatcher_for(e.id).await;
    Ok(Json(EndpointOut::new(e, false)))
}

/// Deletes an endpoint and its deliveries.
#[utoipa::path(
    delete, path = "/v1/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn delete_endpoint(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_endpoint(app, endpoint_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook endpoint"))
    }
}

/// Reads an endpoint's signing secrets.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{endpoint_id}/secret", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    responses((status = 200, body = SecretOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn get_secret(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SecretOut>, ApiError> {
    let e = state
        .store
        .get_endpoint(app, endpoint_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(Json(SecretOut {
        secret: e.secret,
        previous_secret: e.previous_secret,
        previous_secret_until: e.previous_secret_until,
    }))
}

/// Replaces the signing secret; both are used to sign during the overlap.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    request_body(content = RotateIn, description = "Optional"),
    responses((status = 200, body = EndpointOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn rotate_secret(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<JsonBody<RotateIn>>,
) -> Result<Json<EndpointOut>, ApiError> {
    let overlap = body
        .and_then(|JsonBody(b)| b.overlap_seconds)
        .map(time::Duration::seconds);
    let e = state
        .endpoints
        .rotate_secret(app, endpoint_id(&id)?, overlap)
        .await?;
    e.map(|e| Json(EndpointOut::new(e, true)))
        .ok_or(ApiError::NotFound("webhook endpoint"))
}

/// Sends an `endpoint.test` event to this endpoint.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{endpoint_id}/test", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    request_body(content = TestIn, description = "Optional"),
    responses((status = 202, body = TestOut), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
async fn send_test(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<JsonBody<TestIn>>,
) -> Result<(StatusCode, Json<TestOut>), ApiError> {
    let id = endpoint_id(&id)?;
    let data = body.and_then(|JsonBody(b)| b.data);
    let event = state
        .engine
        .send_test(app, id, data)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestOut {
            event_id: event.id.0,
        }),
    ))
}

/// Sends this endpoint's events of a time range again.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{endpoint_id}/replay", tag = "webhooks",
    params(("endpoint_id" = Uuid, Path)),
    request_body = ReplayIn,
    responses(
        (status = 202, body = ReplayOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn replay(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReplayIn>,
) -> Result<(StatusCode, Json<ReplayOut>), ApiError> {
    let since = instant("since", &b.since)?;
    let until = match b.until.as_deref() {
        Some(u) => instant("until", u)?,
        None => freshet_model::time::now() + time::Duration::seconds(1),
    };
    if until <= since {
        return Err(ApiError::bad_field("until", "must be after `since`"));
    }
    let endpoint = state
        .store
        .get_endpoint(app, endpoint_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let (requeued, created) = state.engine.replay(&endpoint, since, until).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayOut { requeued, created })))
}
