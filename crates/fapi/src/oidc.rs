//! The small computations OpenID Connect and PKCE define.

use crate::{b64url, sha256};

/// `c_hash` / `s_hash` / `at_hash` for a token signed with a SHA-256 algorithm: base64url of
/// the left half of the SHA-256 of the value (OpenID Connect Core 3.3.2.11).
pub fn half_hash(value: &str) -> String {
    b64url(&sha256(value.as_bytes())[..16])
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 section 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn half_hash_is_16_bytes() {
        assert_eq!(half_hash("code").len(), 22);
        assert_ne!(half_hash("code"), half_hash("cod3"));
    }
}
