//! JWS compact serialisation (RFC 7515) with the algorithms FAPI allows: what client
//! assertions, request objects and ID tokens are made of.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Alg, Error, PublicKey, SigningKey, b64url, from_b64url};

/// A JWS header's members freshet reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// Signs `claims` with `key`: header `{alg, kid, typ}`.
pub fn sign(key: &SigningKey, typ: Option<&str>, claims: &Value) -> Result<String, Error> {
    let alg = key.key.jose_alg();
    let header = Header {
        alg: alg.as_str().into(),
        kid: Some(key.kid.clone()),
        typ: typ.map(str::to_string),
    };
    let input = format!(
        "{}.{}",
        b64url(&serde_json::to_vec(&header).expect("a header serialises")),
        b64url(&serde_json::to_vec(claims).expect("claims serialise"))
    );
    let sig = key.key.sign(alg, input.as_bytes())?;
    Ok(format!("{input}.{}", b64url(&sig)))
}

/// A token read but not yet checked.
#[derive(Clone, Debug)]
pub struct Unverified {
    pub header: Header,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; nothing is trusted until [`Unverified::verify`].
pub fn decode(token: &str) -> Result<Unverified, Error> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed(
            "JWS: expected three dot-separated parts (an encrypted token is not supported)".into(),
        ));
    };
    let header: Header = serde_json::from_slice(&from_b64url(h)?)
        .map_err(|_| Error::Malformed("JWS header".into()))?;
    let claims: Value = serde_json::from_slice(&from_b64url(c)?)
        .map_err(|_| Error::Malformed("JWS payload".into()))?;
    if !claims.is_object() {
        return Err(Error::Malformed("JWS payload: not a JSON object".into()));
    }
    Ok(Unverified {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature: from_b64url(s)?,
    })
}

impl Unverified {
    /// The algorithm the header names, if FAPI allows it.
    pub fn alg(&self) -> Result<Alg, Error> {
        Alg::from_jose(&self.header.alg)
    }

    /// The claims, once the signature verifies with `key`.
    pub fn verify(self, key: &PublicKey) -> Result<Value, Error> {
        key.verify(self.alg()?, self.signing_input.as_bytes(), &self.signature)?;
        Ok(self.claims)
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The claims every FAPI JWT is checked for, whoever checks it.
pub struct Expect<'a> {
    pub iss: &'a str,
    /// Any of these audiences is accepted (a token endpoint, or the issuer).
    pub aud: &'a [&'a str],
    /// The longest lifetime from `iat`/`nbf` to `exp` allowed, in seconds.
    pub max_lifetime: i64,
    /// Clock skew tolerated, in seconds.
    pub leeway: i64,
}

/// Checks `iss`, `aud` (string or array), `exp` (required, in the future, not too far) and
/// `nbf`/`iat` (not in the future). Errors name the claim.
pub fn check_claims(claims: &Value, e: &Expect<'_>) -> Result<(), Error> {
    let now = now();
    if claims["iss"].as_str() != Some(e.iss) {
        return Err(Error::invalid(format!("`iss` must be `{}`", e.iss)));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => e.aud.contains(&a.as_str()),
        Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| e.aud.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err(Error::invalid(format!(
            "`aud` must be {}",
            e.aud.join(" or ")
        )));
    }
    let exp = claims["exp"]
        .as_i64()
        .ok_or_else(|| Error::invalid("`exp` is required"))?;
    if exp + e.leeway <= now {
        return Err(Error::invalid("the token has expired (`exp`)"));
    }
    let start = claims["nbf"].as_i64().or(claims["iat"].as_i64());
    if let Some(start) = start {
        if start - e.leeway > now {
            return Err(Error::invalid("the token is not valid yet (`nbf`/`iat`)"));
        }
        if exp - start > e.max_lifetime {
            return Err(Error::invalid(format!(
                "the token lives longer than {} s (`exp`)",
                e.max_lifetime
            )));
        }
    } else if exp - now > e.max_lifetime {
        return Err(Error::invalid(format!(
            "the token lives longer than {} s (`exp`)",
            e.max_lifetime
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::PrivateKey;

    fn key() -> SigningKey {
        SigningKey::new("k1", PrivateKey::generate_p256().1)
    }

    #[test]
    fn signed_tokens_verify_only_with_their_key() {
        let k = key();
        let token = sign(&k, Some("JWT"), &json!({"iss": "a", "n": 1})).unwrap();
        let u = decode(&token).unwrap();
        assert_eq!(u.header.kid.as_deref(), Some("k1"));
        assert_eq!(u.clone().verify(&k.key.public_key()).unwrap()["n"], 1);
        assert_eq!(u.verify(&key().key.public_key()), Err(Error::BadSignature));
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64url(br#"{"iss":"a","n":2}"#);
        let tampered = decode(&parts.join(".")).unwrap();
        assert_eq!(
            tampered.verify(&k.key.public_key()),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn none_and_hmac_are_refused() {
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(br#"{"a":1}"#)
        );
        let u = decode(&none).unwrap();
        assert!(matches!(
            u.verify(&key().key.public_key()),
            Err(Error::Unsupported(_))
        ));
        assert!(decode("a.b").is_err());
        assert!(decode("a.b.c.d.e").is_err());
    }

    #[test]
    fn claims_are_checked_by_name() {
        let n = now();
        let e = Expect {
            iss: "c",
            aud: &["https://bank/token", "https://bank"],
            max_lifetime: 300,
            leeway: 5,
        };
        let good = json!({"iss": "c", "aud": "https://bank/token", "iat": n, "exp": n + 60});
        check_claims(&good, &e).unwrap();
        let listed = json!({"iss": "c", "aud": ["x", "https://bank"], "exp": n + 60});
        check_claims(&listed, &e).unwrap();
        let cases = [
            (
                json!({"iss": "d", "aud": "https://bank", "exp": n + 60}),
                "iss",
            ),
            (
                json!({"iss": "c", "aud": "https://other", "exp": n + 60}),
                "aud",
            ),
            (
                json!({"iss": "c", "aud": "https://bank", "exp": n - 60}),
                "exp",
            ),
            (json!({"iss": "c", "aud": "https://bank"}), "exp"),
            (
                json!({"iss": "c", "aud": "https://bank", "iat": n, "exp": n + 3600}),
                "exp",
            ),
            (
                json!({"iss": "c", "aud": "https://bank", "nbf": n + 600, "exp": n + 700}),
                "nbf",
            ),
        ];
        for (claims, named) in cases {
            let err = check_claims(&claims, &e).unwrap_err().to_string();
            assert!(err.contains(named), "{claims}: {err}");
        }
    }
}
