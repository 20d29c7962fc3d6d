//! Request logging that keeps OAuth secrets out of the logs.
//!
//! tower-http's default request span records the whole URI, and at debug level that put the
//! authorisation `code` and `state` of the consent callback into the log (issue 17). The span
//! here records the URI with those values replaced: every query value of the callback, and
//! the values of OAuth's secret-bearing parameters on any path.

use axum::http::{Request, Uri};
use tower_http::trace::MakeSpan;
use tracing::Span;

/// The path whose query belongs to the bank's redirect: all of it is redacted.
const CALLBACK_PATH: &str = "/v1/consents/callback";

/// Query parameters whose values are secrets wherever they appear.
const SECRET_PARAMS: [&str; 7] = [
    "code",
    "state",
    "id_token",
    "access_token",
    "refresh_token",
    "client_assertion",
    "request",
];

/// What a redacted value is logged as.
const REDACTED: &str = "REDACTED";

/// The URI as it may be logged.
pub fn redact_uri(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let everything = path == CALLBACK_PATH || path == format!("{CALLBACK_PATH}/");
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if everything || is_secret(raw_key) {
                format!("{raw_key}={REDACTED}")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// Whether a raw (still percent-encoded) query key names a secret.
fn is_secret(raw_key: &str) -> bool {
    let decoded: String = form_urlencoded::parse(raw_key.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    let key = decoded.trim().to_ascii_lowercase();
    SECRET_PARAMS.contains(&key.as_str())
}

/// Makes the request span like tower-http's default one, with the URI redacted.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactedSpan;

impl<B> MakeSpan<B> for RedactedSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        tracing::debug_span!(
            "request",
            method = %request.method(),
            uri = %redact_uri(request.uri()),
            version = ?request.version(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(uri: &str) -> String {
        redact_uri(&uri.parse().unwrap())
    }

    #[test]
    fn every_value_of_the_callback_query_is_redacted() {
        let got = redact("/v1/consents/callback?code=abc123&state=s3cr3t&iss=bank&error=x");
        assert_eq!(
            got,
            "/v1/consents/callback?code=REDACTED&state=REDACTED&iss=REDACTED&error=REDACTED"
        );
        assert!(!redact("/v1/consents/callback/?code=abc123").contains("abc123"));
    }

    #[test]
    fn secret_parameters_are_redacted_on_any_path() {
        let got = redact("/v1/events?limit=5&access_token=tok&Code=c0de&%73tate=st&type=x");
        assert_eq!(
            got,
            "/v1/events?limit=5&access_token=REDACTED&Code=REDACTED&%73tate=REDACTED&type=x"
        );
        for p in SECRET_PARAMS {
            let got = redact(&format!("/x?{p}=v4lue"));
            assert!(!got.contains("v4lue"), "{p}: {got}");
        }
    }

    #[test]
    fn uris_without_secrets_are_kept() {
        assert_eq!(redact("/v1/customers"), "/v1/customers");
        assert_eq!(
            redact("/v1/events?limit=5&after=abc"),
            "/v1/events?limit=5&after=abc"
        );
        assert_eq!(redact("/v1/x?flag"), "/v1/x?flag");
    }
}
