//! `GET /v1/refresh-tasks`: an application's refresh tasks, newest first, each as
//! `GET /v1/refresh-tasks/{id}` shows it, sub-tasks included, so a watcher needs one call.

use axum::{Json, extract::State};
use freshet_model::events::TaskStatus;
use freshet_store::TaskFilter;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Tenant,
    customers::{ListParams, customer_id},
    extract::Query,
    problem::{ApiError, Problem},
    refresh::TaskOut,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tasks))
}

/// Filters of the task list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks in this status: `Pending`, `Running`, `Completed` or `Failed`.
    status: Option<String>,
    /// Only this customer's tasks.
    customer_id: Option<String>,
    /// Rows per page, 1 to 500 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (older tasks).
    cursor: Option<String>,
}

/// A page of refresh tasks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskListOut {
    data: Vec<TaskOut>,
    next_cursor: Option<String>,
}

/// Lists refresh tasks, newest first, with their sub-tasks.
#[utoipa::path(
    get, path = "/v1/refresh-tasks", tag = "refresh",
    params(TaskQuery),
    responses(
        (status = 200, body = TaskListOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_tasks(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(q): Query<TaskQuery>,
) -> Result<Json<TaskListOut>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                ApiError::bad_field("status", "must be Pending, Running, Completed or Failed")
            })
        })
        .transpose()?;
    let filter = TaskFilter {
        status,
        customer: q.customer_id.as_deref().map(customer_id).transpose()?,
    };
    let page = ListParams::new(q.limit, q.cursor).page()?;
    let page = state
        .store
        .list_tasks(app, &filter, page)
        .await?
        .map(TaskOut::new);
    Ok(Json(TaskListOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}
