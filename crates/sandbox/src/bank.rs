//! What the sandbox banks remember: consents, codes and tokens, the unattended-call budget,
//! injected faults, and the few transactions that exist beyond the generated history.
//! Everything else is derived from the seed (see [`crate::data`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::{
    catalogue::{BANKS, Bank, Standard},
    data::{self, Account, Rng, Txn, TxnState, hash},
};

/// How a sandbox behaves.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Everything generated derives from it.
    pub seed: u64,
    /// Calls per consent, UTC day and endpoint without the customer present.
    pub unattended_per_day: u32,
    /// How long a `timeout` fault holds a call before answering.
    pub hold: Duration,
    /// Rows per page on the OBIE and Berlin Group transaction lists.
    pub page_size: usize,
    /// The sandbox's public URL, for links it returns, when it differs from what the request's
    /// `Host` says (behind a proxy).
    pub public_url: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            unattended_per_day: 4,
            hold: Duration::from_secs(60),
            page_size: 50,
            public_url: None,
        }
    }
}

/// Where a consent stands at the bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    Awaiting,
    Authorised,
    Rejected,
    /// The TPP deleted it.
    Deleted,
    /// The customer revoked it at the bank.
    RevokedByCustomer,
    /// A newer recurring consent of the same customer replaced it (Berlin Group).
    Superseded,
}

/// A consent resource.
#[derive(Clone, Debug)]
pub struct Consent {
    pub id: String,
    pub bank: &'static Bank,
    pub state: ConsentState,
    /// Who authorised it: the customer whose accounts it opens.
    pub customer: Option<String>,
    /// The CPF an Open Finance Brasil consent names.
    pub logged_user: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub permissions: Vec<String>,
    pub history_from: Option<OffsetDateTime>,
    pub history_to: Option<OffsetDateTime>,
    /// Berlin Group: recurring access, and its `access` object as asked.
    pub recurring: bool,
    pub access: serde_json::Value,
    pub frequency_per_day: u32,
    /// Berlin Group: the `TPP-Redirect-URI` it was created with, which the strict banks'
    /// OAuth authorisation request must name.
    pub redirect_uri: Option<String>,
    /// Berlin Group: the `TPP-Notification-URI` it was created with, where the bank posts
    /// when new transactions reach the consent's accounts.
    pub notification_uri: Option<String>,
}

/// A notification owed to a TPP: new transactions on these accounts of its consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub uri: String,
    pub consent_id: String,
    pub account_ids: Vec<String>,
}

/// How long after notifying a TPP the bank does not count its calls for that consent against
/// the unattended budget: the bank asked to be called.
const NOTIFIED_GRACE: time::Duration = time::Duration::minutes(5);

/// The calls a notification pays for: one per endpoint, until `until`.
struct Notified {
    until: OffsetDateTime,
    used: std::collections::HashSet<String>,
}

impl Consent {
    /// Authorised and its expiry has passed.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.state == ConsentState::Authorised && self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A fault injected through the control API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    ProviderFailure,
    ReauthRequired,
    RateLimited,
    Timeout,
    Maintenance,
    /// Answers as usual, after holding the call for the fault's delay.
    Slow,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Calls it still applies to; `None` until cleared.
    pub remaining: Option<u32>,
    /// How long a `slow` fault holds each call.
    pub delay: Duration,
}

/// Why a data call is refused before it reaches the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No such token, or it has expired.
    Token,
    /// The consent is not (or no longer) usable, as `state` says.
    Consent(ConsentState),
    /// Authorised, but past its expiry.
    Expired,
    /// The customer-absent calls of today are used up.
    Budget,
    /// The token's consent is not the one named.
    Mismatch,
}

struct Token {
    consent: String,
    expires_at: OffsetDateTime,
    /// The SHA-256 thumbprint of the client certificate it was issued over (strict mode).
    cnf: Option<String>,
}

struct Code {
    consent: String,
    redirect_uri: String,
    /// The PKCE S256 challenge of the authorisation request, when it had one.
    challenge: Option<String>,
}

/// Why a code or refresh token was not exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// Unknown, used, for another bank, or for another `redirect_uri`.
    Invalid,
    /// The PKCE `code_verifier` is missing or does not match the challenge.
    Pkce,
}

#[derive(Default)]
struct State {
    consents: HashMap<String, Consent>,
    created: HashMap<&'static str, u64>,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    refresh_tokens: HashMap<String, String>,
    usage: HashMap<(String, Date, String), u32>,
    faults: HashMap<&'static str, Fault>,
    /// Transactions added through the control API, by bank and account id.
    added: HashMap<(&'static str, String), Vec<Txn>>,
    /// Transaction-list fetches per account, for the dates that shift between fetches.
    fetches: HashMap<String, u32>,
    /// Consents whose TPP was notified of new transactions, by consent id.
    notified: HashMap<String, Notified>,
}

/// The sandbox banks: cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct Sandbox {
    pub config: Arc<SandboxConfig>,
    state: Arc<Mutex<State>>,
    /// What strict mode checks and remembers; `None` in relaxed mode.
    pub(crate) strict: Option<Arc<crate::strict::Strict>>,
    /// API calls answered, faults included: what a benchmark reports as bank calls.
    calls: Arc<std::sync::atomic::AtomicU64>,
    /// Posts notifications to TPPs.
    pub(crate) http: reqwest::Client,
}

/// Access tokens live this long.
pub const TOKEN_SECONDS: i64 = 3600;

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            config: Arc::new(config),
            state: Arc::default(),
            calls: Arc::default(),
            strict: None,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// This sandbox (sharing its state) in strict mode: every bank enforces its standard's
    /// security profile with `config`'s registered client and CA.
    pub fn into_strict(mut self, config: crate::strict::StrictConfig) -> Self {
        self.strict = Some(Arc::new(crate::strict::Strict::new(config)));
        self
    }

    /// Whether the banks enforce their security profiles.
    pub fn is_strict(&self) -> bool {
        self.strict.is_some()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A handler that panicked mid-update leaves maps that are still valid maps.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a consent awaiting authorisation; its id follows from the seed and how many
    /// consents this bank has created, so a replayed script sees the same ids.
    pub fn create_consent(&self, bank: &'static Bank, fill: impl FnOnce(&mut Consent)) -> Consent {
        let mut st = self.state();
        let n = st.created.entry(bank.id).or_default();
        *n += 1;
        let h = hash(&[
            &self.config.seed.to_le_bytes(),
            bank.id.as_bytes(),
            &n.to_le_bytes(),
        ]);
        let h2 = Rng::new(h).next_u64();
        let id = match bank.standard {
            Standard::Obie => format!("urn-{}-intent-{h:016x}", bank.id),
            Standard::BerlinGroup => format!("{h:016x}{h2:016x}"),
            Standard::OpenFinanceBrasil => {
                let s = format!("{h:016x}{h2:016x}");
                format!(
                    "urn:{}:{}-{}-{}-{}-{}",
                    bank.id.split('-').next().unwrap_or(bank.id),
                    &s[..8],
                    &s[8..12],
                    &s[12..16],
                    &s[16..20],
                    &s[20..]
                )
            }
        };
        let now = crate::now();
        let mut consent = Consent {
            id: id.clone(),
            bank,
            state: ConsentState::Awaiting,
            customer: None,
            logged_user: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            permissions: Vec::new(),
            history_from: None,
            history_to: None,
            recurring: false,
            access: serde_json::Value::Null,
            frequency_per_day: 4,
            redirect_uri: None,
            notification_uri: None,
        };
        fill(&mut consent);
        st.consents.insert(id, consent.clone());
        consent
    }

    pub fn consent(&self, bank: &Bank, id: &str) -> Option<Consent> {
        self.state()
            .consents
            .get(id)
            .filter(|c| c.bank.id == bank.id)
            .cloned()
    }

    /// The customer's decision on the authorisation page. Approving returns the code for the
    /// token exchange, bound to the request's PKCE `challenge` if it had one; a Berlin Group
    /// recurring consent ends the customer's older ones there.
    pub fn decide(
        &self,
        bank: &Bank,
        id: &str,
        customer: &str,
        approve: bool,
        (redirect_uri, challenge): (&str, Option<&str>),
    ) -> Result<Option<String>, &'static str> {
        let mut st = self.state();
        let now = crate::now();
        let consent = st
            .consents
            .get_mut(id)
            .filter(|c| c.bank.id == bank.id)
            .ok_or("no such consent at this bank")?;
        if consent.state != ConsentState::Awaiting {
            return Err("this consent has already been decided");
        }
        consent.updated_at = now;
        if !approve {
            consent.state = ConsentState::Rejected;
            return Ok(None);
        }
        consent.state = ConsentState::Authorised;
        consent.customer = Some(customer.to_string());
        // The bank grants only what it offers: an Open Finance Brasil consent's answer then
        // lists fewer permissions than were asked for.
        if bank.standard == Standard::OpenFinanceBrasil {
            consent.permissions.retain(|p| crate::brasil::offered(p));
        }
        let recurring = consent.recurring && bank.standard == Standard::BerlinGroup;
        if recurring {
            for other in st.consents.values_mut() {
                if other.id != id
                    && other.bank.id == bank.id
                    && other.recurring
                    && other.state == ConsentState::Authorised
                    && other.customer.as_deref() == Some(customer)
                {
                    other.state = ConsentState::Superseded;
                    other.updated_at = now;
                }
            }
        }
        let code = secret("code");
        st.codes.insert(
            code.clone(),
            Code {
                consent: id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                challenge: challenge.map(str::to_string),
            },
        );
        Ok(Some(code))
    }

    /// Exchanges a code (once) for tokens: (access, refresh). A code bound to a PKCE
    /// challenge needs its `verifier`; `cnf` binds the access token to a client certificate.
    pub fn exchange_code(
        &self,
        bank: &Bank,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        cnf: Option<&str>,
    ) -> Result<(String, String), Exchange> {
        let mut st = self.state();
        let c = st.codes.remove(code).ok_or(Exchange::Invalid)?;
        let ok = c.redirect_uri == redirect_uri
            && st
                .consents
                .get(&c.consent)
                .is_some_and(|k| k.bank.id == bank.id);
        if !ok {
            return Err(Exchange::Invalid);
        }
        if let Some(challenge) = &c.challenge
            && verifier.map(freshet_fapi::oidc::pkce_challenge).as_ref() != Some(challenge)
        {
            return Err(Exchange::Pkce);
        }
        Ok(issue(&mut st, &c.consent, cnf))
    }

    /// A new access token for a refresh token, bound to `cnf` when given.
    pub fn refresh(
        &self,
        bank: &Bank,
        refresh_token: &str,
        cnf: Option<&str>,
    ) -> Option<(String, String)> {
        let mut st = self.state();
        let consent = st.refresh_tokens.get(refresh_token)?.clone();
        let c = st.consents.get(&consent)?;
        if c.bank.id != bank.id || !matches!(c.state, ConsentState::Authorised) {
            return None;
        }
        st.refresh_tokens.remove(refresh_token);
        Some(issue(&mut st, &consent, cnf))
    }

    /// The certificate thumbprint an access token is bound to: `None` for an unknown token,
    /// `Some(None)` for an unbound one.
    pub fn token_binding(&self, token: &str) -> Option<Option<String>> {
        self.state().tokens.get(token).map(|t| t.cnf.clone())
    }

    /// The consent a bearer token opens, if the call may go on. `named` is the consent the
    /// request names itself (Berlin Group's `Consent-ID`). `endpoint` counts against the
    /// unattended budget unless `present` (the customer is there) or it is `None` (a
    /// follow-up page, or a call the budget does not cover).
    pub fn authorise_call(
        &self,
        bank: &Bank,
        token: Option<&str>,
        named: Option<&str>,
        endpoint: Option<&str>,
        present: bool,
    ) -> Result<(Consent, Vec<Account>), Denied> {
        let mut st = self.state();
        let now = crate::now();
        let t = token.and_then(|t| st.tokens.get(t)).ok_or(Denied::Token)?;
        if t.expires_at <= now {
            return Err(Denied::Token);
        }
        let consent = st.consents.get(&t.consent).ok_or(Denied::Token)?.clone();
        if consent.bank.id != bank.id {
            return Err(Denied::Token);
        }
        if named.is_some_and(|n| n != consent.id) {
            return Err(Denied::Mismatch);
        }
        match consent.state {
            ConsentState::Authorised if consent.expired(now) => return Err(Denied::Expired),
            ConsentState::Authorised => {}
            other => return Err(Denied::Consent(other)),
        }
        if let Some(endpoint) = endpoint.filter(|_| !present)
            && !paid_by_notification(&mut st, &consent.id, endpoint, now)
        {
            let used = st
                .usage
                .entry((consent.id.clone(), now.date(), endpoint.to_string()))
                .or_default();
            if *used >= self.config.unattended_per_day {
                return Err(Denied::Budget);
            }
            *used += 1;
        }
        let customer = consent.customer.clone().unwrap_or_default();
        let accounts = data::accounts(self.config.seed, bank, &customer);
        Ok((consent, accounts))
    }

    /// Ends a consent at the TPP's request.
    pub fn delete(&self, bank: &Bank, id: &str) -> bool {
        let mut st = self.state();
        let Some(c) = st.consents.get_mut(id).filter(|c| c.bank.id == bank.id) else {
            return false;
        };
        c.state = ConsentState::Deleted;
        c.updated_at = crate::now();
        if bank.standard == Standard::Obie {
            // OBIE removes the resource and its tokens; the others answer with the reason.
            drop_tokens(&mut st, id);
        }
        true
    }

    /// The customer revokes a consent at the bank, or it reaches its expiry now.
    pub fn end_at_bank(&self, id: &str, revoke: bool) -> Option<Consent> {
        let mut st = self.state();
        let now = crate::now();
        let c = st.consents.get_mut(id)?;
        if revoke {
            // OBIE keeps `Authorised` on the resource: only the tokens stop working.
            if c.bank.standard != Standard::Obie {
                c.state = ConsentState::RevokedByCustomer;
            }
            c.updated_at = now;
        } else {
            c.expires_at = Some(now);
        }
        let c = c.clone();
        if revoke && c.bank.standard == Standard::Obie {
            drop_tokens(&mut st, id);
        }
        Some(c)
    }

    /// How many API calls the banks have answered.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes one use of the bank's fault, if one is set. Every API call passes here once,
    /// which is where it is counted.
    pub fn take_fault(&self, bank: &Bank) -> Option<Fault> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut st = self.state();
        let fault = st.faults.get_mut(bank.id)?;
        let taken = *fault;
        match &mut fault.remaining {
            None => {}
            Some(1) => {
                st.faults.remove(bank.id);
            }
            Some(n) => *n -= 1,
        }
        Some(taken)
    }

    pub fn set_fault(&self, bank: &'static Bank, fault: Fault) {
        self.state().faults.insert(bank.id, fault);
    }

    /// Clears one bank's fault, or every bank's.
    pub fn clear_faults(&self, bank: Option<&Bank>) {
        let mut st = self.state();
        match bank {
            Some(b) => {
                st.faults.remove(b.id);
            }
            None => st.faults.clear(),
        }
    }

    pub fn faults(&self) -> Vec<(&'static str, Fault)> {
        let mut v: Vec<_> = self.state().faults.iter().map(|(k, f)| (*k, *f)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Adds `count` transactions dated today to every account of every authorised consent
    /// at `bank`; returns the accounts touched, and the notifications owed to the TPPs of the
    /// consents that asked for them (a `TPP-Notification-URI`). A notified consent's next
    /// call to each endpoint, within a few minutes, is not counted against its unattended
    /// budget.
    pub fn add_transactions(
        &self,
        bank: &'static Bank,
        count: u32,
        state: TxnState,
    ) -> (Vec<String>, Vec<Notification>) {
        let touched = self.add_to_accounts(bank, count, state);
        let mut st = self.state();
        let now = crate::now();
        let mut owed: Vec<Notification> = st
            .consents
            .values()
            .filter(|c| c.bank.id == bank.id && c.state == ConsentState::Authorised)
            .filter(|c| !c.expired(now))
            .filter_map(|c| {
                let uri = c.notification_uri.clone()?;
                let customer = c.customer.as_deref()?;
                let account_ids: Vec<String> = data::accounts(self.config.seed, bank, customer)
                    .into_iter()
                    .map(|a| a.id)
                    .filter(|id| touched.contains(id))
                    .collect();
                (!account_ids.is_empty()).then(|| Notification {
                    uri,
                    consent_id: c.id.clone(),
                    account_ids,
                })
            })
            .collect();
        owed.sort_by(|a, b| a.consent_id.cmp(&b.consent_id));
        for n in &owed {
            st.notified.insert(
                n.consent_id.clone(),
                Notified {
                    until: now + NOTIFIED_GRACE,
                    used: Default::default(),
                },
            );
        }
        (touched, owed)
    }

    fn add_to_accounts(&self, bank: &'static Bank, count: u32, state: TxnState) -> Vec<String> {
        let mut st = self.state();
        let today = crate::now().date();
        let mut customers: Vec<String> = st
            .consents
            .values()
            .filter(|c| c.bank.id == bank.id && c.state == ConsentState::Authorised)
            .filter_map(|c| c.customer.clone())
            .collect();
        customers.sort();
        customers.dedup();
        let mut touched = Vec::new();
        for customer in customers {
            for account in data::accounts(self.config.seed, bank, &customer) {
                let list = st.added.entry((bank.id, account.id.clone())).or_default();
                let mut rng = Rng::new(hash(&[
                    &account.key.to_le_bytes(),
                    b"added",
                    &(list.len() as u64).to_le_bytes(),
                ]));
                for _ in 0..count {
                    let n = list.len();
                    let template = data::day(
                        bank.standard,
                        &account,
                        today - time::Duration::days(1 + rng.below(60) as i64),
                        today + time::Duration::days(5),
                    )
                    .into_iter()
                    .find(|t| t.amount.is_sign_negative())
                    .unwrap_or_else(|| fallback(bank.standard, today));
                    list.push(Txn {
                        id: added_id(bank.standard, &account, n),
                        pending_id: None,
                        state,
                        date: today,
                        seconds: 12 * 3600 + (n as u32 % 3600),
                        ..template
                    });
                }
                touched.push(account.id);
            }
        }
        touched
    }

    /// Books every pending transaction added through the control API; one in four gets a new
    /// id as it does. Returns how many were booked.
    pub fn book_pending(&self, bank: &'static Bank) -> usize {
        let mut st = self.state();
        let mut n = 0;
        for ((_, _), list) in st.added.iter_mut().filter(|((b, _), _)| *b == bank.id) {
            for (i, t) in list.iter_mut().enumerate() {
                if t.state == TxnState::Pending {
                    t.state = TxnState::Booked;
                    if i % 4 == 0 {
                        t.pending_id = Some(t.id.clone());
                        t.id = format!("{}B", t.id);
                    }
                    n += 1;
                }
            }
        }
        n
    }

    /// An account's transactions dated in `[from, to]` as of now, and how many times this
    /// account's list has been fetched before (Berlin Group shifts some dates between
    /// fetches). `first_page` counts a fetch.
    pub fn transactions(
        &self,
        bank: &'static Bank,
        account: &Account,
        from: Date,
        to: Date,
        first_page: bool,
    ) -> (Vec<Txn>, u32) {
        let today = crate::now().date();
        let mut rows = data::history(bank.standard, account, from, to, today);
        let mut st = self.state();
        if let Some(added) = st.added.get(&(bank.id, account.id.clone())) {
            rows.extend(
                added
                    .iter()
                    .filter(|t| t.date >= from && t.date <= to)
                    .cloned(),
            );
        }
        // A fetch is the first page and its follow-ups: they all see the same count.
        let fetches = st.fetches.entry(account.id.clone()).or_default();
        if first_page {
            *fetches += 1;
        }
        (rows, fetches.saturating_sub(1))
    }

    /// An account's (booked, available) balances now: what history and additions add up to.
    pub fn balances(
        &self,
        bank: &'static Bank,
        account: &Account,
    ) -> (rust_decimal::Decimal, rust_decimal::Decimal) {
        let today = crate::now().date();
        let from = today - time::Duration::days(data::HISTORY_DAYS);
        let mut rows = data::history(bank.standard, account, from, today, today);
        if let Some(added) = self.state().added.get(&(bank.id, account.id.clone())) {
            rows.extend(added.iter().cloned());
        }
        let booked = account.opening
            + rows
                .iter()
                .filter(|t| t.state == TxnState::Booked)
                .map(|t| t.amount)
                .sum::<rust_decimal::Decimal>();
        let pending: rust_decimal::Decimal = rows
            .iter()
            .filter(|t| t.state == TxnState::Pending)
            .map(|t| t.amount)
            .sum();
        (booked, booked + pending)
    }

    /// Every bank and how many consents it holds.
    pub fn consent_counts(&self) -> Vec<(&'static str, usize)> {
        let st = self.state();
        BANKS
            .iter()
            .map(|b| {
                (
                    b.id,
                    st.consents.values().filter(|c| c.bank.id == b.id).count(),
                )
            })
            .collect()
    }
}

fn fallback(standard: Standard, today: Date) -> Txn {
    Txn {
        id: String::new(),
        pending_id: None,
        state: TxnState::Booked,
        date: today,
        seconds: 0,
        amount: rust_decimal::Decimal::new(-1250, 2),
        description: "CARD PAYMENT".into(),
        counterparty: "CARD PAYMENT".into(),
        mcc: Some("5999"),
        kind: if standard == Standard::OpenFinanceBrasil {
            "CARTAO"
        } else {
            "OUTROS"
        },
    }
}

fn added_id(standard: Standard, account: &Account, n: usize) -> String {
    let h = hash(&[
        &account.key.to_le_bytes(),
        b"added-id",
        &(n as u64).to_le_bytes(),
    ]);
    match standard {
        Standard::Obie => format!("{h:016x}N"),
        Standard::BerlinGroup => format!("N{:010}", h % 10_000_000_000),
        Standard::OpenFinanceBrasil => format!("TXN{h:016X}"),
    }
}

fn issue(st: &mut State, consent: &str, cnf: Option<&str>) -> (String, String) {
    let access = secret("at");
    let refresh = secret("rt");
    st.tokens.insert(
        access.clone(),
        Token {
            consent: consent.to_string(),
            expires_at: crate::now() + time::Duration::seconds(TOKEN_SECONDS),
            cnf: cnf.map(str::to_string),
        },
    );
    st.refresh_tokens
        .insert(refresh.clone(), consent.to_string());
    (access, refresh)
}

/// Whether a notification to the TPP pays for this call: the first to each endpoint while it
/// is fresh.
fn paid_by_notification(
    st: &mut State,
    consent: &str,
    endpoint: &str,
    now: OffsetDateTime,
) -> bool {
    st.notified
        .get_mut(consent)
        .filter(|n| n.until > now)
        .is_some_and(|n| n.used.insert(endpoint.to_string()))
}

fn drop_tokens(st: &mut State, consent: &str) {
    st.tokens.retain(|_, t| t.consent != consent);
    st.refresh_tokens.retain(|_, c| c != consent);
}

/// An unguessable value: codes and tokens are the sandbox's only secrets.
pub(crate) fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}
