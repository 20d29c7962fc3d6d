//! Private and public keys of the two kinds FAPI allows (RSA for PS256, P-256 for ES256), read
//! from the PEM files operators hold and from the JWKs and certificates banks publish.

use std::fmt;

use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::EncodePrivateKey;

use crate::{Error, Jwk, b64url, sha256};

/// A signature algorithm freshet makes or checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PSS with SHA-256: FAPI's request objects, client assertions and ID tokens.
    Ps256,
    /// ECDSA P-256 with SHA-256, fixed-length signatures (JOSE).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: Berlin Group's `rsa-sha256` HTTP signatures.
    Rs256,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The JOSE name read back; FAPI allows only PS256 and ES256 in tokens.
    pub fn from_jose(name: &str) -> Result<Self, Error> {
        match name {
            "PS256" => Ok(Self::Ps256),
            "ES256" => Ok(Self::Es256),
            other => Err(Error::Unsupported(format!(
                "algorithm `{other}` (FAPI allows PS256 and ES256)"
            ))),
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key. It never prints: `Debug` shows only its kind.
pub struct PrivateKey {
    inner: Inner,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Rsa(_) => "RSA",
            Inner::Ec(_) => "P-256",
        };
        write!(f, "PrivateKey({kind}, redacted)")
    }
}

impl PrivateKey {
    /// A key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or P-256) or PKCS#1 (`BEGIN RSA
    /// PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        // Read through the crate's one PEM reader; the PKCS#8 label is last, so a more
        // specific one found first says which form the key is in.
        let (label, der) = pem_block(
            pem,
            &[
                "RSA PRIVATE KEY",
                "ENCRYPTED PRIVATE KEY",
                "EC PRIVATE KEY",
                "PRIVATE KEY",
            ],
        )
        .ok_or_else(|| Error::Malformed("PEM private key (expected BEGIN PRIVATE KEY)".into()))?;
        match label {
            "RSA PRIVATE KEY" => {
                let pkcs1 = || Error::Malformed("PKCS#1 RSA private key".into());
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| pkcs1())?;
                let der = key.to_pkcs8_der().map_err(|_| pkcs1())?;
                Self::from_pkcs8(der.as_bytes())
            }
            "ENCRYPTED PRIVATE KEY" => Err(Error::Unsupported(
                "encrypted private key: give it unencrypted, readable by freshet alone".into(),
            )),
            "EC PRIVATE KEY" => Err(Error::Unsupported(
                "SEC1 EC key: convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)".into(),
            )),
            _ => Self::from_pkcs8(&der),
        }
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            return Ok(Self {
                inner: Inner::Rsa(k),
            });
        }
        let rng = SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map(|k| Self {
                inner: Inner::Ec(k),
            })
            .map_err(|_| {
                Error::Unsupported("private key: expected RSA (2048 bits or more) or P-256".into())
            })
    }

    /// A new P-256 key, as PKCS#8 DER and the key.
    pub fn generate_p256() -> (Vec<u8>, Self) {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation");
        let der = doc.as_ref().to_vec();
        let key = Self::from_pkcs8(&der).expect("a key just generated");
        (der, key)
    }

    /// A new RSA key of `bits`, as PKCS#8 DER and the key.
    pub fn generate_rsa(bits: usize) -> (Vec<u8>, Self) {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).expect("RSA key generation");
        let der = key
            .to_pkcs8_der()
            .expect("PKCS#8 encoding")
            .as_bytes()
            .to_vec();
        let parsed = Self::from_pkcs8(&der).expect("a key just generated");
        (der, parsed)
    }

    /// The algorithm JWS uses with this key.
    pub fn jose_alg(&self) -> Alg {
        match self.inner {
            Inner::Rsa(_) => Alg::Ps256,
            Inner::Ec(_) => Alg::Es256,
        }
    }

    /// Signs `msg` with `alg`, which must suit the key.
    pub fn sign(&self, alg: Alg, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match (&self.inner, alg) {
            (Inner::Rsa(k), Alg::Ps256 | Alg::Rs256) => {
                let padding: &dyn signature::RsaEncoding = if alg == Alg::Ps256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(padding, &rng, msg, &mut sig)
                    .map_err(|_| Error::invalid("RSA signing failed"))?;
                Ok(sig)
            }
            (Inner::Ec(k), Alg::Es256) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::invalid("ECDSA signing failed")),
            _ => Err(Error::Unsupported(format!(
                "{} with this key",
                alg.as_str()
            ))),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Inner::Rsa(k) => PublicKey::rsa_from_pkcs1(k.public().as_ref())
                .expect("ring's RSA public key is PKCS#1 DER"),
            Inner::Ec(k) => PublicKey::P256 {
                point: k.public_key().as_ref().to_vec(),
            },
        }
    }
}

/// A public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point (0x04 ‖ x ‖ y).
    P256 { point: Vec<u8> },
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

impl PublicKey {
    /// From a DER SubjectPublicKeyInfo's algorithm and key bits.
    pub(crate) fn from_spki(
        spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    ) -> Result<Self, Error> {
        use x509_cert::der::asn1::ObjectIdentifier;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::Malformed("public key bits".into()))?;
        match spki.algorithm.oid.to_string().as_str() {
            OID_RSA => {
                let k = rsa::RsaPublicKey::from_pkcs1_der(bits)
                    .map_err(|_| Error::Malformed("RSA public key".into()))?;
                use rsa::traits::PublicKeyParts;
                Ok(Self::Rsa {
                    n: k.n().to_bytes_be(),
                    e: k.e().to_bytes_be(),
                })
            }
            OID_EC => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                if curve.map(|c| c.to_string()).as_deref() != Some(OID_P256) {
                    return Err(Error::Unsupported("elliptic curve (only P-256)".into()));
                }
                Ok(Self::P256 {
                    point: bits.to_vec(),
                })
            }
            other => Err(Error::Unsupported(format!("public key algorithm {other}"))),
        }
    }

    /// Checks `sig` over `msg` made with `alg`.
    pub fn verify(&self, alg: Alg, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        match (self, alg) {
            (Self::Rsa { n, e }, Alg::Ps256 | Alg::Rs256) => {
                let params = if alg == Alg::Ps256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .map_err(|_| Error::BadSignature)
            }
            (Self::P256 { point }, Alg::Es256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .map_err(|_| Error::BadSignature)
            }
            _ => Err(Error::Unsupported(format!(
                "{} with this kind of key",
                alg.as_str()
            ))),
        }
    }

    /// Checks an X.509 signature (DER-encoded ECDSA, or PKCS#1 v1.5 RSA) with SHA-256.
    pub(crate) fn verify_x509(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        match self {
            Self::Rsa { .. } => self.verify(Alg::Rs256, msg, sig),
            Self::P256 { point } => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(msg, sig)
                    .map_err(|_| Error::BadSignature)
            }
        }
    }

    /// The key as a JWK with `kid`.
    pub fn to_jwk(&self, kid: &str, alg: Alg) -> Jwk {
        let mut jwk = Jwk {
            kid: Some(kid.to_string()),
            alg: Some(alg.as_str().to_string()),
            key_use: Some("sig".into()),
            ..Jwk::default()
        };
        match self {
            Self::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64url(n));
                jwk.e = Some(b64url(e));
            }
            Self::P256 { point } => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(b64url(&point[1..33]));
                jwk.y = Some(b64url(&point[33..]));
            }
        }
        jwk
    }

    /// The RFC 7638 thumbprint: a stable key id.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(e), b64url(n))
            }
            Self::P256 { point } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64url(&point[1..33]),
                b64url(&point[33..])
            ),
        };
        b64url(&sha256(canonical.as_bytes()))
    }

    /// An RSA public key from PKCS#1 DER (for tests and SPKI-less sources).
    pub fn rsa_from_pkcs1(der: &[u8]) -> Result<Self, Error> {
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPublicKey::from_pkcs1_der(der)
            .map_err(|_| Error::Malformed("RSA public key".into()))?;
        Ok(Self::Rsa {
            n: k.n().to_bytes_be(),
            e: k.e().to_bytes_be(),
        })
    }
}

/// A private key with the id under which its public half is published.
#[derive(Debug)]
pub struct SigningKey {
    pub kid: String,
    pub key: PrivateKey,
}

impl SigningKey {
    pub fn new(kid: impl Into<String>, key: PrivateKey) -> Self {
        Self {
            kid: kid.into(),
            key,
        }
    }

    /// The public half as a JWK, for a JWKS.
    pub fn jwk(&self) -> Jwk {
        self.key.public_key().to_jwk(&self.kid, self.key.jose_alg())
    }
}

/// The first PEM block with one of `labels`, decoded.
pub(crate) fn pem_block<'a>(pem: &str, labels: &[&'a str]) -> Option<(&'a str, Vec<u8>)> {
    use base64::Engine;
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = pem.find(&begin) {
            let rest = &pem[start + begin.len()..];
            let stop = rest.find(&end)?;
            let body: String = rest[..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?;
            return Some((label, der));
        }
    }
    None
}

/// DER as PEM with `label`.
pub(crate) fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PKCS#8 DER as a PEM private key.
pub fn private_key_pem(pkcs8: &[u8]) -> String {
    to_pem("PRIVATE KEY", pkcs8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_signs_and_verifies_and_refuses_other_messages() {
        let (der, key) = PrivateKey::generate_p256();
        let back = PrivateKey::from_pem(&private_key_pem(&der)).unwrap();
        let sig = back.sign(Alg::Es256, b"hello").unwrap();
        let public = key.public_key();
        public.verify(Alg::Es256, b"hello", &sig).unwrap();
        assert_eq!(
            public.verify(Alg::Es256, b"hellO", &sig),
            Err(Error::BadSignature)
        );
        assert!(key.sign(Alg::Ps256, b"x").is_err());
        assert_eq!(format!("{key:?}"), "PrivateKey(P-256, redacted)");
    }

    #[test]
    fn rsa_signs_pss_and_pkcs1() {
        let (der, key) = PrivateKey::generate_rsa(2048);
        let back = PrivateKey::from_pem(&private_key_pem(&der)).unwrap();
        let public = back.public_key();
        for alg in [Alg::Ps256, Alg::Rs256] {
            let sig = key.sign(alg, b"body").unwrap();
            public.verify(alg, b"body", &sig).unwrap();
            assert!(public.verify(alg, b"bodz", &sig).is_err());
        }
        let pss = key.sign(Alg::Ps256, b"body").unwrap();
        assert!(
            public.verify(Alg::Rs256, b"body", &pss).is_err(),
            "padding is checked"
        );
    }

    #[test]
    fn pem_errors_name_the_problem() {
        assert!(matches!(
            PrivateKey::from_pem("nonsense"),
            Err(Error::Malformed(_))
        ));
        // Armour only, made here: no key block, however fake, lives in the source.
        let enc = to_pem("ENCRYPTED PRIVATE KEY", &[0; 3]);
        assert!(matches!(
            PrivateKey::from_pem(&enc),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 section 3.1.
        let n = crate::from_b64url("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let key = PublicKey::Rsa {
            n,
            e: vec![1, 0, 1],
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
