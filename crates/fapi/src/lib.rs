//! What FAPI 1 Advanced, Open Finance Brasil's FAPI-BR and Berlin Group's message signing ask of
//! both sides of a bank connection: private and public keys, JWS compact tokens and JWKS,
//! X.509 certificates read for what the protocols name (serial, issuer, key), HTTP message
//! signatures as the Berlin Group implementation guidelines describe them, and a test PKI.
//!
//! Pure: no HTTP, no storage. freshet's connectors sign with it and check the bank's ID tokens;
//! the strict sandbox bank checks what they send with the same code, so a mistake on one side
//! shows as a failing exchange, and the unit tests here pin each primitive to its specification.

mod cert;
mod error;
pub mod httpsig;
mod jwk;
pub mod jws;
mod keys;
pub mod oidc;
pub mod pki;

pub use cert::Certificate;
pub use error::Error;
pub use jwk::{Jwk, Jwks};
pub use keys::{Alg, PrivateKey, PublicKey, SigningKey};

/// Base64url without padding, as JOSE writes every binary value.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The inverse of [`b64url`].
pub fn from_b64url(s: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| Error::Malformed("base64url".into()))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `n` random bytes as base64url: nonces, `state`, PKCE verifiers, `jti`s.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    b64url(&bytes)
}
