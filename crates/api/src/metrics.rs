//! `/metrics`: the node's metrics in the Prometheus text format, and the count of the API's
//! responses that is one of them.
//!
//! Unauthenticated, as scrapers expect: it reveals volumes and provider names, not data, but
//! it belongs on an operations network, not the public internet (see docs/metrics.md).

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use freshet_engine::metrics::{Metrics, exposition::CONTENT_TYPE};
use std::sync::Arc;

use crate::state::AppState;

/// Not in the OpenAPI document: it is for scrapers, and it is not JSON.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.exporter.render().await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Counts every response by status class, errors and panics included.
pub async fn count_response(State(metrics): State<Arc<Metrics>>, response: Response) -> Response {
    metrics.http_response(response.status().as_u16());
    response
}
