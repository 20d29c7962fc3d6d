//! `freshet sandbox pki DIR`: a test PKI for the strict sandbox and the provider registry a
//! node uses to reach its five banks with it.

use std::{fmt::Write, path::Path};

use freshet_fapi::{
    PrivateKey,
    pki::{TestPki, files},
};

use super::{CLIENT_ID, StrictError};
use crate::catalogue::{BANKS, Bank, Standard};

/// The registry's file name inside the PKI directory.
pub const PROVIDERS_FILE: &str = "providers.toml";

/// Writes a new test PKI for a strict sandbox served at `url` (its server certificate covers
/// 127.0.0.1, localhost, ::1 and `url`'s host) and `providers.toml` into `dir`. Refuses a
/// non-empty `dir` unless `force`.
pub fn write_pki(dir: &Path, url: &str, force: bool) -> Result<(), StrictError> {
    let invalid = |why: String| StrictError::Invalid {
        path: dir.to_path_buf(),
        why,
    };
    let hosts = server_hosts(url).map_err(invalid)?;
    let io = |source| StrictError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !force && dir.exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(invalid(
            "the directory is not empty; pass --force to overwrite".into(),
        ));
    }
    let pki = TestPki::generate(&hosts);
    pki.write(dir).map_err(io)?;
    let kid = PrivateKey::from_pem(&pki.signing_key_pem)
        .map_err(|e| invalid(e.to_string()))?
        .public_key()
        .thumbprint();
    let root = url.trim_end_matches('/');
    std::fs::write(dir.join(PROVIDERS_FILE), providers_toml(root, &kid)).map_err(io)
}

/// The names the server certificate covers: loopback, and the host of `url`.
fn server_hosts(url: &str) -> Result<Vec<String>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("--url `{url}`: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!("--url `{url}` must be an https URL"));
    }
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err(format!("--url `{url}` has no host")),
    };
    let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "::1"].map(String::from).into();
    if !hosts.contains(&host) {
        hosts.push(host);
    }
    Ok(hosts)
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The registry of the five sandbox banks at `root`, in the contract's format.
pub fn providers_toml(root: &str, signing_kid: &str) -> String {
    let mut out = format!("# Written by `freshet sandbox pki` for the strict sandbox at {root}.\n");
    for bank in &BANKS {
        out.push('\n');
        provider(&mut out, bank, root, signing_kid);
    }
    out
}

fn provider(out: &mut String, bank: &Bank, root: &str, kid: &str) {
    let paths = bank.paths(root);
    let issuer = format!("{root}/{}", bank.id);
    let (standard, token_auth) = match bank.standard {
        Standard::Obie => ("obie", "private_key_jwt"),
        Standard::BerlinGroup => ("berlin_group", "tls_client_auth"),
        Standard::OpenFinanceBrasil => ("ofb", "private_key_jwt"),
    };
    let mut field = |k: &str, v: String| {
        let _ = writeln!(out, "{k} = {v}");
    };
    field("[[provider]]\nid", quote(bank.id));
    field("name", quote(bank.name));
    field("standard", quote(standard));
    field("country", quote(bank.country));
    field("bank_code", quote(bank.code));
    field("institution_code", quote(bank.institution));
    field("yodlee_provider_id", bank.numeric_id.to_string());
    if bank.standard == Standard::BerlinGroup {
        field("authorize_url", quote(&paths.authorize));
        field("token_url", quote(&paths.token));
    } else {
        field("issuer", quote(&issuer));
    }
    field("api_base", quote(&paths.api_base));
    field("client_id", quote(CLIENT_ID));
    field("token_auth", quote(token_auth));
    field("transport_cert", quote(files::TRANSPORT_CERT));
    field("transport_key", quote(files::TRANSPORT_KEY));
    field("signing_key", quote(files::SIGNING_KEY));
    if bank.standard == Standard::BerlinGroup {
        field("signing_cert", quote(files::SIGNING_CERT));
    }
    field("signing_kid", quote(kid));
    if bank.standard == Standard::BerlinGroup {
        field("sign_requests", "true".into());
    }
    field("ca", quote(files::CA));
    field("concurrency", "16".into());
    field("unattended_per_day", "4".into());
    field("timeout_seconds", "30".into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_covers_loopback_and_the_url_host() {
        assert_eq!(
            server_hosts("https://127.0.0.1:8443").unwrap(),
            ["127.0.0.1", "localhost", "::1"]
        );
        assert_eq!(
            server_hosts("https://[::1]:8443/").unwrap(),
            ["127.0.0.1", "localhost", "::1"]
        );
        assert_eq!(server_hosts("https://bank.test").unwrap()[3], "bank.test");
        assert!(
            server_hosts("http://127.0.0.1:8443")
                .unwrap_err()
                .contains("https")
        );
    }

    #[test]
    fn each_standard_gets_its_own_fields() {
        let toml = providers_toml("https://h:1", "kid-1");
        let blocks: Vec<&str> = toml.split("[[provider]]").skip(1).collect();
        assert_eq!(blocks.len(), 5);
        let natwest = blocks[0];
        assert!(
            natwest.contains("issuer = \"https://h:1/natwest\""),
            "{natwest}"
        );
        assert!(natwest.contains("token_auth = \"private_key_jwt\""));
        assert!(!natwest.contains("sign_requests") && !natwest.contains("token_url"));
        let tatra = blocks[2];
        assert!(
            tatra.contains("token_url = \"https://h:1/tatrabanka/token\""),
            "{tatra}"
        );
        assert!(tatra.contains("token_auth = \"tls_client_auth\""));
        assert!(tatra.contains("signing_cert = \"tpp-signing.pem\""));
        assert!(tatra.contains("sign_requests = true") && !tatra.contains("issuer"));
        let brasil = blocks[4];
        assert!(
            brasil.contains("standard = \"ofb\"")
                && brasil.contains("institution_code = \"90400888000142\"")
        );
        assert!(toml.matches("signing_kid = \"kid-1\"").count() == 5);
    }

    #[test]
    fn a_directory_in_use_is_kept() {
        let dir = std::env::temp_dir().join(format!("sandbox-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine.txt"), "keep").unwrap();
        let err = write_pki(&dir, "https://127.0.0.1:8443", false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("mine.txt")).unwrap(),
            "keep"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
