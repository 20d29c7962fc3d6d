//! `GET /v1/consents`: an application's consents across its customers, for watching expiries
//! and the ones that need their customer again.

use axum::{Json, extract::State};
use freshet_model::ConsentStatus;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Tenant,
    customers::ListParams,
    extract::Query,
    links::ConsentOut,
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_all_consents))
}

/// Filters of the consent list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// Only consents in this status, e.g. `authorised` or `expired`.
    status: Option<String>,
    /// Rows per page, 1 to 500 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of consents.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentPageOut {
    data: Vec<ConsentOut>,
    next_cursor: Option<String>,
}

/// Lists the application's consents, every customer's, oldest first.
#[utoipa::path(
    get, path = "/v1/consents", tag = "links",
    params(ConsentQuery),
    responses(
        (status = 200, body = ConsentPageOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_all_consents(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(q): Query<ConsentQuery>,
) -> Result<Json<ConsentPageOut>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ConsentStatus::parse(s).ok_or_else(|| {
                let all: Vec<_> = ConsentStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_field("status", format!("must be one of {}", all.join(", ")))
            })
        })
        .transpose()?;
    let page = ListParams::new(q.limit, q.cursor).page()?;
    let page = state
        .store
        .list_consents(app, status, page)
        .await?
        .map(ConsentOut::from);
    Ok(Json(ConsentPageOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}
