//! Bud's webhook signature: a compact JWT, ES256, in `X-Signature`, with the signing key's id in
//! `X-Signing-ID`; the public keys are published as a JWKS (`/.well-known/jwks.json`).
//!
//! Seed 000 shows no signature, so freshet fixes what the JWT says: its header is
//! `{"alg":"ES256","typ":"JWT","kid":<key id>}` and its claims are
//! `{"iat":<send time, Unix seconds>,"jti":<webhook-id>,"body_sha256":<base64url SHA-256 of the
//! exact body bytes>}`. Signing a digest of the raw bytes, rather than repeating the body as
//! claims, lets a receiver verify without re-serialising JSON, and binds the signature to exactly
//! what was sent. Key ids are RFC 7638 JWK thumbprints, so a key names itself.

use ring::{
    digest,
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::wire::{b64url, b64url_decode};

/// Why a key could not be made or used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PKCS#8 document holding an ECDSA P-256 private key")]
    Rejected,
    #[error("the system's random number generator failed")]
    Random,
}

/// An ES256 key Bud-dialect deliveries are signed with.
pub struct BudSigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for BudSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never prints.
        f.debug_struct("BudSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl BudSigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// A stored key, as a PKCS#8 v1 or v2 document (what [`Self::pkcs8`] returns).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::Rejected)?;
        let (x, y) = coordinates(pair.public_key().as_ref()).ok_or(KeyError::Rejected)?;
        Ok(Self {
            kid: thumbprint(&x, &y),
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    /// The key id: `X-Signing-ID`, the JWT's and the JWK's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8, to store it. Secret.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        let (x, y) = coordinates(self.pair.public_key().as_ref())
            .expect("a P-256 key pair's public key is an uncompressed point");
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    /// The compact JWT over `body` (see the module documentation for its claims).
    pub fn sign(&self, body: &[u8], jti: &str, iat: OffsetDateTime) -> Result<String, KeyError> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let claims = BudClaims {
            iat: iat.unix_timestamp(),
            jti: jti.to_string(),
            body_sha256: b64url(digest::digest(&digest::SHA256, body).as_ref()),
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| KeyError::Rejected)?;
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(&claims)
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| KeyError::Random)?;
        Ok(format!("{signing_input}.{}", b64url(sig.as_ref())))
    }
}

/// The public keys as the JWK Set served at `/.well-known/jwks.json`. List the current key and
/// any retired one still in the retry window, so deliveries signed before a rotation verify.
pub fn jwks(keys: &[BudSigningKey]) -> Value {
    json!({"keys": keys.iter().map(BudSigningKey::public_jwk).collect::<Vec<_>>()})
}

/// The claims of a Bud-dialect signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudClaims {
    /// When the delivery was signed, Unix seconds.
    pub iat: i64,
    /// The delivery's `webhook-id`, stable across retries.
    pub jti: String,
    /// Base64url SHA-256 of the body bytes.
    pub body_sha256: String,
}

/// Why a Bud-dialect signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudVerifyError {
    #[error("X-Signature is not a compact JWT")]
    Malformed,
    #[error("the JWT is not ES256 or names another key than X-Signing-ID")]
    Header,
    #[error("the JWKS has no usable P-256 key with id {0}")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature is for another body")]
    BodyMismatch,
}

/// Verifies a Bud-dialect delivery as a receiver would: finds `X-Signing-ID` in the JWKS,
/// checks the ES256 signature and that it covers exactly `body`. The caller checks `iat` (and
/// dedupes on `jti`) as its freshness policy requires.
pub fn verify_bud(
    jwks: &Value,
    signing_id: &str,
    signature: &str,
    body: &[u8],
) -> Result<BudClaims, BudVerifyError> {
    let mut parts = signature.split('.');
    let (Some(header), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BudVerifyError::Malformed);
    };
    let decode_json = |part: &str| -> Result<Value, BudVerifyError> {
        let bytes = b64url_decode(part).ok_or(BudVerifyError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| BudVerifyError::Malformed)
    };
    let h = decode_json(header)?;
    if h["alg"] != "ES256" || h["kid"] != signing_id {
        return Err(BudVerifyError::Header);
    }
    let point = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["kid"] == signing_id && k["kty"] == "EC" && k["crv"] == "P-256")
        .find_map(|k| {
            let x = b64url_decode(k["x"].as_str()?)?;
            let y = b64url_decode(k["y"].as_str()?)?;
            (x.len() == 32 && y.len() == 32).then(|| [&[0x04], &x[..], &y[..]].concat())
        })
        .ok_or_else(|| BudVerifyError::UnknownKey(signing_id.to_string()))?;
    let sig = b64url_decode(sig).ok_or(BudVerifyError::Malformed)?;
    let signing_input = &signature[..header.len() + 1 + claims.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| BudVerifyError::BadSignature)?;
    let claims: BudClaims =
        serde_json::from_value(decode_json(claims)?).map_err(|_| BudVerifyError::Malformed)?;
    if claims.body_sha256 != b64url(digest::digest(&digest::SHA256, body).as_ref()) {
        return Err(BudVerifyError::BodyMismatch);
    }
    Ok(claims)
}

/// The base64url x and y of an uncompressed P-256 point.
fn coordinates(point: &[u8]) -> Option<(String, String)> {
    match point {
        [0x04, xy @ ..] if xy.len() == 64 => Some((b64url(&xy[..32]), b64url(&xy[32..]))),
        _ => None,
    }
}

/// RFC 7638: the SHA-256 of the required members, in lexicographic order, no whitespace.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64url(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use freshet_model::time::now;

    use super::*;

    #[test]
    fn a_signature_verifies_with_the_jwks_and_only_for_its_body() {
        let key = BudSigningKey::generate().unwrap();
        let other = BudSigningKey::generate().unwrap();
        let set = jwks(&[other, BudSigningKey::from_pkcs8(key.pkcs8()).unwrap()]);
        let body = br#"{"event":"open_banking.v2.refresh.completed"}"#;
        let jwt = key.sign(body, "msg_1", now()).unwrap();
        let claims = verify_bud(&set, key.kid(), &jwt, body).unwrap();
        assert_eq!(claims.jti, "msg_1");

        assert_eq!(
            verify_bud(&set, key.kid(), &jwt, br#"{"event":"tampered"}"#),
            Err(BudVerifyError::BodyMismatch)
        );
        assert_eq!(
            verify_bud(&set, "someone-else", &jwt, body),
            Err(BudVerifyError::Header)
        );
        assert_eq!(
            verify_bud(&jwks(&[]), key.kid(), &jwt, body),
            Err(BudVerifyError::UnknownKey(key.kid().to_string()))
        );
        // A forged claim set under the genuine header and signature.
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged_claims = b64url(br#"{"iat":0,"jti":"x","body_sha256":"AAAA"}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            verify_bud(&set, key.kid(), &forged, body),
            Err(BudVerifyError::BadSignature)
        );
        assert_eq!(
            verify_bud(&set, key.kid(), "a.b", body),
            Err(BudVerifyError::Malformed)
        );
    }

    #[test]
    fn keys_round_trip_through_pkcs8_and_are_named_by_thumbprint() {
        let key = BudSigningKey::generate().unwrap();
        let again = BudSigningKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
        assert_ne!(BudSigningKey::generate().unwrap().kid(), key.kid());
        assert_eq!(
            BudSigningKey::from_pkcs8(b"not a key").unwrap_err(),
            KeyError::Rejected
        );
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.pkcs8())));
    }

    /// RFC 7638 section 3.1 computes its example over an RSA key; the same procedure over the
    /// P-256 key of RFC 7515 appendix A.3 is checked against a digest computed independently
    /// (`printf '{"crv":"P-256","kty":"EC","x":"f83O…","y":"x_FE…"}' | sha256sum`).
    #[test]
    fn thumbprint_of_the_rfc_7515_key() {
        let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        assert_eq!(
            thumbprint(x, y),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }
}
