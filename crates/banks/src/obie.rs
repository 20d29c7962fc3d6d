//! UK Open Banking Read/Write Account and Transaction API v3.1.
//!
//! Its quirks, handled here: amounts are unsigned strings with a `CreditDebitIndicator`;
//! a consent revoked or expired at the bank keeps `Status: Authorised` and data calls answer
//! 401 with no body; re-authentication is 403 `UK.OBIE.Reauthenticate`; unknown ids are 400
//! `UK.OBIE.Resource.NotFound`; paging is `Links.Next`, absent on the last page.

use freshet_model::{ConsentStatus, ResultCode, events::Permission, reconcile::TxnStatus};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    BankAccount, BankBalance, BankConsent, BankError, BankTxn, ConsentRequest, Session,
    http::{Api, by_status, extend_page, first_text},
};

/// Pages followed at most, in case a bank's `Next` links loop.
const MAX_PAGES: usize = 500;

#[derive(Clone, Debug)]
pub struct Obie {
    pub(crate) api: Api,
}

/// The OBIE permissions for freshet's permission groups. Refreshing always needs the account,
/// balance and transaction reads; registration data adds the party.
pub fn permissions(groups: &[Permission]) -> Vec<&'static str> {
    let mut p = vec![
        "ReadAccountsDetail",
        "ReadBalances",
        "ReadTransactionsDetail",
        "ReadTransactionsCredits",
        "ReadTransactionsDebits",
    ];
    if groups.contains(&Permission::RegistrationAll) {
        p.push("ReadParty");
    }
    p
}

/// OBIE consent statuses in freshet's words. (`Revoked` existed before 3.1.4.)
pub fn consent_status(s: &str) -> ConsentStatus {
    match s {
        "AwaitingAuthorisation" => ConsentStatus::AwaitingAuthorisation,
        "Authorised" => ConsentStatus::Authorised,
        "Rejected" => ConsentStatus::Rejected,
        "Revoked" => ConsentStatus::Revoked,
        _ => ConsentStatus::Error,
    }
}

fn map_error(status: StatusCode, _: &HeaderMap, body: &Value) -> BankError {
    let code = first_text(body, "Errors", "ErrorCode");
    let result = match (status.as_u16(), code.as_str()) {
        (400, "UK.OBIE.Resource.NotFound") => ResultCode::ConsentNotFound,
        (400, _) => ResultCode::ProviderFailure,
        (403, "UK.OBIE.Reauthenticate") => ResultCode::ConnectionReauthenticate,
        (403, _) => ResultCode::ConnectionRevoked,
        _ => by_status(status),
    };
    let message = body["Message"].as_str().unwrap_or_default();
    BankError::new(
        result,
        format!("OBIE {status} {code} {message}").trim().to_string(),
    )
}

fn amount(v: &Value) -> Result<Decimal, BankError> {
    let raw = v["Amount"]["Amount"].as_str().unwrap_or_default();
    let unsigned: Decimal = raw
        .parse()
        .map_err(|_| BankError::new(ResultCode::ProviderFailure, format!("OBIE amount `{raw}`")))?;
    Ok(if v["CreditDebitIndicator"] == "Debit" {
        -unsigned
    } else {
        unsigned
    })
}

fn date_of(v: &Value) -> Option<Date> {
    let s = v.as_str()?;
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.date())
        .ok()
        .or_else(|| {
            Date::parse(
                s.get(..10)?,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()
        })
}

impl Obie {
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    fn data(&self, req: RequestBuilder, s: &Session<'_>) -> RequestBuilder {
        let mut req = req
            .bearer_auth(s.access_token)
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string());
        if let Some(at) = s.auth_date {
            req = req.header("x-fapi-auth-date", crate::http::http_date(at));
        }
        match s.customer_ip {
            Some(ip) => req.header("x-fapi-customer-ip-address", ip),
            None => req,
        }
    }

    pub async fn create_consent(&self, r: &ConsentRequest) -> Result<BankConsent, BankError> {
        let mut data = json!({
            "Permissions": permissions(&r.permissions),
            "TransactionFromDateTime": format!("{}T00:00:00+00:00", r.history_from),
        });
        if let Some(exp) = r.expires_at {
            data["ExpirationDateTime"] = json!(exp.format(&Rfc3339).unwrap_or_default());
        }
        let req = self
            .client_auth(self.api.post(&self.api.url("/account-access-consents")))
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string())
            .json(&json!({"Data": data, "Risk": {}}));
        let body = self.api.json(req, map_error).await?;
        let d = &body["Data"];
        let id = d["ConsentId"].as_str().ok_or_else(|| {
            BankError::new(
                ResultCode::ProviderFailure,
                "OBIE consent without ConsentId",
            )
        })?;
        Ok(BankConsent {
            bank_consent_id: id.to_string(),
            status: consent_status(d["Status"].as_str().unwrap_or_default()),
            expires_at: d["ExpirationDateTime"]
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
        })
    }

    /// A client-credentials token on a consent call, where the bank demands one (FAPI);
    /// without credentials the request goes as it is.
    async fn client_auth(&self, req: RequestBuilder) -> Result<RequestBuilder, BankError> {
        if self.api.provider.security.is_none() {
            return Ok(req);
        }
        Ok(req.bearer_auth(self.api.client_token("accounts").await?))
    }

    /// A consent call: the client's token where the bank demands one, else the consent's.
    async fn consent_call(
        &self,
        req: RequestBuilder,
        s: &Session<'_>,
    ) -> Result<RequestBuilder, BankError> {
        if self.api.provider.security.is_none() {
            return Ok(self.data(req, s));
        }
        Ok(self
            .client_auth(req)
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string()))
    }

    pub async fn consent_details(&self, s: &Session<'_>) -> Result<BankConsent, BankError> {
        let url = self
            .api
            .url(&format!("/account-access-consents/{}", s.bank_consent_id));
        let req = self.consent_call(self.api.get(&url), s).await?;
        let body = self.api.json(req, map_error).await?;
        let d = &body["Data"];
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status(d["Status"].as_str().unwrap_or_default()),
            expires_at: d["ExpirationDateTime"]
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
        })
    }

    /// Every page of a list, from `Links.Next`.
    async fn pages(
        &self,
        s: &Session<'_>,
        first: String,
        list: &str,
    ) -> Result<Vec<Value>, BankError> {
        let mut rows = Vec::new();
        let mut previous = 0;
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let body = self
                .api
                .json(self.data(self.api.get(&url), s), map_error)
                .await?;
            previous = extend_page(
                &mut rows,
                previous,
                body["Data"][list].as_array().cloned().unwrap_or_default(),
            );
            next = body["Links"]["Next"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(|n| self.api.url(n));
        }
        Ok(rows)
    }

    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        let rows = self.pages(s, self.api.url("/accounts"), "Account").await?;
        Ok(rows
            .iter()
            .filter_map(|a| {
                Some(BankAccount {
                    id: a["AccountId"].as_str()?.to_string(),
                    currency: a["Currency"].as_str().unwrap_or("XXX").to_string(),
                    name: a["Nickname"]
                        .as_str()
                        .or(a["Account"][0]["Name"].as_str())
                        .map(str::to_string),
                    kind: match (a["AccountType"].as_str(), a["AccountSubType"].as_str()) {
                        (Some(t), Some(st)) => Some(format!("{t}/{st}")),
                        (t, st) => t.or(st).map(str::to_string),
                    },
                    identification: a["Account"][0]["Identification"]
                        .as_str()
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
        let rows = self
            .pages(
                s,
                self.api.url(&format!("/accounts/{account}/balances")),
                "Balance",
            )
            .await?;
        rows.iter()
            .map(|b| {
                Ok(BankBalance {
                    kind: b["Type"].as_str().unwrap_or("Unknown").to_string(),
                    amount: amount(b)?,
                    currency: b["Amount"]["Currency"]
                        .as_str()
                        .unwrap_or("XXX")
                        .to_string(),
                    at: b["DateTime"]
                        .as_str()
                        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
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
        let first = self.api.url(&format!(
            "/accounts/{account}/transactions?fromBookingDateTime={from}T00:00:00&toBookingDateTime={to}T23:59:59"
        ));
        let rows = self.pages(s, first, "Transaction").await?;
        rows.iter()
            .filter(|t| t["Status"] != "Rejected")
            .map(|t| {
                let status = if t["Status"] == "Pending" {
                    TxnStatus::Pending
                } else {
                    TxnStatus::Booked
                };
                let mutability = t["TransactionMutability"].as_str();
                Ok(BankTxn {
                    provider_id: t["TransactionId"].as_str().map(str::to_string),
                    immutable_id: mutability == Some("Immutable")
                        || (mutability.is_none() && status == TxnStatus::Booked),
                    status,
                    booking_date: date_of(&t["BookingDateTime"]).ok_or_else(|| {
                        BankError::new(
                            ResultCode::ProviderFailure,
                            "OBIE transaction without BookingDateTime",
                        )
                    })?,
                    amount: amount(t)?,
                    currency: t["Amount"]["Currency"]
                        .as_str()
                        .unwrap_or("XXX")
                        .to_string(),
                    description: t["TransactionInformation"]
                        .as_str()
                        .or(t["MerchantDetails"]["MerchantName"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect()
    }

    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        let url = self
            .api
            .url(&format!("/account-access-consents/{}", s.bank_consent_id));
        let req = self.consent_call(self.api.delete(&url), s).await?;
        self.api.json(req, map_error).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_map_to_result_codes() {
        let h = HeaderMap::new();
        let reauth = json!({"Code": "403", "Errors": [{"ErrorCode": "UK.OBIE.Reauthenticate"}]});
        assert_eq!(
            map_error(StatusCode::FORBIDDEN, &h, &reauth).result,
            ResultCode::ConnectionReauthenticate
        );
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &Value::Null).result,
            ResultCode::ConnectionExpired
        );
        let missing = json!({"Errors": [{"ErrorCode": "UK.OBIE.Resource.NotFound"}]});
        assert_eq!(
            map_error(StatusCode::BAD_REQUEST, &h, &missing).result,
            ResultCode::ConsentNotFound
        );
        assert_eq!(
            map_error(StatusCode::TOO_MANY_REQUESTS, &h, &Value::Null).result,
            ResultCode::ProviderRequestLimit
        );
        assert_eq!(
            map_error(StatusCode::INTERNAL_SERVER_ERROR, &h, &Value::Null).result,
            ResultCode::ProviderFailure
        );
        assert_eq!(
            map_error(StatusCode::SERVICE_UNAVAILABLE, &h, &Value::Null).result,
            ResultCode::ProviderMaintenance
        );
    }

    #[test]
    fn amounts_are_signed_by_the_indicator() {
        let debit = json!({"Amount": {"Amount": "12.30", "Currency": "GBP"}, "CreditDebitIndicator": "Debit"});
        assert_eq!(amount(&debit).unwrap(), Decimal::new(-1230, 2));
        let credit = json!({"Amount": {"Amount": "0.10", "Currency": "GBP"}, "CreditDebitIndicator": "Credit"});
        assert_eq!(amount(&credit).unwrap(), Decimal::new(10, 2));
        assert!(amount(&json!({"Amount": {"Amount": "x"}})).is_err());
    }

    #[test]
    fn statuses_and_dates() {
        assert_eq!(consent_status("Authorised"), ConsentStatus::Authorised);
        assert_eq!(consent_status("Weird"), ConsentStatus::Error);
        assert_eq!(
            date_of(&json!("2026-11-20T10:00:00+00:00")),
            Some(time::macros::date!(2026 - 11 - 20))
        );
        assert_eq!(
            date_of(&json!("2026-11-20T10:00:00")),
            Some(time::macros::date!(2026 - 11 - 20))
        );
        assert_eq!(date_of(&json!(null)), None);
    }
}
