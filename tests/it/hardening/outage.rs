//! A PostgreSQL outage is answered 503 with `Retry-After` within seconds, not a 500 after
//! 20 s; when the database is back, so is the API. The outage is real: the node reaches
//! PostgreSQL through a TCP relay the test cuts, closing every connection and the port.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::{Backend, postgres_url};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::support::{TestApp, assert_problem};

/// A TCP relay from a local port to PostgreSQL that can be cut and restored.
struct Relay {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            tasks: Default::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let piping = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(piping);
            }
        });
        self.tasks.lock().unwrap().push(accepting);
    }

    /// Closes every relayed connection and the port: connections are reset, new ones refused.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// The node's database URL with PostgreSQL's address replaced by the relay's.
fn through(url: &str, relay: SocketAddr) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    u.set_host(Some(&relay.ip().to_string())).unwrap();
    u.set_port(Some(relay.port())).unwrap();
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_quickly() {
    let pg = reqwest::Url::parse(&postgres_url()).unwrap();
    let upstream = format!("{}:{}", pg.host_str().unwrap(), pg.port().unwrap_or(5432));
    let relay = Relay::start(upstream).await;
    let Some(app) = TestApp::spawn(Backend::Postgres, |c| {
        c.database_url = SecretString::from(through(c.database_url.expose_secret(), relay.addr));
    })
    .await
    else {
        return;
    };
    let key = app.new_application("outage").await;
    let r = Receiver::start(vec![Answer::Status(200)]).await;
    let (s, ep) = app
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&key),
            Some(json!({"url": r.url()})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let test_event = format!("/v1/webhook-endpoints/{}/test", ep["id"].as_str().unwrap());
    let (s, b) = app.call(Method::POST, &test_event, Some(&key), None).await;
    assert!(s.is_success(), "{s} {b}");

    relay.cut();
    for (method, path, body) in [
        (Method::POST, test_event.as_str(), None),
        (
            Method::POST,
            "/v1/customers",
            Some(json!({"external_id": "during"})),
        ),
        (Method::GET, "/v1/events", None),
    ] {
        let started = Instant::now();
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&key)
            .json(&body.unwrap_or(json!({})))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        let status = res.status();
        let retry_after = res.headers().get("retry-after").cloned();
        let b: serde_json::Value = res.json().await.unwrap();
        assert_problem(status, &b, StatusCode::SERVICE_UNAVAILABLE, None);
        assert!(retry_after.is_some(), "{method} {path}: Retry-After");
        assert!(
            took < Duration::from_secs(8),
            "{method} {path} took {took:?}"
        );
    }
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    relay.restore().await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..20 {
        let (s, _) = app
            .call(
                Method::POST,
                "/v1/customers",
                Some(&key),
                Some(json!({"external_id": "after"})),
            )
            .await;
        status = s;
        if s == StatusCode::CREATED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the API recovers with the database"
    );
    app.stop().await;
}
