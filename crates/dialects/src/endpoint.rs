//! The rules a vendor puts on the endpoints it delivers to, so freshet refuses at configuration
//! time what the vendor would: Tatra banka's URL "can not contain any parameters" and its
//! security header "might be empty or it must follow a regular expression `[ a-zA-Z0-9=+/]*`"
//! (seed 001).

/// One broken endpoint rule, naming the field of the endpoint it concerns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct EndpointRuleError {
    /// `url` or `security_header`.
    pub field: &'static str,
    pub message: &'static str,
}

pub(crate) fn check_tatra(
    url: &str,
    security_header: Option<&str>,
) -> Result<(), Vec<EndpointRuleError>> {
    let mut errors = Vec::new();
    // A `?` before any fragment starts a query, even an empty one.
    let before_fragment = url.split('#').next().unwrap_or(url);
    if before_fragment.contains('?') {
        errors.push(EndpointRuleError {
            field: "url",
            message: "must not contain query parameters (Tatra banka's rule)",
        });
    }
    if let Some(h) = security_header
        && !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '=' | '+' | '/'))
    {
        errors.push(EndpointRuleError {
            field: "security_header",
            message: "must match ^[ a-zA-Z0-9=+/]*$ (Tatra banka's rule)",
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<(), Vec<EndpointRuleError>>) -> Vec<&'static str> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_seeds_own_examples_pass() {
        assert_eq!(
            check_tatra(
                "https://tpp.example/webhooks/tatra",
                Some("Basic dXNlcjpwYXNzd29yZA==")
            ),
            Ok(())
        );
        // "Security header might be empty".
        assert_eq!(check_tatra("https://tpp.example/h", Some("")), Ok(()));
        assert_eq!(check_tatra("https://tpp.example/h", None), Ok(()));
        // A `?` inside the fragment is not a query.
        assert_eq!(check_tatra("https://tpp.example/h#a?b", None), Ok(()));
    }

    #[test]
    fn any_query_is_refused() {
        for url in [
            "https://tpp.example/h?token=1",
            "https://tpp.example/h?",
            "https://tpp.example/?a",
            "https://tpp.example/h?a=1#f",
        ] {
            assert_eq!(fields(check_tatra(url, None)), ["url"], "{url}");
        }
    }

    #[test]
    fn headers_outside_the_regex_are_refused() {
        for h in [
            "Bearer abc.def",
            "Basic a-b",
            "key_1",
            "tab\there",
            "line\nbreak",
            "Basic é",
            "a:b",
        ] {
            assert_eq!(
                fields(check_tatra("https://tpp.example/h", Some(h))),
                ["security_header"],
                "{h:?}"
            );
        }
        for h in ["Basic dXNlcjpwYXNzd29yZA==", "   ", "a+b/c=", "ABCxyz0189"] {
            assert_eq!(check_tatra("https://tpp.example/h", Some(h)), Ok(()), "{h}");
        }
    }

    #[test]
    fn both_refusals_are_reported_together() {
        let errors = check_tatra("https://tpp.example/h?x", Some("Bearer a.b")).unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["url", "security_header"]
        );
        assert!(errors[0].to_string().starts_with("url must not contain"));
    }
}
