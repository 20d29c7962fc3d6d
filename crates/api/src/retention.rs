//! `PATCH /v1/applications/{id}`: an application's own retention period, set by the admin.
//!
//! Retention is the operator's decision (it is about the operator's disk and the operator's
//! obligations), so it sits behind the admin token rather than the application's API key: an
//! application cannot keep its data longer than the operator agreed to. `retention_days`
//! overrides the node's `--retention-days` for that application; `null` returns it to it.

use axum::{
    Json,
    extract::{Path, State},
};
use freshet_model::{FieldError, Patch};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Admin,
    extract::{JsonBody, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

/// The longest retention period an application may ask for: a hundred years.
const MAX_DAYS: i64 = 36_500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(update_application))
}

/// Changes to an application's settings.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationPatchIn {
    /// Days the application's events (with their deliveries and attempts) and the accounts
    /// and transactions of its ended consents are kept, 1 to 36500; `null`: the node's
    /// `--retention-days`. Absent: unchanged.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 36500)]
    retention_days: Patch<i64>,
}

/// An application and its settings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApplicationOut {
    id: Uuid,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// The application's own retention period in days; `null` when it follows the node's.
    retention_days: Option<u32>,
}

/// Changes an application's settings (its retention period).
#[utoipa::path(
    patch,
    path = "/v1/applications/{application_id}",
    tag = "applications",
    params(("application_id" = Uuid, Path)),
    request_body = ApplicationPatchIn,
    responses(
        (status = 200, body = ApplicationOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = []))
)]
async fn update_application(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ApplicationPatchIn>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let id = parse_id("application_id", &id)?.into();
    let days = match body.retention_days {
        Patch::Value(d) if (1..=MAX_DAYS).contains(&d) => Patch::Value(d as u32),
        Patch::Value(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "retention_days",
                format!("must be 1 to {MAX_DAYS} days, or null for the node's period"),
            )]));
        }
        Patch::Null => Patch::Null,
        Patch::Absent => Patch::Absent,
    };
    let found = match days {
        Patch::Absent => state.store.application_retention(id).await?,
        Patch::Null => state.store.set_retention_days(id, None).await?,
        Patch::Value(d) => state.store.set_retention_days(id, Some(d)).await?,
    };
    let (app, retention_days) = found.ok_or(ApiError::NotFound("application"))?;
    tracing::info!(application_id = %app.id, ?retention_days, "application retention set");
    Ok(Json(ApplicationOut {
        id: app.id.0,
        name: app.name,
        created_at: app.created_at,
        retention_days,
    }))
}
