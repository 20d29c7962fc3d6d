//! Berlin Group request signatures, checked as an ASPSP does (implementation guidelines 1.3,
//! section 12): the `Digest` matches the body, the `TPP-Signature-Certificate` comes from the
//! CA, `keyId` names that certificate, and the `Signature` covers the headers it must and
//! verifies with the certificate's key.

use axum::{
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use freshet_fapi::httpsig;

use super::Strict;
use crate::{catalogue::Standard, web::header};

fn format_error(text: &str) -> Response {
    crate::web::error(
        Standard::BerlinGroup,
        StatusCode::BAD_REQUEST,
        "FORMAT_ERROR",
        text,
        None,
    )
}

fn unauthorised(code: &str, text: &str) -> Response {
    super::unauthorized(Standard::BerlinGroup, code, text)
}

/// Headers that must be signed when they are sent, besides `digest` and `x-request-id`.
const SIGNED_WHEN_SENT: [&str; 3] = ["tpp-redirect-uri", "psu-id", "psu-corporate-id"];

/// Checks a Berlin Group API request's signature over `headers` and `body`.
pub(crate) fn check(
    strict: &Strict,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    let required = |name: &str| {
        header(headers, name).ok_or_else(|| {
            format_error(&format!(
                "{name} is required: this bank requires signed requests"
            ))
        })
    };
    let digest = required("Digest")?;
    required("X-Request-ID")?;
    let signature = required("Signature")?;
    let cert_header = required("TPP-Signature-Certificate")?;
    if digest != httpsig::digest(body) {
        return Err(unauthorised(
            "SIGNATURE_INVALID",
            "Digest does not match the body (SHA-256)",
        ));
    }
    let cert = httpsig::certificate_from_header(cert_header).map_err(|e| {
        unauthorised(
            "CERTIFICATE_INVALID",
            &format!("TPP-Signature-Certificate: {e}"),
        )
    })?;
    cert.verify_issued_by(&strict.config.ca).map_err(|e| {
        unauthorised(
            "CERTIFICATE_INVALID",
            &format!("TPP-Signature-Certificate: {e}"),
        )
    })?;
    let sig = httpsig::parse(signature)
        .map_err(|e| unauthorised("SIGNATURE_INVALID", &format!("Signature: {e}")))?;
    if sig.key_id != httpsig::key_id(&cert) {
        return Err(unauthorised(
            "SIGNATURE_INVALID",
            "Signature: keyId does not name the TPP-Signature-Certificate (SN=<serial>,CA=<issuer>)",
        ));
    }
    let mut must: Vec<&str> = vec!["digest", "x-request-id"];
    must.extend(
        SIGNED_WHEN_SENT
            .iter()
            .filter(|h| headers.contains_key(**h)),
    );
    let key = cert.public_key().map_err(|e| {
        unauthorised(
            "CERTIFICATE_INVALID",
            &format!("TPP-Signature-Certificate: {e}"),
        )
    })?;
    let target = format!(
        "{} {}",
        method.as_str().to_ascii_lowercase(),
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    sig.verify(&key, &must, |name| {
        if name == "(request-target)" {
            return Some(target.clone());
        }
        header(headers, name).map(str::to_string)
    })
    .map_err(|e| {
        let text = match e {
            freshet_fapi::Error::BadSignature => {
                "Signature: does not verify with the TPP-Signature-Certificate's key".to_string()
            }
            other => format!("Signature: {other}"),
        };
        unauthorised("SIGNATURE_INVALID", &text)
    })
}
