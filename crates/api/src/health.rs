//! `/healthz`: whether this node can serve, for load balancers and orchestrators.
//!
//! Serving needs a store that answers and one that can write: a node whose disk filled once
//! answered `ok` here while every write failed. So the check is a ping and a write probe (at
//! most one per [`freshet_store::PROBE_EVERY`], and on every check while writes fail), and a
//! store that cannot write makes the node unhealthy: 503 with `"store": "cannot write"`.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    problem::{ApiError, PROBLEM_JSON, Problem},
    state::AppState,
};

/// Seconds a balancer is asked to wait before checking a node that cannot write again.
const RETRY_AFTER: &str = "5";

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

/// Answers 200 when the store is reachable and can write, 503 otherwise (with `"store":
/// "unreachable"` or `"cannot write"` beside the problem details).
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, body = HealthOut),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn healthz(State(state): State<AppState>) -> Result<Json<HealthOut>, Response> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "health check: store unreachable");
        return Err(unhealthy("unreachable", "the store is unreachable"));
    }
    if let Err(e) = state.store.check_writes().await {
        tracing::warn!(error = %e, "health check: the store cannot write");
        return Err(unhealthy(
            "cannot write",
            "the store answers but cannot write (a full disk?)",
        ));
    }
    Ok(Json(HealthOut {
        status: "ok",
        store: state.store.kind().as_str(),
    }))
}

/// Problem details of an unavailable node, with the store's state as an extension member.
fn unhealthy(store: &'static str, detail: &str) -> Response {
    #[derive(Serialize)]
    struct Unhealthy {
        #[serde(flatten)]
        problem: Problem,
        store: &'static str,
    }
    let problem = ApiError::Unavailable(detail.to_string()).to_problem();
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Unhealthy { problem, store }),
    )
        .into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    res
}
