//! The sandbox bank: five banks speaking UK Open Banking 3.1, Berlin Group NextGenPSD2 1.3
//! and Open Finance Brasil over deterministic generated data, with the misbehaviour real banks
//! show (see `docs/sandbox.md`), and a control API to inject faults and new transactions.
//!
//! [`router`] serves it all under whatever prefix it is nested at: `freshet serve` mounts it
//! at `/sandbox`, `freshet sandbox` at the root. Links it returns are absolute, built from the
//! request's `Host` and that prefix (or [`SandboxConfig::public_url`]).
//!
//! [`serve_strict`] serves the same banks in strict mode: HTTPS with client certificates, each
//! bank enforcing its standard's security profile (issue 15's contract; `docs/sandbox.md`,
//! "Strict mode"). [`write_pki`] makes the PKI and provider registry it is used with.

// Handlers' errors are the HTTP responses they answer with, built once and returned at once:
// boxing them would buy nothing.
#![allow(clippy::result_large_err)]

/// The value of an `Ok`, or returns the `Err` response from the handler.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

mod auth;
mod bank;
mod berlin;
mod brasil;
pub mod catalogue;
mod control;
pub mod data;
mod obie;
mod strict;
mod web;

use axum::{Router, routing::get};
pub use bank::{ConsentState, Exchange, FaultKind, Sandbox, SandboxConfig};
pub use catalogue::{BANKS, Bank, Paths, Standard, bank};
pub use strict::{
    CLIENT_ID, PROVIDERS_FILE, Peer, StrictConfig, StrictError, providers_toml, serve_strict,
    write_pki,
};
use time::OffsetDateTime;

/// Every route of the sandbox, relative to where it is mounted. A strict sandbox
/// ([`Sandbox::into_strict`]) adds discovery, JWKS and PAR, and checks every request.
pub fn router(sandbox: Sandbox) -> Router {
    let mut router = Router::new()
        .route("/providers", get(control::providers))
        .merge(control::routes())
        .merge(auth::routes())
        .merge(obie::routes())
        .merge(berlin::routes())
        .merge(brasil::routes());
    if sandbox.is_strict() {
        router = router
            .merge(strict::routes())
            .layer(axum::middleware::from_fn_with_state(
                sandbox.clone(),
                strict::guard,
            ));
    }
    router.fallback(web::not_found).with_state(sandbox)
}

/// Now, in whole seconds: every standard's timestamps are second-precise.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}
