//! Berlin Group NextGenPSD2 XS2A 1.3.
//!
//! Its quirks, handled here: every call carries `X-Request-ID` and data calls `Consent-ID`;
//! amounts are signed strings; transactions come as `booked[]` and `pending[]` with
//! `_links.next`; ids carry no immutability promise; errors are `tppMessages` codes
//! (`CONSENT_EXPIRED`, `CONSENT_INVALID`, `ACCESS_EXCEEDED` — a 429 with no `Retry-After`
//! that lasts until the next day).

use std::time::Duration;

use freshet_model::{ConsentStatus, ResultCode, reconcile::TxnStatus};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

use crate::{
    BankAccount, BankBalance, BankConsent, BankError, BankTxn, ConsentRequest, Session,
    http::{Api, by_status, extend_page, first_text},
};

const MAX_PAGES: usize = 500;
const YMD: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

#[derive(Clone, Debug)]
pub struct Berlin {
    pub(crate) api: Api,
}

/// Berlin Group consent statuses in freshet's words.
pub fn consent_status(s: &str) -> ConsentStatus {
    match s {
        "received" | "partiallyAuthorised" => ConsentStatus::AwaitingAuthorisation,
        "valid" => ConsentStatus::Authorised,
        "rejected" => ConsentStatus::Rejected,
        "revokedByPsu" | "terminatedByTpp" => ConsentStatus::Revoked,
        "expired" => ConsentStatus::Expired,
        _ => ConsentStatus::Error,
    }
}

fn map_error(status: StatusCode, _: &HeaderMap, body: &Value) -> BankError {
    let code = first_text(body, "tppMessages", "code");
    let result = match code.as_str() {
        "CONSENT_EXPIRED" | "RESOURCE_EXPIRED" => ResultCode::ConnectionExpired,
        "CONSENT_INVALID" => ResultCode::ConnectionRevoked,
        "CONSENT_UNKNOWN" => ResultCode::ConsentNotFound,
        c if c.starts_with("TOKEN_") => ResultCode::AuthExpired,
        "ACCESS_EXCEEDED" => ResultCode::ProviderRequestLimit,
        "SERVICE_UNAVAILABLE" => ResultCode::ProviderMaintenance,
        _ => by_status(status),
    };
    let mut err = BankError::new(
        result,
        format!(
            "Berlin Group {status} {code} {}",
            first_text(body, "tppMessages", "text")
        )
        .trim()
        .to_string(),
    );
    if result == ResultCode::ProviderRequestLimit {
        // The daily budget resets at the start of the next (UTC) day.
        let now = OffsetDateTime::now_utc();
        let midnight = (now.date() + time::Duration::DAY).midnight().assume_utc();
        err.retry_after = Some(Duration::from_secs(
            (midnight - now).whole_seconds().max(1) as u64
        ));
    }
    err
}

fn amount(v: &Value) -> Result<Decimal, BankError> {
    let raw = v["amount"].as_str().unwrap_or_default();
    raw.parse().map_err(|_| {
        BankError::new(
            ResultCode::ProviderFailure,
            format!("Berlin Group amount `{raw}`"),
        )
    })
}

impl Berlin {
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    fn headers(&self, req: RequestBuilder, customer_ip: Option<&str>) -> RequestBuilder {
        let req = req.header("X-Request-ID", uuid::Uuid::now_v7().to_string());
        match customer_ip {
            Some(ip) => req.header("PSU-IP-Address", ip),
            None => req,
        }
    }

    fn data(&self, req: RequestBuilder, s: &Session<'_>) -> RequestBuilder {
        self.headers(req, s.customer_ip)
            .bearer_auth(s.access_token)
            .header("Consent-ID", s.bank_consent_id)
    }

    pub async fn create_consent(&self, r: &ConsentRequest) -> Result<BankConsent, BankError> {
        let valid_until = r
            .expires_at
            .map(|t| t.date())
            .unwrap_or(time::macros::date!(9999 - 12 - 31));
        let body = json!({
            "access": {"allPsd2": "allAccounts"},
            "recurringIndicator": true,
            "validUntil": valid_until.format(YMD).unwrap_or_default(),
            "frequencyPerDay": 4,
            "combinedServiceIndicator": false,
        });
        let mut req = self
            .headers(
                self.api.post(&self.api.url("/v1/consents")),
                r.customer_ip.as_deref(),
            )
            .json(&body);
        if let Some(uri) = &r.redirect_uri {
            // Redirect SCA: the bank sends the customer back here, whatever they decide.
            req = req
                .header("TPP-Redirect-URI", uri)
                .header("TPP-Nok-Redirect-URI", uri);
        }
        let out = self.api.json(req, map_error).await?;
        let id = out["consentId"].as_str().ok_or_else(|| {
            BankError::new(
                ResultCode::ProviderFailure,
                "Berlin Group consent without consentId",
            )
        })?;
        Ok(BankConsent {
            bank_consent_id: id.to_string(),
            status: consent_status(out["consentStatus"].as_str().unwrap_or_default()),
            expires_at: r.expires_at,
        })
    }

    /// The consent resource: its status, and the `validUntil` the bank granted, which may be
    /// shorter than the one asked for.
    pub async fn consent_details(&self, s: &Session<'_>) -> Result<BankConsent, BankError> {
        let url = self.api.url(&format!("/v1/consents/{}", s.bank_consent_id));
        let out = self
            .api
            .json(self.data(self.api.get(&url), s), map_error)
            .await?;
        let valid_until = out["validUntil"]
            .as_str()
            .and_then(|d| time::Date::parse(d, YMD).ok())
            // Valid through that day: it ends at the next midnight.
            .map(|d| (d + time::Duration::DAY).midnight().assume_utc());
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status(out["consentStatus"].as_str().unwrap_or_default()),
            expires_at: valid_until.filter(|d| d.year() < 9999),
        })
    }

    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        let out = self
            .api
            .json(
                self.data(self.api.get(&self.api.url("/v1/accounts")), s),
                map_error,
            )
            .await?;
        Ok(out["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some(BankAccount {
                    id: a["resourceId"].as_str()?.to_string(),
                    currency: a["currency"].as_str().unwrap_or("XXX").to_string(),
                    name: a["name"]
                        .as_str()
                        .or(a["product"].as_str())
                        .map(str::to_string),
                    kind: a["cashAccountType"].as_str().map(str::to_string),
                    identification: a["iban"]
                        .as_str()
                        .or(a["bban"].as_str())
                        .map(str::to_string),
                })
            })
            .collect())
    }

    pub async fn balances(
        &self,
        s: &Session<'_>,
        account: &str,
    ) -> Result<Vec<BankBalance>, BankError> {
        let url = self.api.url(&format!("/v1/accounts/{account}/balances"));
        let out = self
            .api
            .json(self.data(self.api.get(&url), s), map_error)
            .await?;
        out["balances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                Ok(BankBalance {
                    kind: b["balanceType"].as_str().unwrap_or("unknown").to_string(),
                    amount: amount(&b["balanceAmount"])?,
                    currency: b["balanceAmount"]["currency"]
                        .as_str()
                        .unwrap_or("XXX")
                        .to_string(),
                    at: b["lastChangeDateTime"]
                        .as_str()
                        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                        .or_else(|| {
                            b["referenceDate"]
                                .as_str()
                                .and_then(|d| Date::parse(d, YMD).ok())
                                .map(|d| d.midnight().assume_utc())
                        }),
                })
            })
            .collect()
    }

    pub async fn transactions(
        &self,
        s: &Session<'_>,
        account: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<BankTxn>, BankError> {
        let mut next = Some(self.api.url(&format!(
            "/v1/accounts/{account}/transactions?bookingStatus=both&dateFrom={}&dateTo={}",
            from.format(YMD).unwrap_or_default(),
            to.format(YMD).unwrap_or_default()
        )));
        // (rows, where the previous page's rows start), booked then pending.
        let mut lists = [(Vec::new(), 0), (Vec::new(), 0)];
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let mut page = self
                .api
                .json(self.data(self.api.get(&url), s), map_error)
                .await?;
            let t = &mut page["transactions"];
            for ((rows, previous), list) in lists.iter_mut().zip(["booked", "pending"]) {
                let page_rows = t[list]
                    .as_array_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                *previous = extend_page(rows, *previous, page_rows);
            }
            next = t["_links"]["next"]["href"]
                .as_str()
                .map(|n| self.api.url(n));
        }
        let [(booked, _), (pending, _)] = lists;
        booked
            .iter()
            .map(|row| self.txn(row, TxnStatus::Booked))
            .chain(pending.iter().map(|row| self.txn(row, TxnStatus::Pending)))
            .collect()
    }

    fn txn(&self, t: &Value, status: TxnStatus) -> Result<BankTxn, BankError> {
        let date = t["bookingDate"]
            .as_str()
            .or(t["valueDate"].as_str())
            .or(t["transactionDate"].as_str());
        let description = t["remittanceInformationUnstructured"]
            .as_str()
            .or(t["creditorName"].as_str())
            .or(t["debtorName"].as_str())
            .unwrap_or_default();
        Ok(BankTxn {
            provider_id: t["transactionId"]
                .as_str()
                .or(t["entryReference"].as_str())
                .map(str::to_string),
            immutable_id: false,
            status,
            booking_date: date.and_then(|d| Date::parse(d, YMD).ok()).ok_or_else(|| {
                BankError::new(
                    ResultCode::ProviderFailure,
                    "Berlin Group transaction without a date",
                )
            })?,
            amount: amount(&t["transactionAmount"])?,
            currency: t["transactionAmount"]["currency"]
                .as_str()
                .unwrap_or("XXX")
                .to_string(),
            description: description.to_string(),
        })
    }

    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        let url = self.api.url(&format!("/v1/consents/{}", s.bank_consent_id));
        self.api
            .json(self.data(self.api.delete(&url), s), map_error)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(code: &str) -> Value {
        json!({"tppMessages": [{"category": "ERROR", "code": code, "text": "x"}]})
    }

    #[test]
    fn errors_map_to_result_codes() {
        let h = HeaderMap::new();
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &msg("CONSENT_EXPIRED")).result,
            ResultCode::ConnectionExpired
        );
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &msg("CONSENT_INVALID")).result,
            ResultCode::ConnectionRevoked
        );
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &msg("TOKEN_EXPIRED")).result,
            ResultCode::AuthExpired
        );
        assert_eq!(
            map_error(StatusCode::FORBIDDEN, &h, &msg("CONSENT_UNKNOWN")).result,
            ResultCode::ConsentNotFound
        );
        let limit = map_error(StatusCode::TOO_MANY_REQUESTS, &h, &msg("ACCESS_EXCEEDED"));
        assert_eq!(limit.result, ResultCode::ProviderRequestLimit);
        assert!(
            limit.retry_after.unwrap() <= Duration::from_secs(86_400),
            "until the next day"
        );
        assert_eq!(
            map_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &h,
                &msg("SERVICE_UNAVAILABLE")
            )
            .result,
            ResultCode::ProviderMaintenance
        );
        assert_eq!(
            map_error(StatusCode::INTERNAL_SERVER_ERROR, &h, &Value::Null).result,
            ResultCode::ProviderFailure
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(consent_status("valid"), ConsentStatus::Authorised);
        assert_eq!(
            consent_status("received"),
            ConsentStatus::AwaitingAuthorisation
        );
        assert_eq!(consent_status("terminatedByTpp"), ConsentStatus::Revoked);
        assert_eq!(consent_status("expired"), ConsentStatus::Expired);
    }

    #[test]
    fn amounts_keep_their_sign() {
        assert_eq!(
            amount(&json!({"amount": "-12.5", "currency": "EUR"})).unwrap(),
            Decimal::new(-125, 1)
        );
    }
}
