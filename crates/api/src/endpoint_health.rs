//! The `health` of webhook endpoints, as `GET /v1/webhook-endpoints` and
//! `GET /v1/webhook-endpoints/{id}` show it: what an operator looks at first.

use std::collections::HashMap;

use freshet_model::{
    ApplicationId,
    webhooks::{EndpointId, WebhookEndpoint},
};
use freshet_store::EndpointHealth;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::{problem::ApiError, state::AppState};

/// How far back the attempt counts reach.
const WINDOW: Duration = Duration::hours(24);

/// How an endpoint's deliveries have gone: its attempts of the last 24 hours, and its latest
/// success and failure whenever they were.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointHealthOut {
    /// The hours the counts cover, back from now.
    window_hours: i64,
    /// Attempts made in the window.
    attempts: u64,
    /// Attempts in the window answered 2xx.
    succeeded: u64,
    /// Attempts in the window that got another status or no answer.
    failed: u64,
    /// `succeeded / attempts`, from 0 to 1; null when no attempt was made in the window.
    success_rate: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_success_at: Option<OffsetDateTime>,
    /// The latest failed attempt, however long ago.
    last_failure: Option<FailureOut>,
    /// When the current run of failures began; null once an attempt succeeds.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    failing_since: Option<OffsetDateTime>,
    /// Deliveries are stopped: by the API, or after five days without a success (see the
    /// endpoint's `disabled_reason`).
    disabled: bool,
    /// Deliveries due now and not yet sent. For an endpoint with `rate_limit` or
    /// `max_in_flight`, what its limits hold back in the outbox (they wait, never fail).
    waiting: u64,
}

/// A failed attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailureOut {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    /// The receiver's status; null when no response arrived.
    status_code: Option<u16>,
    /// Why no response arrived, or what freshet made of the one that did.
    error: Option<String>,
}

impl EndpointHealthOut {
    fn new(e: &WebhookEndpoint, h: EndpointHealth) -> Self {
        Self {
            window_hours: WINDOW.whole_hours(),
            attempts: h.attempts,
            succeeded: h.succeeded,
            failed: h.attempts.saturating_sub(h.succeeded),
            success_rate: (h.attempts > 0).then(|| h.succeeded as f64 / h.attempts as f64),
            last_success_at: e.last_success_at,
            last_failure: h.last_failure.map(|f| FailureOut {
                at: f.at,
                status_code: f.status_code,
                error: f.error,
            }),
            failing_since: e.failing_since,
            disabled: !e.enabled,
            waiting: h.waiting,
        }
    }
}

/// The health of each endpoint of a page, read in one statement.
pub(crate) async fn health_of(
    state: &AppState,
    app: ApplicationId,
    endpoints: &[WebhookEndpoint],
) -> Result<HashMap<EndpointId, EndpointHealthOut>, ApiError> {
    let ids: Vec<EndpointId> = endpoints.iter().map(|e| e.id).collect();
    let since = freshet_model::time::now() - WINDOW;
    let mut found = state.store.endpoint_health(app, &ids, since).await?;
    Ok(endpoints
        .iter()
        .map(|e| {
            let h = found.remove(&e.id).unwrap_or(EndpointHealth {
                attempts: 0,
                succeeded: 0,
                last_failure: None,
                waiting: 0,
            });
            (e.id, EndpointHealthOut::new(e, h))
        })
        .collect())
}
