//! Providers, links and consents: connecting a customer to a bank, the bank's callback, and
//! ending the connection.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_engine::refresh::NewLink;
use freshet_model::{
    ConsentStatus,
    events::Permission,
    refresh::{Consent, ConsentId, Link},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    extract::{JsonBody, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers))
        .routes(routes!(create_link))
        .routes(routes!(list_consents))
        .routes(routes!(get_consent, revoke_consent))
}

/// A bank freshet can connect to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderOut {
    id: String,
    name: String,
    code: String,
    /// `obie`, `berlin_group` or `open_finance_brasil`.
    standard: String,
    country: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderListOut {
    data: Vec<ProviderOut>,
}

/// Lists the banks this freshet can connect to.
#[utoipa::path(
    get, path = "/v1/providers", tag = "links",
    responses((status = 200, body = ProviderListOut)),
    security(("api_key" = []))
)]
async fn list_providers(Tenant(_): Tenant, State(state): State<AppState>) -> Json<ProviderListOut> {
    let data = state
        .refresher
        .providers()
        .map(|p| ProviderOut {
            id: p.id.clone(),
            name: p.name.clone(),
            code: p.code.clone(),
            standard: p.standard.as_str().into(),
            country: p.country.clone(),
        })
        .collect();
    Json(ProviderListOut { data })
}

/// A new link: the customer and a bank.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkIn {
    /// From `GET /v1/providers`.
    provider_id: String,
    /// What to ask the bank for; default `registration_all` and `accounts_all`.
    permissions: Option<Vec<Permission>>,
    /// When the consent ends; the bank's default when left out.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    /// Your reference for this consent, echoed in its events (Klavi `externalTrackId`).
    external_track_id: Option<String>,
    /// Where to send the customer after the bank; freshet's own page when left out.
    redirect_url: Option<String>,
    /// The customer's IP address, when they are present.
    customer_ip: Option<String>,
}

/// A consent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentOut {
    id: Uuid,
    link_id: Uuid,
    customer_id: Uuid,
    provider_id: String,
    /// The bank's own id for the consent.
    bank_consent_id: String,
    status: ConsentStatus,
    /// Where to send the customer, while the consent awaits authorisation.
    authorisation_url: Option<String>,
    permissions_requested: Vec<Permission>,
    permissions_granted: Vec<Permission>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    external_track_id: Option<String>,
    /// The bank needs the customer again before this consent works.
    reconnect_required: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_refreshed_at: Option<OffsetDateTime>,
    /// When the scheduler next refreshes it (authorised consents).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    next_refresh_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<Consent> for ConsentOut {
    fn from(c: Consent) -> Self {
        Self {
            id: c.id.0,
            link_id: c.link_id.0,
            customer_id: c.customer_id.0,
            provider_id: c.provider_id,
            bank_consent_id: c.bank_consent_id,
            status: c.status,
            authorisation_url: c.authorisation_url,
            permissions_requested: c.permissions_requested,
            permissions_granted: c.permissions_granted,
            expires_at: c.expires_at,
            external_track_id: c.external_track_id,
            reconnect_required: c.reconnect_required,
            last_refreshed_at: c.last_refreshed_at,
            next_refresh_at: c.next_refresh_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A link with its consent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkOut {
    id: Uuid,
    customer_id: Uuid,
    provider_id: String,
    external_track_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    consent: ConsentOut,
}

impl LinkOut {
    fn new(l: Link, c: Consent) -> Self {
        Self {
            id: l.id.0,
            customer_id: l.customer_id.0,
            provider_id: l.provider_id,
            external_track_id: l.external_track_id,
            created_at: l.created_at,
            consent: c.into(),
        }
    }
}

pub(crate) fn consent_id(raw: &str) -> Result<ConsentId, ApiError> {
    parse_id("consent_id", raw).map(ConsentId)
}

/// Connects a customer to a bank: creates the consent there and answers with the URL to send
/// the customer to.
#[utoipa::path(
    post, path = "/v1/customers/{customer_id}/links", tag = "links",
    params(("customer_id" = Uuid, Path)),
    request_body = LinkIn,
    responses(
        (status = 201, body = LinkOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create_link(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(customer): Path<String>,
    JsonBody(body): JsonBody<LinkIn>,
) -> Result<(StatusCode, Json<LinkOut>), ApiError> {
    let customer = crate::customers::customer_id(&customer)?;
    if let Some(url) = &body.redirect_url
        && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        return Err(ApiError::Validation(vec![freshet_model::FieldError::new(
            "redirect_url",
            "must be an http or https URL",
        )]));
    }
    let (link, consent) = state
        .refresher
        .create_link(
            app,
            customer,
            NewLink {
                provider_id: body.provider_id,
                permissions: body.permissions,
                expires_at: body.expires_at,
                external_track_id: body.external_track_id,
                redirect_url: body.redirect_url,
                customer_ip: body.customer_ip,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(LinkOut::new(link, consent))))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentListOut {
    data: Vec<ConsentOut>,
}

/// Lists a customer's consents, oldest first.
#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/consents", tag = "links",
    params(("customer_id" = Uuid, Path)),
    responses(
        (status = 200, body = ConsentListOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_consents(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(customer): Path<String>,
) -> Result<Json<ConsentListOut>, ApiError> {
    let customer = crate::customers::customer_id(&customer)?;
    state
        .store
        .get_customer(app, customer)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let data = state
        .store
        .customer_consents(app, customer)
        .await?
        .into_iter()
        .map(ConsentOut::from)
        .collect();
    Ok(Json(ConsentListOut { data }))
}

/// Reads a consent.
#[utoipa::path(
    get, path = "/v1/consents/{consent_id}", tag = "links",
    params(("consent_id" = Uuid, Path)),
    responses(
        (status = 200, body = ConsentOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_consent(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConsentOut>, ApiError> {
    let c = state
        .store
        .get_consent(app, consent_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("consent"))?;
    Ok(Json(c.into()))
}

/// Revokes a consent, at the bank and in freshet (`consent.revoked`).
#[utoipa::path(
    delete, path = "/v1/consents/{consent_id}", tag = "links",
    params(("consent_id" = Uuid, Path)),
    responses(
        (status = 200, body = ConsentOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn revoke_consent(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConsentOut>, ApiError> {
    let c = state.refresher.revoke(app, consent_id(&id)?).await?;
    Ok(Json(c.into()))
}
