//! X.509 certificates, read for what the protocols name: the key (to check that a key file
//! matches its certificate, and to check signatures), the serial number and issuer (Berlin
//! Group's `keyId`), the SHA-256 thumbprint (certificate-bound tokens), and whether a given CA
//! issued it.

use x509_cert::der::{Decode, Encode};

use crate::{Error, PublicKey, b64url, keys::pem_block, sha256};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";

/// A parsed certificate and its DER.
#[derive(Clone, Debug)]
pub struct Certificate {
    cert: x509_cert::Certificate,
    der: Vec<u8>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Certificate {
    /// The first certificate of a PEM file.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let (_, der) = pem_block(pem, &["CERTIFICATE"]).ok_or_else(|| {
            Error::Malformed("PEM certificate (expected BEGIN CERTIFICATE)".into())
        })?;
        Self::from_der(&der)
    }

    /// Every certificate of a PEM file, in order.
    pub fn all_from_pem(pem: &str) -> Result<Vec<Self>, Error> {
        let mut out = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let block = &rest[start..];
            let end = block
                .find("-----END CERTIFICATE-----")
                .ok_or_else(|| Error::Malformed("PEM certificate without END".into()))?
                + "-----END CERTIFICATE-----".len();
            out.push(Self::from_pem(&block[..end])?);
            rest = &block[end..];
        }
        if out.is_empty() {
            return Err(Error::Malformed("PEM: no certificate".into()));
        }
        Ok(out)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|_| Error::Malformed("X.509 certificate".into()))?;
        Ok(Self {
            cert,
            der: der.to_vec(),
        })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM encoding.
    pub fn pem(&self) -> String {
        crate::keys::to_pem("CERTIFICATE", &self.der)
    }

    /// The serial number in upper-case hex, without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let bytes = self.cert.tbs_certificate.serial_number.as_bytes();
        let start = bytes
            .iter()
            .take_while(|b| **b == 0)
            .count()
            .min(bytes.len().saturating_sub(1));
        bytes[start..].iter().map(|b| format!("{b:02X}")).collect()
    }

    /// The issuer's distinguished name as RFC 4514 writes it, e.g. `CN=Test CA,O=freshet`.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// The subject's distinguished name as RFC 4514 writes it.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The certified public key.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        PublicKey::from_spki(&self.cert.tbs_certificate.subject_public_key_info)
    }

    /// `x5t#S256`: base64url of the SHA-256 of the DER, which binds tokens to a certificate.
    pub fn thumbprint_s256(&self) -> String {
        b64url(&sha256(&self.der))
    }

    /// Seconds since the epoch between which the certificate is valid.
    pub fn validity(&self) -> (i64, i64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs() as i64,
            v.not_after.to_unix_duration().as_secs() as i64,
        )
    }

    /// Whether `ca` issued this certificate (its signature checks with the CA's key and the
    /// issuer name is the CA's subject), and it is valid now.
    pub fn verify_issued_by(&self, ca: &Certificate) -> Result<(), Error> {
        if self.cert.tbs_certificate.issuer != ca.cert.tbs_certificate.subject {
            return Err(Error::invalid(format!(
                "issued by `{}`, not by the trusted CA `{}`",
                self.issuer(),
                ca.subject()
            )));
        }
        let alg = self.cert.signature_algorithm.oid.to_string();
        if alg != ECDSA_SHA256 && alg != RSA_SHA256 {
            return Err(Error::Unsupported(format!(
                "certificate signature algorithm {alg}"
            )));
        }
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|_| Error::Malformed("X.509 certificate".into()))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| Error::Malformed("certificate signature".into()))?;
        ca.public_key()?.verify_x509(&tbs, sig)?;
        let (from, until) = self.validity();
        let now = crate::jws::now();
        if now < from || now > until {
            return Err(Error::invalid("the certificate is not valid at this time"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::pki;

    #[test]
    fn issued_certificates_verify_against_their_ca_only() {
        let a = pki::Ca::generate("CA A");
        let b = pki::Ca::generate("CA B");
        let (cert, key) = a.issue_client("tpp", pki::KeyKind::Rsa2048);
        let cert = crate::Certificate::from_pem(&cert).unwrap();
        cert.verify_issued_by(&a.certificate()).unwrap();
        assert!(cert.verify_issued_by(&b.certificate()).is_err());
        assert_eq!(
            cert.public_key().unwrap(),
            crate::PrivateKey::from_pem(&key).unwrap().public_key()
        );
        assert!(cert.issuer().contains("CN=CA A"), "{}", cert.issuer());
        assert!(!cert.serial_hex().is_empty());
    }
}
