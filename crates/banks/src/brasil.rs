//! Open Finance Brasil: consents v2 and accounts v2.
//!
//! Its quirks, handled here: consents name the customer's CPF (`loggedUser.document`);
//! statuses are upper snake case with a `rejection.reason` that tells revocation and expiry
//! apart; amounts are unsigned with `creditDebitType`; `transactionId` is immutable once the
//! transaction is `TRANSACAO_EFETIVADA`; paging is `links.next`; 529 means overloaded.

mod wire;

use freshet_model::{ConsentStatus, ResultCode, events::Permission, reconcile::TxnStatus};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::{Date, format_description::well_known::Rfc3339};

use self::wire::{CreditDebit, PaymentType};
use crate::{
    BankAccount, BankBalance, BankConsent, BankError, BankTxn, ConsentRequest, Session,
    http::{Api, by_status},
    wire::{
        FieldError, PageRows, YMD, convert_rows, extend_page, lenient, parse, raw_rows, with_raw,
    },
};

const MAX_PAGES: usize = 500;
const CONSENTS: &str = "/open-banking/consents/v2/consents";
const ACCOUNTS: &str = "/open-banking/accounts/v2/accounts";

#[derive(Clone, Debug)]
pub struct Brasil {
    pub(crate) api: Api,
}

/// What each of freshet's permission groups stands for in Open Finance Brasil; nothing for
/// the groups freshet does not ask a Brasil bank for (credit operations, investments).
fn group(g: Permission) -> &'static [&'static str] {
    match g {
        Permission::AccountsAll => &[
            "ACCOUNTS_READ",
            "ACCOUNTS_BALANCES_READ",
            "ACCOUNTS_TRANSACTIONS_READ",
            "RESOURCES_READ",
        ],
        Permission::RegistrationAll => &["CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ"],
        Permission::CreditCardsAll => &[
            "CREDIT_CARDS_ACCOUNTS_READ",
            "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
        ],
        Permission::CreditOperationsAll | Permission::InvestmentsAll => &[],
    }
}

/// The Brasil permissions for freshet's permission groups. Refreshing always needs the
/// account reads.
pub fn permissions(groups: &[Permission]) -> Vec<&'static str> {
    let mut p = group(Permission::AccountsAll).to_vec();
    for g in [Permission::RegistrationAll, Permission::CreditCardsAll] {
        if groups.contains(&g) {
            p.extend(group(g));
        }
    }
    p
}

/// freshet's permission groups for the `data.permissions` a consent answer lists.
pub fn permission_groups(granted: &[String]) -> Vec<Permission> {
    crate::types::granted_groups(granted, group)
}

/// A Brasil consent's status in freshet's words, telling rejections apart by their reason
/// (`rejection.reason.code`).
pub fn consent_status(status: &str, rejection_reason: Option<&str>) -> ConsentStatus {
    match status {
        "AWAITING_AUTHORISATION" => ConsentStatus::AwaitingAuthorisation,
        "AUTHORISED" | "AUTHORIZED" => ConsentStatus::Authorised,
        "REJECTED" => match rejection_reason.unwrap_or_default() {
            "CUSTOMER_MANUALLY_REVOKED" => ConsentStatus::Revoked,
            "CONSENT_EXPIRED" | "CONSENT_MAX_DATE_REACHED" => ConsentStatus::Expired,
            "CONSENT_TECHNICAL_ISSUE" | "INTERNAL_SECURITY_REASON" => ConsentStatus::Error,
            _ => ConsentStatus::Rejected,
        },
        _ => ConsentStatus::Error,
    }
}

fn consent_status_of(d: &wire::ConsentData) -> ConsentStatus {
    let reason = d.rejection.as_ref().map(|r| r.reason.code.as_str());
    consent_status(&d.status, reason)
}

fn map_error(status: StatusCode, _: &HeaderMap, body: &Value) -> BankError {
    let body: wire::ErrorResponse = lenient(body);
    let first = body.errors.first();
    let code = first.and_then(|e| e.code.as_deref()).unwrap_or_default();
    let detail = first.and_then(|e| e.detail.as_deref()).unwrap_or_default();
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
        format!("Open Finance Brasil {status} {code} {detail}")
            .trim()
            .to_string(),
    )
}

fn account(a: wire::Account) -> BankAccount {
    let number = format!("{}-{}", a.number, a.check_digit);
    BankAccount {
        id: a.account_id,
        currency: "BRL".into(),
        name: Some(a.brand_name),
        kind: Some(a.kind),
        identification: Some(match a.branch_code {
            Some(branch) => format!("{branch} {number}"),
            None => number,
        }),
    }
}

fn balances(d: wire::Balances) -> Vec<BankBalance> {
    let at = Some(d.update_date_time.0);
    [
        ("AVAILABLE", d.available_amount),
        ("BLOCKED", d.blocked_amount),
        ("AUTOMATICALLY_INVESTED", d.automatically_invested_amount),
    ]
    .into_iter()
    .map(|(kind, a)| BankBalance {
        kind: kind.into(),
        amount: a.amount.0,
        currency: a.currency,
        at,
    })
    .collect()
}

/// A transaction: its id is immutable once settled (`TRANSACAO_EFETIVADA`); anything not
/// settled yet is pending.
fn transaction(t: wire::Transaction) -> BankTxn {
    let settled = t.completed_authorised_payment_type == PaymentType::TransacaoEfetivada;
    let amount = t.transaction_amount.amount.0;
    BankTxn {
        provider_id: Some(t.transaction_id),
        immutable_id: settled,
        status: if settled {
            TxnStatus::Booked
        } else {
            TxnStatus::Pending
        },
        booking_date: t.transaction_date_time.date(),
        amount: match t.credit_debit_type {
            CreditDebit::Debito => -amount,
            CreditDebit::Credito => amount,
        },
        currency: t.transaction_amount.currency,
        description: t.transaction_name,
    }
}

/// One page of a list: its rows converted, each with the JSON it came from, and the link to
/// the next page.
fn page<T: DeserializeOwned, U>(
    what: &str,
    mut body: Value,
    convert: impl Fn(T) -> Result<U, FieldError>,
) -> Result<PageRows<U>, BankError> {
    let parsed: wire::Page<T> = parse(what, &body)?;
    let converted = convert_rows(what, "data", parsed.data, convert)?;
    let raw = raw_rows(&mut body, "/data");
    let next = parsed.links.next.filter(|n| !n.is_empty());
    Ok((with_raw(raw, converted), next))
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
            .api
            .with_client_token(self.api.post(&self.api.url(CONSENTS)), "consents")
            .await?
            .header("x-fapi-interaction-id", uuid::Uuid::now_v7().to_string())
            .json(&json!({"data": data}));
        let out = self.api.json(req, map_error).await?;
        let d = parse::<wire::ConsentResponse>("Open Finance Brasil consent", &out)?.data;
        Ok(BankConsent {
            status: consent_status_of(&d),
            bank_consent_id: d.consent_id,
            expires_at: Some(d.expiration_date_time.0),
            permissions: d.permissions.as_deref().map(permission_groups),
        })
    }

    pub async fn consent_details(&self, s: &Session<'_>) -> Result<BankConsent, BankError> {
        let url = self.api.url(&format!("{CONSENTS}/{}", s.bank_consent_id));
        let req = self
            .api
            .consent_call(self.api.get(&url), "consents", |r| self.data(r, s))
            .await?;
        let out = self.api.json(req, map_error).await?;
        let consent: wire::ConsentResponse = parse("Open Finance Brasil consent", &out)?;
        Ok(BankConsent {
            bank_consent_id: s.bank_consent_id.to_string(),
            status: consent_status_of(&consent.data),
            expires_at: Some(consent.data.expiration_date_time.0),
            permissions: consent.data.permissions.as_deref().map(permission_groups),
        })
    }

    /// Every page of a list, from `links.next`, each row converted.
    async fn pages<T: DeserializeOwned, U>(
        &self,
        s: &Session<'_>,
        first: String,
        what: &str,
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
            let (converted, link) = page(&what, body, &convert)?;
            previous = extend_page(&mut out, previous, converted);
            next = link.map(|n| self.api.url(&n));
        }
        Ok(out.into_iter().map(|(_, row)| row).collect())
    }

    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        let first = self.api.url(ACCOUNTS);
        self.pages(s, first, "Open Finance Brasil accounts", |a| Ok(account(a)))
            .await
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
        let b: wire::BalancesResponse = parse("Open Finance Brasil balances", &out)?;
        Ok(balances(b.data))
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
        self.pages(s, first, "Open Finance Brasil transactions", |t| {
            Ok(transaction(t))
        })
        .await
    }

    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        let url = self.api.url(&format!("{CONSENTS}/{}", s.bank_consent_id));
        let req = self
            .api
            .consent_call(self.api.delete(&url), "consents", |r| self.data(r, s))
            .await?;
        self.api.json(req, map_error).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;

    fn links() -> Value {
        json!({"self": "https://api.banco.com.br/open-banking/api/v2/resource",
               "next": "https://api.banco.com.br/open-banking/api/v2/resource?page=2"})
    }

    /// An account as the specification's example shows one.
    fn acc(id: &str) -> Value {
        json!({"brandName": "Organização A", "companyCnpj": "21128159000166", "type": "CONTA_DEPOSITO_A_VISTA",
               "compeCode": "001", "branchCode": "6272", "number": "94088392", "checkDigit": "4", "accountId": id})
    }

    fn txn() -> Value {
        json!({
            "transactionId": "TXpRMU9UQTROMWhZV2xSU1FUazJSMDl",
            "completedAuthorisedPaymentType": "TRANSACAO_EFETIVADA",
            "creditDebitType": "DEBITO",
            "transactionName": "PAGAMENTO PIX",
            "type": "PIX",
            "transactionAmount": {"amount": "1000.0400", "currency": "BRL"},
            "transactionDateTime": "2016-01-29T12:29:03.374Z",
            "partieCnpjCpf": "43908445778",
            "partiePersonType": "PESSOA_NATURAL"
        })
    }

    fn accounts(body: Value) -> Result<Vec<BankAccount>, BankError> {
        let (rows, _) = page("Open Finance Brasil accounts", body, |a| Ok(account(a)))?;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    }

    fn txns(body: Value) -> Result<Vec<BankTxn>, BankError> {
        let (rows, _) = page("Open Finance Brasil transactions", body, |t| {
            Ok(transaction(t))
        })?;
        Ok(rows.into_iter().map(|(_, t)| t).collect())
    }

    #[test]
    fn accounts_as_the_specification_shows_them() {
        let mut extra = acc("92792126019929279212650822221989319252576");
        extra["aBanksOwnField"] = json!({"nested": [1, 2]});
        let body = json!({"data": [extra], "links": links(),
                          "meta": {"totalRecords": 1, "totalPages": 1, "requestDateTime": "2021-05-21T08:30:00Z"}});
        let (rows, next) = page("Open Finance Brasil accounts", body, |a| Ok(account(a))).unwrap();
        assert_eq!(
            next.as_deref(),
            Some("https://api.banco.com.br/open-banking/api/v2/resource?page=2")
        );
        assert_eq!(
            rows[0].1,
            BankAccount {
                id: "92792126019929279212650822221989319252576".into(),
                currency: "BRL".into(),
                name: Some("Organização A".into()),
                kind: Some("CONTA_DEPOSITO_A_VISTA".into()),
                identification: Some("6272 94088392-4".into()),
            }
        );
        let mut anonymous = acc("x");
        anonymous.as_object_mut().unwrap().remove("accountId");
        let err = accounts(json!({"data": [acc("a"), anonymous], "links": links()})).unwrap_err();
        assert_eq!(err.result, ResultCode::ProviderFailure);
        assert_eq!(
            err.detail,
            "Open Finance Brasil accounts: data[1].accountId: missing field"
        );
        let err = accounts(json!({"data": [acc("a")]})).unwrap_err();
        assert_eq!(
            err.detail,
            "Open Finance Brasil accounts: links: missing field"
        );
    }

    #[test]
    fn transactions_as_the_specification_shows_them() {
        let mut future = txn();
        future["transactionId"] = json!("T2");
        future["completedAuthorisedPaymentType"] = json!("LANCAMENTO_FUTURO");
        future["creditDebitType"] = json!("CREDITO");
        future["transactionDateTime"] = json!("2016-02-01T02:00:00.000Z");
        let got = txns(
            json!({"data": [txn(), future], "links": {"self": "https://x.example/t"},
                              "meta": {"requestDateTime": "2021-05-21T08:30:00Z"}}),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                BankTxn {
                    provider_id: Some("TXpRMU9UQTROMWhZV2xSU1FUazJSMDl".into()),
                    immutable_id: true,
                    status: TxnStatus::Booked,
                    booking_date: date!(2016 - 01 - 29),
                    amount: Decimal::new(-10000400, 4),
                    currency: "BRL".into(),
                    description: "PAGAMENTO PIX".into(),
                },
                BankTxn {
                    provider_id: Some("T2".into()),
                    immutable_id: false,
                    status: TxnStatus::Pending,
                    booking_date: date!(2016 - 02 - 01),
                    amount: Decimal::new(10000400, 4),
                    currency: "BRL".into(),
                    description: "PAGAMENTO PIX".into(),
                },
            ]
        );
    }

    #[test]
    fn a_missing_or_malformed_transaction_field_is_a_provider_failure_naming_it() {
        let page_of =
            |t: Value| json!({"data": [txn(), t], "links": {"self": "https://x.example/t"}});
        let cases = [
            ("transactionAmount", None, "missing field"),
            ("transactionId", None, "missing field"),
            (
                "completedAuthorisedPaymentType",
                Some(json!("EFETIVADA")),
                "unknown variant `EFETIVADA`",
            ),
            (
                "creditDebitType",
                Some(json!("debito")),
                "unknown variant `debito`",
            ),
            (
                "transactionDateTime",
                Some(json!("29/01/2016")),
                "invalid date-time `29/01/2016`",
            ),
            (
                "transactionAmount",
                Some(json!({"amount": "-1.00", "currency": "BRL"})),
                "has a sign",
            ),
        ];
        for (field, value, problem) in cases {
            let mut bad = txn();
            match value {
                Some(v) => bad[field] = v,
                None => drop(bad.as_object_mut().unwrap().remove(field)),
            }
            let err = txns(page_of(bad)).unwrap_err();
            assert_eq!(err.result, ResultCode::ProviderFailure);
            assert!(
                err.detail.starts_with(&format!(
                    "Open Finance Brasil transactions: data[1].{field}"
                )) && err.detail.contains(problem),
                "{field}: {}",
                err.detail
            );
        }
    }

    #[test]
    fn balances_are_all_three_amounts() {
        let body = json!({"data": {
            "availableAmount": {"amount": "-100.5000", "currency": "BRL"},
            "blockedAmount": {"amount": "0.0000", "currency": "BRL"},
            "automaticallyInvestedAmount": {"amount": "10.00", "currency": "BRL"},
            "updateDateTime": "2021-05-21T08:30:00Z"
        }, "links": {"self": "https://x.example/b"}, "meta": {"requestDateTime": "2021-05-21T08:30:00Z"}});
        let b: wire::BalancesResponse = parse("Open Finance Brasil balances", &body).unwrap();
        let got = balances(b.data);
        assert_eq!(
            got.iter()
                .map(|b| (b.kind.as_str(), b.amount))
                .collect::<Vec<_>>(),
            vec![
                ("AVAILABLE", Decimal::new(-1005, 1)),
                ("BLOCKED", Decimal::ZERO),
                ("AUTOMATICALLY_INVESTED", Decimal::new(10, 0)),
            ]
        );
        assert_eq!(got[0].at, Some(datetime!(2021-05-21 08:30 UTC)));
        let mut short = body;
        short["data"]
            .as_object_mut()
            .unwrap()
            .remove("blockedAmount");
        assert_eq!(
            parse::<wire::BalancesResponse>("Open Finance Brasil balances", &short)
                .unwrap_err()
                .detail,
            "Open Finance Brasil balances: data.blockedAmount: missing field"
        );
    }

    #[test]
    fn rejections_are_told_apart_by_reason() {
        let consent = |data: Value| {
            let mut d = json!({"consentId": "urn:bancoex:C1DD33123", "creationDateTime": "2021-05-21T08:30:00Z",
                               "statusUpdateDateTime": "2021-05-21T08:30:00Z", "permissions": ["ACCOUNTS_READ"],
                               "expirationDateTime": "2021-05-21T08:30:00Z"});
            d.as_object_mut()
                .unwrap()
                .extend(data.as_object().unwrap().clone());
            let r: wire::ConsentResponse =
                parse("Open Finance Brasil consent", &json!({"data": d})).unwrap();
            consent_status_of(&r.data)
        };
        let revoked = json!({"status": "REJECTED", "rejection": {"rejectedBy": "USER", "reason": {"code": "CUSTOMER_MANUALLY_REVOKED"}}});
        assert_eq!(consent(revoked), ConsentStatus::Revoked);
        let expired = json!({"status": "REJECTED", "rejection": {"rejectedBy": "ASPSP", "reason": {"code": "CONSENT_MAX_DATE_REACHED"}}});
        assert_eq!(consent(expired), ConsentStatus::Expired);
        let rejected = json!({"status": "REJECTED", "rejection": {"rejectedBy": "USER", "reason": {"code": "CUSTOMER_MANUALLY_REJECTED"}}});
        assert_eq!(consent(rejected), ConsentStatus::Rejected);
        assert_eq!(
            consent(json!({"status": "AUTHORISED"})),
            ConsentStatus::Authorised
        );
        assert_eq!(
            consent(json!({"status": "CONSUMED"})),
            ConsentStatus::Error,
            "not a failure"
        );
        let err = parse::<wire::ConsentResponse>(
            "Open Finance Brasil consent",
            &json!({"data": {"consentId": "urn:x:1", "status": "AUTHORISED"}}),
        )
        .unwrap_err();
        assert_eq!(
            err.detail,
            "Open Finance Brasil consent: data.expirationDateTime: missing field"
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
        let consent = json!({"errors": [{"code": "CONSENTIMENTO_EM_STATUS_REJEITADO", "title": "t", "detail": "rejeitado"}],
                             "meta": {"requestDateTime": "2021-05-21T08:30:00Z"}});
        let e = map_error(StatusCode::UNPROCESSABLE_ENTITY, &h, &consent);
        assert_eq!(e.result, ResultCode::ConnectionRevoked);
        assert_eq!(
            e.detail,
            "Open Finance Brasil 422 Unprocessable Entity CONSENTIMENTO_EM_STATUS_REJEITADO rejeitado"
        );
    }

    #[test]
    fn permissions_always_cover_a_refresh() {
        let p = permissions(&[Permission::AccountsAll]);
        assert!(p.contains(&"ACCOUNTS_TRANSACTIONS_READ") && p.contains(&"RESOURCES_READ"));
        assert!(permissions(&[Permission::CreditCardsAll]).contains(&"CREDIT_CARDS_ACCOUNTS_READ"));
    }

    /// A group is granted only when every permission it stands for is: the bank dropping the
    /// card permissions drops the card group, and groups the standard cannot say never appear.
    #[test]
    fn granted_permissions_map_back_to_whole_groups() {
        use Permission::*;
        let asked = [RegistrationAll, AccountsAll, CreditCardsAll, InvestmentsAll];
        let sent: Vec<String> = permissions(&asked).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            permission_groups(&sent),
            [RegistrationAll, AccountsAll, CreditCardsAll]
        );
        let no_cards: Vec<String> = sent
            .iter()
            .filter(|p| !p.starts_with("CREDIT_CARDS_"))
            .cloned()
            .collect();
        assert_eq!(permission_groups(&no_cards), [RegistrationAll, AccountsAll]);
        let half_a_group: Vec<String> = no_cards
            .iter()
            .filter(|p| *p != "ACCOUNTS_BALANCES_READ")
            .cloned()
            .collect();
        assert_eq!(permission_groups(&half_a_group), [RegistrationAll]);
        assert!(permission_groups(&[]).is_empty());
    }
}
