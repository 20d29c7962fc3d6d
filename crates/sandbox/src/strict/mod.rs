//! Strict mode: the sandbox banks enforcing what real banks of each standard enforce (mutual
//! TLS, `private_key_jwt` / `tls_client_auth`, signed request objects and PAR, PKCE, the hybrid
//! flow's ID token, certificate-bound tokens, Berlin Group request signatures), so freshet's
//! connectors are proven against a bank that refuses what a real one would. The contract both
//! sides follow is issue 15's; `docs/sandbox.md` ("Strict mode") says what is checked.
//!
//! Relaxed mode (the default) never reaches this module: every hook is behind
//! [`Sandbox::strict`](crate::Sandbox) being set.

mod authz;
mod client_auth;
mod guard;
mod httpsig;
mod id_token;
mod pki;
mod tls;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Json, Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use freshet_fapi::{Certificate, PrivateKey, PublicKey, SigningKey, pki::files};
use serde_json::json;

pub use authz::AuthRequest;
pub(crate) use authz::resolve as resolve_authorisation;
pub(crate) use client_auth::authenticate as authenticate_client;
pub(crate) use guard::guard;
pub(crate) use id_token::id_token;
pub use pki::{PROVIDERS_FILE, providers_toml, write_pki};
pub use tls::serve_strict;

use crate::{Sandbox, catalogue::Standard};

/// The strict sandbox's one registered client.
pub const CLIENT_ID: &str = "freshet-sandbox-tpp";

/// What a strict sandbox is configured with: its TLS identity, the CA its clients'
/// certificates come from, and the registered client's keys.
#[derive(Clone, Debug)]
pub struct StrictConfig {
    /// The only root client certificates (and Berlin Group signing certificates) chain to.
    pub ca: Certificate,
    /// The server's certificate chain and key, PEM.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The registered client's key for client assertions and request objects.
    pub client_key: PublicKey,
    /// The subject DN `tls_client_auth` expects of the client's transport certificate.
    pub client_subject: String,
}

/// Why a PKI directory could not be read or written, or TLS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StrictError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn read(dir: &Path, name: &str) -> Result<(PathBuf, String), StrictError> {
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .map(|s| (path.clone(), s))
        .map_err(|source| StrictError::Io { path, source })
}

fn cert(path: &Path, pem: &str) -> Result<Certificate, StrictError> {
    Certificate::from_pem(pem).map_err(|e| StrictError::Invalid {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

impl StrictConfig {
    /// Reads a directory `freshet sandbox pki` wrote.
    pub fn load(dir: &Path) -> Result<Self, StrictError> {
        let (ca_path, ca) = read(dir, files::CA)?;
        let (_, server_cert_pem) = read(dir, files::SERVER_CERT)?;
        let (key_path, server_key_pem) = read(dir, files::SERVER_KEY)?;
        PrivateKey::from_pem(&server_key_pem).map_err(|e| StrictError::Invalid {
            path: key_path,
            why: e.to_string(),
        })?;
        let (signing_path, signing) = read(dir, files::SIGNING_CERT)?;
        let (transport_path, transport) = read(dir, files::TRANSPORT_CERT)?;
        let signing = cert(&signing_path, &signing)?;
        Ok(Self {
            ca: cert(&ca_path, &ca)?,
            server_cert_pem,
            server_key_pem,
            client_key: signing.public_key().map_err(|e| StrictError::Invalid {
                path: signing_path,
                why: e.to_string(),
            })?,
            client_subject: cert(&transport_path, &transport)?.subject(),
        })
    }

    /// The same from a PKI held in memory (tests).
    pub fn from_pki(pki: &freshet_fapi::pki::TestPki) -> Result<Self, StrictError> {
        let here = |name: &str| PathBuf::from(name);
        let signing = cert(&here(files::SIGNING_CERT), &pki.signing_pem)?;
        Ok(Self {
            ca: cert(&here(files::CA), &pki.ca_pem)?,
            server_cert_pem: pki.server_pem.clone(),
            server_key_pem: pki.server_key_pem.clone(),
            client_key: signing.public_key().map_err(|e| StrictError::Invalid {
                path: here(files::SIGNING_CERT),
                why: e.to_string(),
            })?,
            client_subject: cert(&here(files::TRANSPORT_CERT), &pki.transport_pem)?.subject(),
        })
    }
}

/// The client certificate a TLS connection presented, verified against the CA by the
/// handshake; the accept loop puts it on every request of the connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub cert: Arc<Certificate>,
    /// `x5t#S256` of the certificate, which access tokens are bound to.
    pub thumbprint: String,
}

/// A client-credentials token: it creates consents and nothing else.
struct CcToken {
    bank: &'static str,
    cnf: String,
    expires_at: i64,
}

/// What strict mode remembers besides the banks' own state.
#[derive(Default)]
struct Memory {
    /// Client assertion `jti`s seen, until they expire.
    jtis: HashMap<String, i64>,
    cc_tokens: HashMap<String, CcToken>,
    /// Pushed authorisation requests by `request_uri`, with their expiry.
    pushed: HashMap<String, (AuthRequest, i64)>,
    /// When expired entries were last dropped.
    purged_at: i64,
}

impl Memory {
    /// Drops what has expired, at most once a second: a benchmark makes tens of thousands of
    /// assertions, and sweeping on every one would be quadratic.
    fn purge(&mut self, now: i64) {
        if now <= self.purged_at {
            return;
        }
        self.purged_at = now;
        self.jtis.retain(|_, e| *e >= now);
        self.cc_tokens.retain(|_, t| t.expires_at > now);
        self.pushed.retain(|_, (_, exp)| *exp > now);
    }
}

/// Strict mode's configuration, its ID-token key, and its memory.
pub(crate) struct Strict {
    pub config: StrictConfig,
    /// One P-256 key per process signs every bank's ID tokens; kid = its thumbprint.
    pub id_key: SigningKey,
    memory: Mutex<Memory>,
}

impl Strict {
    pub fn new(config: StrictConfig) -> Self {
        let key = PrivateKey::generate_p256().1;
        let kid = key.public_key().thumbprint();
        Self {
            config,
            id_key: SigningKey::new(kid, key),
            memory: Mutex::default(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a client assertion's `jti`; false when it was seen before and has not expired.
    fn first_use(&self, jti: &str, exp: i64) -> bool {
        let now = freshet_fapi::jws::now();
        let mut m = self.memory();
        m.purge(now);
        !matches!(m.jtis.insert(jti.to_string(), exp), Some(seen) if seen >= now)
    }

    /// A client-credentials token for `bank`, bound to `cnf`.
    fn issue_cc(&self, bank: &'static str, cnf: &str) -> String {
        let token = crate::bank::secret("cc");
        let now = freshet_fapi::jws::now();
        let expires_at = now + crate::bank::TOKEN_SECONDS;
        let mut m = self.memory();
        m.purge(now);
        m.cc_tokens.insert(
            token.clone(),
            CcToken {
                bank,
                cnf: cnf.to_string(),
                expires_at,
            },
        );
        token
    }

    /// Why `token` may not create a consent at `bank` over `peer`, if it may not.
    fn cc_refusal(
        &self,
        bank: &str,
        token: Option<&str>,
        peer: Option<&Peer>,
    ) -> Option<&'static str> {
        let Some(token) = token else {
            return Some("a client-credentials access token is required (Authorization: Bearer)");
        };
        let m = self.memory();
        let Some(t) = m.cc_tokens.get(token) else {
            return Some("the access token is not a client-credentials token of this bank");
        };
        if t.bank != bank || t.expires_at <= freshet_fapi::jws::now() {
            return Some("the access token is not a client-credentials token of this bank");
        }
        if peer.is_none_or(|p| p.thumbprint != t.cnf) {
            return Some("the access token is bound to another client certificate");
        }
        None
    }

    /// Keeps a pushed request; returns its `request_uri`.
    fn push(&self, mut req: AuthRequest) -> String {
        let uri = format!(
            "urn:ietf:params:oauth:request_uri:{}",
            freshet_fapi::random_token(24)
        );
        req.request_uri = Some(uri.clone());
        let now = freshet_fapi::jws::now();
        let mut m = self.memory();
        m.purge(now);
        m.pushed.insert(uri.clone(), (req, now + PAR_SECONDS));
        uri
    }

    /// The pushed request behind `uri`, while it is known and unexpired. Opening it starts
    /// the customer's session on the page, which may outlast the `request_uri`'s 90 s;
    /// `take` (the decision) uses it up.
    pub(crate) fn pushed(&self, uri: &str, take: bool) -> Option<AuthRequest> {
        let now = freshet_fapi::jws::now();
        let mut m = self.memory();
        let (req, exp) = m.pushed.get_mut(uri)?;
        if *exp <= now {
            return None;
        }
        *exp = (*exp).max(now + PAGE_SECONDS);
        let req = req.clone();
        if take {
            m.pushed.remove(uri);
        }
        Some(req)
    }
}

/// How long a `request_uri` from PAR is valid.
const PAR_SECONDS: i64 = 90;

/// How long the customer may stay on the authorisation page once it has opened.
const PAGE_SECONDS: i64 = 600;

/// The routes strict mode adds: discovery, JWKS and PAR.
pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/{bank}/.well-known/openid-configuration",
            get(id_token::discovery),
        )
        .route(
            "/{bank}/.well-known/oauth-authorization-server",
            get(id_token::discovery),
        )
        .route("/{bank}/jwks", get(id_token::jwks))
        .route("/{bank}/par", post(authz::par))
}

/// An OAuth error (RFC 6749 section 5.2), as token and PAR endpoints answer.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// 401 in the standard's shape, with the reason in `WWW-Authenticate` too (OBIE's 401s
/// have no body).
pub(crate) fn unauthorized(standard: Standard, code: &str, text: &str) -> Response {
    let code = match standard {
        Standard::Obie => "UK.OBIE.Unauthorized",
        Standard::BerlinGroup => code,
        Standard::OpenFinanceBrasil => "NAO_AUTORIZADO",
    };
    let mut resp = crate::web::error(standard, StatusCode::UNAUTHORIZED, code, text, None);
    let challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        text.replace('"', "'")
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Refuses a consent creation that does not carry a client-credentials token of this bank
/// bound to the connection's certificate (OBIE and OFB, strict mode only).
pub(crate) fn check_consent_creation(
    sb: &Sandbox,
    bank: &crate::Bank,
    headers: &axum::http::HeaderMap,
    peer: Option<&Peer>,
) -> Result<(), Response> {
    let Some(strict) = &sb.strict else {
        return Ok(());
    };
    match strict.cc_refusal(bank.id, crate::web::bearer(headers), peer) {
        None => Ok(()),
        Some(why) => Err(unauthorized(bank.standard, "TOKEN_INVALID", why)),
    }
}

/// `grant_type=client_credentials`: a token that creates consents (OBIE scope `accounts`,
/// OFB scope `consents`), bound to the client's certificate.
pub(crate) fn client_credentials(
    strict: &Strict,
    bank: &'static crate::Bank,
    peer: &Peer,
    scope: &str,
) -> Response {
    let wanted = match bank.standard {
        Standard::Obie => "accounts",
        Standard::OpenFinanceBrasil => "consents",
        Standard::BerlinGroup => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "this bank does not offer client_credentials",
            );
        }
    };
    if !scope.split(' ').any(|s| s == wanted) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("scope must include `{wanted}`"),
        );
    }
    let token = strict.issue_cc(bank.id, &peer.thumbprint);
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": crate::bank::TOKEN_SECONDS,
        "scope": wanted,
    }))
    .into_response()
}
