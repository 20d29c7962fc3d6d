//! freshet's HTTP API.
//!
//! One module per resource, each with a `router()`; handlers extract, call the store or the
//! engine, and map the result — no business rules live here. Every route is declared through
//! utoipa, so `/openapi.json` is generated from the same code that serves the routes and
//! cannot drift from them. Every error, including those axum and tower produce on their own
//! (unknown route, wrong method, oversized body, panic), leaves as RFC 9457 problem details.

mod accounts;
mod applications;
pub mod auth;
mod callback;
mod consent_list;
mod customers;
mod dashboard;
mod endpoint_health;
mod endpoints;
mod events;
pub mod extract;
mod health;
mod links;
mod metrics;
mod notifications;
mod openapi;
pub mod problem;
mod products;
mod refresh;
mod retention;
mod signing_keys;
mod state;
mod task_list;
pub mod throttle;
pub mod trace;

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

pub use state::AppState;

use crate::{
    extract::BodyLimit,
    problem::{ApiError, PROBLEM_JSON, Problem, problem_response, problem_type},
};

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "freshet",
        description = "Open-banking refresh orchestration and webhook delivery engine."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("api_key", "An application's API key, `fsk_…`."),
            ("admin_token", "The operator's FRESHET_ADMIN_TOKEN."),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// All documented routes, with their OpenAPI description.
fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(applications::router())
        .merge(retention::router())
        .merge(customers::router())
        .merge(events::router())
        .merge(endpoints::router())
        .merge(links::router())
        .merge(callback::router())
        .merge(notifications::router())
        .merge(refresh::router())
        .merge(task_list::router())
        .merge(consent_list::router())
        .merge(products::router())
        .merge(accounts::router())
        .merge(signing_keys::router())
        .split_for_parts();
    openapi::add_common_errors(&mut doc);
    (routes, doc)
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().1
}

/// The API, ready to serve.
pub fn router(state: AppState, opts: &ApiOptions) -> Router {
    let (routes, doc) = documented();
    let doc = Arc::new(doc);
    let metrics = state.engine.metrics().clone();
    routes
        .merge(metrics::router())
        .merge(dashboard::router())
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(axum::middleware::map_response(ensure_problem))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(axum::middleware::map_response_with_state(
            metrics,
            metrics::count_response,
        ))
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(Extension(BodyLimit(opts.max_body_bytes)))
        .layer(TraceLayer::new_for_http().make_span_with(trace::RedactedSpan))
}

/// Turns any error response that is not already problem details into problem details, so
/// clients parse one error shape whatever produced the error.
async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let reason = status.canonical_reason().unwrap_or("Error");
    let slug = reason.to_ascii_lowercase().replace(' ', "-");
    let problem = Problem {
        type_uri: problem_type(&slug),
        title: reason.into(),
        status: status.as_u16(),
        detail: reason.into(),
        errors: vec![],
    };
    let fresh = problem_response(&problem);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, Body::new(body))
}
