//! `TestApp`: one freshet node per test, and a client that speaks to it.

use std::future::Future;

use freshet::{config::Config, server::Server};
use freshet_store::testing::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub server: Option<Server>,
    pub db: TestDb,
}

/// Runs `case` against a fresh node on `backend`, then shuts the node down.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(app) = TestApp::spawn(backend, |_| {}).await {
        case(app).await;
    }
}

/// Like [`run`], with the node's configuration adjusted by `tweak`.
pub async fn run_with<F, Fut>(backend: Backend, tweak: impl FnOnce(&mut Config), case: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(app) = TestApp::spawn(backend, tweak).await {
        case(app).await;
    }
}

impl TestApp {
    /// Starts a node with the test defaults, adjusted by `tweak`.
    pub async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let mut config = Config::new(db.url.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token = Some(ADMIN_TOKEN.to_string().into());
        config.master_key = Some(db.master_key.clone());
        tweak(&mut config);
        let server = Server::start(config).await.expect("the server starts");
        Some(Self {
            base: format!("http://{}", server.addr()),
            http: reqwest::Client::new(),
            server: Some(server),
            db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got: {text}"))
        };
        (status, body)
    }

    /// Creates an application and returns its API key.
    pub async fn new_application(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/applications",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["api_key"].as_str().unwrap().to_string()
    }

    /// Creates an application and returns its id and API key.
    pub async fn new_application_with_id(&self, name: &str) -> (uuid::Uuid, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/applications",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().parse().unwrap();
        (id, body["api_key"].as_str().unwrap().to_string())
    }

    /// Stops the node gracefully before its database goes: dropping a PostgreSQL test
    /// database while the node may still hold a transaction open can wait forever.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("the node stops");
        }
    }

    /// Creates a customer for the application holding `key`.
    pub async fn new_customer(&self, key: &str, body: Value) -> Value {
        let (status, body) = self
            .call(Method::POST, "/v1/customers", Some(key), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// Asserts that a response is problem details with `status`, naming `field` when given.
pub fn assert_problem(status: StatusCode, body: &Value, want: StatusCode, field: Option<&str>) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:freshet:problem:")),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    if let Some(field) = field {
        let named = body["errors"]
            .as_array()
            .is_some_and(|errs| errs.iter().any(|e| e["field"] == field));
        assert!(named, "expected errors[] to name `{field}`: {body}");
    }
}

/// The `seq` a test event carried in its data (`{"data": {"seq": n}}`), read back from what a
/// receiver got.
pub fn seq_of(r: &freshet_engine::testing::Received) -> Option<u64> {
    serde_json::from_slice::<Value>(&r.body).ok()?["data"]["data"]["seq"].as_u64()
}

/// Counts acknowledged events across a burst's workers and, at the `n`th, fires a one-shot
/// once: what a test that kills a node mid-burst waits on.
pub struct AckTrigger {
    count: std::sync::atomic::AtomicU64,
    threshold: u64,
    fire: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl AckTrigger {
    pub fn new(at: Option<(u64, tokio::sync::oneshot::Sender<()>)>) -> std::sync::Arc<Self> {
        let (threshold, fire) = match at {
            Some((n, t)) => (n, Some(t)),
            None => (u64::MAX, None),
        };
        std::sync::Arc::new(Self {
            count: Default::default(),
            threshold,
            fire: std::sync::Mutex::new(fire),
        })
    }

    /// One more event was acknowledged.
    pub fn acked(&self) {
        let n = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n == self.threshold
            && let Some(t) = self.fire.lock().unwrap().take()
        {
            let _ = t.send(());
        }
    }
}
