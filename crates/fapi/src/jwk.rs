//! JSON Web Keys (RFC 7517): how banks publish the keys their ID tokens are signed with, and
//! how a client publishes its own.

use serde::{Deserialize, Serialize};

use crate::{Error, PublicKey, from_b64url};

/// One key. Only the members freshet reads or writes; others are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    /// The public key it describes.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        let member = |v: &Option<String>, name: &str| {
            v.as_deref()
                .ok_or_else(|| Error::Malformed(format!("JWK without `{name}`")))
                .and_then(from_b64url)
        };
        match self.kty.as_str() {
            "RSA" => Ok(PublicKey::Rsa {
                n: strip_zeros(member(&self.n, "n")?),
                e: strip_zeros(member(&self.e, "e")?),
            }),
            "EC" => {
                if self.crv.as_deref() != Some("P-256") {
                    return Err(Error::Unsupported("JWK curve (only P-256)".into()));
                }
                let (x, y) = (member(&self.x, "x")?, member(&self.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::Malformed("P-256 JWK coordinates".into()));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(PublicKey::P256 { point })
            }
            other => Err(Error::Unsupported(format!("JWK key type `{other}`"))),
        }
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}

/// A key set, as served at a `jwks_uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The signing key with `kid`; with no `kid`, the only signing key there is.
    pub fn find(&self, kid: Option<&str>) -> Result<PublicKey, Error> {
        let signing = |k: &&Jwk| k.key_use.as_deref().is_none_or(|u| u == "sig");
        let found: Vec<&Jwk> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(signing)
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => self.keys.iter().filter(signing).collect(),
        };
        match found.as_slice() {
            [one] => one.public_key(),
            [] => Err(Error::invalid(match kid {
                Some(kid) => format!("no key `{kid}` in the JWKS"),
                None => "no signing key in the JWKS".into(),
            })),
            _ => Err(Error::invalid(
                "several keys match and the token names none",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alg, PrivateKey};

    #[test]
    fn a_key_survives_the_jwk_round_trip() {
        let (_, ec) = PrivateKey::generate_p256();
        let jwk = ec.public_key().to_jwk("k1", Alg::Es256);
        assert_eq!(jwk.public_key().unwrap(), ec.public_key());
        let set: Jwks =
            serde_json::from_value(serde_json::json!({"keys": [jwk, {"kty": "oct", "k": "x"}]}))
                .unwrap();
        assert_eq!(set.find(Some("k1")).unwrap(), ec.public_key());
        assert!(set.find(Some("k2")).is_err());
    }
}
