//! The server's own limits, tried over raw TCP the way a slow or hostile client would:
//! headers that never finish, a body that stops, a declared length far above the limit, and
//! more connections than the server serves at once.

use std::time::{Duration, Instant};

use freshet_store::testing::Backend;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::TestApp;

/// Reads until the server closes the connection, or `within` passes (then `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.server.as_ref().unwrap().addr())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let timeout = Duration::from_millis(600);
    let Some(app) = TestApp::spawn(Backend::Sqlite, |c| c.header_read_timeout = timeout).await
    else {
        return;
    };
    // A complete request is answered as usual.
    let mut ok = connect(&app).await;
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut ok, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Taken before connecting: the server's clock for a connection starts after this.
    let start = Instant::now();
    let mut half = connect(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle = connect(&app).await;
    for (what, stream) in [("half a header", &mut half), ("nothing", &mut idle)] {
        let answer = read_until_closed(stream, Duration::from_secs(5)).await;
        let answer = answer.unwrap_or_else(|| panic!("a client that sent {what} is cut off"));
        assert!(!answer.contains("200 OK"), "{what}: {answer}");
    }
    assert!(start.elapsed() >= timeout, "not before the timeout");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408() {
    let timeout = Duration::from_millis(600);
    let Some(app) = TestApp::spawn(Backend::Sqlite, |c| c.body_idle_timeout = timeout).await else {
        return;
    };
    let key = app.new_application("slow-body").await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"external_id\": "
    );
    let start = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("the server answers and closes the connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("urn:freshet:problem:request-timeout"),
        "{answer}"
    );
    assert!(start.elapsed() >= timeout, "not before the timeout");
    let (_, list) = app
        .call(reqwest::Method::GET, "/v1/customers", Some(&key), None)
        .await;
    assert_eq!(list["data"], serde_json::json!([]), "nothing was created");
    app.stop().await;
}

#[tokio::test]
async fn a_declared_length_above_the_limit_is_refused_before_the_body_is_read() {
    // The body idle timeout stays long: an answer well before it proves nothing waited on the body.
    let Some(app) = TestApp::spawn(Backend::Sqlite, |c| {
        c.body_idle_timeout = Duration::from_secs(60)
    })
    .await
    else {
        return;
    };
    let key = app.new_application("big").await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered at once, and the connection closed");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("urn:freshet:problem:payload-too-large"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, |c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(30);
    })
    .await
    else {
        return;
    };
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let mut third = connect(&app).await; // the kernel accepts it; freshet does not yet
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut third, Duration::from_millis(800)).await,
        None,
        "a third connection is not served while two are open"
    );
    drop(first);
    let answer = read_until_closed(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}
