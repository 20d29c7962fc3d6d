//! The Open Finance Brasil answers the connector reads, after
//! `specs/open-finance-brasil-consents-2.2.0.json` and `specs/open-finance-brasil-accounts-2.4.2.json`.
//!
//! Each struct declares the fields freshet reads: those the specification requires are required
//! here, the optional ones are `Option`. Fields freshet does not read are not declared, so a bank
//! may add or omit them freely. Codes the connector maps are enums where the specification
//! closes them; consent statuses and rejection reasons stay strings, since an unknown one is a
//! consent in error or rejected, not a broken answer.

use serde::Deserialize;

use crate::wire::{Signed, Timestamp, Unsigned};

/// `ResponseConsent` and `ResponseConsentRead`.
#[derive(Debug, Deserialize)]
pub struct ConsentResponse {
    pub data: ConsentData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentData {
    pub consent_id: String,
    pub status: String,
    pub expiration_date_time: Timestamp,
    pub rejection: Option<Rejection>,
    /// What the consent grants (required by the standard; read leniently).
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct Rejection {
    pub reason: RejectedReason,
}

/// `RejectedReason`.
#[derive(Debug, Deserialize)]
pub struct RejectedReason {
    pub code: String,
}

/// A page of a list: `ResponseAccountList`, `ResponseAccountTransactions`.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub links: Links,
}

/// `Links` and `TransactionsLinks`: `next` is absent on the last page.
#[derive(Debug, Deserialize)]
pub struct Links {
    pub next: Option<String>,
}

/// `AccountData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: String,
    pub brand_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub branch_code: Option<String>,
    pub number: String,
    pub check_digit: String,
}

/// `ResponseAccountBalances`.
#[derive(Debug, Deserialize)]
pub struct BalancesResponse {
    pub data: Balances,
}

/// `AccountBalancesData`: three amounts, which may be negative (unlike transaction amounts).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balances {
    pub available_amount: Amount<Signed>,
    pub blocked_amount: Amount<Signed>,
    pub automatically_invested_amount: Amount<Signed>,
    pub update_date_time: Timestamp,
}

#[derive(Debug, Deserialize)]
pub struct Amount<A> {
    pub amount: A,
    pub currency: String,
}

/// `AccountTransactionsData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub transaction_id: String,
    pub completed_authorised_payment_type: PaymentType,
    pub credit_debit_type: CreditDebit,
    pub transaction_name: String,
    pub transaction_amount: Amount<Unsigned>,
    pub transaction_date_time: Timestamp,
}

/// `EnumCompletedAuthorisedPaymentIndicator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentType {
    /// Settled: its id is immutable from now on.
    TransacaoEfetivada,
    LancamentoFuturo,
    TransacaoProcessando,
}

/// `EnumCreditDebitIndicator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CreditDebit {
    Credito,
    Debito,
}

/// `ResponseError`, read for what it can tell (see [`crate::wire::lenient`]): every field
/// optional here, whatever the specification requires.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorItem {
    pub code: Option<String>,
    pub detail: Option<String>,
}
