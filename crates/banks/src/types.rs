//! What connectors take and give.

use std::{sync::Arc, time::Duration};

use freshet_model::{ResultCode, Standard, events::Permission};
use rust_decimal::Decimal;
use time::{Date, OffsetDateTime};

/// A bank freshet can connect to.
#[derive(Clone, Debug)]
pub struct Provider {
    /// freshet's id, e.g. `natwest`.
    pub id: String,
    /// Display name, e.g. `Natwest`.
    pub name: String,
    /// Bank code, e.g. `SLSP`, `033` (Tatra banka's `bankCode`).
    pub code: String,
    /// Klavi's `institutionCode`; the bank code when the registry gives none.
    pub institution_code: String,
    /// A stable integer id (Yodlee's `providerId`).
    pub numeric_id: i64,
    pub standard: Standard,
    /// ISO 3166 country.
    pub country: String,
    /// Root of the standard's API, e.g. `…/natwest/open-banking/v3.1/aisp`.
    pub api_base: String,
    /// The bank's authorisation page; empty when discovery gives it.
    pub authorize_url: String,
    /// The bank's token endpoint; empty when discovery gives it.
    pub token_url: String,
    /// Sub-tasks run against this bank at once, per node.
    pub concurrency: usize,
    /// Calls per consent, day and endpoint without the customer present.
    pub unattended_per_day: u32,
    /// The bank notifies freshet of new transactions: consents are created with freshet's
    /// notification URL (Berlin Group's `TPP-Notification-URI`), and a notification refreshes
    /// the consent at once.
    pub push: bool,
    /// How long one call may take.
    pub timeout: Duration,
    /// How freshet proves who it is to this bank. `None` for the relaxed sandbox banks, which
    /// ask for nothing.
    pub security: Option<Arc<Security>>,
}

/// How the client authenticates at the bank's token (and PAR) endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// A signed client assertion (RFC 7523), FAPI's default.
    PrivateKeyJwt,
    /// The mutual-TLS certificate itself (RFC 8705).
    TlsClientAuth,
    /// `client_id` and a secret in HTTP Basic; for banks that offer nothing better.
    ClientSecretBasic,
}

impl TokenAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// A provider's credentials and the security profile it demands. Key material never prints.
pub struct Security {
    pub client_id: String,
    /// Where the bank sends the customer back; the node's own callback when `None`.
    pub redirect_uri: Option<String>,
    pub token_auth: TokenAuth,
    /// OpenID Provider issuer: discovery through `/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    /// A pushed-authorisation-request endpoint given explicitly (discovery gives it otherwise).
    pub par_url: Option<String>,
    /// Signs client assertions, request objects and (Berlin Group) requests.
    pub signing: Option<freshet_fapi::SigningKey>,
    /// The certificate of the signing key: Berlin Group's `TPP-Signature-Certificate`.
    pub signing_cert: Option<freshet_fapi::Certificate>,
    /// Berlin Group: sign every request (`Digest`, `Signature`).
    pub sign_requests: bool,
    /// `client_secret_basic`'s secret.
    pub client_secret: Option<secrecy::SecretString>,
    /// The HTTP client: the transport certificate for mutual TLS and the trust roots.
    pub client: reqwest::Client,
    /// Where the transport certificate came from, for messages (never its key).
    pub transport_cert: Option<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("client_id", &self.client_id)
            .field("token_auth", &self.token_auth)
            .field("issuer", &self.issuer)
            .field("sign_requests", &self.sign_requests)
            .field("transport_cert", &self.transport_cert)
            .field("keys", &"redacted")
            .finish()
    }
}

/// A consent to ask a bank for.
#[derive(Clone, Debug)]
pub struct ConsentRequest {
    pub permissions: Vec<Permission>,
    pub expires_at: Option<OffsetDateTime>,
    /// The earliest transaction date wanted.
    pub history_from: Date,
    /// The customer's CPF, which Open Finance Brasil consents name.
    pub customer_tax_id: Option<String>,
    /// The customer's IP address: they are present when a consent is created.
    pub customer_ip: Option<String>,
    /// Where the bank sends the customer back (Berlin Group's `TPP-Redirect-URI`).
    pub redirect_uri: Option<String>,
    /// Where the bank notifies freshet of the consent's news (Berlin Group's
    /// `TPP-Notification-URI`); only for a provider with `push`.
    pub notification_uri: Option<String>,
}

/// A consent as the bank created it.
#[derive(Clone, Debug, PartialEq)]
pub struct BankConsent {
    pub bank_consent_id: String,
    pub status: freshet_model::ConsentStatus,
    pub expires_at: Option<OffsetDateTime>,
    /// The permission groups the bank says the consent grants, mapped back from the standard's
    /// permissions (a group counts when every permission it stands for was granted); `None`
    /// when the standard's answer does not say (Berlin Group).
    pub permissions: Option<Vec<Permission>>,
}

/// Every permission group, in the order events list them.
pub const PERMISSION_GROUPS: [Permission; 5] = [
    Permission::RegistrationAll,
    Permission::AccountsAll,
    Permission::CreditCardsAll,
    Permission::CreditOperationsAll,
    Permission::InvestmentsAll,
];

/// The groups whose standard permissions (`of`: what a group stands for in one standard, empty
/// when the standard cannot express it) are all in `granted`.
pub(crate) fn granted_groups(
    granted: &[String],
    of: impl Fn(Permission) -> &'static [&'static str],
) -> Vec<Permission> {
    PERMISSION_GROUPS
        .into_iter()
        .filter(|&g| {
            let needs = of(g);
            !needs.is_empty() && needs.iter().all(|p| granted.iter().any(|x| x == p))
        })
        .collect()
}

/// Tokens for a consent. `Debug` hides the tokens.
#[derive(Clone, PartialEq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &freshet_model::secret::REDACTED)
            .field(
                "refresh_token",
                &freshet_model::secret::redact(&self.refresh_token),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What every data call needs. `Debug` hides the access token.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    pub bank_consent_id: &'a str,
    pub access_token: &'a str,
    /// The customer's IP address when they are present: sent as the standard's header, which
    /// exempts the call from the unattended-call budget.
    pub customer_ip: Option<&'a str>,
    /// When the customer last authenticated with the bank (OBIE's `x-fapi-auth-date`).
    pub auth_date: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("bank_consent_id", &self.bank_consent_id)
            .field("access_token", &freshet_model::secret::REDACTED)
            .field("customer_ip", &self.customer_ip)
            .field("auth_date", &self.auth_date)
            .finish()
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq)]
pub struct BankAccount {
    /// The bank's id for it.
    pub id: String,
    pub currency: String,
    pub name: Option<String>,
    /// The standard's account type, e.g. `Personal/CurrentAccount`, `CACC`, `CONTA_DEPOSITO_A_VISTA`.
    pub kind: Option<String>,
    /// IBAN, sort code and number, or branch and number.
    pub identification: Option<String>,
}

/// A balance.
#[derive(Clone, Debug, PartialEq)]
pub struct BankBalance {
    /// The standard's balance type, e.g. `InterimAvailable`, `closingBooked`, `AVAILABLE`.
    pub kind: String,
    /// Signed: negative is owed.
    pub amount: Decimal,
    pub currency: String,
    pub at: Option<OffsetDateTime>,
}

/// A bank call that failed, in freshet's words.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{result:?}: {detail}")]
pub struct BankError {
    pub result: ResultCode,
    /// When the bank said to come back.
    pub retry_after: Option<Duration>,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    pub detail: String,
}

impl BankError {
    pub fn new(result: ResultCode, detail: impl Into<String>) -> Self {
        Self {
            result,
            retry_after: None,
            status: None,
            detail: detail.into(),
        }
    }

    /// The customer must authorise again before this consent works.
    pub fn reconnect_required(&self) -> bool {
        self.result.requires_reconnect()
    }
}
