//! The Berlin Group NextGenPSD2 1.3 answers the connector reads, after
//! `specs/berlin-group-nextgenpsd2-1.3.11.json`.
//!
//! Each struct declares the fields freshet reads: those the specification requires are required
//! here, the optional ones are `Option`. Fields freshet does not read are not declared, so a bank
//! may add or omit them freely. Consent statuses stay strings: an unknown one is a consent in
//! error, not a broken answer.

use serde::Deserialize;

use crate::wire::{Signed, Timestamp, Ymd};

/// `consentsResponse-201`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentCreated {
    pub consent_status: String,
    pub consent_id: String,
}

/// `consentInformationResponse-200_json`: what `GET /v1/consents/{id}` answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentInformation {
    pub consent_status: String,
    /// `YYYY-MM-DD`; the bank may have shortened what was asked.
    pub valid_until: String,
}

/// `accountList`.
#[derive(Debug, Deserialize)]
pub struct AccountList {
    pub accounts: Vec<Account>,
}

/// `accountDetails`. The specification makes `resourceId` optional, but it "shall be filled"
/// for accounts listed by `/v1/accounts`, and without it no balance or transaction can be
/// asked for: required here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub resource_id: String,
    pub currency: String,
    pub iban: Option<String>,
    pub bban: Option<String>,
    pub name: Option<String>,
    pub product: Option<String>,
    pub cash_account_type: Option<String>,
}

/// `readAccountBalanceResponse-200`.
#[derive(Debug, Deserialize)]
pub struct BalanceResponse {
    pub balances: Vec<Balance>,
}

/// `balance`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub balance_amount: Amount,
    pub balance_type: String,
    pub last_change_date_time: Option<Timestamp>,
    pub reference_date: Option<Ymd>,
}

/// `amount`: signed.
#[derive(Debug, Deserialize)]
pub struct Amount {
    pub currency: String,
    pub amount: Signed,
}

/// `transactionsResponse-200_json`. Without `transactions`, a bank may offer the report as a
/// download instead (`_links.download`).
#[derive(Debug, Deserialize)]
pub struct TransactionsResponse {
    pub transactions: Option<AccountReport>,
    #[serde(rename = "_links")]
    pub links: Option<DownloadLinks>,
}

#[derive(Debug, Deserialize)]
pub struct DownloadLinks {
    pub download: Option<Href>,
}

/// `accountReport`: booked and pending lists, paged by `_links.next`.
#[derive(Debug, Deserialize)]
pub struct AccountReport {
    #[serde(default)]
    pub booked: Vec<Transaction>,
    #[serde(default)]
    pub pending: Vec<Transaction>,
    #[serde(rename = "_links")]
    pub links: ReportLinks,
}

/// `_linksAccountReport`.
#[derive(Debug, Deserialize)]
pub struct ReportLinks {
    pub next: Option<Href>,
}

/// `hrefType`.
#[derive(Debug, Deserialize)]
pub struct Href {
    pub href: Option<String>,
}

/// `transactions`: only the amount is required; a row still needs a date, checked by the
/// connector (`bookingDate`, else `valueDate`, else `transactionDate`, which some banks send).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub transaction_id: Option<String>,
    pub entry_reference: Option<String>,
    pub booking_date: Option<Ymd>,
    pub value_date: Option<Ymd>,
    pub transaction_date: Option<Ymd>,
    pub transaction_amount: Amount,
    pub creditor_name: Option<String>,
    pub debtor_name: Option<String>,
    pub remittance_information_unstructured: Option<String>,
}

/// `Error4xx_NG_AIS` and friends, read for what they can tell (see [`crate::wire::lenient`]):
/// every field optional here, whatever the specification requires.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorResponse {
    pub tpp_messages: Vec<TppMessage>,
}

/// `tppMessage…`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TppMessage {
    pub code: Option<String>,
    pub text: Option<String>,
}
