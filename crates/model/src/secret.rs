//! Secrets in `Debug` output. Types holding a token, a webhook secret or a key implement
//! `Debug` by hand and show [`REDACTED`] in its place, so printing one in a log, an error or a
//! panic never reveals it.

/// What a secret's `Debug` shows.
pub const REDACTED: &str = "<redacted>";

/// An optional secret for `Debug`: whether it is set, not what it is.
pub fn redact<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}
