//! `/v1/customers`: the people whose banks an application refreshes.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use freshet_model::{
    Customer, CustomerFields, CustomerId, CustomerPatch, CustomerPatchFields, NewCustomer,
    PageRequest, Patch, erasure::ErasedCounts,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Tenant,
    extract::{JsonBody, Query, parse_id},
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer, list_customers))
        .routes(routes!(get_customer, update_customer, delete_customer))
}

/// A new customer. Every field is optional; each exists because a vendor's webhooks echo it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    /// Your own id for this customer; unique within your application.
    external_id: Option<String>,
    /// Sent as Yodlee's `loginName`.
    login_name: Option<String>,
    /// Brazilian CPF (11 digits, punctuation allowed), sent as Klavi's `personalTaxId`.
    personal_tax_id: Option<String>,
    /// Brazilian CNPJ (14 digits, punctuation allowed), sent as Klavi's `businessTaxId`.
    business_tax_id: Option<String>,
    /// Any JSON object, echoed as Klavi's `externalInfo`.
    #[schema(value_type = Option<Object>)]
    external_info: Option<Value>,
}

/// Changes to a customer: absent fields stay, `null` clears, a value replaces.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatchIn {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    external_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    login_name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    personal_tax_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    business_tax_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    external_info: Patch<Value>,
}

/// A customer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerOut {
    id: Uuid,
    external_id: Option<String>,
    login_name: Option<String>,
    personal_tax_id: Option<String>,
    business_tax_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    external_info: Option<Map<String, Value>>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<Customer> for CustomerOut {
    fn from(c: Customer) -> Self {
        Self {
            id: c.id.0,
            external_id: c.external_id,
            login_name: c.login_name,
            personal_tax_id: c.personal_tax_id,
            business_tax_id: c.business_tax_id,
            external_info: c.external_info,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// What erasing a customer removed. The same counts are sent in the `customer.erased` event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerErasedOut {
    customer_id: Uuid,
    removed: ErasedCounts,
}

/// A page of customers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerListOut {
    data: Vec<CustomerOut>,
    /// Pass as `cursor` to read the next page; absent on the last.
    next_cursor: Option<String>,
}

/// Paging parameters of a list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page, 1 to 500 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl ListParams {
    pub fn new(limit: Option<u32>, cursor: Option<String>) -> Self {
        Self { limit, cursor }
    }

    pub fn page(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.limit, self.cursor.as_deref())
            .map_err(|(field, message)| ApiError::bad_field(field, message))
    }
}

pub(crate) fn customer_id(raw: &str) -> Result<CustomerId, ApiError> {
    parse_id("customer_id", raw).map(CustomerId)
}

/// Creates a customer.
#[utoipa::path(
    post, path = "/v1/customers", tag = "customers",
    request_body = CustomerIn,
    responses(
        (status = 201, body = CustomerOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create_customer(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CustomerIn>,
) -> Result<(StatusCode, Json<CustomerOut>), ApiError> {
    let new = NewCustomer::parse(CustomerFields {
        external_id: body.external_id,
        login_name: body.login_name,
        personal_tax_id: body.personal_tax_id,
        business_tax_id: body.business_tax_id,
        external_info: body.external_info,
    })?;
    let customer = state.store.insert_customer(app, &new).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// Lists customers, oldest first.
#[utoipa::path(
    get, path = "/v1/customers", tag = "customers",
    params(ListParams),
    responses(
        (status = 200, body = CustomerListOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_customers(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<CustomerListOut>, ApiError> {
    let page = state.store.list_customers(app, params.page()?).await?;
    let page = page.map(CustomerOut::from);
    Ok(Json(CustomerListOut {
        data: page.data,
        next_cursor: page.next_cursor,
    }))
}

/// Reads a customer.
#[utoipa::path(
    get, path = "/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path)),
    responses(
        (status = 200, body = CustomerOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_customer(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CustomerOut>, ApiError> {
    let customer = state.store.get_customer(app, customer_id(&id)?).await?;
    customer
        .map(|c| Json(c.into()))
        .ok_or(ApiError::NotFound("customer"))
}

/// Changes some of a customer's fields.
#[utoipa::path(
    patch, path = "/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path)),
    request_body = CustomerPatchIn,
    responses(
        (status = 200, body = CustomerOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn update_customer(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CustomerPatchIn>,
) -> Result<Json<CustomerOut>, ApiError> {
    let id = customer_id(&id)?;
    let patch = CustomerPatch::parse(CustomerPatchFields {
        external_id: body.external_id,
        login_name: body.login_name,
        personal_tax_id: body.personal_tax_id,
        business_tax_id: body.business_tax_id,
        external_info: body.external_info,
    })?;
    let customer = state.store.update_customer(app, id, patch).await?;
    customer
        .map(|c| Json(c.into()))
        .ok_or(ApiError::NotFound("customer"))
}

/// Erases a customer: revokes their consents at their banks (best effort: a bank that cannot
/// be reached does not stop the erasure, and is counted in `bank_revocations_failed`), deletes
/// their links, consents and bank tokens, accounts, transactions, refresh tasks and data
/// products, replaces the personal fields inside stored event payloads (the events stay, so the
/// event and delivery logs remain whole), and cancels their deliveries not yet sent (status
/// `cancelled`). Records `customer.erased`, sent to `standard` endpoints only, with the counts
/// and no personal data. Answers once nothing about the customer can leave freshet any more:
/// if a delivery was being sent at that instant, after its attempt ended.
#[utoipa::path(
    delete, path = "/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Erased: what was removed, by kind", body = CustomerErasedOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn delete_customer(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CustomerErasedOut>, ApiError> {
    let id = customer_id(&id)?;
    let removed = state.refresher.erase_customer(app, id).await?;
    Ok(Json(CustomerErasedOut {
        customer_id: id.0,
        removed,
    }))
}
