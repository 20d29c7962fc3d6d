//! The products themselves: pure functions from the accounts and booked transactions freshet
//! holds to the JSON a callback URL receives. No I/O, so the arithmetic is tested on its own.
//!
//! Bodies use Klavi's camelCase; amounts are exact decimals written as strings. Only booked
//! transactions count: a pending one may still change or vanish. The closing balance is the
//! booked balance freshet last read, less what was booked after the period; the opening
//! balance is the closing one less the period's movements.

use freshet_model::{
    products::ProductKind,
    reconcile::TxnStatus,
    refresh::{Account, Transaction},
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use time::Date;

/// Why a product could not be built (Klavi's `failureReason`).
pub const NO_CHECKING_ACCOUNT: &str = "no checking account";
pub const NO_CREDIT_CARD: &str = "no credit card account";

/// What a request asks about, for every product's header.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub request_id: String,
    pub product: &'static str,
    pub tax_id: Option<String>,
    pub institution_code: String,
    pub link_id: String,
    pub consent_ids: Vec<String>,
    pub period: Period,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: time::OffsetDateTime,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Period {
    #[serde(with = "ymd")]
    pub from: Date,
    #[serde(with = "ymd")]
    pub to: Date,
}

/// An account with its booked transactions in the period and any booked after it.
#[derive(Clone, Debug)]
pub struct AccountData {
    pub account: Account,
    pub in_period: Vec<Transaction>,
    pub after_period: Vec<Transaction>,
}

/// Which product an account serves, by the standard's account type: OBIE
/// `Personal/CurrentAccount`, Berlin Group `CACC`, Brasil `CONTA_DEPOSITO_A_VISTA`; OBIE
/// `…/CreditCard` for cards.
pub fn serves(product: ProductKind, kind: Option<&str>) -> bool {
    let Some(kind) = kind else { return false };
    let sub = kind.rsplit('/').next().unwrap_or(kind).to_ascii_lowercase();
    match product {
        ProductKind::PfCheckingAccount => {
            matches!(
                sub.as_str(),
                "currentaccount" | "cacc" | "conta_deposito_a_vista"
            )
        }
        ProductKind::PfCreditCard => {
            matches!(sub.as_str(), "creditcard" | "card" | "cartao_credito")
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TxnOut<'a> {
    transaction_id: String,
    provider_transaction_id: Option<&'a str>,
    booking_date: String,
    /// `CREDIT` or `DEBIT`.
    #[serde(rename = "type")]
    direction: &'static str,
    amount: Decimal,
    description: &'a str,
}

/// Sums of one account over the period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub credits: Decimal,
    pub debits: Decimal,
    pub credit_count: usize,
    pub debit_count: usize,
}

/// Credits and debits of the booked transactions (debits as a positive sum).
pub fn totals(txns: &[Transaction]) -> Totals {
    let mut t = Totals::default();
    for x in txns.iter().filter(|x| x.status == TxnStatus::Booked) {
        if x.amount.is_sign_negative() {
            t.debits -= x.amount;
            t.debit_count += 1;
        } else {
            t.credits += x.amount;
            t.credit_count += 1;
        }
    }
    t
}

/// The booked balance freshet last read, by the standards' names, most booked first.
fn booked_balance(a: &Account) -> Option<Decimal> {
    const PREFERRED: [&str; 7] = [
        "interimbooked",
        "closingbooked",
        "expected",
        "available",
        "interimavailable",
        "closingavailable",
        "openingbooked",
    ];
    PREFERRED.iter().find_map(|want| {
        a.balances
            .iter()
            .find(|b| b.kind.eq_ignore_ascii_case(want))
            .map(|b| b.amount)
    })
}

fn account_json(d: &AccountData, card: bool) -> Value {
    let a = &d.account;
    let t = totals(&d.in_period);
    let booked = |x: &&Transaction| x.status == TxnStatus::Booked;
    let net = t.credits - t.debits;
    let closing = booked_balance(a).map(|b| b - totals(&d.after_period).net());
    let opening = closing.map(|c| c - net);
    let txns: Vec<TxnOut<'_>> = d
        .in_period
        .iter()
        .filter(booked)
        .map(|x| TxnOut {
            transaction_id: x.id.to_string(),
            provider_transaction_id: x.provider_transaction_id.as_deref(),
            booking_date: ymd::format(x.booking_date),
            direction: if x.amount.is_sign_negative() {
                "DEBIT"
            } else {
                "CREDIT"
            },
            amount: x.amount.abs(),
            description: &x.description,
        })
        .collect();
    let mut out = serde_json::json!({
        "accountId": a.id.to_string(),
        "bankAccountId": a.bank_account_id,
        "name": a.name,
        "type": a.kind,
        "identification": a.identification,
        "currency": a.currency,
        "openingBalance": opening,
        "closingBalance": closing,
        "totalCredits": t.credits,
        "totalDebits": t.debits,
        "creditCount": t.credit_count,
        "debitCount": t.debit_count,
        "transactions": txns,
    });
    if card {
        // A card's debits are purchases and its credits payments.
        out["totalPurchases"] = serde_json::json!(t.debits);
        out["totalPayments"] = serde_json::json!(t.credits);
    }
    out
}

impl Totals {
    fn net(&self) -> Decimal {
        self.credits - self.debits
    }
}

/// Builds `product` from the accounts of the request's consents, or says why it cannot.
pub fn build(
    product: ProductKind,
    header: &Header,
    accounts: &[AccountData],
) -> Result<Value, &'static str> {
    let serving: Vec<&AccountData> = accounts
        .iter()
        .filter(|d| !d.account.removed && serves(product, d.account.kind.as_deref()))
        .collect();
    if serving.is_empty() {
        return Err(match product {
            ProductKind::PfCheckingAccount => NO_CHECKING_ACCOUNT,
            ProductKind::PfCreditCard => NO_CREDIT_CARD,
        });
    }
    let card = product == ProductKind::PfCreditCard;
    let list: Vec<Value> = serving.iter().map(|d| account_json(d, card)).collect();
    let mut body = serde_json::to_value(header).expect("a header serialises");
    let key = if card { "creditCards" } else { "accounts" };
    body[key] = Value::Array(list);
    Ok(body)
}

mod ymd {
    use serde::Serializer;
    use time::{Date, macros::format_description};

    pub fn format(d: Date) -> String {
        d.format(format_description!("[year]-[month]-[day]"))
            .expect("dates format")
    }

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }
}

#[cfg(test)]
mod tests {
    use freshet_model::refresh::{AccountId, Balance, TransactionId};
    use time::macros::{date, datetime};

    use super::*;

    fn account(kind: &str, booked: &str) -> Account {
        let now = datetime!(2026-03-31 12:00 UTC);
        Account {
            id: AccountId::new(),
            application_id: Default::default(),
            customer_id: Default::default(),
            consent_id: Default::default(),
            provider_id: "santander-br".into(),
            bank_account_id: "ACC1".into(),
            currency: "BRL".into(),
            name: Some("Conta Corrente".into()),
            kind: Some(kind.into()),
            identification: None,
            balances: vec![Balance {
                kind: "AVAILABLE".into(),
                amount: booked.parse().unwrap(),
                currency: "BRL".into(),
                at: None,
            }],
            removed: false,
            last_booked_date: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn txn(day: Date, amount: &str, status: TxnStatus) -> Transaction {
        let now = datetime!(2026-03-31 12:00 UTC);
        Transaction {
            id: TransactionId::new(),
            account_id: AccountId::new(),
            provider_transaction_id: None,
            immutable_id: true,
            status,
            booking_date: day,
            amount: amount.parse().unwrap(),
            currency: "BRL".into(),
            description: "x".into(),
            removed: false,
            created_seq: 1,
            changed_seq: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn header() -> Header {
        Header {
            request_id: "r1".into(),
            product: "pf_checking_account",
            tax_id: None,
            institution_code: "033".into(),
            link_id: "l1".into(),
            consent_ids: vec!["c1".into()],
            period: Period {
                from: date!(2026 - 03 - 01),
                to: date!(2026 - 03 - 30),
            },
            generated_at: datetime!(2026-03-31 12:00 UTC),
        }
    }

    #[test]
    fn kinds_decide_the_product() {
        for k in ["Personal/CurrentAccount", "CACC", "CONTA_DEPOSITO_A_VISTA"] {
            assert!(serves(ProductKind::PfCheckingAccount, Some(k)), "{k}");
            assert!(!serves(ProductKind::PfCreditCard, Some(k)), "{k}");
        }
        for k in ["Personal/Savings", "SVGS", "CONTA_POUPANCA"] {
            assert!(!serves(ProductKind::PfCheckingAccount, Some(k)), "{k}");
        }
        assert!(serves(
            ProductKind::PfCreditCard,
            Some("Personal/CreditCard")
        ));
        assert!(!serves(ProductKind::PfCheckingAccount, None));
    }

    #[test]
    fn a_statement_adds_up() {
        let d = AccountData {
            account: account("CONTA_DEPOSITO_A_VISTA", "1000.00"),
            in_period: vec![
                txn(date!(2026 - 03 - 02), "2500.00", TxnStatus::Booked),
                txn(date!(2026 - 03 - 05), "-120.50", TxnStatus::Booked),
                txn(date!(2026 - 03 - 06), "-79.50", TxnStatus::Booked),
                txn(date!(2026 - 03 - 07), "-999.00", TxnStatus::Pending),
            ],
            after_period: vec![txn(date!(2026 - 03 - 31), "-50.00", TxnStatus::Booked)],
        };
        let body = build(ProductKind::PfCheckingAccount, &header(), &[d]).unwrap();
        let a = &body["accounts"][0];
        assert_eq!(a["totalCredits"], "2500.00");
        assert_eq!(a["totalDebits"], "200.00");
        assert_eq!(
            (a["creditCount"].as_u64(), a["debitCount"].as_u64()),
            (Some(1), Some(2))
        );
        // Closing: 1000 now, plus the 50 spent after the period; opening: closing less 2300.
        assert_eq!(a["closingBalance"], "1050.00");
        assert_eq!(a["openingBalance"], "-1250.00");
        assert_eq!(
            a["transactions"].as_array().unwrap().len(),
            3,
            "pending left out"
        );
        assert_eq!(a["transactions"][1]["type"], "DEBIT");
        assert_eq!(a["transactions"][1]["amount"], "120.50");
        assert_eq!(body["period"]["from"], "2026-03-01");
        assert_eq!(body["product"], "pf_checking_account");
    }

    #[test]
    fn without_the_right_account_the_product_fails_with_klavis_reason() {
        let savings = AccountData {
            account: account("CONTA_POUPANCA", "10"),
            in_period: vec![],
            after_period: vec![],
        };
        assert_eq!(
            build(
                ProductKind::PfCheckingAccount,
                &header(),
                std::slice::from_ref(&savings)
            ),
            Err(NO_CHECKING_ACCOUNT)
        );
        assert_eq!(
            build(ProductKind::PfCreditCard, &header(), &[savings]),
            Err(NO_CREDIT_CARD)
        );
    }
}
