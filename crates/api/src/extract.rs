//! Request extractors that fail with problem details naming the offending field.
//!
//! axum's own extractors answer plain-text errors; these wrap the same work so that malformed
//! JSON, a wrong type deep inside a body, an unknown field, a bad query parameter or an id that
//! is not a UUID all come back as problem details a client can act on.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use freshet_model::FieldError;

use crate::problem::ApiError;

/// A JSON request body, parsed strictly.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest {
                    detail: e.body_text(),
                    errors: vec![],
                }
            }
        })?;
        parse_json(&bytes).map(Self)
    }
}

/// An optional JSON body: an empty body is `None`, anything else must be valid JSON.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        let untyped = req.headers().get(header::CONTENT_TYPE).is_none();
        if declared_empty || untyped {
            // No body, or one that is not claimed to be JSON: read it to be sure it is empty.
            let bytes =
                Bytes::from_request(req, state)
                    .await
                    .map_err(|e| ApiError::BadRequest {
                        detail: e.body_text(),
                        errors: vec![],
                    })?;
            return if bytes.iter().all(u8::is_ascii_whitespace) {
                Ok(None)
            } else {
                Err(ApiError::UnsupportedMediaType)
            };
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// The body limit in force, recorded by the router so errors can state it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON object, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::bad_field(
                "body",
                "is empty: this request needs a JSON body",
            ));
        }
        // serde would read an array as a struct's fields by position; no client means that.
        Some(b) if *b != b'{' => {
            return Err(ApiError::bad_field("body", "must be a JSON object"));
        }
        Some(_) => {}
    }
    if let Some(field) = nul_path(bytes) {
        return Err(ApiError::Validation(vec![FieldError::new(
            field,
            "must not contain the NUL character (U+0000)",
        )]));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_field("body", format!("is not valid JSON: {inner}"));
        }
        let field = field_of(&e.path().to_string(), &inner.to_string());
        let message = strip_position(&inner.to_string());
        ApiError::bad_field(field, message)
    })
}

/// The path of the first string or key holding U+0000, which PostgreSQL cannot store in text
/// or JSON: refused on every store, so what is accepted never depends on the store. JSON can
/// carry it only escaped, so bodies without `\u0000` are not parsed twice.
fn nul_path(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(6).any(|w| w == br"\u0000") {
        return None;
    }
    // Invalid JSON is left to the parse that follows, which says what is wrong with it.
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find_nul(&value, String::new())
}

fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.clone()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let key = k.replace('\0', "\\u0000");
            let child = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            if k.contains('\0') {
                Some(child)
            } else {
                find_nul(v, child)
            }
        }),
        _ => None,
    }
}

/// The field a deserialisation error is about. For a missing or unknown field serde reports the
/// parent's path and names the field in the message; join the two.
fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_string(),
        (parent, Some(name)) if message.starts_with("missing") => format!("{parent}.{name}"),
        (".", None) => "body".to_string(),
        (path, _) => path.to_string(),
    }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query parameters, parsed strictly.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let message = e.inner().to_string();
            let field = field_of(&e.path().to_string(), &message);
            let field = if field == "body" {
                "query".to_string()
            } else {
                field
            };
            ApiError::bad_field(field, message)
        })
    }
}

/// Parses a UUID path segment, naming the parameter when it is not one.
pub fn parse_id(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::bad_field(name, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::problem::ApiError;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field(r: Result<Outer, ApiError>) -> String {
        match r.unwrap_err() {
            ApiError::BadRequest { errors, .. } => errors[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(parse_json(br#"{"name": 5}"#)), "name");
        assert_eq!(
            field(parse_json(br#"{"name": "a", "inner": {"count": "x"}}"#)),
            "inner.count"
        );
        assert_eq!(field(parse_json(br#"{}"#)), "name");
        assert_eq!(
            field(parse_json(br#"{"name": "a", "inner": {}}"#)),
            "inner.count"
        );
        assert_eq!(field(parse_json(br#"{"name": "a", "nmae": 1}"#)), "nmae");
    }

    #[test]
    fn malformed_and_empty_bodies_are_bad_requests() {
        for body in [
            &b"{"[..],
            b"",
            b"  ",
            b"{\"name\": }",
            b"[\"a\", null]",
            b"\"a\"",
        ] {
            assert!(matches!(
                parse_json::<Outer>(body),
                Err(ApiError::BadRequest { .. })
            ));
        }
    }

    fn nul_field(body: &[u8]) -> Option<String> {
        match parse_json::<serde_json::Value>(body) {
            Err(ApiError::Validation(errors)) => Some(errors[0].field.clone()),
            _ => None,
        }
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        assert_eq!(
            nul_field(br#"{"name": "a\u0000b"}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            nul_field(br#"{"name": "a", "inner": {"tags": ["x", "\u0000"]}}"#).as_deref(),
            Some("inner.tags[1]")
        );
        assert_eq!(
            nul_field(br#"{"info": {"k\u0000": 1}}"#).as_deref(),
            Some("info.k\\u0000")
        );
        // An escaped backslash followed by `u0000` is text, not NUL.
        assert_eq!(nul_field(br#"{"name": "a\\u0000"}"#), None);
        assert!(parse_json::<serde_json::Value>(br#"{"name": "a\\u0000"}"#).is_ok());
        assert_eq!(nul_field(br#"{"name": "plain"}"#), None);
        // Malformed JSON stays a 400 about the body.
        assert!(matches!(
            parse_json::<serde_json::Value>(br#"{"name": "\u0000"#),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[test]
    fn json_media_types() {
        let v = |s: &'static str| Some(header::HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("application/json; charset=utf-8").as_ref()));
        assert!(is_json(v("application/merge-patch+json").as_ref()));
        assert!(!is_json(v("text/plain").as_ref()));
        assert!(!is_json(None));
    }
}

// Calendar dates in requests, `YYYY-MM-DD` (time's own serde form is a tuple).
time::serde::format_description!(pub ymd, Date, "[year]-[month]-[day]");
