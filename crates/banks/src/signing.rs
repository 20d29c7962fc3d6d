//! Berlin Group message signing (implementation guidelines 1.3, section 12): every request to a
//! bank that demands it carries a `Digest` of its body, a `Signature` over the headers the
//! guidelines name, and the signing certificate in `TPP-Signature-Certificate`.

use freshet_fapi::httpsig;
use freshet_model::ResultCode;
use reqwest::{Request, header::HeaderValue};

use crate::{BankError, Security};

fn failure(detail: String) -> BankError {
    BankError::new(ResultCode::InternalError, detail)
}

/// Signs `request` in place with the provider's signing key and certificate.
pub fn sign(request: &mut Request, security: &Security) -> Result<(), BankError> {
    let (Some(key), Some(cert)) = (&security.signing, &security.signing_cert) else {
        return Err(failure(
            "sign_requests without a signing key and certificate".into(),
        ));
    };
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let headers = request.headers_mut();
    if !headers.contains_key("x-request-id") {
        let id = uuid::Uuid::now_v7().to_string();
        headers.insert("x-request-id", HeaderValue::from_str(&id).expect("a UUID"));
    }
    let digest = httpsig::digest(&body);
    headers.insert("digest", HeaderValue::from_str(&digest).expect("base64"));
    let mut signed: Vec<(&str, String)> = Vec::new();
    for name in ["digest", "x-request-id"]
        .into_iter()
        .chain(httpsig::SIGNED_WHEN_PRESENT)
    {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            signed.push((name, v.to_string()));
        }
    }
    let pairs: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let signature = httpsig::sign(&key.key, &httpsig::key_id(cert), &pairs)
        .map_err(|e| failure(format!("signing the request: {e}")))?;
    let value = |s: String| {
        HeaderValue::from_str(&s).map_err(|_| failure("a signature header is not ASCII".into()))
    };
    headers.insert("signature", value(signature)?);
    headers.insert(
        "tpp-signature-certificate",
        value(httpsig::certificate_header(cert))?,
    );
    Ok(())
}
