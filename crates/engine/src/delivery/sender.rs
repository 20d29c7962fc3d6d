//! The HTTP client that POSTs webhooks.
//!
//! One shared client: connection pooling per host, no redirects (a 3xx is a failed attempt —
//! following it would let a receiver bounce freshet to an address the guard refused), a
//! timeout per attempt, and the [`GuardedResolver`] so every connection is checked against the
//! addresses the name resolves to at that moment. Only the first KiB of a response is read.

use std::{sync::Arc, time::Duration};

use reqwest::{Url, header::HeaderMap, redirect};

use super::{
    retry::parse_retry_after,
    target::{GuardedResolver, Refusal, TargetPolicy},
};

/// How much of a response body is kept for the attempt log.
pub const EXCERPT_BYTES: usize = 1024;

/// A request ready to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// The receiver's time to answer when not the node's (a vendor that documents its own).
    pub timeout: Option<Duration>,
}

/// How an attempt went, in the few kinds operators tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx response.
    Success,
    /// Any other response, 3xx included (redirects are not followed).
    HttpError,
    /// No complete answer within the timeout.
    Timeout,
    /// No connection: refused, reset, unreachable, or the name did not resolve.
    ConnectError,
    /// The connection broke after it was made, before a response arrived.
    NetworkError,
    /// The target guard refused the URL or every address it resolves to; nothing was sent.
    Refused,
    /// The event could not be rendered in the endpoint's dialect; nothing was sent.
    RenderError,
}

impl AttemptOutcome {
    pub const ALL: [Self; 7] = [
        Self::Success,
        Self::HttpError,
        Self::Timeout,
        Self::ConnectError,
        Self::NetworkError,
        Self::Refused,
        Self::RenderError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::HttpError => "http_error",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::NetworkError => "network_error",
            Self::Refused => "refused",
            Self::RenderError => "render_error",
        }
    }

    /// Whether the attempt went out on the network, so its latency means something.
    pub fn reached_network(self) -> bool {
        !matches!(self, Self::Refused | Self::RenderError)
    }
}

/// What one attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub outcome: AttemptOutcome,
    /// `None` when no response arrived.
    pub status: Option<u16>,
    pub latency: Duration,
    pub excerpt: Option<String>,
    pub retry_after: Option<Duration>,
    /// Why no usable response arrived, or why the target was refused.
    pub error: Option<String>,
}

impl Sent {
    /// 2xx within the timeout is success; anything else is a failure.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The delivery HTTP client.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
}

impl Sender {
    pub fn new(policy: Arc<TargetPolicy>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("freshet/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the delivery client's settings are valid");
        Self { client, policy }
    }

    /// The policy deliveries are checked against.
    pub fn policy(&self) -> &TargetPolicy {
        &self.policy
    }

    /// POSTs once. Never fails: every outcome is an attempt to record.
    pub async fn send(&self, out: Outgoing) -> Sent {
        let started = std::time::Instant::now();
        let failed = |outcome, error: String| Sent {
            outcome,
            status: None,
            latency: started.elapsed(),
            excerpt: None,
            retry_after: None,
            error: Some(error),
        };
        // Literal addresses never reach the resolver, so they are checked here.
        let url: Url = match self.policy.check_url(&out.url) {
            Ok(url) => url,
            Err(r) => {
                return failed(
                    AttemptOutcome::Refused,
                    format!("target refused: the URL {r}"),
                );
            }
        };
        let mut req = self.client.post(url).body(out.body);
        if let Some(t) = out.timeout {
            req = req.timeout(t);
        }
        for (name, value) in &out.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let mut resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return failed(no_response(&e), describe(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let mut excerpt = Vec::new();
        let mut error = None;
        while excerpt.len() < EXCERPT_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e));
                    break;
                }
            }
        }
        excerpt.truncate(EXCERPT_BYTES);
        if (300..400).contains(&status) {
            error = Some(format!("redirects are not followed (status {status})"));
        }
        Sent {
            outcome: if (200..300).contains(&status) {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::HttpError
            },
            status: Some(status),
            latency: started.elapsed(),
            excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
            retry_after,
            error,
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, time::OffsetDateTime::now_utc())
}

/// Why a request got no response: the guard's refusal travels as the resolver's error.
fn no_response(e: &reqwest::Error) -> AttemptOutcome {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        match s.downcast_ref::<Refusal>() {
            Some(Refusal::Unresolvable(_)) => return AttemptOutcome::ConnectError,
            Some(_) => return AttemptOutcome::Refused,
            None => source = s.source(),
        }
    }
    if e.is_timeout() {
        AttemptOutcome::Timeout
    } else if e.is_connect() {
        AttemptOutcome::ConnectError
    } else {
        AttemptOutcome::NetworkError
    }
}

/// A reqwest error with its causes, which carry the useful part (refused target, timeout).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored before the guard knew them, IPv6 forms of loopback are refused when sent: the
    /// check at send is the same as at save. Nothing leaves the machine.
    #[tokio::test]
    async fn wrapped_ipv4_targets_are_refused_at_send() {
        let sender = Sender::new(Arc::new(TargetPolicy::default()), Duration::from_secs(1));
        for url in [
            "http://[2002:7f00:1::1]:9/hooks",
            "http://[::127.0.0.1]:9/hooks",
            "http://[::ffff:0:7f00:1]:9/hooks",
            "http://[64:ff9b::a9fe:a9fe]:9/latest",
        ] {
            let sent = sender
                .send(Outgoing {
                    url: url.into(),
                    body: b"{}".to_vec(),
                    headers: vec![],
                    timeout: None,
                })
                .await;
            assert_eq!(sent.outcome, AttemptOutcome::Refused, "{url}");
            assert!(sent.status.is_none(), "{url}");
        }
    }
}
