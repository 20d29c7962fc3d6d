//! API keys and the admin token.
//!
//! A key reads `fsk_<lookup>_<secret>`: the 16-hex-digit lookup finds the stored record, the
//! 256-bit secret is compared with the stored SHA-256 in constant time. A plain hash is the
//! right tool here (the secret is random, not a password), and the secret is never stored.
//! Unknown keys and wrong secrets get the same answer. Wrong credentials count against the
//! client's address ([`crate::throttle`]); an address with too many is answered 429.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use freshet_model::{ApplicationId, ids::ApiKeyId};
use freshet_store::NewApiKey;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{problem::ApiError, state::AppState};

const PREFIX: &str = "fsk_";
const LOOKUP_LEN: usize = 16;

/// A freshly generated key: the record to store, and the key to show the client once.
pub struct GeneratedKey {
    pub record: NewApiKey,
    pub key: SecretString,
}

/// Generates a new API key.
pub fn generate_key() -> GeneratedKey {
    let mut rng = rand::rng();
    let mut lookup = [0u8; LOOKUP_LEN / 2];
    rng.fill_bytes(&mut lookup);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let lookup: String = lookup.iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    GeneratedKey {
        record: NewApiKey {
            id: ApiKeyId::new(),
            lookup: lookup.clone(),
            secret_hash: Sha256::digest(secret.as_bytes()).to_vec(),
        },
        key: format!("{PREFIX}{lookup}_{secret}").into(),
    }
}

/// Splits a presented key into lookup and secret, if it has the shape of one.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let lookup = rest.get(..LOOKUP_LEN)?;
    let secret = rest.get(LOOKUP_LEN..)?.strip_prefix('_')?;
    (!secret.is_empty()).then_some((lookup, secret))
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value =
        parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "send your API key as `Authorization: Bearer <key>`",
            ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <key>`",
        ))
}

/// Verified keys, so a busy client does not cost a database read per request. An entry holds
/// the stored hash, and every request still compares its own secret against it in constant
/// time; entries expire so a key removed from the store stops working within a minute.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedKey>>,
}

#[derive(Clone, Debug)]
struct CachedKey {
    application_id: ApplicationId,
    secret_hash: Vec<u8>,
    fetched: std::time::Instant,
}

const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, lookup: &str) -> Option<CachedKey> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(lookup)
            .filter(|k| k.fetched.elapsed() < KEY_TTL)
            .cloned()
    }

    fn put(&self, lookup: &str, key: CachedKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= KEY_CACHE_MAX {
            entries.clear();
        }
        entries.insert(lookup.to_string(), key);
    }
}

/// The application an API key belongs to: every data-plane handler takes one.
#[derive(Clone, Copy, Debug)]
pub struct Tenant(pub ApplicationId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts)?;
        throttled(parts, state, verify_key(key, state)).await
    }
}

/// Runs `verify` unless the client has failed too often, counting it if it fails.
async fn throttled<T>(
    parts: &Parts,
    state: &AppState,
    verify: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = client {
        state
            .auth_failures
            .check(ip)
            .map_err(|wait: Duration| ApiError::TooManyRequests {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            })?;
    }
    let result = verify.await;
    if let (Err(ApiError::Unauthorized(_)), Some(ip)) = (&result, client) {
        tracing::debug!(client = %ip, "failed authentication");
        state.auth_failures.failed(ip);
    }
    result
}

/// The application whose key `key` is.
async fn verify_key(key: &str, state: &AppState) -> Result<Tenant, ApiError> {
    const INVALID: ApiError = ApiError::Unauthorized("invalid API key");
    let (lookup, secret) = split_key(key).ok_or(INVALID)?;
    let known = match state.keys.get(lookup) {
        Some(k) => k,
        None => {
            let record = state.store.find_api_key(lookup).await?.ok_or(INVALID)?;
            let k = CachedKey {
                application_id: record.application_id,
                secret_hash: record.secret_hash,
                fetched: std::time::Instant::now(),
            };
            state.keys.put(lookup, k.clone());
            k
        }
    };
    let presented = Sha256::digest(secret.as_bytes());
    if bool::from(presented[..].ct_eq(&known.secret_hash[..])) {
        Ok(Tenant(known.application_id))
    } else {
        Err(INVALID)
    }
}

/// Proof that the caller holds `FRESHET_ADMIN_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::Unauthorized(
                "the admin API is off: start freshet with FRESHET_ADMIN_TOKEN set",
            ));
        };
        let presented = bearer(parts)?;
        let verify = async {
            // Hash both sides so the comparison's length does not depend on the token's.
            let a = Sha256::digest(presented.as_bytes());
            let b = Sha256::digest(expected.expose_secret().as_bytes());
            if bool::from(a.ct_eq(&b)) {
                Ok(Self)
            } else {
                Err(ApiError::Unauthorized("invalid admin token"))
            }
        };
        throttled(parts, state, verify).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_split_back_into_their_parts() {
        let g = generate_key();
        let key = g.key.expose_secret();
        let (lookup, secret) = split_key(key).unwrap();
        assert_eq!(lookup, g.record.lookup);
        assert_eq!(
            Sha256::digest(secret.as_bytes()).to_vec(),
            g.record.secret_hash
        );
        assert_ne!(generate_key().record.lookup, g.record.lookup);
    }

    #[test]
    fn malformed_keys_do_not_split() {
        for k in [
            "",
            "fsk_",
            "fsk_0123456789abcdef",
            "fsk_0123456789abcdef_",
            "sk_x",
            "fsk_short_x",
        ] {
            assert!(split_key(k).is_none(), "{k}");
        }
    }
}
