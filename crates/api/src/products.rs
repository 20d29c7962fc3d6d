//! Data products (Klavi's product requests): asking for reports over a customer's link, each
//! sent to its own callback URL, and reading how each product went.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_engine::products::{ProductError, ProductRequestFields};
use freshet_model::products::{ProductRequestId, ProductStatus, RequestStatus};
use freshet_store::ProductRequestView;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
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
        .routes(routes!(create_product_request))
        .routes(routes!(get_product_request))
}

/// The products to build over one link of the customer, and where to send each.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequestIn {
    /// The link whose data the products are built from.
    #[serde(default)]
    link_id: Option<String>,
    /// Authorised consents of that link.
    #[serde(default)]
    consent_ids: Option<Vec<String>>,
    /// `pf_checking_account` (a statement of each checking account) and/or `pf_credit_card`
    /// (a summary of each credit card).
    #[serde(default)]
    products: Option<Vec<String>>,
    /// Product → the http(s) URL it is POSTed to, one per product.
    #[serde(default)]
    product_callback_urls: Option<BTreeMap<String, String>>,
    /// The tax id the request is made for (Klavi `taxId`); the customer's when left out.
    #[serde(default)]
    tax_id: Option<String>,
    /// First day the products cover; 90 days before `to` when left out.
    #[serde(default, with = "crate::extract::ymd::option")]
    #[schema(value_type = Option<String>, format = Date)]
    from: Option<Date>,
    /// Last day the products cover; today when left out.
    #[serde(default, with = "crate::extract::ymd::option")]
    #[schema(value_type = Option<String>, format = Date)]
    to: Option<Date>,
}

/// A product request, accepted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductRequestCreated {
    request_id: Uuid,
    /// The Standard Webhooks secret (`whsec_…`) the callbacks of this request are signed with.
    callback_secret: String,
}

/// One product of a request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductOut {
    product: String,
    callback_url: String,
    status: ProductStatus,
    /// Why it could not be built, e.g. `no checking account`.
    failure_reason: Option<String>,
    /// Its delivery to the callback URL: `GET /v1/deliveries/{id}/attempts` lists the tries.
    delivery_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    generated_at: Option<OffsetDateTime>,
}

/// A product request and how each product went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductRequestOut {
    request_id: Uuid,
    customer_id: Uuid,
    link_id: Uuid,
    consent_ids: Vec<Uuid>,
    tax_id: Option<String>,
    #[serde(with = "crate::extract::ymd")]
    #[schema(value_type = String, format = Date)]
    from: Date,
    #[serde(with = "crate::extract::ymd")]
    #[schema(value_type = String, format = Date)]
    to: Date,
    /// `pending` until every product has succeeded or failed.
    status: RequestStatus,
    callback_secret: String,
    products: Vec<ProductOut>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

impl From<ProductRequestView> for ProductRequestOut {
    fn from(v: ProductRequestView) -> Self {
        let r = v.request;
        Self {
            request_id: r.id.0,
            customer_id: r.customer_id.0,
            link_id: r.link_id.0,
            consent_ids: r.consent_ids.iter().map(|c| c.0).collect(),
            tax_id: r.tax_id,
            from: r.period_from,
            to: r.period_to,
            status: r.status,
            callback_secret: v.callback_secret,
            products: v
                .products
                .into_iter()
                .map(|p| ProductOut {
                    product: p.product.as_str().to_string(),
                    callback_url: p.callback_url,
                    status: p.status,
                    failure_reason: p.failure_reason,
                    delivery_id: p.delivery_id.map(|d| d.0),
                    generated_at: p.generated_at,
                })
                .collect(),
            created_at: r.created_at,
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(e: ProductError) -> Self {
        match e {
            ProductError::NotFound(what) => Self::NotFound(what),
            ProductError::Invalid(errors) => Self::Validation(errors),
            ProductError::Store(e) => e.into(),
        }
    }
}

/// Asks for data products over one of the customer's links. Answers at once; each product is
/// built from what freshet holds and POSTed to its callback URL, signed like any webhook, and
/// `product.request_received`, `product.generated_success` / `product.generated_failed` follow.
#[utoipa::path(
    post, path = "/v1/customers/{customer_id}/product-requests", tag = "products",
    params(("customer_id" = Uuid, Path)),
    request_body = ProductRequestIn,
    responses(
        (status = 202, body = ProductRequestCreated),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create_product_request(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(customer): Path<String>,
    JsonBody(body): JsonBody<ProductRequestIn>,
) -> Result<(StatusCode, Json<ProductRequestCreated>), ApiError> {
    let customer = crate::customers::customer_id(&customer)?;
    let view = state
        .products
        .request(
            app,
            customer,
            ProductRequestFields {
                link_id: body.link_id,
                consent_ids: body.consent_ids,
                products: body.products,
                product_callback_urls: body.product_callback_urls,
                tax_id: body.tax_id,
                from: body.from,
                to: body.to,
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ProductRequestCreated {
            request_id: view.request.id.0,
            callback_secret: view.callback_secret,
        }),
    ))
}

/// Reads a product request: its status and each product's.
#[utoipa::path(
    get, path = "/v1/product-requests/{request_id}", tag = "products",
    params(("request_id" = Uuid, Path)),
    responses(
        (status = 200, body = ProductRequestOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_product_request(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProductRequestOut>, ApiError> {
    let id = ProductRequestId(parse_id("request_id", &id)?);
    let view = state
        .store
        .get_product_request(app, id)
        .await?
        .ok_or(ApiError::NotFound("product request"))?;
    Ok(Json(view.into()))
}
