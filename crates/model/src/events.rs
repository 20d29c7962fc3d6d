//! Canonical event payloads: what each [`EventType`] carries.
//!
//! An event is written once, in the same transaction as the change it records, and never
//! changes; every delivery of it — first attempt, retry, replay, in any dialect — renders from
//! this payload alone. So each payload carries a snapshot of everything any dialect needs
//! (the customer's vendor-facing fields, the provider's names and codes, the link's numeric id),
//! rather than ids to look up later, when those records may have changed or gone.
//!
//! Ids are strings: freshet's own are UUIDs, but the vendor formats echo ids of other shapes
//! (Klavi's `linkId`, Tatra's `consentId`), and a payload must be able to carry them verbatim.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{ConsentStatus, EventType, ResultCode};

/// A stored event: envelope and payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7; also the Standard Webhooks `webhook-id` base.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub data: EventData,
}

/// The payload of an event, by type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventData {
    LinkCreated(LinkCreated),
    /// `consent.authorised`, `.rejected`, `.error`, `.expired`, `.revoked`, `.deleted_by_user`
    /// and `.expiring`.
    Consent(ConsentChanged),
    RefreshProgress(RefreshProgress),
    ProviderCompleted(ProviderCompleted),
    RefreshCompleted(RefreshCompleted),
    TransactionsNew(TransactionsNew),
    AccountsUpdated(AccountsUpdated),
    /// `product.request_received`, `.generated_success`, `.generated_failed`.
    Product(ProductEvent),
    EndpointTest(EndpointTest),
    EndpointDisabled(EndpointDisabled),
    CustomerErased(crate::erasure::CustomerErased),
}

impl EventData {
    /// Reads a stored payload of a known type. (Untagged deserialisation alone could pick the
    /// wrong variant for look-alike payloads; the type decides.)
    pub fn from_json(event_type: EventType, value: Value) -> Result<Self, serde_json::Error> {
        use EventType as T;
        Ok(match event_type {
            T::LinkCreated => Self::LinkCreated(serde_json::from_value(value)?),
            T::ConsentAuthorised
            | T::ConsentRejected
            | T::ConsentError
            | T::ConsentExpired
            | T::ConsentRevoked
            | T::ConsentDeletedByUser
            | T::ConsentExpiring => Self::Consent(serde_json::from_value(value)?),
            T::RefreshProgress => Self::RefreshProgress(serde_json::from_value(value)?),
            T::RefreshProviderCompleted => Self::ProviderCompleted(serde_json::from_value(value)?),
            T::RefreshCompleted => Self::RefreshCompleted(serde_json::from_value(value)?),
            T::TransactionsNew => Self::TransactionsNew(serde_json::from_value(value)?),
            T::AccountsUpdated => Self::AccountsUpdated(serde_json::from_value(value)?),
            T::ProductRequestReceived | T::ProductGeneratedSuccess | T::ProductGeneratedFailed => {
                Self::Product(serde_json::from_value(value)?)
            }
            T::EndpointTest => Self::EndpointTest(serde_json::from_value(value)?),
            T::EndpointDisabled => Self::EndpointDisabled(serde_json::from_value(value)?),
            T::CustomerErased => Self::CustomerErased(serde_json::from_value(value)?),
        })
    }

    /// The customer the event is about, if any.
    pub fn customer(&self) -> Option<&CustomerSnapshot> {
        match self {
            Self::LinkCreated(e) => Some(&e.customer),
            Self::Consent(e) => Some(&e.customer),
            Self::RefreshProgress(e) => Some(&e.customer),
            Self::ProviderCompleted(e) => Some(&e.customer),
            Self::RefreshCompleted(e) => Some(&e.customer),
            Self::TransactionsNew(e) => Some(&e.customer),
            Self::AccountsUpdated(e) => Some(&e.customer),
            Self::Product(e) => Some(&e.customer),
            Self::EndpointTest(_) | Self::EndpointDisabled(_) | Self::CustomerErased(_) => None,
        }
    }
}

/// The customer as it was when the event happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    pub id: String,
    pub external_id: Option<String>,
    /// Yodlee `loginName`.
    pub login_name: Option<String>,
    /// Klavi `personalTaxId`.
    pub personal_tax_id: Option<String>,
    /// Klavi `businessTaxId`.
    pub business_tax_id: Option<String>,
    /// Klavi `externalInfo`, echoed verbatim.
    pub external_info: Option<Map<String, Value>>,
}

/// The bank, with every name the vendor formats use for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderSnapshot {
    /// freshet's id, e.g. `natwest`.
    pub id: String,
    /// Display name, e.g. `Natwest` (Bud `provider`, Tatra `bankName`).
    pub name: String,
    /// Bank code, e.g. `SLSP`, `033` (Tatra `bankCode`, Klavi `institutionCode`).
    pub code: String,
    /// A stable integer id (Yodlee `providerId`).
    pub numeric_id: i64,
}

/// A customer's connection to one provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    /// Klavi `linkId`.
    pub id: String,
    /// A stable integer id (Yodlee `providerAccount.id`).
    pub number: i64,
    /// Yodlee `createdDate`.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a consent lets freshet read, in Open Finance Brasil's permission groups (which Klavi
/// sends upper-cased); connectors map them to each standard's own permissions.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    RegistrationAll,
    AccountsAll,
    CreditCardsAll,
    CreditOperationsAll,
    InvestmentsAll,
}

/// A consent as it was when the event happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsentSnapshot {
    pub id: String,
    pub status: ConsentStatus,
    pub permissions_requested: Vec<Permission>,
    pub permissions_granted: Vec<Permission>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub external_track_id: Option<String>,
    pub reconnect_required: bool,
}

/// `link.created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkCreated {
    pub customer: CustomerSnapshot,
    pub provider: ProviderSnapshot,
    pub link: LinkSnapshot,
}

/// Every `consent.*` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsentChanged {
    pub customer: CustomerSnapshot,
    pub provider: ProviderSnapshot,
    pub link: LinkSnapshot,
    pub consent: ConsentSnapshot,
    /// Why, when the bank or freshet said (rejections, errors, revocations).
    pub reason: Option<String>,
}

/// The status of a refresh task or sub-task (Bud's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

/// The interim stages a sub-task reports (Yodlee's REFRESH.INTERIM_PROGRESS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStage {
    LoginSuccess,
    AccountSummaryReceived,
}

/// What started a refresh task (Yodlee's `aggregationSource`: `USER` or `SYSTEM`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTrigger {
    /// A client asked for it (`POST /v1/customers/{id}/refresh`, `PUT /v1/consents/{id}/refresh`).
    #[default]
    Manual,
    /// freshet's scheduler started it.
    Scheduled,
    /// The consent's first import after the customer authorised it (started by the scheduler,
    /// which takes a consent's refreshes as first imports until one has succeeded).
    FirstImport,
    /// The bank notified freshet of new transactions on the consent's accounts (a provider with
    /// `push`): refreshed at once, without spending the consent's unattended budget.
    BankNotification,
}

/// A consent's id and expiry, as Bud's `consent_details[]` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsentDetail {
    pub id: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expiration_date: Option<OffsetDateTime>,
}

/// One provider's part of a refresh task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubTaskSnapshot {
    pub task_id: String,
    pub provider: ProviderSnapshot,
    pub link: LinkSnapshot,
    pub status: TaskStatus,
    /// `None` while the sub-task runs.
    pub result: Option<ResultCode>,
    pub reconnect_required: bool,
    pub has_new_transactions: bool,
    pub account_ids: Vec<String>,
    pub consent_ids: Vec<String>,
    /// `None` where the source did not list them (seed 000's failure example).
    pub consent_details: Option<Vec<ConsentDetail>>,
    /// An opaque id of this refresh attempt at the bank (Yodlee `requestId`).
    pub request_id: String,
    /// When data was last retrieved successfully (Yodlee `lastUpdated`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_updated: Option<OffsetDateTime>,
    /// When this attempt ended (Yodlee `lastUpdateAttempt`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_update_attempt: Option<OffsetDateTime>,
}

/// `refresh.progress`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshProgress {
    pub customer: CustomerSnapshot,
    /// The whole task's id.
    pub task_id: String,
    /// Absent in payloads written before it existed: those read as `manual`.
    #[serde(default)]
    pub trigger: RefreshTrigger,
    pub stage: RefreshStage,
    pub sub_task: SubTaskSnapshot,
}

/// `refresh.provider.completed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderCompleted {
    pub customer: CustomerSnapshot,
    /// The whole task's id.
    pub task_id: String,
    /// Absent in payloads written before it existed: those read as `manual`.
    #[serde(default)]
    pub trigger: RefreshTrigger,
    pub sub_task: SubTaskSnapshot,
}

/// `refresh.completed`: the task and all its sub-tasks, ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshCompleted {
    pub customer: CustomerSnapshot,
    pub task_id: String,
    /// Absent in payloads written before it existed: those read as `manual`.
    #[serde(default)]
    pub trigger: RefreshTrigger,
    pub status: TaskStatus,
    pub result: ResultCode,
    pub has_new_transactions: bool,
    pub sub_tasks: Vec<SubTaskSnapshot>,
}

/// How many new transactions an account got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountNewTransactions {
    pub account_id: String,
    pub count: u32,
}

/// `transactions.new`: one consent's accounts that received new transactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionsNew {
    pub customer: CustomerSnapshot,
    pub provider: ProviderSnapshot,
    pub consent_id: String,
    /// The sub-task that found them, when a refresh did.
    pub task_id: Option<String>,
    pub accounts: Vec<AccountNewTransactions>,
}

/// What happened to an account in a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountChangeKind {
    Added,
    Updated,
    Removed,
}

/// One account's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountChange {
    pub account_id: String,
    pub change: AccountChangeKind,
}

/// `accounts.updated`: the accounts a sub-task added, updated or removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountsUpdated {
    pub customer: CustomerSnapshot,
    pub provider: ProviderSnapshot,
    pub consent_id: String,
    /// The sub-task's id (what Tatra's `PUT /refresh` returned).
    pub task_id: String,
    /// What started the refresh; absent in payloads written before it existed (`manual`).
    #[serde(default)]
    pub trigger: RefreshTrigger,
    pub task_status: TaskStatus,
    pub accounts: Vec<AccountChange>,
}

/// A request for data products, as the client made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductRequestSnapshot {
    pub id: String,
    /// Klavi `requestBody.taxId`.
    pub tax_id: Option<String>,
    pub institution_code: String,
    pub link_id: String,
    pub consent_ids: Vec<String>,
    pub products: Vec<String>,
    pub product_callback_urls: BTreeMap<String, String>,
}

/// Every `product.*` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductEvent {
    pub customer: CustomerSnapshot,
    pub request: ProductRequestSnapshot,
    /// The product this event is about (`generated_*` only).
    pub product: Option<String>,
    /// Why generation failed (`generated_failed` only), e.g. "no checking account".
    pub failure_reason: Option<String>,
}

/// `endpoint.test`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointTest {
    pub endpoint_id: String,
    /// Whatever the caller of the test passed, carried verbatim.
    pub data: Option<Value>,
}

/// `endpoint.disabled`: an endpoint stopped receiving after failing for too long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointDisabled {
    pub endpoint_id: String,
    pub url: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn customer() -> CustomerSnapshot {
        CustomerSnapshot {
            id: "c1".into(),
            login_name: Some("fri21".into()),
            ..Default::default()
        }
    }

    #[test]
    fn payloads_round_trip_by_type() {
        let data = EventData::EndpointTest(EndpointTest {
            endpoint_id: "e1".into(),
            data: Some(serde_json::json!({"sent_at": 1})),
        });
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(
            EventData::from_json(EventType::EndpointTest, json).unwrap(),
            data
        );

        let link = LinkSnapshot {
            id: "l1".into(),
            number: 10995860,
            created_at: datetime!(2017-12-22 05:47:35 UTC),
        };
        let data = EventData::LinkCreated(LinkCreated {
            customer: customer(),
            provider: ProviderSnapshot::default(),
            link,
        });
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["link"]["created_at"], "2017-12-22T05:47:35Z");
        assert_eq!(
            EventData::from_json(EventType::LinkCreated, json).unwrap(),
            data
        );
        assert_eq!(
            data.customer().unwrap().login_name.as_deref(),
            Some("fri21")
        );
    }

    /// Payloads stored before `trigger` existed still read, as manual refreshes.
    #[test]
    fn a_refresh_payload_without_trigger_reads_as_manual() {
        let sub_task = serde_json::json!({
            "task_id": "s1",
            "provider": {"id": "natwest", "name": "Natwest", "code": "", "numeric_id": 1},
            "link": {"id": "l1", "number": 1, "created_at": "2017-12-22T05:47:35Z"},
            "status": "Completed", "result": "success", "reconnect_required": false,
            "has_new_transactions": false, "account_ids": [], "consent_ids": [],
            "consent_details": null, "request_id": "r1", "last_updated": null,
            "last_update_attempt": null
        });
        let json = serde_json::json!({
            "customer": {"id": "c1", "external_id": null, "login_name": null,
                "personal_tax_id": null, "business_tax_id": null, "external_info": null},
            "task_id": "t1",
            "sub_task": sub_task,
        });
        let EventData::ProviderCompleted(e) =
            EventData::from_json(EventType::RefreshProviderCompleted, json).unwrap()
        else {
            panic!("wrong variant");
        };
        assert_eq!(e.trigger, RefreshTrigger::Manual);
    }

    #[test]
    fn a_payload_of_the_wrong_type_is_refused() {
        let json = serde_json::json!({"endpoint_id": "e1", "data": null});
        assert!(EventData::from_json(EventType::RefreshCompleted, json).is_err());
    }

    #[test]
    fn vocabularies_serialise_as_documented() {
        assert_eq!(
            serde_json::to_value(TaskStatus::Completed).unwrap(),
            "Completed"
        );
        assert_eq!(
            serde_json::to_value(Permission::CreditCardsAll).unwrap(),
            "credit_cards_all"
        );
        assert_eq!(
            serde_json::to_value(RefreshStage::LoginSuccess).unwrap(),
            "login_success"
        );
        assert_eq!(
            serde_json::to_value(AccountChangeKind::Removed).unwrap(),
            "removed"
        );
        assert_eq!(
            serde_json::to_value(RefreshTrigger::Scheduled).unwrap(),
            "scheduled"
        );
    }
}
