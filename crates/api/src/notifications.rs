//! Where banks notify freshet: a bank registered with `push` (docs/providers.md) is given
//! `{public_url}/v1/banks/{provider_id}/notifications` when a consent is created (Berlin
//! Group's `TPP-Notification-URI`), and posts there when new transactions reach the consent's
//! accounts. freshet answers 202 at once and refreshes that consent right away, without
//! spending its unattended budget; the dialects then tell clients (Tatra banka's
//! transactionEvent).
//!
//! No API key: the bank is not a tenant. What authenticates a notification is that it names,
//! in the bank's words, a consent that provider holds and the customer authorised, at a
//! provider registered for push; anything else is 404 or 422 and starts nothing. The most a
//! forged notification can do is start a refresh of a consent whose bank id it knows, and one
//! already under way is joined rather than repeated.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    extract::JsonBody,
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bank_notification))
}

/// What a bank says: which consent (its own id for it) has news, and on which accounts.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationIn {
    /// The bank's consent id (Berlin Group's `consentId`).
    consent_id: String,
    /// The bank's ids of the accounts with new transactions; informative, the whole consent
    /// is refreshed.
    #[serde(default)]
    #[allow(dead_code)]
    account_ids: Vec<String>,
}

/// The refresh the notification started (or joined).
#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationOut {
    /// The consent's sub-task.
    task_id: Uuid,
    refresh_task_id: Uuid,
}

/// A bank's notification of new transactions on a consent's accounts.
#[utoipa::path(
    post, path = "/v1/banks/{provider_id}/notifications", tag = "refresh",
    params(("provider_id" = String, Path)),
    request_body(content = NotificationIn),
    responses(
        (status = 202, body = NotificationOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn bank_notification(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    JsonBody(body): JsonBody<NotificationIn>,
) -> Result<(StatusCode, Json<NotificationOut>), ApiError> {
    if body.consent_id.is_empty() {
        return Err(ApiError::bad_field("consentId", "must not be empty"));
    }
    let ((task, _), sub) = state
        .refresher
        .bank_notification(&provider_id, &body.consent_id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(NotificationOut {
            task_id: sub.0,
            refresh_task_id: task.id.0,
        }),
    ))
}
