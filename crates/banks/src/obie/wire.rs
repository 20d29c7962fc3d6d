//! The UK Open Banking 3.1 answers the connector reads, after `specs/obie-account-info-3.1.11.json`.
//!
//! Each struct declares the fields freshet reads: those the specification requires are required
//! here, the optional ones are `Option`. Fields freshet does not read are not declared, so a bank
//! may add or omit them freely. Codes the connector maps are enums where the specification
//! closes them; consent statuses stay strings, since an unknown one is a consent in error, not
//! a broken answer.

use serde::Deserialize;

use crate::wire::{Timestamp, Unsigned};

/// `OBReadConsentResponse1`: the account-access consent, as created or read back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentResponse {
    pub data: ConsentData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentData {
    pub consent_id: String,
    pub status: String,
    pub expiration_date_time: Option<Timestamp>,
    /// What the consent grants (required by the standard; read leniently).
    pub permissions: Option<Vec<String>>,
}

/// A page of a list: `OBReadAccount6`, `OBReadBalance1`, `OBReadTransaction6`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Page<D> {
    pub data: D,
    pub links: Option<Links>,
}

/// `Links`: `Next` is absent on the last page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Links {
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Accounts {
    #[serde(default)]
    pub account: Vec<Account>,
}

/// `OBAccount6`. `Currency` is optional only for accounts switched away (CASS).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    pub account_id: String,
    pub currency: Option<String>,
    pub account_type: Option<String>,
    pub account_sub_type: Option<String>,
    pub nickname: Option<String>,
    pub switch_status: Option<String>,
    #[serde(default)]
    pub account: Vec<AccountIdentification>,
}

/// The switch status of an account that has moved to another bank.
pub const SWITCH_COMPLETED: &str = "UK.CASS.SwitchCompleted";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountIdentification {
    pub identification: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Balances {
    pub balance: Vec<Balance>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Balance {
    pub credit_debit_indicator: CreditDebit,
    #[serde(rename = "Type")]
    pub kind: String,
    pub date_time: Timestamp,
    pub amount: Amount,
}

/// An amount: unsigned, its sign in the `CreditDebitIndicator` next to it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Amount {
    pub amount: Unsigned,
    pub currency: String,
}

/// `OBCreditDebitCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum CreditDebit {
    Credit,
    Debit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Transactions {
    #[serde(default)]
    pub transaction: Vec<Transaction>,
}

/// `OBTransaction6`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Transaction {
    pub transaction_id: Option<String>,
    pub credit_debit_indicator: CreditDebit,
    pub status: EntryStatus,
    pub transaction_mutability: Option<Mutability>,
    pub booking_date_time: Timestamp,
    pub amount: Amount,
    pub transaction_information: Option<String>,
    pub merchant_details: Option<MerchantDetails>,
}

/// `OBEntryStatus1Code` (`Rejected` since 3.1.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum EntryStatus {
    Booked,
    Pending,
    Rejected,
}

/// `OBTransactionMutability1Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Mutability {
    Mutable,
    Immutable,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MerchantDetails {
    pub merchant_name: Option<String>,
}

/// `OBErrorResponse1`, read for what it can tell: the HTTP status already says the call
/// failed, so a body that breaks the schema must not hide that behind a parse failure.
/// Every field is therefore optional here, whatever the specification requires.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorResponse {
    pub message: Option<String>,
    pub errors: Vec<ErrorItem>,
}

/// `OBError1`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorItem {
    pub error_code: Option<String>,
}
