//! Berlin Group NextGenPSD2 XS2A 1.3.
//!
//! Its quirks, handled here: every call carries `X-Request-ID` and data calls `Consent-ID`;
//! amounts are signed strings; transactions come as `booked[]` and `pending[]` with
//! `_links.next`; ids carry no immutability promise; errors are `tppMessages` codes
//! (`CONSENT_EXPIRED`, `CONSENT_INVALID`, `ACCESS_EXCEEDED` — a 429 with no `Retry-After`
//! that lasts until the next day).

mod wire;

use std::time::Duration;

use freshet_model::{ConsentStatus, ResultCode, reconcile::TxnStatus};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

use crate::{
    BankAccount, BankBalance, BankConsent, BankError, BankTxn, ConsentRequest, Session,
    http::{Api, by_status},
    wire::{
        FieldError, Rows, YMD, convert_rows, extend_page, lenient, malformed, parse, raw_rows,
        with_raw,
    },
};

const MAX_PAGES: usize = 500;

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
    let body: wire::ErrorResponse = lenient(body);
    let first = body.tpp_messages.first();
    let code = first.and_then(|m| m.code.as_deref()).unwrap_or_default();
    let text = first.and_then(|m| m.text.as_deref()).unwrap_or_default();
    let result = match code {
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
        format!("Berlin Group {status} {code} {text}")
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

fn account(a: wire::Account) -> BankAccount {
    BankAccount {
        id: a.resource_id,
        currency: a.currency,
        name: a.name.or(a.product),
        kind: a.cash_account_type,
        identification: a.iban.or(a.bban),
    }
}

fn balance(b: wire::Balance) -> BankBalance {
    BankBalance {
        kind: b.balance_type,
        amount: b.balance_amount.amount.0,
        currency: b.balance_amount.currency,
        at: b
            .last_change_date_time
            .map(|t| t.0)
            .or_else(|| b.reference_date.map(|d| d.0.midnight().assume_utc())),
    }
}

/// A transaction of the `booked` or `pending` list; Berlin Group ids carry no immutability
/// promise.
fn transaction(t: wire::Transaction, status: TxnStatus) -> Result<BankTxn, FieldError> {
    let date = t
        .booking_date
        .or(t.value_date)
        .or(t.transaction_date)
        .ok_or((
            "bookingDate",
            "missing field, and no valueDate either".to_string(),
        ))?;
    Ok(BankTxn {
        provider_id: t.transaction_id.or(t.entry_reference),
        immutable_id: false,
        status,
        booking_date: date.0,
        amount: t.transaction_amount.amount.0,
        currency: t.transaction_amount.currency,
        description: t
            .remittance_information_unstructured
            .or(t.creditor_name)
            .or(t.debtor_name)
            .unwrap_or_default(),
    })
}

/// One page of transactions: its booked and pending rows, converted and each with the JSON
/// it came from, and the link to the next page.
type TxnPage = ([Rows<BankTxn>; 2], Option<String>);

fn transactions_page(what: &str, mut body: Value) -> Result<TxnPage, BankError> {
    let parsed: wire::TransactionsResponse = parse(what, &body)?;
    let Some(report) = parsed.transactions else {
        if parsed.links.and_then(|l| l.download).is_some() {
            return Err(malformed(
                what,
                "_links.download",
                "the bank offers the report only as a download, which freshet does not read",
            ));
        }
        return Ok(([Vec::new(), Vec::new()], None));
    };
    let booked = convert_rows(what, "transactions.booked", report.booked, |t| {
        transaction(t, TxnStatus::Booked)
    })?;
    let pending = convert_rows(what, "transactions.pending", report.pending, |t| {
        transaction(t, TxnStatus::Pending)
    })?;
    let booked = with_raw(raw_rows(&mut body, "/transactions/booked"), booked);
    let pending = with_raw(raw_rows(&mut body, "/transactions/pending"), pending);
    Ok(([booked, pending], report.links.next.and_then(|n| n.href)))
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
        if let Some(uri) = &r.notification_uri {
            // The bank tells freshet of new transactions there (docs/dialects/tatra.md).
            req = req.header("TPP-Notification-URI", uri);
        }
        let out = self.api.json(req, map_error).await?;
        let created: wire::ConsentCreated = parse("Berlin Group consent", &out)?;
        Ok(BankConsent {
            status: consent_status(&created.consent_status),
            bank_consent_id: created.consent_id,
            expires_at: r.expires_at,
            permissions: None,
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
        let info: wire::ConsentInformation = parse("Berlin Group consent", &out)?;
        let valid_until = time::Date::parse(&info.valid_until, YMD).map_err(|_| {
            BankError::new(
                ResultCode::ProviderFailure,
                format!(
                    "Berlin Group consent: validUntil: `{}` is not a date",
                    info.valid_until
                ),
            )
        })?;
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status(&info.consent_status),
            // Valid through that day: it ends at the next midnight; 9999-12-31 is "no end".
            expires_at: (valid_until.year() < 9999)
                .then(|| (valid_until + time::Duration::DAY).midnight().assume_utc()),
            // The `access` object names accounts and data kinds, not freshet's groups.
            permissions: None,
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
        let list: wire::AccountList = parse("Berlin Group accounts", &out)?;
        Ok(list.accounts.into_iter().map(account).collect())
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
        let list: wire::BalanceResponse = parse("Berlin Group balances", &out)?;
        Ok(list.balances.into_iter().map(balance).collect())
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
        for page_no in 1..=MAX_PAGES {
            let Some(url) = next.take() else { break };
            let body = self
                .api
                .json(self.data(self.api.get(&url), s), map_error)
                .await?;
            let what = match page_no {
                1 => "Berlin Group transactions".to_string(),
                n => format!("Berlin Group transactions, page {n}"),
            };
            let (pages, link) = transactions_page(&what, body)?;
            for ((rows, previous), page) in lists.iter_mut().zip(pages) {
                *previous = extend_page(rows, *previous, page);
            }
            next = link.map(|n| self.api.url(&n));
        }
        let [(booked, _), (pending, _)] = lists;
        Ok(booked.into_iter().chain(pending).map(|(_, t)| t).collect())
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
    use rust_decimal::Decimal;
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;

    fn msg(code: &str) -> Value {
        json!({"tppMessages": [{"category": "ERROR", "code": code, "text": "x"}]})
    }

    /// A booked transaction as the specification's example shows one.
    fn booked() -> Value {
        json!({
            "transactionId": "1234567",
            "creditorName": "John Miles",
            "creditorAccount": {"iban": "DE67100100101306118605"},
            "transactionAmount": {"currency": "EUR", "amount": "-256.67"},
            "bookingDate": "2017-10-25",
            "valueDate": "2017-10-26",
            "remittanceInformationUnstructured": "Example 1"
        })
    }

    fn pending() -> Value {
        json!({
            "transactionId": "1234569",
            "creditorName": "Claude Renault",
            "creditorAccount": {"iban": "FR7612345987650123456789014"},
            "transactionAmount": {"currency": "EUR", "amount": "-100.03"},
            "valueDate": "2017-10-26",
            "remittanceInformationUnstructured": "Example 3"
        })
    }

    fn report(booked: Vec<Value>, pending: Vec<Value>) -> Value {
        json!({
            "account": {"iban": "DE2310010010123456788"},
            "transactions": {
                "booked": booked,
                "pending": pending,
                "_links": {"account": {"href": "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f"},
                           "next": {"href": "/v1/accounts/3dc3d5b3/transactions?page=2"}}
            }
        })
    }

    fn txns(body: Value) -> Result<(Vec<BankTxn>, Option<String>), BankError> {
        let (lists, next) = transactions_page("Berlin Group transactions", body)?;
        Ok((lists.into_iter().flatten().map(|(_, t)| t).collect(), next))
    }

    #[test]
    fn a_report_as_the_specification_shows_it() {
        let mut extra = pending();
        extra["entryDetails"] = json!([{"somethingNew": true}]);
        extra["aBanksOwnField"] = json!("kept out of the way");
        let (got, next) = txns(report(vec![booked()], vec![extra])).unwrap();
        assert_eq!(
            next.as_deref(),
            Some("/v1/accounts/3dc3d5b3/transactions?page=2")
        );
        assert_eq!(
            got,
            vec![
                BankTxn {
                    provider_id: Some("1234567".into()),
                    immutable_id: false,
                    status: TxnStatus::Booked,
                    booking_date: date!(2017 - 10 - 25),
                    amount: Decimal::new(-25667, 2),
                    currency: "EUR".into(),
                    description: "Example 1".into(),
                },
                BankTxn {
                    provider_id: Some("1234569".into()),
                    immutable_id: false,
                    status: TxnStatus::Pending,
                    booking_date: date!(2017 - 10 - 26),
                    amount: Decimal::new(-10003, 2),
                    currency: "EUR".into(),
                    description: "Example 3".into(),
                },
            ]
        );
        let (none, next) = txns(json!({"account": {"iban": "DE2310010010123456788"}})).unwrap();
        assert!(none.is_empty() && next.is_none(), "no report, no rows");
    }

    #[test]
    fn a_missing_or_malformed_field_is_a_provider_failure_naming_it() {
        let mut no_amount = booked();
        no_amount
            .as_object_mut()
            .unwrap()
            .remove("transactionAmount");
        let err = txns(report(vec![booked(), no_amount], vec![])).unwrap_err();
        assert_eq!(err.result, ResultCode::ProviderFailure);
        assert_eq!(
            err.detail,
            "Berlin Group transactions: transactions.booked[1].transactionAmount: missing field"
        );
        let mut undated = pending();
        undated.as_object_mut().unwrap().remove("valueDate");
        let err = txns(report(vec![], vec![undated])).unwrap_err();
        assert_eq!(
            err.detail,
            "Berlin Group transactions: transactions.pending[0].bookingDate: missing field, and no valueDate either"
        );
        let mut bad = booked();
        bad["transactionAmount"]["amount"] = json!("-256,67");
        let err = txns(report(vec![bad], vec![])).unwrap_err();
        assert_eq!(
            err.detail,
            "Berlin Group transactions: transactions.booked[0].transactionAmount.amount: invalid amount `-256,67`"
        );
        let mut bad = booked();
        bad["bookingDate"] = json!("25.10.2017");
        let err = txns(report(vec![bad], vec![])).unwrap_err();
        assert_eq!(
            err.detail,
            "Berlin Group transactions: transactions.booked[0].bookingDate: invalid date `25.10.2017`"
        );
        let mut no_links = report(vec![booked()], vec![]);
        no_links["transactions"]
            .as_object_mut()
            .unwrap()
            .remove("_links");
        assert_eq!(
            txns(no_links).unwrap_err().detail,
            "Berlin Group transactions: transactions._links: missing field"
        );
        let download =
            json!({"_links": {"download": {"href": "/v1/accounts/1/transactions/download/x"}}});
        assert!(
            txns(download)
                .unwrap_err()
                .detail
                .contains("_links.download")
        );
    }

    #[test]
    fn accounts_and_balances_as_the_specification_shows_them() {
        let body = json!({"accounts": [
            {"resourceId": "3dc3d5b3-7023-4848-9853-f5400a64e80f", "iban": "DE2310010010123456789",
             "currency": "EUR", "product": "Girokonto", "cashAccountType": "CACC", "name": "Main Account",
             "_links": {"balances": {"href": "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/balances"}}},
            {"resourceId": "3dc3d5b3-7023-4848-9853-f5400a64e81g", "iban": "DE2310010010123456788",
             "currency": "USD", "product": "Fremdwährungskonto", "cashAccountType": "CACC"}
        ]});
        let list: wire::AccountList = parse("Berlin Group accounts", &body).unwrap();
        let got: Vec<_> = list.accounts.into_iter().map(account).collect();
        assert_eq!(
            got[1],
            BankAccount {
                id: "3dc3d5b3-7023-4848-9853-f5400a64e81g".into(),
                currency: "USD".into(),
                name: Some("Fremdwährungskonto".into()),
                kind: Some("CACC".into()),
                identification: Some("DE2310010010123456788".into()),
            }
        );
        let mut nameless = body.clone();
        nameless["accounts"][1]
            .as_object_mut()
            .unwrap()
            .remove("resourceId");
        assert_eq!(
            parse::<wire::AccountList>("Berlin Group accounts", &nameless)
                .unwrap_err()
                .detail,
            "Berlin Group accounts: accounts[1].resourceId: missing field"
        );
        let body = json!({
            "account": {"iban": "FR7612345987650123456789014"},
            "balances": [
                {"balanceType": "closingBooked", "balanceAmount": {"currency": "EUR", "amount": "500.00"},
                 "referenceDate": "2017-10-25"},
                {"balanceType": "expected", "balanceAmount": {"currency": "EUR", "amount": "-900.00"},
                 "lastChangeDateTime": "2017-10-25T15:30:35.035Z"}
            ]
        });
        let list: wire::BalanceResponse = parse("Berlin Group balances", &body).unwrap();
        let got: Vec<_> = list.balances.into_iter().map(balance).collect();
        assert_eq!(got[0].at, Some(datetime!(2017-10-25 0:00 UTC)));
        assert_eq!(
            got[1],
            BankBalance {
                kind: "expected".into(),
                amount: Decimal::new(-90000, 2),
                currency: "EUR".into(),
                at: Some(datetime!(2017-10-25 15:30:35.035 UTC)),
            }
        );
        let mut bad = body;
        bad["balances"][1]["balanceAmount"]
            .as_object_mut()
            .unwrap()
            .remove("currency");
        assert_eq!(
            parse::<wire::BalanceResponse>("Berlin Group balances", &bad)
                .unwrap_err()
                .detail,
            "Berlin Group balances: balances[1].balanceAmount.currency: missing field"
        );
    }

    #[test]
    fn consents_and_statuses() {
        let created = json!({
            "consentStatus": "received", "consentId": "1234-wertiq-983",
            "_links": {"scaRedirect": {"href": "https://www.testbank.com/authentication/1234-wertiq-983"},
                       "status": {"href": "/v1/consents/1234-wertiq-983/status"}}
        });
        let c: wire::ConsentCreated = parse("Berlin Group consent", &created).unwrap();
        assert_eq!(c.consent_id, "1234-wertiq-983");
        assert_eq!(
            consent_status(&c.consent_status),
            ConsentStatus::AwaitingAuthorisation
        );
        assert_eq!(
            parse::<wire::ConsentCreated>(
                "Berlin Group consent",
                &json!({"consentStatus": "received"})
            )
            .unwrap_err()
            .detail,
            "Berlin Group consent: consentId: missing field"
        );
        assert_eq!(consent_status("valid"), ConsentStatus::Authorised);
        assert_eq!(consent_status("terminatedByTpp"), ConsentStatus::Revoked);
        assert_eq!(consent_status("expired"), ConsentStatus::Expired);
        assert_eq!(
            consent_status("suspended"),
            ConsentStatus::Error,
            "not a failure"
        );
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
        let unknown = map_error(StatusCode::FORBIDDEN, &h, &msg("CONSENT_UNKNOWN"));
        assert_eq!(unknown.result, ResultCode::ConsentNotFound);
        assert_eq!(
            unknown.detail,
            "Berlin Group 403 Forbidden CONSENT_UNKNOWN x"
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
        let short = json!({"tppMessages": [{"code": "CONSENT_EXPIRED"}]});
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &short).result,
            ResultCode::ConnectionExpired,
            "an error body short of its required fields still tells its code"
        );
        assert_eq!(
            map_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &h,
                &json!({"tppMessages": 1})
            )
            .result,
            ResultCode::ProviderFailure
        );
    }
}
