//! Webhook endpoints of an application.
//!
//! Updates are read-modify-write inside one transaction (the row locked on PostgreSQL, the
//! single writer on SQLite), so the rules for what may change live in the caller's closure
//! and concurrent updates cannot lose each other's changes.

use freshet_model::{
    ApplicationId, EventType, Page, PageRequest,
    webhooks::{EndpointId, WebhookEndpoint},
};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Result, Store, StoreError, StoreKind,
    codec::{RowExt, Ts},
    on_pool,
    sealed::{KeyError, Keyring, Place},
};

/// A new endpoint; the caller has validated every field. Its `Debug` hides the secrets.
#[derive(Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub dialect: String,
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub ordered: bool,
    pub security_header: Option<String>,
    pub partner_app_id: Option<String>,
    pub active_from: OffsetDateTime,
    pub secret: String,
    pub retry_schedule: Option<Vec<u32>>,
    pub scheduled_refreshes: bool,
    /// `immediate` or `next_hour`.
    pub activation: String,
    pub rate_limit: Option<u32>,
    pub max_in_flight: Option<u32>,
}

impl std::fmt::Debug for NewEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("event_types", &self.event_types)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}

/// Where an endpoint's secret column lives, for sealing.
pub(crate) fn place<'a>(column: &'static str, row: &'a str) -> Place<'a> {
    Place {
        table: "webhook_endpoints",
        column,
        row,
    }
}

/// An endpoint's three secrets, sealed for its row.
pub(crate) struct SealedSecrets {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub security_header: Option<String>,
}

pub(crate) fn seal_secrets(
    keys: &Keyring,
    id: Uuid,
    secret: &str,
    previous_secret: Option<&str>,
    security_header: Option<&str>,
) -> Result<SealedSecrets, KeyError> {
    let row = id.to_string();
    Ok(SealedSecrets {
        secret: keys.seal(place("secret", &row), secret.as_bytes())?,
        previous_secret: keys.seal_opt(place("previous_secret", &row), previous_secret)?,
        security_header: keys.seal_opt(place("security_header", &row), security_header)?,
    })
}

macro_rules! columns {
    () => {
        "id, application_id, url, dialect, event_types, description, enabled, disabled_reason, \
         ordered, security_header, partner_app_id, active_from, secret, previous_secret, \
         previous_secret_until, retry_schedule, last_success_at, failing_since, created_at, \
         updated_at, scheduled_refreshes, activation, rate_limit, max_in_flight"
    };
}
pub(crate) use columns as endpoint_columns;

/// Event types as stored: `,a,b,`, so one `LIKE '%,type,%'` filters on both engines.
pub(crate) fn encode_types(types: &Option<Vec<EventType>>) -> Option<String> {
    types.as_ref().map(|ts| {
        let names: Vec<_> = ts.iter().map(|t| t.as_str()).collect();
        format!(",{},", names.join(","))
    })
}

fn decode_types(stored: Option<String>) -> Result<Option<Vec<EventType>>, sqlx::Error> {
    stored
        .map(|s| {
            s.split(',')
                .filter(|n| !n.is_empty())
                .map(|n| {
                    EventType::parse(n)
                        .ok_or_else(|| sqlx::Error::Decode(format!("event type {n}").into()))
                })
                .collect()
        })
        .transpose()
}

pub(crate) fn endpoint_from_row(
    r: &impl RowExt,
    keys: &Keyring,
) -> Result<WebhookEndpoint, sqlx::Error> {
    let id = r.uuid("id")?;
    let row = id.to_string();
    Ok(WebhookEndpoint {
        id: id.into(),
        application_id: r.uuid("application_id")?.into(),
        url: r.text("url")?,
        dialect: r.text("dialect")?,
        event_types: decode_types(r.opt_text("event_types")?)?,
        description: r.opt_text("description")?,
        enabled: r.bool("enabled")?,
        disabled_reason: r.opt_text("disabled_reason")?,
        ordered: r.bool("ordered")?,
        security_header: keys.open_opt_text(
            place("security_header", &row),
            r.opt_text("security_header")?,
        )?,
        partner_app_id: r.opt_text("partner_app_id")?,
        active_from: r.ts("active_from")?,
        secret: keys.open_text(place("secret", &row), r.text("secret")?)?,
        previous_secret: keys.open_opt_text(
            place("previous_secret", &row),
            r.opt_text("previous_secret")?,
        )?,
        previous_secret_until: r.opt_ts("previous_secret_until")?,
        retry_schedule: r.opt_json("retry_schedule")?,
        last_success_at: r.opt_ts("last_success_at")?,
        failing_since: r.opt_ts("failing_since")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        scheduled_refreshes: r.bool("scheduled_refreshes")?,
        activation: r.text("activation")?,
        rate_limit: limit(r.opt_i64("rate_limit")?),
        max_in_flight: limit(r.opt_i64("max_in_flight")?),
    })
}

/// A stored limit; what no API accepts (below 1) reads as no limit rather than a stuck outbox.
pub(crate) fn limit(stored: Option<i64>) -> Option<u32> {
    stored
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

impl Store {
    /// Creates an endpoint for `app`.
    pub async fn insert_endpoint(
        &self,
        app: ApplicationId,
        e: &NewEndpoint,
    ) -> Result<WebhookEndpoint> {
        let now = freshet_model::time::now();
        let keys = self.keys()?;
        let id = EndpointId::new();
        let sealed = seal_secrets(&keys, id.0, &e.secret, None, e.security_header.as_deref())?;
        on_pool!(self, write, |pool| {
            let row = sqlx::query(concat!(
                "INSERT INTO webhook_endpoints (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, TRUE, NULL, $7, $8, $9, $10, $11, NULL, NULL, \
                 $12, NULL, NULL, $13, $13, $14, $15, $16, $17) RETURNING ",
                columns!()
            ))
            .bind(id.0)
            .bind(app.0)
            .bind(&e.url)
            .bind(&e.dialect)
            .bind(encode_types(&e.event_types))
            .bind(&e.description)
            .bind(e.ordered)
            .bind(&sealed.security_header)
            .bind(&e.partner_app_id)
            .bind(Ts(e.active_from))
            .bind(&sealed.secret)
            .bind(e.retry_schedule.as_ref().map(Json))
            .bind(Ts(now))
            .bind(e.scheduled_refreshes)
            .bind(&e.activation)
            .bind(e.rate_limit.map(i64::from))
            .bind(e.max_in_flight.map(i64::from))
            .fetch_one(pool)
            .await?;
            Ok(endpoint_from_row(&row, &keys)?)
        })
    }

    /// Reads an endpoint of `app`.
    pub async fn get_endpoint(
        &self,
        app: ApplicationId,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>> {
        let keys = self.keys()?;
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM webhook_endpoints WHERE application_id = $1 AND id = $2 AND product_request_id IS NULL"
            ))
            .bind(app.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| endpoint_from_row(&r, &keys)).transpose()?)
        })
    }

    /// Lists `app`'s endpoints in creation order.
    pub async fn list_endpoints(
        &self,
        app: ApplicationId,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>> {
        let after = page.after.map(|c| c.0).unwrap_or(Uuid::nil());
        let keys = self.keys()?;
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM webhook_endpoints WHERE application_id = $1 AND id > $2 AND product_request_id IS NULL \
                 ORDER BY id LIMIT $3"
            ))
            .bind(app.0)
            .bind(after)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(pool)
            .await?;
            let list = rows
                .iter()
                .map(|r| endpoint_from_row(r, &keys))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Page::from_overfetch(list, page.limit, |e| e.id.0))
        })
    }

    /// Changes an endpoint of `app` through `change`, atomically. `Ok(None)` when there is no
    /// such endpoint; the closure's error aborts the update and is returned as is.
    pub async fn update_endpoint<E: From<StoreError>>(
        &self,
        app: ApplicationId,
        id: EndpointId,
        change: impl FnOnce(&mut WebhookEndpoint) -> Result<(), E>,
    ) -> Result<Option<WebhookEndpoint>, E> {
        let select = match self.kind() {
            StoreKind::Sqlite => concat!(
                "SELECT ",
                columns!(),
                " FROM webhook_endpoints WHERE application_id = $1 AND id = $2 AND product_request_id IS NULL"
            ),
            StoreKind::Postgres => concat!(
                "SELECT ",
                columns!(),
                " FROM webhook_endpoints WHERE application_id = $1 AND id = $2 AND product_request_id IS NULL FOR UPDATE"
            ),
        };
        let keys = self.keys().map_err(StoreError::from)?;
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let row = sqlx::query(select)
                .bind(app.0)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            let Some(row) = row else { return Ok(None) };
            let mut e = endpoint_from_row(&row, &keys).map_err(StoreError::from)?;
            change(&mut e)?;
            e.updated_at = freshet_model::time::now();
            let sealed = seal_secrets(
                &keys,
                e.id.0,
                &e.secret,
                e.previous_secret.as_deref(),
                e.security_header.as_deref(),
            )
            .map_err(StoreError::from)?;
            sqlx::query(
                "UPDATE webhook_endpoints SET url = $3, dialect = $4, event_types = $5, \
                 description = $6, enabled = $7, disabled_reason = $8, ordered = $9, \
                 security_header = $10, partner_app_id = $11, active_from = $12, secret = $13, \
                 previous_secret = $14, previous_secret_until = $15, retry_schedule = $16, \
                 failing_since = $17, updated_at = $18, scheduled_refreshes = $19, \
                 activation = $20, rate_limit = $21, max_in_flight = $22 \
                 WHERE application_id = $1 AND id = $2",
            )
            .bind(app.0)
            .bind(id.0)
            .bind(&e.url)
            .bind(&e.dialect)
            .bind(encode_types(&e.event_types))
            .bind(&e.description)
            .bind(e.enabled)
            .bind(&e.disabled_reason)
            .bind(e.ordered)
            .bind(&sealed.security_header)
            .bind(&e.partner_app_id)
            .bind(Ts(e.active_from))
            .bind(&sealed.secret)
            .bind(&sealed.previous_secret)
            .bind(e.previous_secret_until.map(Ts))
            .bind(e.retry_schedule.as_ref().map(Json))
            .bind(e.failing_since.map(Ts))
            .bind(Ts(e.updated_at))
            .bind(e.scheduled_refreshes)
            .bind(&e.activation)
            .bind(e.rate_limit.map(i64::from))
            .bind(e.max_in_flight.map(i64::from))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(Some(e))
        })
    }

    /// Deletes an endpoint of `app` with its deliveries; `false` if there was none.
    pub async fn delete_endpoint(&self, app: ApplicationId, id: EndpointId) -> Result<bool> {
        on_pool!(self, write, |pool| {
            let done = sqlx::query(
                "DELETE FROM webhook_endpoints WHERE application_id = $1 AND id = $2 \
                 AND product_request_id IS NULL",
            )
            .bind(app.0)
            .bind(id.0)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
