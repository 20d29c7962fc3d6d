//! `/healthz`: whether this node can serve, for load balancers and orchestrators.

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// A healthy node.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthOut {
    /// Always `ok`.
    status: &'static str,
    /// The store engine: `sqlite` or `postgres`.
    store: &'static str,
}

/// Answers 200 when the store is reachable, 503 otherwise.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, body = HealthOut),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn healthz(State(state): State<AppState>) -> Result<Json<HealthOut>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "health check: store unreachable");
        ApiError::Unavailable("the store is unreachable".into())
    })?;
    Ok(Json(HealthOut {
        status: "ok",
        store: state.store.kind().as_str(),
    }))
}
