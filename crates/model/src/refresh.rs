//! Links, consents, accounts, transactions and refresh tasks: the refresh engine's records.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::{
    ApplicationId, ConsentStatus, CustomerId, ResultCode,
    events::{AccountChange, Permission, RefreshStage, RefreshTrigger, TaskStatus},
    reconcile::TxnStatus,
};

macro_rules! ids {
    ($($(#[$m:meta])* $name:ident),*) => {
        $(crate::ids::id_type!($(#[$m])* $name);)*
    };
}
ids!(
    /// A customer's connection to one provider.
    LinkId,
    /// One authorisation of a link at the bank.
    ConsentId,
    /// An account freshet holds.
    AccountId,
    /// A transaction freshet holds.
    TransactionId,
    /// A refresh over some of a customer's banks.
    TaskId,
    /// One bank's part of a refresh task.
    SubTaskId
);

/// A link: the customer and the provider, across re-authorisations.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub id: LinkId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub provider_id: String,
    /// A stable integer id, for the formats that want one (Yodlee's `providerAccount.id`).
    pub number: i64,
    pub external_track_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A consent as freshet holds it. The bank's tokens are not part of it: see [`BankTokens`].
#[derive(Clone, Debug, PartialEq)]
pub struct Consent {
    pub id: ConsentId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub link_id: LinkId,
    pub provider_id: String,
    pub status: ConsentStatus,
    pub bank_consent_id: String,
    pub permissions_requested: Vec<Permission>,
    pub permissions_granted: Vec<Permission>,
    pub expires_at: Option<OffsetDateTime>,
    pub external_track_id: Option<String>,
    pub reconnect_required: bool,
    /// Where to send the customer to authorise, while awaiting authorisation.
    pub authorisation_url: Option<String>,
    /// Where freshet sends the customer back after the bank, if the client asked.
    pub redirect_url: Option<String>,
    pub next_refresh_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// When the customer authorised it at the bank.
    pub authorised_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The tokens a consent's data calls use. `Debug` hides the tokens.
#[derive(Clone, PartialEq)]
pub struct BankTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for BankTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankTokens")
            .field("access_token", &crate::secret::REDACTED)
            .field("refresh_token", &crate::secret::redact(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A balance as the bank reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Balance {
    /// The standard's balance type, e.g. `InterimAvailable`, `closingBooked`, `AVAILABLE`.
    pub kind: String,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub at: Option<OffsetDateTime>,
}

/// An account freshet holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub consent_id: ConsentId,
    pub provider_id: String,
    pub bank_account_id: String,
    pub currency: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub identification: Option<String>,
    pub balances: Vec<Balance>,
    /// The bank stopped listing it.
    pub removed: bool,
    pub last_booked_date: Option<Date>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A transaction freshet holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub id: TransactionId,
    pub account_id: AccountId,
    pub provider_transaction_id: Option<String>,
    pub immutable_id: bool,
    pub status: TxnStatus,
    pub booking_date: Date,
    pub amount: Decimal,
    pub currency: String,
    pub description: String,
    pub removed: bool,
    /// The account's change sequence when it was added and last changed: what sync reads.
    pub created_seq: i64,
    pub changed_seq: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A refresh task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub status: TaskStatus,
    pub result: Option<ResultCode>,
    pub has_new_transactions: bool,
    pub trigger: RefreshTrigger,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One bank's part of a refresh task.
#[derive(Clone, Debug, PartialEq)]
pub struct SubTask {
    pub id: SubTaskId,
    pub task_id: TaskId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub consent_id: ConsentId,
    pub provider_id: String,
    pub status: TaskStatus,
    pub result: Option<ResultCode>,
    pub reconnect_required: bool,
    pub has_new_transactions: bool,
    pub account_ids: Vec<AccountId>,
    /// The furthest interim stage reached (each is reported once).
    pub stage: Option<RefreshStage>,
    /// The accounts this sub-task added, updated or removed, fixed by its first attempt.
    pub account_changes: Option<Vec<AccountChange>>,
    /// New transactions found per account, accumulated across attempts.
    pub new_transactions: Value,
    pub attempts: i64,
    pub window_from: Option<Date>,
    pub window_to: Option<Date>,
    /// The customer's IP when they are present: exempts the calls from the unattended budget.
    pub customer_ip: Option<String>,
    pub trigger: RefreshTrigger,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Running, Self::Completed, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl RefreshTrigger {
    /// Whether a client asked for this refresh: through the API, or by authorising a consent
    /// (whose first import follows). Vendor dialects report refreshes a client asked for.
    pub fn requested(self) -> bool {
        matches!(self, Self::Manual | Self::FirstImport)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::FirstImport => "first_import",
            Self::BankNotification => "bank_notification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Scheduled,
            Self::FirstImport,
            Self::BankNotification,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl RefreshStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSuccess => "login_success",
            Self::AccountSummaryReceived => "account_summary_received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::LoginSuccess, Self::AccountSummaryReceived]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl TxnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Booked => "booked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Booked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A stable positive integer for a UUID, for formats that want integer ids.
pub fn integer_id(id: uuid::Uuid) -> i64 {
    let b = id.as_bytes();
    // The random tail of a UUIDv7, so ids made in the same millisecond still differ.
    let tail = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    (tail % 9_000_000_000 + 1_000_000_000) as i64
}
