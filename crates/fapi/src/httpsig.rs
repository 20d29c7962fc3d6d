//! HTTP message signatures as the Berlin Group NextGenPSD2 implementation guidelines (1.3,
//! section 12) use them, after draft-cavage-http-signatures-10: a `Digest` of the body, a
//! `Signature` over named headers with `keyId="SN=<serial>,CA=<issuer>"` and `rsa-sha256`,
//! and the signing certificate itself in `TPP-Signature-Certificate`.

use base64::Engine;

use crate::{Alg, Certificate, Error, PrivateKey, PublicKey, sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Headers that must be signed whenever they are sent; `digest` and `x-request-id` always.
pub const SIGNED_WHEN_PRESENT: [&str; 4] =
    ["psu-id", "psu-corporate-id", "tpp-redirect-uri", "date"];

/// The `Digest` header of a body (an empty body has one too).
pub fn digest(body: &[u8]) -> String {
    format!("SHA-256={}", B64.encode(sha256(body)))
}

/// The `keyId` naming a signing certificate: its serial in hex and its issuer.
pub fn key_id(cert: &Certificate) -> String {
    format!("SN={},CA={}", cert.serial_hex(), cert.issuer())
}

/// The certificate as `TPP-Signature-Certificate` carries it: base64 DER.
pub fn certificate_header(cert: &Certificate) -> String {
    B64.encode(cert.der())
}

/// The certificate from a `TPP-Signature-Certificate` header (base64 DER, or PEM).
pub fn certificate_from_header(value: &str) -> Result<Certificate, Error> {
    if value.contains("BEGIN CERTIFICATE") {
        return Certificate::from_pem(value);
    }
    let der = B64
        .decode(value.trim())
        .map_err(|_| Error::Malformed("TPP-Signature-Certificate: not base64".into()))?;
    Certificate::from_der(&der)
}

fn signing_string(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Signature` header over `headers` (name, value), in the order given.
pub fn sign(key: &PrivateKey, key_id: &str, headers: &[(&str, &str)]) -> Result<String, Error> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let sig = key.sign(Alg::Rs256, signing_string(&headers).as_bytes())?;
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    Ok(format!(
        r#"keyId="{key_id}",algorithm="rsa-sha256",headers="{}",signature="{}""#,
        names.join(" "),
        B64.encode(sig)
    ))
}

/// A `Signature` header read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub key_id: String,
    pub algorithm: String,
    /// Lower-case header names, in order.
    pub headers: Vec<String>,
    pub signature: Vec<u8>,
}

/// Reads `keyId="…",algorithm="…",headers="…",signature="…"`; quoted values may hold commas.
pub fn parse(value: &str) -> Result<Signature, Error> {
    let mut params = std::collections::HashMap::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| Error::Malformed("Signature header".into()))?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            return Err(Error::Malformed(format!(
                "Signature header: `{name}` must be quoted"
            )));
        };
        let close = quoted
            .find('"')
            .ok_or_else(|| Error::Malformed("Signature header: unclosed quote".into()))?;
        params.insert(name, quoted[..close].to_string());
        rest = quoted[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    let take = |k: &str| {
        params
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Malformed(format!("Signature header without `{k}`")))
    };
    Ok(Signature {
        key_id: take("keyid")?,
        algorithm: take("algorithm")?,
        headers: take("headers")?
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: B64
            .decode(take("signature")?)
            .map_err(|_| Error::Malformed("Signature header: signature is not base64".into()))?,
    })
}

impl Signature {
    /// Checks the signature with `key` over the headers it names, whose values `value_of`
    /// gives; `required` must all be among them.
    pub fn verify(
        &self,
        key: &PublicKey,
        required: &[&str],
        value_of: impl Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        if self.algorithm != "rsa-sha256" {
            return Err(Error::Unsupported(format!(
                "signature algorithm `{}` (expected rsa-sha256)",
                self.algorithm
            )));
        }
        for r in required {
            if !self.headers.iter().any(|h| h == r) {
                return Err(Error::invalid(format!("the signature must cover `{r}`")));
            }
        }
        let mut signed = Vec::new();
        for name in &self.headers {
            let v = value_of(name)
                .ok_or_else(|| Error::invalid(format!("signed header `{name}` is missing")))?;
            signed.push((name.clone(), v.trim().to_string()));
        }
        key.verify(
            Alg::Rs256,
            signing_string(&signed).as_bytes(),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki;

    #[test]
    fn signatures_round_trip_and_catch_tampering() {
        let ca = pki::Ca::generate("Test QTSP");
        let (cert_pem, key_pem) = ca.issue_client("tpp signing", pki::KeyKind::Rsa2048);
        let cert = Certificate::from_pem(&cert_pem).unwrap();
        let key = PrivateKey::from_pem(&key_pem).unwrap();
        let body = br#"{"access":{}}"#;
        let d = digest(body);
        let id = key_id(&cert);
        assert!(id.starts_with("SN=") && id.contains(",CA="), "{id}");
        let header = sign(&key, &id, &[("Digest", &d), ("X-Request-ID", "r-1")]).unwrap();
        let parsed = parse(&header).unwrap();
        assert_eq!(parsed.key_id, id, "a keyId with commas survives");
        assert_eq!(parsed.headers, ["digest", "x-request-id"]);
        let public = cert.public_key().unwrap();
        let lookup = |d: String| {
            move |n: &str| match n {
                "digest" => Some(d.clone()),
                "x-request-id" => Some("r-1".to_string()),
                _ => None,
            }
        };
        parsed
            .verify(&public, &["digest", "x-request-id"], lookup(d.clone()))
            .unwrap();
        let other = digest(b"{}");
        assert_eq!(
            parsed.verify(&public, &["digest"], lookup(other)),
            Err(Error::BadSignature)
        );
        assert!(
            parsed
                .verify(&public, &["tpp-redirect-uri"], lookup(d))
                .is_err()
        );
        let back = certificate_from_header(&certificate_header(&cert)).unwrap();
        assert_eq!(back, cert);
    }

    #[test]
    fn digest_is_base64_sha256() {
        assert_eq!(
            digest(b""),
            "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
