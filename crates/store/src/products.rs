//! Product requests and their products. A request is claimed under a lease like a refresh
//! sub-task, so a generator that dies mid-request loses it to whoever claims it next; each
//! product is settled by a write conditional on that claim and on the product still pending,
//! so its event and its delivery are written once however often the request is taken over.
//!
//! Each product reaches its callback URL through the ordinary outbox: at request time a hidden
//! endpoint (dialect `callback`, tied to the request, never listed through the API) is created
//! per product, and the generated product becomes a delivery to it whose body is fixed then.

use std::{collections::BTreeMap, time::Duration};

use freshet_model::{
    ApplicationId,
    products::{
        ProductKind, ProductRequest, ProductRequestId, ProductResult, ProductStatus, RequestStatus,
    },
    refresh::ConsentId,
    webhooks::{DeliveryId, EndpointId, EventId},
};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Result, Store, StoreKind, Tx,
    accounts::{parse_ymd, ymd},
    codec::{RowExt, Ts},
    on_pool, on_tx,
};

/// The dialect name of the hidden endpoints that deliver products to callback URLs.
pub const CALLBACK_DIALECT: &str = "callback";

macro_rules! request_columns {
    () => {
        "id, application_id, customer_id, link_id, consent_ids, products, callback_urls, tax_id, \
         period_from, period_to, status, attempts, created_at, updated_at"
    };
}

macro_rules! product_columns {
    () => {
        "product, callback_url, endpoint_id, status, failure_reason, delivery_id, generated_at"
    };
}

fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} `{value}` is unknown").into())
}

fn request_from_row(r: &impl RowExt) -> Result<ProductRequest, sqlx::Error> {
    let status = r.text("status")?;
    let products: Vec<String> = r.opt_json("products")?.unwrap_or_default();
    Ok(ProductRequest {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        link_id: r.uuid("link_id")?.into(),
        consent_ids: r
            .opt_json::<Vec<Uuid>>("consent_ids")?
            .unwrap_or_default()
            .into_iter()
            .map(ConsentId)
            .collect(),
        products: products
            .iter()
            .map(|p| ProductKind::parse(p).ok_or_else(|| corrupt("product", p)))
            .collect::<Result<_, _>>()?,
        callback_urls: r
            .opt_json::<BTreeMap<String, String>>("callback_urls")?
            .unwrap_or_default(),
        tax_id: r.opt_text("tax_id")?,
        period_from: parse_ymd("period_from", &r.text("period_from")?)?,
        period_to: parse_ymd("period_to", &r.text("period_to")?)?,
        status: RequestStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts: r.i64("attempts")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn product_from_row(r: &impl RowExt) -> Result<ProductResult, sqlx::Error> {
    let product = r.text("product")?;
    let status = r.text("status")?;
    Ok(ProductResult {
        product: ProductKind::parse(&product).ok_or_else(|| corrupt("product", &product))?,
        callback_url: r.text("callback_url")?,
        endpoint_id: r.uuid("endpoint_id")?.into(),
        status: ProductStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        failure_reason: r.opt_text("failure_reason")?,
        delivery_id: r.opt_uuid("delivery_id")?.map(DeliveryId),
        generated_at: r.opt_ts("generated_at")?,
    })
}

/// A request with its products and the secret its callbacks are signed with. Its `Debug`
/// hides the secret.
#[derive(Clone, PartialEq)]
pub struct ProductRequestView {
    pub request: ProductRequest,
    pub products: Vec<ProductResult>,
    /// The Standard Webhooks secret (`whsec_…`) of the request's callback deliveries.
    pub callback_secret: String,
}

impl std::fmt::Debug for ProductRequestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductRequestView")
            .field("request", &self.request)
            .field("products", &self.products)
            .finish_non_exhaustive()
    }
}

impl Tx {
    /// Stores a request, a hidden endpoint per product signing with `secret`, and each product
    /// pending; returns the products.
    pub async fn insert_product_request(
        &mut self,
        r: &ProductRequest,
        secret: &str,
    ) -> Result<Vec<ProductResult>> {
        let consent_ids: Vec<Uuid> = r.consent_ids.iter().map(|c| c.0).collect();
        let products: Vec<&str> = r.products.iter().map(|p| p.as_str()).collect();
        let mut results = Vec::with_capacity(r.products.len());
        let keys = self.keys()?;
        on_tx!(self, |conn| {
            sqlx::query(concat!(
                "INSERT INTO product_requests (",
                request_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ))
            .bind(r.id.0)
            .bind(r.application_id.0)
            .bind(r.customer_id.0)
            .bind(r.link_id.0)
            .bind(Json(&consent_ids))
            .bind(Json(&products))
            .bind(Json(&r.callback_urls))
            .bind(&r.tax_id)
            .bind(ymd(r.period_from))
            .bind(ymd(r.period_to))
            .bind(r.status.as_str())
            .bind(r.attempts)
            .bind(Ts(r.created_at))
            .bind(Ts(r.updated_at))
            .execute(&mut *conn)
            .await?;
            for product in &r.products {
                let url = r
                    .callback_urls
                    .get(product.as_str())
                    .cloned()
                    .unwrap_or_default();
                let endpoint = EndpointId::new();
                let row = endpoint.0.to_string();
                let sealed =
                    keys.seal(crate::endpoints::place("secret", &row), secret.as_bytes())?;
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, application_id, url, dialect, event_types, \
                     description, enabled, disabled_reason, ordered, security_header, partner_app_id, \
                     active_from, secret, previous_secret, previous_secret_until, retry_schedule, \
                     last_success_at, failing_since, created_at, updated_at, product_request_id) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6, NULL, $7, NULL, NULL, $8, $9, NULL, NULL, \
                     NULL, NULL, NULL, $8, $8, $10)",
                )
                .bind(endpoint.0)
                .bind(r.application_id.0)
                .bind(&url)
                .bind(CALLBACK_DIALECT)
                .bind(format!("{} of product request {}", product.as_str(), r.id))
                .bind(true)
                .bind(false)
                .bind(Ts(r.created_at))
                .bind(sealed)
                .bind(r.id.0)
                .execute(&mut *conn)
                .await?;
                sqlx::query(concat!(
                    "INSERT INTO products (request_id, ",
                    product_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL)"
                ))
                .bind(r.id.0)
                .bind(product.as_str())
                .bind(&url)
                .bind(endpoint.0)
                .bind(ProductStatus::Pending.as_str())
                .execute(&mut *conn)
                .await?;
                results.push(ProductResult {
                    product: *product,
                    callback_url: url,
                    endpoint_id: endpoint,
                    status: ProductStatus::Pending,
                    failure_reason: None,
                    delivery_id: None,
                    generated_at: None,
                });
            }
        });
        Ok(results)
    }

    /// Creates a delivery of `event` to `endpoint` whose body is `body` rather than the event
    /// rendered in the endpoint's dialect; everything else (claims, retries, signing, the
    /// attempt log) is an ordinary delivery's.
    pub async fn insert_fixed_delivery(
        &mut self,
        app: ApplicationId,
        event: EventId,
        endpoint: EndpointId,
        body: &Value,
    ) -> Result<DeliveryId> {
        let id = DeliveryId::new();
        let now = freshet_model::time::now();
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, attempts, \
                 next_attempt_at, lease_until, leased_by, ordering_key, last_status_code, last_error, \
                 created_at, updated_at, body) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, NULL, NULL, NULL, NULL, $5, $5, $6)",
            )
            .bind(id.0)
            .bind(app.0)
            .bind(event.0)
            .bind(endpoint.0)
            .bind(Ts(now))
            .bind(Json(body))
            .execute(&mut *conn)
            .await?;
        });
        Ok(id)
    }

    /// Settles one pending product of a request claimed with `token`; false (and nothing
    /// written) when the claim was lost or the product is already settled.
    pub async fn settle_product(
        &mut self,
        request: ProductRequestId,
        token: &str,
        product: ProductKind,
        failure_reason: Option<&str>,
        delivery: Option<DeliveryId>,
    ) -> Result<bool> {
        let status = match failure_reason {
            None => ProductStatus::Succeeded,
            Some(_) => ProductStatus::Failed,
        };
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE products SET status = $4, failure_reason = $5, delivery_id = $6, \
                 generated_at = $7 WHERE request_id = $1 AND product = $3 AND status = 'pending' \
                 AND EXISTS (SELECT 1 FROM product_requests WHERE id = $1 AND lease_token = $2)",
            )
            .bind(request.0)
            .bind(token)
            .bind(product.as_str())
            .bind(status.as_str())
            .bind(failure_reason)
            .bind(delivery.map(|d| d.0))
            .bind(Ts(freshet_model::time::now()))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Marks a claimed request completed once none of its products is pending; false when
    /// the claim was lost or a product still waits.
    pub async fn complete_product_request(
        &mut self,
        request: ProductRequestId,
        token: &str,
    ) -> Result<bool> {
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE product_requests SET status = 'completed', lease_token = NULL, \
                 lease_until = NULL, updated_at = $3 WHERE id = $1 AND lease_token = $2 \
                 AND NOT EXISTS (SELECT 1 FROM products WHERE request_id = $1 AND status = 'pending')",
            )
            .bind(request.0)
            .bind(token)
            .bind(Ts(freshet_model::time::now()))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}

impl Store {
    /// Claims up to `limit` pending requests that nobody holds, or whose lease ran out, for
    /// `lease`. Each claim counts as an attempt.
    pub async fn claim_product_requests(
        &self,
        node: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<(String, Vec<ProductRequest>)> {
        let now = freshet_model::time::now();
        let token = format!("{node}/{}", Uuid::now_v7().simple());
        let lock = match self.kind() {
            StoreKind::Postgres => " FOR UPDATE SKIP LOCKED",
            StoreKind::Sqlite => "",
        };
        let sql = format!(
            "UPDATE product_requests SET lease_token = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM product_requests WHERE status = 'pending' \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at LIMIT $4{lock}) \
             RETURNING {}",
            request_columns!()
        );
        let lease = time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE);
        on_pool!(self, write, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&token)
                .bind(Ts(now + lease))
                .bind(Ts(now))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            let list = rows
                .iter()
                .map(request_from_row)
                .collect::<Result<_, _>>()?;
            Ok((token, list))
        })
    }

    /// Lets every claimed request be claimed again at once: for a single node (SQLite)
    /// starting up, whose earlier run's claims are orphans.
    pub async fn release_product_request_leases(&self) -> Result<u64> {
        on_pool!(self, write, |pool| {
            Ok(sqlx::query(
                "UPDATE product_requests SET lease_until = NULL, lease_token = NULL \
                 WHERE status = 'pending' AND lease_token IS NOT NULL",
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    /// The products of a request, in the order the client asked for them.
    pub async fn request_products(&self, request: &ProductRequest) -> Result<Vec<ProductResult>> {
        let mut list: Vec<ProductResult> = on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                product_columns!(),
                " FROM products WHERE request_id = $1"
            ))
            .bind(request.id.0)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(product_from_row)
                .collect::<Result<_, _>>()?
        });
        list.sort_by_key(|p| request.products.iter().position(|q| *q == p.product));
        Ok(list)
    }

    /// A request of `app`, with its products and callback secret.
    pub async fn get_product_request(
        &self,
        app: ApplicationId,
        id: ProductRequestId,
    ) -> Result<Option<ProductRequestView>> {
        let keys = self.keys()?;
        let found = on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                request_columns!(),
                " FROM product_requests WHERE id = $1 AND application_id = $2"
            ))
            .bind(id.0)
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let request = request_from_row(&row)?;
            let secret = sqlx::query(
                "SELECT id, secret FROM webhook_endpoints WHERE product_request_id = $1 LIMIT 1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await?
            .map(|r| {
                let row = r.uuid("id")?.to_string();
                keys.open_text(crate::endpoints::place("secret", &row), r.text("secret")?)
            })
            .transpose()?
            .unwrap_or_default();
            (request, secret)
        });
        let (request, callback_secret) = found;
        let products = self.request_products(&request).await?;
        Ok(Some(ProductRequestView {
            request,
            products,
            callback_secret,
        }))
    }

    /// How many requests `app` has: for tests that check a refused request left nothing.
    pub async fn count_product_requests(&self, app: ApplicationId) -> Result<i64> {
        on_pool!(self, read, |pool| {
            let row =
                sqlx::query("SELECT count(*) AS n FROM product_requests WHERE application_id = $1")
                    .bind(app.0)
                    .fetch_one(pool)
                    .await?;
            Ok(row.i64("n")?)
        })
    }
}
