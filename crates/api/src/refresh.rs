//! Refresh tasks: starting a refresh of a customer's banks or of one consent, and reading
//! how it went.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_engine::refresh::RefreshRequest;
use freshet_model::{
    ResultCode,
    events::{RefreshStage, RefreshTrigger, TaskStatus},
    refresh::{SubTask, Task},
};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    extract::{JsonBody, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh_customer))
        .routes(routes!(refresh_consent))
        .routes(routes!(get_task))
}

/// What to refresh.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    /// Provider ids; every authorised consent of the customer when left out.
    providers: Option<Vec<String>>,
    /// First booking date to re-fetch; freshet's own window (last booked date minus a margin)
    /// when left out.
    #[serde(default, with = "crate::extract::ymd::option")]
    #[schema(value_type = Option<String>, format = Date)]
    from: Option<Date>,
    #[serde(default, with = "crate::extract::ymd::option")]
    #[schema(value_type = Option<String>, format = Date)]
    to: Option<Date>,
    /// The customer's IP address when they are present: forwarded to the bank, and the calls
    /// do not count against its unattended budget.
    customer_ip: Option<String>,
}

/// One bank's part of a task.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubTaskOut {
    task_id: Uuid,
    provider: String,
    consent_id: Uuid,
    status: TaskStatus,
    result: Option<ResultCode>,
    reconnect_required: bool,
    has_new_transactions: bool,
    account_ids: Vec<Uuid>,
    consent_ids: Vec<Uuid>,
    stage: Option<RefreshStage>,
    attempts: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<OffsetDateTime>,
}

impl From<SubTask> for SubTaskOut {
    fn from(s: SubTask) -> Self {
        Self {
            task_id: s.id.0,
            provider: s.provider_id,
            consent_id: s.consent_id.0,
            status: s.status,
            result: s.result,
            reconnect_required: s.reconnect_required,
            has_new_transactions: s.has_new_transactions,
            account_ids: s.account_ids.iter().map(|a| a.0).collect(),
            consent_ids: vec![s.consent_id.0],
            stage: s.stage,
            attempts: s.attempts,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

/// A refresh task.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskOut {
    task_id: Uuid,
    customer_id: Uuid,
    status: TaskStatus,
    /// `success`, or the first failing sub-task's result, once the task has ended.
    result: Option<ResultCode>,
    has_new_transactions: bool,
    trigger: RefreshTrigger,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    sub_tasks: Vec<SubTaskOut>,
}

impl TaskOut {
    pub(crate) fn new((t, subs): (Task, Vec<SubTask>)) -> Self {
        Self {
            task_id: t.id.0,
            customer_id: t.customer_id.0,
            status: t.status,
            result: t.result,
            has_new_transactions: t.has_new_transactions,
            trigger: t.trigger,
            created_at: t.created_at,
            updated_at: t.updated_at,
            sub_tasks: subs.into_iter().map(SubTaskOut::from).collect(),
        }
    }
}

/// Refreshes a customer's banks: one task, a sub-task per consent. Answers at once; a refresh
/// already running for the same consents is returned instead of starting another.
#[utoipa::path(
    post, path = "/v1/customers/{customer_id}/refresh", tag = "refresh",
    params(("customer_id" = Uuid, Path)),
    request_body(content = Option<RefreshIn>),
    responses(
        (status = 202, body = TaskOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn refresh_customer(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(customer): Path<String>,
    body: Option<JsonBody<RefreshIn>>,
) -> Result<(StatusCode, Json<TaskOut>), ApiError> {
    let customer = crate::customers::customer_id(&customer)?;
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let view = state
        .refresher
        .refresh_customer(
            app,
            customer,
            RefreshRequest {
                providers: body.providers,
                from: body.from,
                to: body.to,
                customer_ip: body.customer_ip,
                ..Default::default()
            },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(TaskOut::new(view))))
}

/// Whether the customer is there.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRefreshIn {
    customer_ip: Option<String>,
}

/// The sub-task started for one consent (what Tatra banka's `PUT /refresh` returns).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentRefreshOut {
    /// The sub-task's id: `accounts.updated` events carry it as their `task_id`.
    task_id: Uuid,
    /// The whole task's id.
    refresh_task_id: Uuid,
    status: TaskStatus,
}

/// Refreshes one consent.
#[utoipa::path(
    put, path = "/v1/consents/{consent_id}/refresh", tag = "refresh",
    params(("consent_id" = Uuid, Path)),
    request_body(content = Option<ConsentRefreshIn>),
    responses(
        (status = 202, body = ConsentRefreshOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn refresh_consent(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<JsonBody<ConsentRefreshIn>>,
) -> Result<(StatusCode, Json<ConsentRefreshOut>), ApiError> {
    let id = crate::links::consent_id(&id)?;
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let ((task, subs), sub) = state
        .refresher
        .refresh_consent(app, id, body.customer_ip)
        .await?;
    let status = subs
        .iter()
        .find(|s| s.id == sub)
        .map_or(task.status, |s| s.status);
    Ok((
        StatusCode::ACCEPTED,
        Json(ConsentRefreshOut {
            task_id: sub.0,
            refresh_task_id: task.id.0,
            status,
        }),
    ))
}

/// Reads a refresh task, by its id or one of its sub-tasks' ids.
#[utoipa::path(
    get, path = "/v1/refresh-tasks/{task_id}", tag = "refresh",
    params(("task_id" = Uuid, Path)),
    responses(
        (status = 200, body = TaskOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_task(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskOut>, ApiError> {
    let id = parse_id("task_id", &id)?;
    let view = state
        .store
        .get_task(app, id)
        .await?
        .ok_or(ApiError::NotFound("refresh task"))?;
    Ok(Json(TaskOut::new(view)))
}
