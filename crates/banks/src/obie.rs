//! UK Open Banking Read/Write Account and Transaction API v3.1.
//!
//! Its quirks, handled here: amounts are unsigned strings with a `CreditDebitIndicator`;
//! a consent revoked or expired at the bank keeps `Status: Authorised` and data calls answer
//! 401 with no body; re-authentication is 403 `UK.OBIE.Reauthenticate`; unknown ids are 400
//! `UK.OBIE.Resource.NotFound`; paging is `Links.Next`, absent on the last page.

mod wire;

use freshet_model::{ConsentStatus, ResultCode, events::Permission, reconcile::TxnStatus};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::{Date, format_description::well_known::Rfc3339};

use self::wire::{CreditDebit, EntryStatus, Mutability};
use crate::{
    BankAccount, BankBalance, BankConsent, BankError, BankTxn, ConsentRequest, Session,
    http::{Api, by_status},
    wire::{FieldError, PageRows, convert_rows, extend_page, lenient, parse, raw_rows, with_raw},
};

/// Pages followed at most, in case a bank's `Next` links loop.
const MAX_PAGES: usize = 500;

#[derive(Clone, Debug)]
pub struct Obie {
    pub(crate) api: Api,
}

/// What each of freshet's permission groups stands for in OBIE; nothing for the groups the
/// Account and Transaction API has no permission for (cards, credit operations, investments).
fn group(g: Permission) -> &'static [&'static str] {
    match g {
        Permission::AccountsAll => &[
            "ReadAccountsDetail",
            "ReadBalances",
            "ReadTransactionsDetail",
            "ReadTransactionsCredits",
            "ReadTransactionsDebits",
        ],
        Permission::RegistrationAll => &["ReadParty"],
        Permission::CreditCardsAll
        | Permission::CreditOperationsAll
        | Permission::InvestmentsAll => &[],
    }
}

/// The OBIE permissions for freshet's permission groups. Refreshing always needs the account,
/// balance and transaction reads; registration data adds the party.
pub fn permissions(groups: &[Permission]) -> Vec<&'static str> {
    let mut p = group(Permission::AccountsAll).to_vec();
    if groups.contains(&Permission::RegistrationAll) {
        p.extend(group(Permission::RegistrationAll));
    }
    p
}

/// freshet's permission groups for the `Data.Permissions` a consent answer lists.
pub fn permission_groups(granted: &[String]) -> Vec<Permission> {
    crate::types::granted_groups(granted, group)
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
    let body: wire::ErrorResponse = lenient(body);
    let code = body
        .errors
        .first()
        .and_then(|e| e.error_code.as_deref())
        .unwrap_or_default();
    let result = match (status.as_u16(), code) {
        (400, "UK.OBIE.Resource.NotFound") => ResultCode::ConsentNotFound,
        (400, _) => ResultCode::ProviderFailure,
        (403, "UK.OBIE.Reauthenticate") => ResultCode::ConnectionReauthenticate,
        (403, _) => ResultCode::ConnectionRevoked,
        _ => by_status(status),
    };
    let message = body.message.as_deref().unwrap_or_default();
    BankError::new(
        result,
        format!("OBIE {status} {code} {message}").trim().to_string(),
    )
}

/// The signed amount of an unsigned one and its indicator.
fn signed(indicator: CreditDebit, amount: &wire::Amount) -> Decimal {
    match indicator {
        CreditDebit::Debit => -amount.amount.0,
        CreditDebit::Credit => amount.amount.0,
    }
}

fn account(a: wire::Account) -> Result<BankAccount, FieldError> {
    let currency = match a.currency {
        Some(c) => c,
        // ISO 4217's "no currency": an account switched away may say none.
        None if a.switch_status.as_deref() == Some(wire::SWITCH_COMPLETED) => "XXX".into(),
        None => return Err(("Currency", "missing field".into())),
    };
    let first = a.account.first();
    Ok(BankAccount {
        id: a.account_id,
        currency,
        name: a.nickname.or_else(|| first.and_then(|i| i.name.clone())),
        kind: match (a.account_type, a.account_sub_type) {
            (Some(t), Some(st)) => Some(format!("{t}/{st}")),
            (t, st) => t.or(st),
        },
        identification: first.map(|i| i.identification.clone()),
    })
}

fn balance(b: wire::Balance) -> BankBalance {
    BankBalance {
        amount: signed(b.credit_debit_indicator, &b.amount),
        kind: b.kind,
        currency: b.amount.currency,
        at: Some(b.date_time.0),
    }
}

/// A transaction, or nothing for one the bank rejected (3.1.8 and later list them).
fn transaction(t: wire::Transaction) -> Option<BankTxn> {
    let status = match t.status {
        EntryStatus::Rejected => return None,
        EntryStatus::Pending => TxnStatus::Pending,
        EntryStatus::Booked => TxnStatus::Booked,
    };
    Some(BankTxn {
        provider_id: t.transaction_id,
        immutable_id: match t.transaction_mutability {
            Some(m) => m == Mutability::Immutable,
            None => status == TxnStatus::Booked,
        },
        status,
        booking_date: t.booking_date_time.date(),
        amount: signed(t.credit_debit_indicator, &t.amount),
        currency: t.amount.currency,
        description: t
            .transaction_information
            .or(t.merchant_details.and_then(|m| m.merchant_name))
            .unwrap_or_default(),
    })
}

/// One page of a list: its rows converted, each with the JSON it came from, and the link to
/// the next page.
fn page<D: DeserializeOwned, T, U>(
    what: &str,
    list: &str,
    mut body: Value,
    rows: fn(D) -> Vec<T>,
    convert: impl Fn(T) -> Result<U, FieldError>,
) -> Result<PageRows<U>, BankError> {
    let parsed: wire::Page<D> = parse(what, &body)?;
    let converted = convert_rows(what, &format!("Data.{list}"), rows(parsed.data), convert)?;
    let raw = raw_rows(&mut body, &format!("/Data/{list}"));
    let next = parsed.links.and_then(|l| l.next).filter(|n| !n.is_empty());
    Ok((with_raw(raw, converted), next))
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
            .api
            .with_client_token(
                self.api.post(&self.api.url("/account-access-consents")),
                "accounts",
            )
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string())
            .json(&json!({"Data": data, "Risk": {}}));
        let body = self.api.json(req, map_error).await?;
        let d = parse::<wire::ConsentResponse>("OBIE consent", &body)?.data;
        Ok(BankConsent {
            status: consent_status(&d.status),
            bank_consent_id: d.consent_id,
            expires_at: d.expiration_date_time.map(|t| t.0),
            permissions: d.permissions.as_deref().map(permission_groups),
        })
    }

    pub async fn consent_details(&self, s: &Session<'_>) -> Result<BankConsent, BankError> {
        let url = self
            .api
            .url(&format!("/account-access-consents/{}", s.bank_consent_id));
        let req = self
            .api
            .consent_call(self.api.get(&url), "accounts", |r| self.data(r, s))
            .await?;
        let body = self.api.json(req, map_error).await?;
        let consent: wire::ConsentResponse = parse("OBIE consent", &body)?;
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status(&consent.data.status),
            expires_at: consent.data.expiration_date_time.map(|t| t.0),
            permissions: consent.data.permissions.as_deref().map(permission_groups),
        })
    }

    /// Every page of a list, from `Links.Next`, each row converted: `list` is the array under
    /// `Data`, and `rows` takes it out of the parsed `Data`.
    async fn pages<D: DeserializeOwned, T, U>(
        &self,
        s: &Session<'_>,
        first: String,
        (what, list): (&str, &str),
        rows: fn(D) -> Vec<T>,
        convert: impl Fn(T) -> Result<U, FieldError>,
    ) -> Result<Vec<U>, BankError> {
        let mut out = Vec::new();
        let mut previous = 0;
        let mut next = Some(first);
        for page_no in 1..=MAX_PAGES {
            let Some(url) = next.take() else { break };
            let body = self
                .api
                .json(self.data(self.api.get(&url), s), map_error)
                .await?;
            let what = match page_no {
                1 => what.to_string(),
                n => format!("{what}, page {n}"),
            };
            let (converted, link) = page(&what, list, body, rows, &convert)?;
            previous = extend_page(&mut out, previous, converted);
            next = link.map(|n| self.api.url(&n));
        }
        Ok(out.into_iter().map(|(_, row)| row).collect())
    }

    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        self.pages(
            s,
            self.api.url("/accounts"),
            ("OBIE accounts", "Account"),
            |d: wire::Accounts| d.account,
            account,
        )
        .await
    }

    pub async fn balances(
        &self,
        s: &Session<'_>,
        account: &str,
    ) -> Result<Vec<BankBalance>, BankError> {
        self.pages(
            s,
            self.api.url(&format!("/accounts/{account}/balances")),
            ("OBIE balances", "Balance"),
            |d: wire::Balances| d.balance,
            |b| Ok(balance(b)),
        )
        .await
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
        let rows = self
            .pages(
                s,
                first,
                ("OBIE transactions", "Transaction"),
                |d: wire::Transactions| d.transaction,
                |t| Ok(transaction(t)),
            )
            .await?;
        Ok(rows.into_iter().flatten().collect())
    }

    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        let url = self
            .api
            .url(&format!("/account-access-consents/{}", s.bank_consent_id));
        let req = self
            .api
            .consent_call(self.api.delete(&url), "accounts", |r| self.data(r, s))
            .await?;
        self.api.json(req, map_error).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;

    fn transactions(body: Value) -> Result<Vec<BankTxn>, BankError> {
        let (rows, _) = page(
            "OBIE transactions",
            "Transaction",
            body,
            |d: wire::Transactions| d.transaction,
            |t| Ok(transaction(t)),
        )?;
        Ok(rows.into_iter().filter_map(|(_, t)| t).collect())
    }

    fn accounts(body: Value) -> Result<(Vec<BankAccount>, Option<String>), BankError> {
        let (rows, next) = page(
            "OBIE accounts",
            "Account",
            body,
            |d: wire::Accounts| d.account,
            account,
        )?;
        Ok((rows.into_iter().map(|(_, a)| a).collect(), next))
    }

    /// A transaction as the specification's example shows one.
    fn txn() -> Value {
        json!({
            "AccountId": "22289",
            "TransactionId": "123",
            "TransactionReference": "Ref 1",
            "Amount": {"Amount": "10.00", "Currency": "GBP"},
            "CreditDebitIndicator": "Credit",
            "Status": "Booked",
            "BookingDateTime": "2017-04-05T10:43:07+00:00",
            "ValueDateTime": "2017-04-05T10:45:22+00:00",
            "TransactionInformation": "Cash from Aubrey",
            "BankTransactionCode": {"Code": "ReceivedCreditTransfer", "SubCode": "DomesticCreditTransfer"},
            "Balance": {"Amount": {"Amount": "230.00", "Currency": "GBP"}, "CreditDebitIndicator": "Credit", "Type": "InterimBooked"}
        })
    }

    fn txn_page(rows: Vec<Value>) -> Value {
        json!({
            "Data": {"Transaction": rows},
            "Links": {"Self": "https://api.alphabank.com/open-banking/v3.1/aisp/accounts/22289/transactions/"},
            "Meta": {"TotalPages": 1}
        })
    }

    #[test]
    fn a_transaction_as_the_specification_shows_it() {
        let mut debit = txn();
        debit["TransactionId"] = json!("124");
        debit["CreditDebitIndicator"] = json!("Debit");
        debit["Status"] = json!("Pending");
        debit["TransactionMutability"] = json!("Mutable");
        debit["BookingDateTime"] = json!("2017-04-05T23:30:00-03:00");
        debit["MerchantDetails"] = json!({"MerchantName": "Coffee"});
        debit
            .as_object_mut()
            .unwrap()
            .remove("TransactionInformation");
        let mut rejected = txn();
        rejected["Status"] = json!("Rejected");
        let got = transactions(txn_page(vec![txn(), debit, rejected])).unwrap();
        assert_eq!(
            got,
            vec![
                BankTxn {
                    provider_id: Some("123".into()),
                    immutable_id: true,
                    status: TxnStatus::Booked,
                    booking_date: date!(2017 - 04 - 05),
                    amount: Decimal::new(1000, 2),
                    currency: "GBP".into(),
                    description: "Cash from Aubrey".into(),
                },
                BankTxn {
                    provider_id: Some("124".into()),
                    immutable_id: false,
                    status: TxnStatus::Pending,
                    booking_date: date!(2017 - 04 - 05),
                    amount: Decimal::new(-1000, 2),
                    currency: "GBP".into(),
                    description: "Coffee".into(),
                },
            ],
            "signed by the indicator, dated in the bank's offset, rejected ones left out"
        );
    }

    #[test]
    fn a_missing_or_malformed_field_is_a_provider_failure_naming_it() {
        let mut no_amount = txn();
        no_amount.as_object_mut().unwrap().remove("Amount");
        let err = transactions(txn_page(vec![txn(), txn(), no_amount])).unwrap_err();
        assert_eq!(err.result, ResultCode::ProviderFailure);
        assert_eq!(
            err.detail,
            "OBIE transactions: Data.Transaction[2].Amount: missing field"
        );
        let cases = [
            (
                "CreditDebitIndicator",
                json!("Both"),
                "unknown variant `Both`",
            ),
            ("Status", json!("Booked "), "unknown variant `Booked `"),
            ("BookingDateTime", json!("05/04/2017"), "invalid date-time"),
            (
                "Amount",
                json!({"Amount": "-1.00", "Currency": "GBP"}),
                "has a sign",
            ),
            (
                "Amount",
                json!({"Amount": 1, "Currency": "GBP"}),
                "invalid type",
            ),
        ];
        for (field, value, problem) in cases {
            let mut bad = txn();
            bad[field] = value;
            let err = transactions(txn_page(vec![bad])).unwrap_err();
            assert_eq!(err.result, ResultCode::ProviderFailure);
            assert!(
                err.detail
                    .starts_with(&format!("OBIE transactions: Data.Transaction[0].{field}"))
                    && err.detail.contains(problem),
                "{field}: {}",
                err.detail
            );
        }
    }

    #[test]
    fn accounts_need_a_currency_unless_switched_away() {
        let acc = |id: &str| {
            json!({
                "AccountId": id, "Status": "Enabled", "Currency": "GBP",
                "AccountType": "Personal", "AccountSubType": "CurrentAccount", "Nickname": "Bills",
                "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "80200110203345",
                             "Name": "Mr Kevin", "SecondaryIdentification": "00021"}],
                "SomethingNew": {"the bank": "added it"}
            })
        };
        let body = json!({"Data": {"Account": [acc("22289"), acc("31820")]},
                          "Links": {"Self": "/accounts/", "Next": "/accounts?page=2"}, "Meta": {"TotalPages": 2}});
        let (got, next) = accounts(body).unwrap();
        assert_eq!(next.as_deref(), Some("/accounts?page=2"));
        assert_eq!(
            got[1],
            BankAccount {
                id: "31820".into(),
                currency: "GBP".into(),
                name: Some("Bills".into()),
                kind: Some("Personal/CurrentAccount".into()),
                identification: Some("80200110203345".into()),
            }
        );
        let mut no_currency = acc("9");
        no_currency.as_object_mut().unwrap().remove("Currency");
        let body = json!({"Data": {"Account": [acc("1"), acc("2"), no_currency.clone()]}});
        let err = accounts(body).unwrap_err();
        assert_eq!(
            err.detail,
            "OBIE accounts: Data.Account[2].Currency: missing field"
        );
        no_currency["SwitchStatus"] = json!("UK.CASS.SwitchCompleted");
        let (got, next) = accounts(json!({"Data": {"Account": [no_currency]}})).unwrap();
        assert_eq!((got[0].currency.as_str(), next), ("XXX", None));
        let err = accounts(json!({"Data": {"Account": [{"Currency": "GBP"}]}})).unwrap_err();
        assert_eq!(
            err.detail,
            "OBIE accounts: Data.Account[0].AccountId: missing field"
        );
        let err = accounts(json!({"Links": {}})).unwrap_err();
        assert_eq!(err.detail, "OBIE accounts: Data: missing field");
        assert!(accounts(json!({"Data": {}})).unwrap().0.is_empty());
    }

    #[test]
    fn balances_are_signed_and_dated() {
        let body = json!({"Data": {"Balance": [{
            "AccountId": "22289", "Amount": {"Amount": "1230.00", "Currency": "GBP"},
            "CreditDebitIndicator": "Debit", "Type": "InterimAvailable",
            "DateTime": "2017-04-05T10:43:07+00:00",
            "CreditLine": [{"Included": true, "Amount": {"Amount": "1000.00", "Currency": "GBP"}, "Type": "Pre-Agreed"}]
        }]}, "Links": {"Self": "/accounts/22289/balances/"}, "Meta": {"TotalPages": 1}});
        let (rows, _) = page(
            "OBIE balances",
            "Balance",
            body,
            |d: wire::Balances| d.balance,
            |b| Ok(balance(b)),
        )
        .unwrap();
        assert_eq!(
            rows[0].1,
            BankBalance {
                kind: "InterimAvailable".into(),
                amount: Decimal::new(-123000, 2),
                currency: "GBP".into(),
                at: Some(datetime!(2017-04-05 10:43:07 UTC)),
            }
        );
        let err = page(
            "OBIE balances",
            "Balance",
            json!({"Data": {"Balance": [{"Amount": {"Amount": "1", "Currency": "GBP"}, "CreditDebitIndicator": "Credit", "Type": "Expected"}]}}),
            |d: wire::Balances| d.balance,
            |b| Ok(balance(b)),
        )
        .unwrap_err();
        assert_eq!(
            err.detail,
            "OBIE balances: Data.Balance[0].DateTime: missing field"
        );
    }

    #[test]
    fn consents_read_back_and_unknown_statuses_are_errors() {
        let body = json!({
            "Data": {
                "ConsentId": "urn-alphabank-intent-88379", "Status": "AwaitingAuthorisation",
                "StatusUpdateDateTime": "2017-05-02T00:00:00+00:00", "CreationDateTime": "2017-05-02T00:00:00+00:00",
                "Permissions": ["ReadAccountsDetail"], "ExpirationDateTime": "2017-08-02T00:00:00+00:00"
            },
            "Risk": {}, "Links": {"Self": "/account-access-consents/urn-alphabank-intent-88379"}, "Meta": {"TotalPages": 1}
        });
        let d = parse::<wire::ConsentResponse>("OBIE consent", &body)
            .unwrap()
            .data;
        assert_eq!(d.consent_id, "urn-alphabank-intent-88379");
        assert_eq!(
            d.expiration_date_time.map(|t| t.0),
            Some(datetime!(2017-08-02 0:00 UTC))
        );
        assert_eq!(
            consent_status(&d.status),
            ConsentStatus::AwaitingAuthorisation
        );
        assert_eq!(consent_status("Authorised"), ConsentStatus::Authorised);
        assert_eq!(
            consent_status("Weird"),
            ConsentStatus::Error,
            "not a failure"
        );
        let err = parse::<wire::ConsentResponse>(
            "OBIE consent",
            &json!({"Data": {"Status": "Authorised"}}),
        )
        .unwrap_err();
        assert_eq!(err.detail, "OBIE consent: Data.ConsentId: missing field");
    }

    #[test]
    fn errors_map_to_result_codes() {
        let h = HeaderMap::new();
        let reauth = json!({"Code": "403", "Message": "Reauthenticate", "Errors": [{"ErrorCode": "UK.OBIE.Reauthenticate", "Message": "x"}]});
        let e = map_error(StatusCode::FORBIDDEN, &h, &reauth);
        assert_eq!(e.result, ResultCode::ConnectionReauthenticate);
        assert_eq!(
            e.detail,
            "OBIE 403 Forbidden UK.OBIE.Reauthenticate Reauthenticate"
        );
        assert_eq!(
            map_error(StatusCode::UNAUTHORIZED, &h, &Value::Null).result,
            ResultCode::ConnectionExpired
        );
        let missing = json!({"Errors": [{"ErrorCode": "UK.OBIE.Resource.NotFound"}]});
        assert_eq!(
            map_error(StatusCode::BAD_REQUEST, &h, &missing).result,
            ResultCode::ConsentNotFound,
            "an error body short of its required fields still tells its code"
        );
        let garbled = json!({"Errors": "nope", "Message": 5});
        assert_eq!(
            map_error(StatusCode::TOO_MANY_REQUESTS, &h, &garbled).result,
            ResultCode::ProviderRequestLimit,
            "a body that breaks the schema leaves the status to speak"
        );
        assert_eq!(
            map_error(StatusCode::INTERNAL_SERVER_ERROR, &h, &json!("<html>")).result,
            ResultCode::ProviderFailure
        );
        assert_eq!(
            map_error(StatusCode::SERVICE_UNAVAILABLE, &h, &Value::Null).result,
            ResultCode::ProviderMaintenance
        );
    }
}
