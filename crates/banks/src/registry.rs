//! The provider registry: the operator's TOML file naming the banks a node may use, with the
//! credentials and security profile each demands. Loaded and checked once at start: a wrong
//! file stops the node with an error naming the file, the provider and the field.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use freshet_fapi::{Certificate, PrivateKey, SigningKey};
use serde::Deserialize;

use crate::{Provider, Security, Standard, TokenAuth};

/// What is wrong with a registry file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{}{message}", file.display(), provider.as_ref().map(|p| format!("provider `{p}`: ")).unwrap_or_default(), field.map(|f| format!("`{f}`: ")).unwrap_or_default())]
pub struct RegistryError {
    pub file: PathBuf,
    pub provider: Option<String>,
    pub field: Option<&'static str>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    provider: Vec<Entry>,
}

/// One `[[provider]]` table, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    standard: String,
    country: String,
    bank_code: Option<String>,
    institution_code: Option<String>,
    yodlee_provider_id: Option<i64>,
    issuer: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    par_url: Option<String>,
    api_base: String,
    client_id: String,
    redirect_uri: Option<String>,
    token_auth: Option<TokenAuth>,
    transport_cert: Option<PathBuf>,
    transport_key: Option<PathBuf>,
    signing_key: Option<PathBuf>,
    signing_kid: Option<String>,
    signing_cert: Option<PathBuf>,
    client_secret_file: Option<PathBuf>,
    #[serde(default)]
    sign_requests: bool,
    #[serde(default)]
    push: bool,
    ca: Option<PathBuf>,
    concurrency: Option<usize>,
    unattended_per_day: Option<u32>,
    timeout_seconds: Option<u64>,
}

/// Loads and checks a registry file. Relative paths inside it are relative to its folder.
pub fn load(file: &Path) -> Result<Vec<Provider>, RegistryError> {
    let whole = |message: String| RegistryError {
        file: file.to_path_buf(),
        provider: None,
        field: None,
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| whole(format!("cannot read: {e}")))?;
    let parsed: File = toml::from_str(&text).map_err(|e| whole(e.to_string()))?;
    if parsed.provider.is_empty() {
        return Err(whole("no [[provider]] tables".into()));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in parsed.provider {
        let id = entry.id.clone();
        let err = |field: &'static str, message: String| RegistryError {
            file: file.to_path_buf(),
            provider: Some(id.clone()),
            field: Some(field),
            message,
        };
        if !seen.insert(entry.id.clone()) {
            return Err(err("id", "appears twice".into()));
        }
        out.push(
            Checked { dir, entry }
                .provider()
                .map_err(|(f, m)| err(f, m))?,
        );
    }
    Ok(out)
}

type FieldResult<T> = Result<T, (&'static str, String)>;

struct Checked<'a> {
    dir: &'a Path,
    entry: Entry,
}

fn standard(s: &str) -> FieldResult<Standard> {
    match s {
        "obie" => Ok(Standard::Obie),
        "berlin_group" => Ok(Standard::BerlinGroup),
        "ofb" | "open_finance_brasil" => Ok(Standard::OpenFinanceBrasil),
        other => Err((
            "standard",
            format!("`{other}` is not obie, berlin_group or ofb"),
        )),
    }
}

/// An absolute http(s) URL; plain http only to this machine.
fn url(field: &'static str, v: &str) -> FieldResult<String> {
    let u = url::Url::parse(v).map_err(|e| (field, format!("`{v}` is not a URL: {e}")))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" => Ok(v.trim_end_matches('/').to_string()),
        "http" if loopback => Ok(v.trim_end_matches('/').to_string()),
        _ => Err((field, format!("`{v}` must be an https URL"))),
    }
}

impl Checked<'_> {
    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn read(&self, field: &'static str, p: &Path) -> FieldResult<String> {
        let path = self.path(p);
        std::fs::read_to_string(&path)
            .map_err(|e| (field, format!("cannot read {}: {e}", path.display())))
    }

    /// A private key file: readable, not readable by others, and a key; with its PEM.
    fn key(&self, field: &'static str, p: &Path) -> FieldResult<(PrivateKey, String)> {
        let path = self.path(p);
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(&path) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err((
                    field,
                    format!(
                        "{} is readable by others (mode {mode:o}): chmod o-rwx it",
                        path.display()
                    ),
                ));
            }
        }
        let pem = self.read(field, p)?;
        let key =
            PrivateKey::from_pem(&pem).map_err(|e| (field, format!("{}: {e}", path.display())))?;
        Ok((key, pem))
    }

    /// A certificate file, with its PEM.
    fn cert(&self, field: &'static str, p: &Path) -> FieldResult<(Certificate, String)> {
        let pem = self.read(field, p)?;
        let cert = Certificate::from_pem(&pem).map_err(|e| (field, e.to_string()))?;
        Ok((cert, pem))
    }

    fn provider(self) -> FieldResult<Provider> {
        let e = &self.entry;
        let standard = standard(&e.standard)?;
        if e.id.is_empty()
            || !e
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(("id", "use lower-case letters, digits and `-`".into()));
        }
        if e.client_id.trim().is_empty() {
            return Err(("client_id", "must not be empty".into()));
        }
        let api_base = url("api_base", &e.api_base)?;
        let issuer = e.issuer.as_deref().map(|v| url("issuer", v)).transpose()?;
        let authorize_url = e
            .authorize_url
            .as_deref()
            .map(|v| url("authorize_url", v))
            .transpose()?;
        let token_url = e
            .token_url
            .as_deref()
            .map(|v| url("token_url", v))
            .transpose()?;
        let par_url = e
            .par_url
            .as_deref()
            .map(|v| url("par_url", v))
            .transpose()?;
        let redirect_uri = e
            .redirect_uri
            .as_deref()
            .map(|v| url("redirect_uri", v))
            .transpose()?;
        let endpoints_given = authorize_url.is_some() && token_url.is_some();
        match standard {
            Standard::BerlinGroup if !endpoints_given => {
                return Err((
                    "authorize_url",
                    "Berlin Group banks publish no discovery: give authorize_url and token_url"
                        .into(),
                ));
            }
            Standard::Obie | Standard::OpenFinanceBrasil if issuer.is_none() => {
                return Err((
                    "issuer",
                    "ID tokens are checked against the issuer: give it (its discovery document \
                     gives the endpoints the file leaves out)"
                        .into(),
                ));
            }
            _ => {}
        }
        if e.push && standard != Standard::BerlinGroup {
            return Err((
                "push",
                "only Berlin Group consents name a notification URI (TPP-Notification-URI)".into(),
            ));
        }
        let token_auth = e.token_auth.unwrap_or(match standard {
            Standard::BerlinGroup => TokenAuth::TlsClientAuth,
            _ => TokenAuth::PrivateKeyJwt,
        });

        let transport = match (&e.transport_cert, &e.transport_key) {
            (Some(c), Some(k)) => {
                let (cert, cert_pem) = self.cert("transport_cert", c)?;
                let (key, key_pem) = self.key("transport_key", k)?;
                certified(&cert, &key, ("transport_cert", "transport_key"))?;
                Some((cert_pem, key_pem))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(("transport_key", "transport_cert needs its key".into()));
            }
            (None, Some(_)) => {
                return Err((
                    "transport_cert",
                    "transport_key needs its certificate".into(),
                ));
            }
        };
        if transport.is_none() && token_auth == TokenAuth::TlsClientAuth {
            return Err((
                "transport_cert",
                "tls_client_auth needs the transport certificate and key".into(),
            ));
        }

        let signing = match &e.signing_key {
            Some(p) => {
                let (key, _) = self.key("signing_key", p)?;
                let kid = e
                    .signing_kid
                    .clone()
                    .unwrap_or_else(|| key.public_key().thumbprint());
                Some(SigningKey::new(kid, key))
            }
            None => None,
        };
        let signing_cert = match &e.signing_cert {
            Some(p) => {
                let (cert, _) = self.cert("signing_cert", p)?;
                let Some(key) = &signing else {
                    return Err(("signing_key", "signing_cert needs its key".into()));
                };
                certified(&cert, &key.key, ("signing_cert", "signing_key"))?;
                Some(cert)
            }
            None => None,
        };
        if signing.is_none()
            && (token_auth == TokenAuth::PrivateKeyJwt || standard != Standard::BerlinGroup)
        {
            return Err((
                "signing_key",
                "client assertions and request objects are signed: give the signing key".into(),
            ));
        }
        if e.sign_requests && signing_cert.is_none() {
            return Err((
                "signing_cert",
                "sign_requests needs the signing certificate (TPP-Signature-Certificate)".into(),
            ));
        }
        let client_secret = match (&e.client_secret_file, token_auth) {
            (Some(p), _) => Some(secrecy::SecretString::from(
                self.read("client_secret_file", p)?.trim().to_string(),
            )),
            (None, TokenAuth::ClientSecretBasic) => {
                return Err((
                    "client_secret_file",
                    "client_secret_basic needs the secret's file".into(),
                ));
            }
            (None, _) => None,
        };
        let ca =
            e.ca.as_ref()
                .map(|p| {
                    let pem = self.read("ca", p)?;
                    Certificate::all_from_pem(&pem).map_err(|e| ("ca", e.to_string()))?;
                    Ok(pem)
                })
                .transpose()?;
        let timeout = Duration::from_secs(e.timeout_seconds.unwrap_or(30));
        if timeout.is_zero() {
            return Err(("timeout_seconds", "must be at least 1".into()));
        }
        let concurrency = e.concurrency.unwrap_or(16);
        if concurrency == 0 {
            return Err(("concurrency", "must be at least 1".into()));
        }
        let client = http_client(transport.as_ref(), ca.as_deref(), timeout)
            .map_err(|m| ("transport_cert", m))?;
        let code = e.bank_code.clone().unwrap_or_else(|| e.id.to_uppercase());
        Ok(Provider {
            id: e.id.clone(),
            name: e.name.clone(),
            institution_code: e.institution_code.clone().unwrap_or_else(|| code.clone()),
            code,
            numeric_id: e.yodlee_provider_id.unwrap_or_else(|| numeric_id(&e.id)),
            standard,
            country: e.country.clone(),
            api_base,
            authorize_url: authorize_url.unwrap_or_default(),
            token_url: token_url.unwrap_or_default(),
            concurrency,
            unattended_per_day: e.unattended_per_day.unwrap_or(4),
            push: e.push,
            timeout,
            security: Some(Arc::new(Security {
                client_id: e.client_id.clone(),
                redirect_uri,
                token_auth,
                issuer,
                par_url,
                signing,
                signing_cert,
                sign_requests: e.sign_requests,
                client_secret,
                client,
                transport_cert: e
                    .transport_cert
                    .as_ref()
                    .map(|p| self.path(p).display().to_string()),
            })),
        })
    }
}

/// `key` is the one `cert` certifies; the fields name the two in errors.
fn certified(
    cert: &Certificate,
    key: &PrivateKey,
    (cert_field, key_field): (&'static str, &'static str),
) -> FieldResult<()> {
    let certified = cert.public_key().map_err(|e| (cert_field, e.to_string()))?;
    if certified != key.public_key() {
        return Err((key_field, format!("the key does not match {cert_field}")));
    }
    Ok(())
}

/// The trust roots a registry names (`ca`), for tools that play the customer's browser at
/// the banks' pages; nothing else in the file is read or checked.
pub fn trust_roots(file: &Path) -> Result<Vec<String>, RegistryError> {
    let err = |message: String| RegistryError {
        file: file.to_path_buf(),
        provider: None,
        field: Some("ca"),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut roots: Vec<String> = Vec::new();
    let providers = doc.get("provider").and_then(|p| p.as_array());
    for ca in providers
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ca")?.as_str())
    {
        let path = dir.join(ca);
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        if !roots.contains(&pem) {
            roots.push(pem);
        }
    }
    Ok(roots)
}

/// The HTTP client for one bank: its transport identity for mutual TLS and its trust roots
/// (the system's when the registry names none). Redirects are never followed.
pub fn http_client(
    transport: Option<&(String, String)>,
    ca: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout);
    if let Some((cert, key)) = transport {
        let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
            .map_err(|e| format!("the transport certificate and key are not usable: {e}"))?;
        b = b.identity(identity);
    }
    if let Some(ca) = ca {
        b = b.tls_built_in_root_certs(false);
        for cert in Certificate::all_from_pem(ca).map_err(|e| e.to_string())? {
            let c = reqwest::Certificate::from_der(cert.der()).map_err(|e| e.to_string())?;
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// A stable integer for a provider that names no Yodlee id.
fn numeric_id(id: &str) -> i64 {
    let h = freshet_fapi::sha256(id.as_bytes());
    i64::from_be_bytes([0, 0, h[0], h[1], h[2], h[3], h[4], h[5]]) % 1_000_000 + 1_000_000
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use freshet_fapi::pki::{self, TestPki, files};

    use super::*;

    /// A PKI and a registry for one bank of `standard`, with `extra` lines in its table.
    fn setup(dir: &Path, standard: &str, extra: &str) -> PathBuf {
        TestPki::generate(&["127.0.0.1".into()]).write(dir).unwrap();
        let file = dir.join("providers.toml");
        let endpoints = if standard == "berlin_group" {
            "authorize_url = \"https://127.0.0.1:8443/b/authorize\"\ntoken_url = \"https://127.0.0.1:8443/b/token\"\nsigning_cert = \"tpp-signing.pem\"\nsign_requests = true"
        } else {
            "issuer = \"https://127.0.0.1:8443/b\""
        };
        std::fs::write(
            &file,
            format!(
                "[[provider]]\nid = \"b\"\nname = \"B\"\nstandard = \"{standard}\"\ncountry = \"GB\"\n\
                 api_base = \"https://127.0.0.1:8443/b\"\nclient_id = \"tpp\"\n{endpoints}\n\
                 transport_cert = \"{}\"\ntransport_key = \"{}\"\nsigning_key = \"{}\"\nca = \"{}\"\n{extra}\n",
                files::TRANSPORT_CERT,
                files::TRANSPORT_KEY,
                files::SIGNING_KEY,
                files::CA
            ),
        )
        .unwrap();
        file
    }

    fn error(file: &Path) -> String {
        load(file).unwrap_err().to_string()
    }

    #[test]
    fn a_good_registry_loads_with_its_defaults() {
        let dir = tempfile::tempdir().unwrap();
        for standard in ["obie", "ofb", "berlin_group"] {
            let providers = load(&setup(dir.path(), standard, "")).unwrap();
            let p = &providers[0];
            let s = p.security.as_ref().unwrap();
            let expected = if standard == "berlin_group" {
                TokenAuth::TlsClientAuth
            } else {
                TokenAuth::PrivateKeyJwt
            };
            assert_eq!(s.token_auth, expected, "{standard}");
            assert_eq!(p.code, "B");
            assert!(!p.push, "{standard}: no notifications unless asked");
            let printed = format!("{p:?}");
            assert!(!printed.contains("PRIVATE"), "no key material in {printed}");
        }
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = setup(dir.path(), "obie", "");
        // Another PKI's key under the transport key's name.
        let other = tempfile::tempdir().unwrap();
        TestPki::generate(&["127.0.0.1".into()])
            .write(other.path())
            .unwrap();
        let key = std::fs::read(other.path().join(files::TRANSPORT_KEY)).unwrap();
        pki::write_private(&dir.path().join(files::TRANSPORT_KEY), &key).unwrap();
        let e = error(&file);
        assert!(
            e.contains("provider `b`")
                && e.contains("`transport_key`")
                && e.contains("does not match"),
            "{e}"
        );
        assert!(e.contains("providers.toml"), "names the file: {e}");
    }

    #[test]
    fn unreadable_paths_and_world_readable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = setup(dir.path(), "obie", "");
        std::fs::remove_file(dir.path().join(files::SIGNING_KEY)).unwrap();
        let e = error(&file);
        assert!(
            e.contains("`signing_key`") && e.contains("cannot read"),
            "{e}"
        );

        let file = setup(dir.path(), "obie", "");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join(files::TRANSPORT_KEY);
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = error(&file);
            assert!(
                e.contains("`transport_key`") && e.contains("readable by others"),
                "{e}"
            );
        }
    }

    /// Push is for Berlin Group banks, whose consents name a notification URI.
    #[test]
    fn push_is_for_berlin_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = load(&setup(dir.path(), "berlin_group", "push = true")).unwrap();
        assert!(p[0].push);
        let e = error(&setup(dir.path(), "obie", "push = true"));
        assert!(
            e.contains("`push`") && e.contains("TPP-Notification-URI"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("standard = \"fdx\"", "duplicate key"),
            ("token_auth = \"client_secret_basic\"", "client_secret_file"),
        ];
        for (extra, expected) in cases {
            let e = error(&setup(dir.path(), "obie", extra));
            assert!(e.contains(expected), "{extra}: {e}");
        }
        let file = dir.path().join("providers.toml");
        std::fs::write(&file, "[[provider]]\nid = \"x\"\nname = \"X\"\nstandard = \"fdx\"\ncountry = \"GB\"\napi_base = \"https://a\"\nclient_id = \"c\"\n").unwrap();
        let e = error(&file);
        assert!(e.contains("`standard`") && e.contains("fdx"), "{e}");
        std::fs::write(&file, "[[provider]]\nid = \"x\"\nname = \"X\"\nstandard = \"obie\"\ncountry = \"GB\"\napi_base = \"http://bank.example\"\nclient_id = \"c\"\n").unwrap();
        let e = error(&file);
        assert!(e.contains("`api_base`") && e.contains("https"), "{e}");
        std::fs::write(&file, "[[provider]]\nid = \"x\"\nname = \"X\"\nstandard = \"obie\"\ncountry = \"GB\"\napi_base = \"https://a\"\nclient_id = \"c\"\n").unwrap();
        let e = error(&file);
        assert!(e.contains("`issuer`"), "{e}");
        std::fs::write(&file, "[[provider]]\nid = \"x\"\nnmae = \"X\"\n").unwrap();
        let e = error(&file);
        assert!(e.contains("nmae"), "unknown keys are named: {e}");
    }
}
