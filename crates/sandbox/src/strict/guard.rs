//! The checks every strict request passes before its handler: a client certificate (except
//! on the pages a browser opens and the documents anyone may read), access tokens used only
//! over the certificate they were issued over, and Berlin Group request signatures.

use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::Response,
};

use super::{Peer, oauth_error, unauthorized};
use crate::{
    Sandbox,
    catalogue::{Bank, Standard, bank},
};

/// The largest body a signed Berlin Group request may have.
const BODY_LIMIT: usize = 1 << 20;

/// Where a request goes, as far as the checks are concerned.
enum Route {
    /// Authorisation page, discovery, JWKS: no certificate needed.
    Open,
    /// Token and PAR endpoints: OAuth errors; the handler authenticates the client.
    OAuth,
    /// A bank's API.
    Api(&'static Bank),
    /// The control API and anything else.
    Other,
}

fn route(path: &str) -> Route {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (first, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(bank) = bank(first) else {
        return Route::Other;
    };
    match rest {
        "authorize" | "jwks" => Route::Open,
        r if r.starts_with(".well-known/") => Route::Open,
        "token" | "par" => Route::OAuth,
        _ => Route::Api(bank),
    }
}

const NO_CERT: &str = "a client certificate is required";

/// The middleware strict mode puts in front of every route.
pub(crate) async fn guard(State(sb): State<Sandbox>, req: Request, next: Next) -> Response {
    let Some(strict) = sb.strict.clone() else {
        return next.run(req).await;
    };
    let route = route(req.uri().path());
    let peer = req.extensions().get::<Peer>().cloned();
    let bank = match (&route, &peer) {
        (Route::Open, _) => return next.run(req).await,
        (Route::OAuth, None) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", NO_CERT);
        }
        (Route::OAuth, Some(_)) => return next.run(req).await,
        (Route::Other, None) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", NO_CERT);
        }
        (Route::Other, Some(_)) => return next.run(req).await,
        (Route::Api(bank), None) => {
            return unauthorized(bank.standard, "CERTIFICATE_MISSING", NO_CERT);
        }
        (Route::Api(bank), Some(_)) => *bank,
    };
    let peer = peer.expect("matched above");
    if let Some(token) = crate::web::bearer(req.headers())
        && let Some(Some(bound)) = sb.token_binding(token)
        && bound != peer.thumbprint
    {
        return unauthorized(
            bank.standard,
            "TOKEN_INVALID",
            "the access token is bound to another client certificate",
        );
    }
    if bank.standard != Standard::BerlinGroup {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return crate::web::error(
            Standard::BerlinGroup,
            StatusCode::PAYLOAD_TOO_LARGE,
            "FORMAT_ERROR",
            "the body is too large",
            None,
        );
    };
    if let Err(resp) =
        super::httpsig::check(&strict, &parts.method, &parts.uri, &parts.headers, &bytes)
    {
        return resp;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_page_discovery_and_jwks_go_without_a_certificate() {
        for open in [
            "/natwest/authorize",
            "/santander-br/.well-known/openid-configuration",
            "/lloyds/jwks",
        ] {
            assert!(matches!(route(open), Route::Open), "{open}");
        }
        assert!(matches!(route("/natwest/token"), Route::OAuth));
        assert!(matches!(route("/santander-br/par"), Route::OAuth));
        assert!(matches!(
            route("/tatrabanka/v1/accounts"),
            Route::Api(b) if b.id == "tatrabanka"
        ));
        assert!(matches!(route("/natwest/authorize/x"), Route::Api(_)));
        assert!(matches!(route("/control/faults"), Route::Other));
        assert!(matches!(route("/providers"), Route::Other));
    }
}
