//! Connectors: how freshet talks to banks.
//!
//! One connector per API standard — UK Open Banking Read/Write 3.1 ([`obie`]), Berlin Group
//! NextGenPSD2 1.3 ([`berlin`]), Open Finance Brasil accounts v2 ([`brasil`]) — behind one
//! [`Connector`]. Each speaks its standard over real HTTP and translates everything the bank
//! says into freshet's words: consent statuses into [`ConsentStatus`], errors into the
//! [`ResultCode`]s of a refresh, amounts into signed exact decimals, and each standard's
//! immutability rules into [`BankTxn::immutable_id`]. Nothing above this crate sees a bank's
//! vocabulary. Answers are read into typed structs after each standard's OpenAPI document
//! (`specs/`); one that breaks its standard is a [`ResultCode::ProviderFailure`] naming the field.

pub mod berlin;
pub mod brasil;
mod http;
pub mod oauth;
pub mod obie;
pub mod registry;
mod signing;
mod types;
mod wire;

pub use freshet_model::{ConsentStatus, ResultCode, Standard, reconcile::BankTxn};
pub use oauth::{AuthContext, AuthReturn, Authorisation};
pub use types::*;

/// A connector for one provider.
#[derive(Clone, Debug)]
pub enum Connector {
    Obie(obie::Obie),
    Berlin(berlin::Berlin),
    Brasil(brasil::Brasil),
}

macro_rules! dispatch {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            Connector::Obie($c) => $body,
            Connector::Berlin($c) => $body,
            Connector::Brasil($c) => $body,
        }
    };
}

/// The connector's HTTP side, whatever its standard.
fn connector_api(c: &Connector) -> &http::Api {
    dispatch!(c, c => &c.api)
}

impl Connector {
    /// The connector for a provider's standard.
    pub fn new(provider: Provider, client: reqwest::Client) -> Self {
        let api = http::Api::new(provider, client);
        match api.provider.standard {
            Standard::Obie => Self::Obie(obie::Obie::new(api)),
            Standard::BerlinGroup => Self::Berlin(berlin::Berlin::new(api)),
            Standard::OpenFinanceBrasil => Self::Brasil(brasil::Brasil::new(api)),
        }
    }

    /// The provider this connector talks to.
    pub fn provider(&self) -> &Provider {
        dispatch!(self, c => &c.api.provider)
    }

    /// Creates the consent resource at the bank; it then awaits the customer's authorisation.
    pub async fn create_consent(&self, req: &ConsentRequest) -> Result<BankConsent, BankError> {
        dispatch!(self, c => c.create_consent(req).await)
    }

    /// Where to send the customer to authorise `consent`, and what to keep until they come
    /// back: a signed request object (OBIE), pushed first (Open Finance Brasil), PKCE
    /// (Open Finance Brasil, Berlin Group), or the plain redirect for the relaxed sandbox.
    pub async fn authorisation(
        &self,
        consent: &BankConsent,
        redirect_uri: &str,
        state: &str,
    ) -> Result<Authorisation, BankError> {
        dispatch!(self, c => c.api.authorisation(&consent.bank_consent_id, redirect_uri, state).await)
    }

    /// Checks what the customer came back with (the ID token of a hybrid flow) and exchanges
    /// the code for tokens.
    pub async fn finish_authorisation(
        &self,
        ret: &AuthReturn,
        context: &AuthContext,
        bank_consent_id: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, BankError> {
        dispatch!(self, c => c.api.finish(ret, context, bank_consent_id, redirect_uri).await)
    }

    /// Renews an access token.
    pub async fn refresh_tokens(&self, refresh_token: &str) -> Result<Tokens, BankError> {
        dispatch!(self, c => c.api.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await)
    }

    /// The consent as the bank holds it now: its status, the expiry it actually granted and,
    /// where the standard lists them (OBIE, Open Finance Brasil), the permissions.
    pub async fn consent_details(&self, s: &Session<'_>) -> Result<BankConsent, BankError> {
        dispatch!(self, c => c.consent_details(s).await)
    }

    /// The consent's status as the bank reports it, in freshet's words.
    pub async fn consent_status(&self, s: &Session<'_>) -> Result<ConsentStatus, BankError> {
        self.consent_details(s).await.map(|c| c.status)
    }

    /// The accounts the consent covers.
    pub async fn accounts(&self, s: &Session<'_>) -> Result<Vec<BankAccount>, BankError> {
        dispatch!(self, c => c.accounts(s).await)
    }

    /// An account's balances.
    pub async fn balances(
        &self,
        s: &Session<'_>,
        account: &str,
    ) -> Result<Vec<BankBalance>, BankError> {
        dispatch!(self, c => c.balances(s, account).await)
    }

    /// An account's transactions booked in `[from, to]` plus the pending ones, every page.
    pub async fn transactions(
        &self,
        s: &Session<'_>,
        account: &str,
        from: time::Date,
        to: time::Date,
    ) -> Result<Vec<BankTxn>, BankError> {
        dispatch!(self, c => c.transactions(s, account, from, to).await)
    }

    /// Ends the consent at the bank.
    pub async fn revoke(&self, s: &Session<'_>) -> Result<(), BankError> {
        dispatch!(self, c => c.revoke(s).await)
    }
}
