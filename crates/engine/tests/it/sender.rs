//! The delivery HTTP client, against a real receiver.

use std::{sync::Arc, time::Duration};

use freshet_engine::delivery::{
    sender::{AttemptOutcome, EXCERPT_BYTES, Outgoing, Sender},
    target::TargetPolicy,
};

use freshet_engine::testing::{Answer, Receiver};

fn dev_sender(timeout: Duration) -> Sender {
    Sender::new(
        Arc::new(TargetPolicy {
            allow_loopback: true,
            ..Default::default()
        }),
        timeout,
    )
}

fn post(url: String) -> Outgoing {
    Outgoing {
        url,
        body: br#"{"type":"endpoint.test"}"#.to_vec(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), "msg_1".into()),
        ],
        timeout: None,
    }
}

#[tokio::test]
async fn success_is_any_2xx_and_headers_and_body_arrive() {
    let r = Receiver::start(vec![Answer::Status(204)]).await;
    let sent = dev_sender(Duration::from_secs(5)).send(post(r.url())).await;
    assert!(sent.succeeded(), "{sent:?}");
    assert_eq!(sent.status, Some(204));
    assert_eq!(sent.outcome, AttemptOutcome::Success);
    let got = r.got.lock().unwrap()[0].clone();
    assert_eq!(got.headers["webhook-id"], "msg_1");
    assert_eq!(&got.body[..], br#"{"type":"endpoint.test"}"#);
}

#[tokio::test]
async fn failures_keep_a_truncated_excerpt() {
    let r = Receiver::start(vec![Answer::StatusWithBody(500, "x".repeat(5000))]).await;
    let sent = dev_sender(Duration::from_secs(5)).send(post(r.url())).await;
    assert!(!sent.succeeded());
    assert_eq!(sent.status, Some(500));
    assert_eq!(sent.outcome, AttemptOutcome::HttpError);
    assert_eq!(sent.excerpt.unwrap().len(), EXCERPT_BYTES);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let r = Receiver::start(vec![Answer::Redirect("/elsewhere")]).await;
    let sent = dev_sender(Duration::from_secs(5)).send(post(r.url())).await;
    assert!(!sent.succeeded());
    assert_eq!(sent.status, Some(302));
    assert_eq!(sent.outcome, AttemptOutcome::HttpError);
    assert!(sent.error.unwrap().contains("redirect"));
    assert_eq!(r.count(), 1);
}

#[tokio::test]
async fn slow_receivers_time_out() {
    let r = Receiver::start(vec![Answer::Hang(Duration::from_secs(5))]).await;
    let sent = dev_sender(Duration::from_millis(300))
        .send(post(r.url()))
        .await;
    assert_eq!(sent.status, None);
    assert_eq!(sent.outcome, AttemptOutcome::Timeout);
    assert!(sent.error.unwrap().contains("timed out"));
    assert!(sent.latency < Duration::from_secs(2));
}

#[tokio::test]
async fn retry_after_is_read() {
    let r = Receiver::start(vec![Answer::RetryAfter(429, "120")]).await;
    let sent = dev_sender(Duration::from_secs(5)).send(post(r.url())).await;
    assert_eq!(sent.status, Some(429));
    assert_eq!(sent.retry_after, Some(Duration::from_secs(120)));
}

/// The strict policy refuses loopback targets, named or literal, before connecting: the
/// receiver never sees a request.
#[tokio::test]
async fn refused_targets_are_never_contacted() {
    let r = Receiver::start(vec![Answer::Status(200)]).await;
    let strict = Sender::new(Arc::new(TargetPolicy::default()), Duration::from_secs(5));
    let literal = strict.send(post(r.url())).await;
    assert_eq!(literal.status, None);
    assert_eq!(literal.outcome, AttemptOutcome::Refused);
    assert!(
        literal.error.as_deref().unwrap().contains("loopback"),
        "{literal:?}"
    );
    let named = strict
        .send(post(format!("http://localhost:{}/hook", r.addr.port())))
        .await;
    assert_eq!(named.status, None);
    assert_eq!(
        named.outcome,
        AttemptOutcome::Refused,
        "the resolver's refusal is told from a connection failure"
    );
    assert!(
        named.error.as_deref().unwrap().contains("loopback"),
        "{named:?}"
    );
    assert_eq!(r.count(), 0);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sent = dev_sender(Duration::from_secs(5))
        .send(post(format!("http://127.0.0.1:{port}/hook")))
        .await;
    assert_eq!(sent.status, None);
    assert_eq!(sent.outcome, AttemptOutcome::ConnectError, "{sent:?}");
}
