//! What the OBIE and OFB banks publish and sign as OpenID providers: the discovery document,
//! the JWKS, and the hybrid flow's ID token, which the client verifies before it exchanges the
//! code (c_hash and s_hash tie the token to the code and state in the same redirect).

use axum::{
    Json,
    extract::{OriginalUri, Path, State},
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
};
use freshet_fapi::{jws, oidc::half_hash};
use serde_json::{Value, json};

use super::{AuthRequest, CLIENT_ID, Strict};
use crate::{
    Sandbox,
    catalogue::{Standard, bank},
};

/// How long an ID token is valid.
const ID_TOKEN_SECONDS: i64 = 300;

/// The ID token of an approved hybrid-flow request, signed ES256 by the bank's key.
pub(crate) fn id_token(
    strict: &Strict,
    standard: Standard,
    issuer: &str,
    req: &AuthRequest,
    code: &str,
) -> String {
    let now = jws::now();
    let mut claims = json!({
        "iss": issuer,
        "sub": req.consent_id,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + ID_TOKEN_SECONDS,
        "auth_time": now,
        "c_hash": half_hash(code),
        "acr": "urn:openbanking:psd2:sca",
    });
    if let Some(nonce) = &req.nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Some(state) = &req.state {
        claims["s_hash"] = json!(half_hash(state));
    }
    if standard == Standard::Obie {
        claims["openbanking_intent_id"] = json!(req.consent_id);
    }
    jws::sign(&strict.id_key, Some("JWT"), &claims).expect("a P-256 key signs ES256")
}

/// `GET /{bank}/.well-known/openid-configuration` (OBIE, OFB) and
/// `/.well-known/oauth-authorization-server` (Berlin Group's `scaOAuth` link).
pub(crate) async fn discovery(
    State(sb): State<Sandbox>,
    Path(bank_id): Path<String>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let Some(bank) = bank(&bank_id) else {
        return crate::web::not_found().await;
    };
    let root = crate::web::root_url(&sb, &headers, &original, &uri);
    let issuer = format!("{root}/{}", bank.id);
    let oidc = bank.standard != Standard::BerlinGroup;
    if oidc != uri.path().ends_with("/openid-configuration") {
        return crate::web::not_found().await;
    }
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth"],
        "token_endpoint_auth_signing_alg_values_supported": ["PS256", "ES256"],
        "tls_client_certificate_bound_access_tokens": true,
    });
    let extra: Value = if oidc {
        json!({
            "pushed_authorization_request_endpoint": format!("{issuer}/par"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code id_token"],
            "request_object_signing_alg_values_supported": ["PS256", "ES256"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "require_pushed_authorization_requests": bank.standard == Standard::OpenFinanceBrasil,
        })
    } else {
        json!({
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        })
    };
    for (k, v) in extra.as_object().into_iter().flatten() {
        doc[k] = v.clone();
    }
    Json(doc).into_response()
}

/// `GET /{bank}/jwks`: the key ID tokens are signed with.
pub(crate) async fn jwks(State(sb): State<Sandbox>, Path(bank_id): Path<String>) -> Response {
    let (Some(strict), Some(_)) = (
        sb.strict.as_ref(),
        bank(&bank_id).filter(|b| b.standard != Standard::BerlinGroup),
    ) else {
        return crate::web::not_found().await;
    };
    Json(freshet_fapi::Jwks {
        keys: vec![strict.id_key.jwk()],
    })
    .into_response()
}
