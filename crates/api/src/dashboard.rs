//! The operator dashboard at `/dashboard`: one HTML page, one stylesheet and one script, built
//! into the binary so a new user has nothing to build or download. The page talks to the
//! public API with an API key the operator types in; this module only serves the files.
//!
//! Every response carries a Content-Security-Policy that allows nothing but this origin: no
//! inline script, no other host, no framing. A value that slipped into the page as markup
//! still could not run or call out.

use std::sync::LazyLock;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use freshet_model::{ConsentStatus, EventType};

const HTML: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/app.css");

/// What the dashboard's pages may load and do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page, with the filters' choices filled in from the model so they cannot drift from
/// what the API accepts.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    HTML.replace(
        "<!-- event-type-options -->",
        &options(EventType::ALL.iter().map(|t| t.as_str())),
    )
    .replace(
        "<!-- consent-status-options -->",
        &options(ConsentStatus::ALL.iter().map(|s| s.as_str())),
    )
});

/// `<option>`s for fixed identifiers (lowercase words, dots and underscores: nothing to escape).
fn options<'a>(values: impl Iterator<Item = &'a str>) -> String {
    values
        .map(|v| {
            debug_assert!(
                v.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
            );
            format!("<option>{v}</option>")
        })
        .collect::<Vec<_>>()
        .join("")
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", &PAGE) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &str) -> Response {
    let mut response = body.to_string().into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // The files change with the binary: always ask, never serve a stale script.
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_event_type_and_consent_status() {
        assert!(!PAGE.contains("<!--"), "a placeholder was left in the page");
        for t in EventType::ALL {
            assert!(PAGE.contains(&format!("<option>{}</option>", t.as_str())));
        }
        for s in ConsentStatus::ALL {
            assert!(PAGE.contains(&format!("<option>{}</option>", s.as_str())));
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_outside_asset() {
        for forbidden in [
            "<script>",
            "onclick=",
            "onload=",
            "style=",
            "http://",
            "https://",
            "innerHTML",
        ] {
            for (name, text) in [("index.html", HTML), ("app.js", SCRIPT), ("app.css", STYLE)] {
                assert!(!text.contains(forbidden), "{name} contains `{forbidden}`");
            }
        }
    }
}
