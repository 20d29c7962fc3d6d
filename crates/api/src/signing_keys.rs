//! freshet's own signing keys: the JWKS receivers of Bud-dialect webhooks verify with, and
//! the operator's rotation of those keys.

use axum::{
    Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use freshet_engine::signing_keys::{DEFAULT_OVERLAP, KeySet, KeysError};
use freshet_model::FieldError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Admin,
    extract::JsonBody,
    problem::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_jwks))
        .routes(routes!(rotate_signing_key))
}

/// A JWK Set (RFC 7517): the public ES256 keys whose ids appear in `X-Signing-ID`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JwksOut {
    /// `{kty: "EC", crv: "P-256", x, y, kid, use: "sig", alg: "ES256"}` each.
    #[schema(value_type = Vec<Object>)]
    keys: serde_json::Value,
}

/// Rotation options.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyIn {
    /// How long the keys it replaces stay published, in seconds (default 604800 = 7 days,
    /// at most 30 days).
    overlap_seconds: Option<i64>,
}

/// One published key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishedKeyOut {
    kid: String,
    /// When it leaves the JWKS; absent for the signing key.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    retires_at: Option<OffsetDateTime>,
}

/// The keys after a rotation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKeysOut {
    /// The key that signs from now on.
    signing_kid: String,
    /// Every key in the JWKS, oldest first.
    keys: Vec<PublishedKeyOut>,
}

impl From<&KeySet> for SigningKeysOut {
    fn from(set: &KeySet) -> Self {
        Self {
            signing_kid: set.signing().kid().to_string(),
            keys: set
                .published()
                .map(|(kid, retires_at)| PublishedKeyOut {
                    kid: kid.to_string(),
                    retires_at,
                })
                .collect(),
        }
    }
}

impl From<KeysError> for ApiError {
    fn from(e: KeysError) -> Self {
        match e {
            KeysError::Overlap => ApiError::Validation(vec![FieldError::new(
                "overlap_seconds",
                "must be between 0 and 2592000 (30 days)",
            )]),
            KeysError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The public keys Bud-dialect webhooks are signed with. No authentication: receivers fetch
/// it, cache it, and fetch it again when `X-Signing-ID` names a key they do not have.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "signing keys",
    responses((status = 200, body = JwksOut))
)]
async fn get_jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let set = state.signing_keys.fresh().await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(set.jwks()),
    )
        .into_response())
}

/// Adds a new signing key, which signs from now on on every node (within seconds); the keys
/// it replaces stay in the JWKS for the overlap, then leave it.
#[utoipa::path(
    post, path = "/v1/admin/signing-keys/rotate", tag = "signing keys",
    request_body(content = RotateKeyIn, description = "Optional"),
    responses(
        (status = 200, body = SigningKeysOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = []))
)]
async fn rotate_signing_key(
    _: Admin,
    State(state): State<AppState>,
    body: Option<JsonBody<RotateKeyIn>>,
) -> Result<Json<SigningKeysOut>, ApiError> {
    let overlap = body
        .and_then(|JsonBody(b)| b.overlap_seconds)
        .map_or(DEFAULT_OVERLAP, time::Duration::seconds);
    let set = state.signing_keys.rotate(overlap).await?;
    Ok(Json(SigningKeysOut::from(set.as_ref())))
}
