//! `/v1/applications`: creating tenants, guarded by the admin token.

use axum::{Json, extract::State, http::StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{Admin, generate_key},
    extract::JsonBody,
    problem::{ApiError, Problem},
    state::AppState,
};

const MAX_NAME_LEN: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_application))
}

/// A new application.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationIn {
    /// A name for people to recognise the application by.
    name: String,
}

/// A created application, with its API key: shown this once, never again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApplicationCreatedOut {
    id: Uuid,
    name: String,
    /// The application's API key. freshet keeps only a hash: store it now.
    api_key: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

/// Creates an application and its first API key.
#[utoipa::path(
    post,
    path = "/v1/applications",
    tag = "applications",
    request_body = ApplicationIn,
    responses(
        (status = 201, body = ApplicationCreatedOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = []))
)]
async fn create_application(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ApplicationIn>,
) -> Result<(StatusCode, Json<ApplicationCreatedOut>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(ApiError::Validation(vec![freshet_model::FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} printable characters"),
        )]));
    }
    let key = generate_key();
    let app = state.store.create_application(name, &key.record).await?;
    tracing::info!(application_id = %app.id, "application created");
    Ok((
        StatusCode::CREATED,
        Json(ApplicationCreatedOut {
            id: app.id.0,
            name: app.name,
            api_key: key.key.expose_secret().to_string(),
            created_at: app.created_at,
        }),
    ))
}
