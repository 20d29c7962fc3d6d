//! Client authentication at the token and PAR endpoints: `private_key_jwt` (RFC 7523, as FAPI
//! profiles it) for the OBIE and OFB banks, `tls_client_auth` (RFC 8705) for the Berlin Group
//! banks, each bank accepting the method the client is registered with there.

use std::collections::HashMap;

use axum::{http::StatusCode, response::Response};
use freshet_fapi::jws::{self, Expect};

use super::{CLIENT_ID, Peer, Strict, oauth_error};
use crate::catalogue::{Bank, Standard};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest a client assertion may live.
const MAX_ASSERTION_SECONDS: i64 = 300;

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY: i64 = 5;

fn invalid_client(why: impl AsRef<str>) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why.as_ref())
}

/// Authenticates the client of a token or PAR request (`form`) at `bank`, over the
/// connection's certificate `peer`; `audiences` are what a client assertion may be
/// addressed to. Returns the certificate the tokens will be bound to.
pub(crate) fn authenticate<'p>(
    strict: &Strict,
    bank: &Bank,
    form: &HashMap<String, String>,
    peer: Option<&'p Peer>,
    audiences: &[&str],
) -> Result<&'p Peer, Response> {
    let peer = peer.ok_or_else(|| invalid_client("a client certificate is required"))?;
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("client_id") {
        None => return Err(invalid_client("client_id is missing")),
        Some(CLIENT_ID) => {}
        Some(_) => return Err(invalid_client("client_id is not a registered client")),
    }
    match bank.standard {
        Standard::BerlinGroup => tls_client_auth(strict, peer)?,
        Standard::Obie | Standard::OpenFinanceBrasil => private_key_jwt(
            strict,
            get("client_assertion_type"),
            get("client_assertion"),
            audiences,
        )?,
    }
    Ok(peer)
}

fn tls_client_auth(strict: &Strict, peer: &Peer) -> Result<(), Response> {
    let subject = peer.cert.subject();
    if subject != strict.config.client_subject {
        return Err(invalid_client(format!(
            "tls_client_auth: the client certificate's subject `{subject}` is not the one registered for this client"
        )));
    }
    Ok(())
}

fn private_key_jwt(
    strict: &Strict,
    kind: Option<&str>,
    assertion: Option<&str>,
    audiences: &[&str],
) -> Result<(), Response> {
    let Some(assertion) = assertion else {
        return Err(invalid_client(
            "client_assertion is missing: this client authenticates with private_key_jwt",
        ));
    };
    if kind != Some(JWT_BEARER) {
        return Err(invalid_client(format!(
            "client_assertion_type must be {JWT_BEARER}"
        )));
    }
    let fail = |why: String| invalid_client(format!("client_assertion: {why}"));
    let token = jws::decode(assertion).map_err(|e| fail(e.to_string()))?;
    let claims = token
        .verify(&strict.config.client_key)
        .map_err(|e| match e {
            freshet_fapi::Error::BadSignature => {
                fail("the signature does not verify with the client's registered key".into())
            }
            other => fail(other.to_string()),
        })?;
    if claims["sub"].as_str() != Some(CLIENT_ID) {
        return Err(fail(format!("`sub` must be `{CLIENT_ID}`")));
    }
    if claims["iat"].as_i64().is_none() {
        return Err(fail("`iat` is required".into()));
    }
    let expect = Expect {
        iss: CLIENT_ID,
        aud: audiences,
        max_lifetime: MAX_ASSERTION_SECONDS,
        leeway: LEEWAY,
    };
    jws::check_claims(&claims, &expect).map_err(|e| fail(e.to_string()))?;
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return Err(fail("`jti` is required".into()));
    };
    let exp = claims["exp"].as_i64().unwrap_or_default();
    if !strict.first_use(jti, exp + LEEWAY) {
        return Err(fail(
            "`jti` has been used already (a replayed assertion)".into(),
        ));
    }
    Ok(())
}
