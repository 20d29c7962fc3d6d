//! Open Finance Brasil: consents v2 and accounts v2.
//!
//! Its quirks, handled here: consents name the customer's CPF (`loggedUser.document`);
//! statuses are upper snake case with a `rejection.reason` that tells revocation and expiry
//! apart; amounts are unsigned with `creditDebitType`; `transactionId` is immutable once the
//! transaction is `TRANSACAO_EFETIVADA`; paging is `links.next`; 529 means overloaded.

use freshet_model::{ConsentStatus, ResultCode, events::Permission, reconcile::TxnStatus};
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
const CONSENTS: &str = "/open-banking/consents/v2/consents";
const ACCOUNTS: &str = "/open-banking/accounts/v2/accounts";
const YMD: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

#[derive(Clone, Debug)]
pub struct Brasil {
    pub(crate) api: Api,
}

/// The Brasil permissions for freshet's permission groups.
pub fn permissions(groups: &[Permission]) -> Vec<&'static str> {
    let mut p = vec![
        "ACCOUNTS_READ",
        "ACCOUNTS_BALANCES_READ",
        "ACCOUNTS_TRANSACTIONS_READ",
        "RESOURCES_READ",
    ];
    if groups.contains(&Permission::RegistrationAll) {
        p.push("CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ");
    }
    if groups.contains(&Permission::CreditCardsAll) {
        p.extend([
            "CREDIT_CARDS_ACCOUNTS_READ",
            "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
        ]);
    }
    p
}

/// A Brasil consent's status in freshet's words, telling rejections apart by their reason.
pub fn consent_status(data: &Value) -> ConsentStatus {
    match data["status"].as_str().unwrap_or_default() {
        "AWAITING_AUTHORISATION" => ConsentStatus::AwaitingAuthorisation,
        "AUTHORISED" | "AUTHORIZED" => ConsentStatus::Authorised,
        "REJECTED" => match data["rejection"]["reason"]["code"]
            .as_str()
            .unwrap_or_default()
        {
            "CUSTOMER_MANUALLY_REVOKED" => ConsentStatus::Revoked,
            "CONSENT_EXPIRED" | "CONSENT_MAX_DATE_REACHED" => ConsentStatus::Expired,
            "CONSENT_TECHNICAL_ISSUE" | "INTERNAL_SECURITY_REASON" => ConsentStatus::Error,
            _ => ConsentStatus::Rejected,
        },
        _ => ConsentStatus::Error,
    }
}

fn map_error(status: StatusCode, _: &HeaderMap, body: &Value) -> BankError {
    let code = first_text(body, "errors", "code");
    let result = match status.as_u16() {
        401 => ResultCode::ConnectionExpired,
        403 => ResultCode::ConnectionRevoked,
        422 if code.contains("CONSENT") || code.contains("CONSENTIMENTO") => {
            ResultCode::ConnectionRevoked
        }
        529 => ResultCode::ProviderUnavailable,
        _ => by_status(status),
    };
    BankError::new(
        result,
        format!(
            "Open Finance Brasil {status} {code} {}",
            first_text(body, "errors", "detail")
        )
        .trim()
        .to_string(),
    )
}

fn unsigned(v: &Value) -> Result<Decimal, BankError> {
    let raw = v["amount"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v["amount"].to_string());
    raw.parse().map_err(|_| {
        BankError::new(
            ResultCode::ProviderFailure,
            format!("Open Finance Brasil amount `{raw}`"),
        )
    })
}

impl Brasil {
    pub fn new(api: Api) -> Self {
        Self { api }
    }

    fn data(&self, req: RequestBuilder, s: &Session<'_>) -> RequestBuilder {
        let req = req
            .bearer_auth(s.access_token)
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string());
        match s.customer_ip {
            Some(ip) => req.header("x-customer-ip-address", ip),
            None => req,
        }
    }

    pub async fn create_consent(&self, r: &ConsentRequest) -> Result<BankConsent, BankError> {
        let expires = r
            .expires_at
            .unwrap_or_else(|| freshet_model::time::now() + time::Duration::days(365));
        let mut data = json!({
            "permissions": permissions(&r.permissions),
            "expirationDateTime": expires.format(&Rfc3339).unwrap_or_default(),
        });
        if let Some(cpf) = &r.customer_tax_id {
            data["loggedUser"] = json!({"document": {"identification": cpf, "rel": "CPF"}});
        }
        let req = self
            .client_auth(self.api.post(&self.api.url(CONSENTS)))
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string())
            .json(&json!({"data": data}));
        let out = self.api.json(req, map_error).await?;
        let d = &out["data"];
        let id = d["consentId"].as_str().ok_or_else(|| {
            BankError::new(
                ResultCode::ProviderFailure,
                "Open Finance Brasil consent without consentId",
            )
        })?;
        Ok(BankConsent {
            bank_consent_id: id.to_string(),
            status: consent_status(d),
            expires_at: d["expirationDateTime"]
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
                .or(Some(expires)),
        })
    }

    /// A client-credentials token on a consent call, where the bank demands one (FAPI-BR).
    async fn client_auth(&self, req: RequestBuilder) -> Result<RequestBuilder, BankError> {
        if self.api.provider.security.is_none() {
            return Ok(req);
        }
        Ok(req.bearer_auth(self.api.client_token("consents").await?))
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
        let url = self.api.url(&format!("{CONSENTS}/{}", s.bank_consent_id));
        let req = self.consent_call(self.api.get(&url), s).await?;
        let out = self.api.json(req, map_error).await?;
        let d = &out["data"];
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status(d),
            expires_at: d["expirationDateTime"]
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
        })
    }

    async fn pages(&self, s: &Session<'_>, first: String) -> Result<Vec<Value>, BankError> {
        let mut rows = Vec::new();
        let mut previous = 0;
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let out = self
                .api
                .json(self.data(self.api.get(&url), s), map_error)
                .await?;
            previous = extend_page(
                &mut rows,
                previous,
                out["data"].as_array().cloned().unwrap_or_default(),
            );
            next = out["links"]["next"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(|n| self.api.url(n));
        }
        Ok(rows)
    }

    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        let rows = self.pages(s, self.api.url(ACCOUNTS)).await?;
        Ok(rows
            .iter()
            .filter_map(|a| {
                let branch = a["branchCode"].as_str().unwrap_or_default();
                let number = a["number"].as_str().unwrap_or_default();
                let digit = a["checkDigit"].as_str().unwrap_or_default();
                Some(BankAccount {
                    id: a["accountId"].as_str()?.to_string(),
                    currency: "BRL".into(),
                    name: a["brandName"].as_str().map(str::to_string),
                    kind: a["type"].as_str().map(str::to_string),
                    identification: (!number.is_empty())
                        .then(|| format!("{branch} {number}-{digit}")),
                })
            })
            .collect())
    }

    pub async fn balances(
        &self,
        s: &Session<'_>,
        account: &str,
    ) -> Result<Vec<BankBalance>, BankError> {
        let url = self.api.url(&format!("{ACCOUNTS}/{account}/balances"));
        let out = self
            .api
            .json(self.data(self.api.get(&url), s), map_error)
            .await?;
        let d = &out["data"];
        let at = d["updateDateTime"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        [
            "availableAmount",
            "blockedAmount",
            "automaticallyInvestedAmount",
        ]
        .iter()
        .filter(|k| d[**k].is_object())
        .map(|k| {
            Ok(BankBalance {
                kind: k.trim_end_matches("Amount").to_uppercase(),
                amount: unsigned(&d[*k])?,
                currency: d[*k]["currency"].as_str().unwrap_or("BRL").to_string(),
                at,
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
            "{ACCOUNTS}/{account}/transactions?fromBookingDate={}&toBookingDate={}&page-size=1000",
            from.format(YMD).unwrap_or_default(),
            to.format(YMD).unwrap_or_default()
        ));
        let rows = self.pages(s, first).await?;
        rows.iter()
            .map(|t| {
                let settled = t["completedAuthorisedPaymentType"] == "TRANSACAO_EFETIVADA";
                let amount = unsigned(&t["transactionAmount"])?;
                let when = t["transactionDateTime"]
                    .as_str()
                    .or(t["transactionDate"].as_str())
                    .unwrap_or_default();
                Ok(BankTxn {
                    provider_id: t["transactionId"].as_str().map(str::to_string),
                    immutable_id: settled,
                    status: if settled {
                        TxnStatus::Booked
                    } else {
                        TxnStatus::Pending
                    },
                    booking_date: when
                        .get(..10)
                        .and_then(|d| Date::parse(d, YMD).ok())
                        .ok_or_else(|| {
                            BankError::new(
                                ResultCode::ProviderFailure,
                                "Open Finance Brasil transaction without a date",
                            )
                        })?,
                    amount: if t["creditDebitType"] == "DEBITO" {
                        -amount
                    } else {
                        amount
                    },
                    currency: t["transactionAmount"]["currency"]
                        .as_str()
                        .unwrap_or("BRL")
                        .to_string(),
                    description: t["transactionName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect()
    }

    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        let url = self.api.url(&format!("{CONSENTS}/{}", s.bank_consent_id));
        let req = self.consent_call(self.api.delete(&url), s).await?;
        self.api.json(req, map_error).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rejections_are_told_apart_by_reason() {
        let revoked = json!({"status": "REJECTED", "rejection": {"rejectedBy": "USER", "reason": {"code": "CUSTOMER_MANUALLY_REVOKED"}}});
        assert_eq!(consent_status(&revoked), ConsentStatus::Revoked);
        let expired = json!({"status": "REJECTED", "rejection": {"reason": {"code": "CONSENT_MAX_DATE_REACHED"}}});
        assert_eq!(consent_status(&expired), ConsentStatus::Expired);
        let rejected = json!({"status": "REJECTED", "rejection": {"reason": {"code": "CUSTOMER_MANUALLY_REJECTED"}}});
        assert_eq!(consent_status(&rejected), ConsentStatus::Rejected);
        assert_eq!(
            consent_status(&json!({"status": "AUTHORISED"})),
            ConsentStatus::Authorised
        );
    }

    #[test]
    fn errors_map_to_result_codes() {
        let h = HeaderMap::new();
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &Value::Null).result,
            ResultCode::ConnectionExpired
        );
        assert_eq!(
            map_error(StatusCode::TOO_MANY_REQUESTS, &h, &Value::Null).result,
            ResultCode::ProviderRequestLimit
        );
        assert_eq!(
            map_error(StatusCode::from_u16(529).unwrap(), &h, &Value::Null).result,
            ResultCode::ProviderUnavailable
        );
        assert_eq!(
            map_error(StatusCode::GATEWAY_TIMEOUT, &h, &Value::Null).result,
            ResultCode::ProviderTimeout
        );
    }

    #[test]
    fn permissions_always_cover_a_refresh() {
        let p = permissions(&[Permission::AccountsAll]);
        assert!(p.contains(&"ACCOUNTS_TRANSACTIONS_READ") && p.contains(&"RESOURCES_READ"));
        assert!(permissions(&[Permission::CreditCardsAll]).contains(&"CREDIT_CARDS_ACCOUNTS_READ"));
    }
}
