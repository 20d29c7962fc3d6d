//! Links and consents. A consent's state changes are conditional updates (`WHERE status =
//! …`), so two nodes, or a callback racing the scheduler, can never both move it.

use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId, Page, PageRequest,
    events::Permission,
    refresh::{BankTokens, Consent, ConsentId, Link, LinkId},
};
use sqlx::types::Json;
use time::{Date, OffsetDateTime};

use crate::{
    Result, Store, StoreError, Tx,
    accounts::ymd,
    codec::{RowExt, Ts},
    on_pool, on_tx,
    sealed::{KeyError, Keyring, Place},
};

/// Where a consent's secret column lives, for sealing.
fn place<'a>(column: &'static str, row: &'a str) -> Place<'a> {
    Place {
        table: "consents",
        column,
        row,
    }
}

/// A consent's tokens, sealed for its row.
fn seal_tokens(
    keys: &Keyring,
    id: ConsentId,
    t: &BankTokens,
) -> Result<(String, Option<String>), KeyError> {
    let row = id.0.to_string();
    Ok((
        keys.seal(place("access_token", &row), t.access_token.as_bytes())?,
        keys.seal_opt(place("refresh_token", &row), t.refresh_token.as_deref())?,
    ))
}

macro_rules! consent_columns {
    () => {
        "id, application_id, customer_id, link_id, provider_id, status, bank_consent_id, \
         permissions_requested, permissions_granted, expires_at, external_track_id, \
         reconnect_required, authorisation_url, redirect_url, next_refresh_at, \
         last_refreshed_at, authorised_at, created_at, updated_at"
    };
}

fn consent_from_row(r: &impl RowExt) -> Result<Consent, sqlx::Error> {
    let status = r.text("status")?;
    Ok(Consent {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        link_id: r.uuid("link_id")?.into(),
        provider_id: r.text("provider_id")?,
        status: ConsentStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("consent status {status}").into()))?,
        bank_consent_id: r.text("bank_consent_id")?,
        permissions_requested: r.opt_json("permissions_requested")?.unwrap_or_default(),
        permissions_granted: r.opt_json("permissions_granted")?.unwrap_or_default(),
        expires_at: r.opt_ts("expires_at")?,
        external_track_id: r.opt_text("external_track_id")?,
        reconnect_required: r.bool("reconnect_required")?,
        authorisation_url: r.opt_text("authorisation_url")?,
        redirect_url: r.opt_text("redirect_url")?,
        next_refresh_at: r.opt_ts("next_refresh_at")?,
        last_refreshed_at: r.opt_ts("last_refreshed_at")?,
        authorised_at: r.opt_ts("authorised_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// What the end of a sub-task changes on its consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefreshEnd {
    /// It succeeded: the consent counts as refreshed now, and its next scheduled refresh is
    /// moved to no earlier than this.
    pub next_refresh: Option<OffsetDateTime>,
    /// It called the bank without the customer present on this UTC day, using one of the
    /// consent's unattended refreshes for the day.
    pub unattended_on: Option<Date>,
}

/// A consent whose scheduled refresh is due.
#[derive(Clone, Debug)]
pub struct DueConsent {
    pub consent: Consent,
    /// Unattended refreshes it made today.
    pub unattended_used: u32,
}

fn link_from_row(r: &impl RowExt) -> Result<Link, sqlx::Error> {
    Ok(Link {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        provider_id: r.text("provider_id")?,
        number: r.i64("number")?,
        external_track_id: r.opt_text("external_track_id")?,
        created_at: r.ts("created_at")?,
    })
}

impl Tx {
    pub async fn insert_link(&mut self, l: &Link) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO links (id, application_id, customer_id, provider_id, number, \
                 external_track_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(l.id.0)
            .bind(l.application_id.0)
            .bind(l.customer_id.0)
            .bind(&l.provider_id)
            .bind(l.number)
            .bind(&l.external_track_id)
            .bind(Ts(l.created_at))
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// Stores a consent awaiting authorisation; `auth_state` is the OAuth `state` its callback
    /// will carry, `auth_context` what the connector must find again then.
    pub async fn insert_consent(
        &mut self,
        c: &Consent,
        auth_state: &str,
        auth_context: Option<&str>,
    ) -> Result<()> {
        let row = c.id.0.to_string();
        let auth_context = self
            .keys()?
            .seal_opt(place("auth_context", &row), auth_context)?;
        on_tx!(self, |conn| {
            sqlx::query(concat!(
                "INSERT INTO consents (",
                consent_columns!(),
                ", auth_state, expiring_notified, auth_context) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
            ))
            .bind(c.id.0)
            .bind(c.application_id.0)
            .bind(c.customer_id.0)
            .bind(c.link_id.0)
            .bind(&c.provider_id)
            .bind(c.status.as_str())
            .bind(&c.bank_consent_id)
            .bind(Json(&c.permissions_requested))
            .bind(Json(&c.permissions_granted))
            .bind(c.expires_at.map(Ts))
            .bind(&c.external_track_id)
            .bind(c.reconnect_required)
            .bind(&c.authorisation_url)
            .bind(&c.redirect_url)
            .bind(c.next_refresh_at.map(Ts))
            .bind(c.last_refreshed_at.map(Ts))
            .bind(c.authorised_at.map(Ts))
            .bind(Ts(c.created_at))
            .bind(Ts(c.updated_at))
            .bind(auth_state)
            .bind(false)
            .bind(&auth_context)
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// Authorises a consent awaiting authorisation, with the expiry the bank granted; false
    /// when it no longer awaits.
    pub async fn authorise_consent(
        &mut self,
        id: ConsentId,
        tokens: &BankTokens,
        granted: &[Permission],
        next_refresh_at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let now = freshet_model::time::now();
        let (access, refresh) = seal_tokens(&*self.keys()?, id, tokens)?;
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE consents SET status = 'authorised', access_token = $2, refresh_token = $3, \
                 token_expires_at = $4, permissions_granted = $5, next_refresh_at = $6, \
                 authorisation_url = NULL, auth_state = NULL, auth_context = NULL, \
                 updated_at = $7, authorised_at = $7, expires_at = $8 \
                 WHERE id = $1 AND status = 'awaiting_authorisation'",
            )
            .bind(id.0)
            .bind(&access)
            .bind(&refresh)
            .bind(tokens.expires_at.map(Ts))
            .bind(Json(granted))
            .bind(Ts(next_refresh_at))
            .bind(Ts(now))
            .bind(expires_at.map(Ts))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Moves a consent from one of `from` to `to`; false when it was in none of them.
    pub async fn move_consent(
        &mut self,
        id: ConsentId,
        from: &[ConsentStatus],
        to: ConsentStatus,
    ) -> Result<bool> {
        let now = freshet_model::time::now();
        // Up to three states, padded with the first: one statement text for both engines.
        assert!(
            (1..=3).contains(&from.len()),
            "move_consent takes one to three states"
        );
        let state = |i: usize| from.get(i).unwrap_or(&from[0]).as_str();
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE consents SET status = $2, auth_state = NULL, auth_context = NULL, \
                 authorisation_url = NULL, updated_at = $3 WHERE id = $1 AND status IN ($4, $5, $6)",
            )
            .bind(id.0)
            .bind(to.as_str())
            .bind(Ts(now))
            .bind(state(0))
            .bind(state(1))
            .bind(state(2))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn set_reconnect_required(&mut self, id: ConsentId, required: bool) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query("UPDATE consents SET reconnect_required = $2 WHERE id = $1")
                .bind(id.0)
                .bind(required)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Takes a consent's scheduled refresh: moves its next refresh to `next` if it was due at
    /// `now`. True for exactly one of several nodes trying at once.
    pub async fn take_due_refresh(
        &mut self,
        id: ConsentId,
        now: OffsetDateTime,
        next: OffsetDateTime,
    ) -> Result<bool> {
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE consents SET next_refresh_at = $3 WHERE id = $1 AND status = 'authorised' \
                 AND next_refresh_at <= $2",
            )
            .bind(id.0)
            .bind(Ts(now))
            .bind(Ts(next))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Writes what the end of a sub-task changes on its consent, in one statement.
    pub async fn end_refresh(&mut self, id: ConsentId, end: RefreshEnd) -> Result<()> {
        if end.next_refresh.is_none() && end.unattended_on.is_none() {
            return Ok(());
        }
        let now = freshet_model::time::now();
        on_tx!(self, |conn| {
            // Every right-hand side reads the row as it was, so the day comparison sees the
            // day of the stored count: a count from another day starts again at 1.
            sqlx::query(
                "UPDATE consents SET \
                 last_refreshed_at = CASE WHEN $2 THEN $4 ELSE last_refreshed_at END, \
                 next_refresh_at = CASE WHEN $2 AND (next_refresh_at IS NULL OR next_refresh_at < $3) \
                   THEN $3 ELSE next_refresh_at END, \
                 unattended_used = CASE WHEN NOT $5 THEN unattended_used \
                   WHEN unattended_day = $6 THEN unattended_used + 1 ELSE 1 END, \
                 unattended_day = CASE WHEN $5 THEN $6 ELSE unattended_day END \
                 WHERE id = $1",
            )
            .bind(id.0)
            .bind(end.next_refresh.is_some())
            .bind(Ts(end.next_refresh.unwrap_or(now)))
            .bind(Ts(now))
            .bind(end.unattended_on.is_some())
            .bind(ymd(end.unattended_on.unwrap_or(now.date())))
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// Marks the expiry warning sent; true for the one caller that did it.
    pub async fn mark_expiring_notified(&mut self, id: ConsentId) -> Result<bool> {
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE consents SET expiring_notified = $2 WHERE id = $1 AND expiring_notified = $3 \
                 AND status = 'authorised'",
            )
            .bind(id.0)
            .bind(true)
            .bind(false)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn save_tokens(&mut self, id: ConsentId, t: &BankTokens) -> Result<()> {
        let (access, refresh) = seal_tokens(&*self.keys()?, id, t)?;
        on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE consents SET access_token = $2, refresh_token = COALESCE($3, refresh_token), \
                 token_expires_at = $4 WHERE id = $1",
            )
            .bind(id.0)
            .bind(&access)
            .bind(&refresh)
            .bind(t.expires_at.map(Ts))
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    pub async fn get_link(&self, app: ApplicationId, id: LinkId) -> Result<Option<Link>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT id, application_id, customer_id, provider_id, number, external_track_id, \
                 created_at FROM links WHERE id = $1 AND application_id = $2",
            )
            .bind(id.0)
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(link_from_row).transpose()?)
        })
    }

    pub async fn get_consent(&self, app: ApplicationId, id: ConsentId) -> Result<Option<Consent>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consents WHERE id = $1 AND application_id = $2"
            ))
            .bind(id.0)
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(consent_from_row).transpose()?)
        })
    }

    /// A customer's consents, oldest first.
    pub async fn customer_consents(
        &self,
        app: ApplicationId,
        customer: CustomerId,
    ) -> Result<Vec<Consent>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consents WHERE customer_id = $1 AND application_id = $2 ORDER BY id"
            ))
            .bind(customer.0)
            .bind(app.0)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(consent_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// Lists `app`'s consents across its customers, oldest first, optionally of one status.
    pub async fn list_consents(
        &self,
        app: ApplicationId,
        status: Option<ConsentStatus>,
        page: PageRequest,
    ) -> Result<Page<Consent>> {
        let after = page.after.map(|c| c.0).unwrap_or(uuid::Uuid::nil());
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consents WHERE application_id = $1 AND id > $2 \
                  AND ($3 IS NULL OR status = $3) ORDER BY id LIMIT $4"
            ))
            .bind(app.0)
            .bind(after)
            .bind(status.map(|s| s.as_str()))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(pool)
            .await?;
            let list = rows
                .iter()
                .map(consent_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Page::from_overfetch(list, page.limit, |c| c.id.0))
        })
    }

    /// The consent an OAuth callback's `state` belongs to, with the context its authorisation
    /// request stored.
    pub async fn consent_by_state(&self, state: &str) -> Result<Option<(Consent, Option<String>)>> {
        let keys = self.keys()?;
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                ", auth_context FROM consents WHERE auth_state = $1"
            ))
            .bind(state)
            .fetch_optional(pool)
            .await?;
            Ok(row
                .as_ref()
                .map(|r| {
                    let consent = consent_from_row(r)?;
                    let row = consent.id.0.to_string();
                    let context = keys
                        .open_opt_text(place("auth_context", &row), r.opt_text("auth_context")?)?;
                    Ok::<_, sqlx::Error>((consent, context))
                })
                .transpose()?)
        })
    }

    /// The consent a bank knows as `bank_consent_id`, whatever its application: for a bank's
    /// notification, which names the consent in the bank's words. The newest, should a bank
    /// ever reuse an id.
    pub async fn consent_by_bank_id(
        &self,
        provider_id: &str,
        bank_consent_id: &str,
    ) -> Result<Option<Consent>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consents WHERE provider_id = $1 AND bank_consent_id = $2 \
                 ORDER BY created_at DESC LIMIT 1"
            ))
            .bind(provider_id)
            .bind(bank_consent_id)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(consent_from_row).transpose()?)
        })
    }

    /// Any consent by id, whatever its application: for the engines, never for the API.
    pub async fn consent(&self, id: ConsentId) -> Result<Option<Consent>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consents WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(consent_from_row).transpose()?)
        })
    }

    pub async fn link(&self, id: LinkId) -> Result<Option<Link>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT id, application_id, customer_id, provider_id, number, external_track_id, \
                 created_at FROM links WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(link_from_row).transpose()?)
        })
    }

    pub async fn consent_tokens(&self, id: ConsentId) -> Result<Option<BankTokens>> {
        let keys = self.keys()?;
        let at = id.0.to_string();
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT access_token, refresh_token, token_expires_at FROM consents WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let Some(access_token) = r.opt_text("access_token")? else {
                return Ok(None);
            };
            Ok(Some(BankTokens {
                access_token: keys.open_text(place("access_token", &at), access_token)?,
                refresh_token: keys
                    .open_opt_text(place("refresh_token", &at), r.opt_text("refresh_token")?)?,
                expires_at: r.opt_ts("token_expires_at")?,
            }))
        })
    }

    /// Authorised consents whose scheduled refresh is due, oldest due first, each with the
    /// unattended refreshes it made on `today`.
    pub async fn consents_due(
        &self,
        now: OffsetDateTime,
        today: Date,
        limit: u32,
    ) -> Result<Vec<DueConsent>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                consent_columns!(),
                ", CASE WHEN unattended_day = $3 THEN unattended_used ELSE 0 END AS used_today \
                 FROM consents WHERE status = 'authorised' AND reconnect_required = $2 \
                 AND next_refresh_at <= $1 ORDER BY next_refresh_at LIMIT $4"
            ))
            .bind(Ts(now))
            .bind(false)
            .bind(ymd(today))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(DueConsent {
                        consent: consent_from_row(r)?,
                        unattended_used: r.i64("used_today")?.clamp(0, i64::from(u32::MAX)) as u32,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Authorised consents whose expiry is at or before `at`.
    pub async fn consents_expiring_by(
        &self,
        at: OffsetDateTime,
        only_unwarned: bool,
        limit: u32,
    ) -> Result<Vec<Consent>> {
        let filter = if only_unwarned {
            "status = 'authorised' AND expires_at <= $1 AND expiring_notified = $2 ORDER BY expires_at"
        } else {
            "status = 'authorised' AND expires_at <= $1 AND $2 = $2 ORDER BY expires_at"
        };
        self.consents_where(filter, at, limit).await
    }

    async fn consents_where(
        &self,
        filter: &str,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Consent>> {
        let sql = format!(
            "SELECT {} FROM consents WHERE {filter} LIMIT {limit}",
            consent_columns!()
        );
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(Ts(at))
                .bind(false)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(consent_from_row)
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)
        })
    }
}
