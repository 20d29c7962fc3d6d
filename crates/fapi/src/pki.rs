//! A test PKI made at run time, standing in for what a TPP gets from its directory and QTSP and
//! a bank from its CA: a CA, a TLS server certificate, the TPP's transport certificate (the
//! QWAC-style identity it presents in mutual TLS) and its signing certificate (QSealC-style,
//! RSA for PS256 and `rsa-sha256`). Nothing here is ever committed: tests and
//! `freshet sandbox pki` make their own.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::{Certificate, PrivateKey, keys::private_key_pem};

/// The kind of key a certificate certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    Rsa2048,
}

/// A certificate authority that issues the other certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "freshet sandbox");
    dn.push(DnType::CommonName, cn);
    dn
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x10;
    SerialNumber::from_slice(&bytes)
}

fn params(cn: &str, sans: Vec<String>) -> CertificateParams {
    let mut p = CertificateParams::new(sans).expect("valid subject alternative names");
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(2 * 365);
    p.distinguished_name = name(cn);
    p.serial_number = Some(serial());
    p.use_authority_key_identifier_extension = true;
    p
}

fn key(kind: KeyKind) -> (KeyPair, String) {
    let der = match kind {
        KeyKind::P256 => PrivateKey::generate_p256().0,
        KeyKind::Rsa2048 => PrivateKey::generate_rsa(2048).0,
    };
    let pair = KeyPair::try_from(der.as_slice()).expect("rcgen reads the key it is given");
    (pair, private_key_pem(&der))
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn generate(cn: &str) -> Self {
        let mut params = params(cn, Vec::new());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = false;
        let (key, _) = key(KeyKind::P256);
        let cert_pem = params.self_signed(&key).expect("a self-signed CA").pem();
        Self {
            params,
            key,
            cert_pem,
        }
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn certificate(&self) -> Certificate {
        Certificate::from_pem(&self.cert_pem).expect("the CA's own certificate")
    }

    fn issue(&self, mut p: CertificateParams, kind: KeyKind) -> (String, String) {
        let (subject, key_pem) = key(kind);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if kind == KeyKind::Rsa2048 {
            p.key_usages.push(KeyUsagePurpose::ContentCommitment);
        }
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = p
            .signed_by(&subject, &issuer)
            .expect("an issued certificate");
        (cert.pem(), key_pem)
    }

    /// A TLS server certificate for `hosts` (names or IP addresses), with its key (PEM).
    pub fn issue_server(&self, hosts: &[String]) -> (String, String) {
        let mut p = params(
            hosts.first().map_or("sandbox bank", String::as_str),
            hosts.to_vec(),
        );
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(p, KeyKind::P256)
    }

    /// A client certificate named `cn`, with its key (PEM): a TPP's transport or signing
    /// certificate.
    pub fn issue_client(&self, cn: &str, kind: KeyKind) -> (String, String) {
        let mut p = params(cn, Vec::new());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(p, kind)
    }
}

/// A whole test PKI, as `freshet sandbox pki` writes it.
pub struct TestPki {
    pub ca_pem: String,
    pub server_pem: String,
    pub server_key_pem: String,
    pub transport_pem: String,
    pub transport_key_pem: String,
    pub signing_pem: String,
    pub signing_key_pem: String,
}

/// File names inside a PKI directory.
pub mod files {
    pub const CA: &str = "ca.pem";
    pub const SERVER_CERT: &str = "server.pem";
    pub const SERVER_KEY: &str = "server.key";
    pub const TRANSPORT_CERT: &str = "tpp-transport.pem";
    pub const TRANSPORT_KEY: &str = "tpp-transport.key";
    pub const SIGNING_CERT: &str = "tpp-signing.pem";
    pub const SIGNING_KEY: &str = "tpp-signing.key";
}

impl TestPki {
    /// A CA and the certificates it issues: the server's for `hosts`, the TPP's two.
    pub fn generate(hosts: &[String]) -> Self {
        let ca = Ca::generate("freshet sandbox CA");
        let (server_pem, server_key_pem) = ca.issue_server(hosts);
        let (transport_pem, transport_key_pem) =
            ca.issue_client("freshet TPP transport", KeyKind::P256);
        let (signing_pem, signing_key_pem) =
            ca.issue_client("freshet TPP signing", KeyKind::Rsa2048);
        Self {
            ca_pem: ca.cert_pem,
            server_pem,
            server_key_pem,
            transport_pem,
            transport_key_pem,
            signing_pem,
            signing_key_pem,
        }
    }

    /// Writes the files into `dir` (created if needed); keys readable by the owner alone.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let public = [
            (files::CA, &self.ca_pem),
            (files::SERVER_CERT, &self.server_pem),
            (files::TRANSPORT_CERT, &self.transport_pem),
            (files::SIGNING_CERT, &self.signing_pem),
        ];
        for (name, pem) in public {
            std::fs::write(dir.join(name), pem)?;
        }
        let private = [
            (files::SERVER_KEY, &self.server_key_pem),
            (files::TRANSPORT_KEY, &self.transport_key_pem),
            (files::SIGNING_KEY, &self.signing_key_pem),
        ];
        for (name, pem) in private {
            write_private(&dir.join(name), pem.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes a file only its owner can read, never widening an existing file's mode first.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_hangs_together() {
        let pki = TestPki::generate(&["127.0.0.1".into(), "localhost".into()]);
        let ca = Certificate::from_pem(&pki.ca_pem).unwrap();
        for (cert, key) in [
            (&pki.server_pem, &pki.server_key_pem),
            (&pki.transport_pem, &pki.transport_key_pem),
            (&pki.signing_pem, &pki.signing_key_pem),
        ] {
            let cert = Certificate::from_pem(cert).unwrap();
            cert.verify_issued_by(&ca).unwrap();
            assert_eq!(
                cert.public_key().unwrap(),
                PrivateKey::from_pem(key).unwrap().public_key()
            );
        }
        let dir = std::env::temp_dir().join(format!("fapi-pki-{}", std::process::id()));
        pki.write(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(files::SIGNING_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "keys are private");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
