//! Secrets at rest: what a copy of the database reveals after a full flow (none of them), what
//! a node given the wrong master key does (refuses, changing nothing), and what a rotation of
//! the master key keeps (every secret, for running and restarted nodes alike).

use std::time::Duration;

use freshet::{config::Config, server::Server};
use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_model::refresh::ConsentId;
use freshet_store::{MasterKey, Store, testing::TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Row};

use crate::{
    on_both_stores,
    refresh::Client,
    support::{ADMIN_TOKEN, TestApp},
};

const WAIT: Duration = Duration::from_secs(20);
const EXE: &str = env!("CARGO_BIN_EXE_freshet");
/// Tatra banka's security header: must match `^[ a-zA-Z0-9=+/]*$`.
const HEADER: &str = "Basic c2VjcmV0LWhlYWRlci12YWx1ZS0xNzM5";
/// A customer field that is not secret: found in the raw bytes, it proves the scan sees data.
const VISIBLE: &str = "visible-external-id-5521";

async fn endpoint(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, b) = app
        .call(Method::POST, "/v1/webhook-endpoints", Some(key), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

fn verify(secret: &str, got: &Received) {
    let wh = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    let mut headers = http::HeaderMap::new();
    for (k, v) in &got.headers {
        headers.insert(k.clone(), v.clone());
    }
    wh.verify(&got.body, &headers)
        .expect("the Standard Webhooks signature verifies");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Everything the database holds, as bytes: SQLite's file and its WAL after a checkpoint;
/// PostgreSQL's rows of every table of the test's schema, as text.
async fn raw_database(db: &TestDb) -> Vec<u8> {
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        return bytes;
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(tables.iter().any(|t| t == "consents"), "{tables:?}");
    let mut text = String::new();
    for table in tables {
        let sql = format!("SELECT t::text FROM {table} t");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            text.push_str(&row.get::<String, _>(0));
            text.push('\n');
        }
    }
    conn.close().await.unwrap();
    text.into_bytes()
}

on_both_stores! {
    async fn a_full_flow_leaves_no_secret_readable_in_the_database(app: TestApp) {
        let mut app = app;
        let (app_id, key) = app.new_application_with_id("secrets").await;
        let c = Client { app: &app, key: key.clone() };
        let r = Receiver::start(vec![Answer::Status(204)]).await;
        let standard = endpoint(&app, &key, json!({"url": r.url()})).await;
        let tatra = endpoint(&app, &key, json!({
            "url": r.url(), "dialect": "tatra", "security_header": HEADER, "activation": "immediate"
        }))
        .await;
        endpoint(&app, &key, json!({"url": r.url(), "dialect": "bud"})).await;
        let customer = app.new_customer(&key, json!({"external_id": VISIBLE})).await;
        let cid = customer["id"].as_str().unwrap();
        let consent = c.connect(cid, "natwest", json!({})).await;
        let (s, started) = c
            .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        let task = c.finished(started["task_id"].as_str().unwrap()).await;
        assert_eq!(task["status"], "Completed", "{task}");
        let secret = standard["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"));
        // Deliveries went out: Tatra banka's with its security header.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !r
            .received()
            .iter()
            .any(|g| g.headers.get("authorization").is_some_and(|h| h == HEADER))
        {
            assert!(tokio::time::Instant::now() < deadline, "no delivery carried the security header");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The secrets as freshet uses them, opened by the store.
        let consent_id = ConsentId(consent["id"].as_str().unwrap().parse().unwrap());
        let tokens = app.db.store.consent_tokens(consent_id).await.unwrap().expect("tokens");
        let refresh_token = tokens.refresh_token.clone().expect("the sandbox gives a refresh token");
        let signing = app.db.store.signing_keys(freshet_model::time::now()).await.unwrap();
        let private_key = signing.last().expect("the Bud signing key").private_key.clone();
        let tatra_id = tatra["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
        let stored = app
            .db
            .store
            .get_endpoint(freshet_model::ApplicationId(app_id), tatra_id.into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.security_header.as_deref(), Some(HEADER));

        // None of them prints.
        let printed = format!(
            "{tokens:?} {stored:?} {signing:?} {:?} {:?}",
            app.db.master_key,
            freshet_banks::oauth::AuthContext {
                nonce: Some("nonce-3321".into()),
                code_verifier: Some("verifier-3321".into()),
            }
        );
        for needle in [
            tokens.access_token.as_str(),
            refresh_token.as_str(),
            stored.secret.as_str(),
            HEADER,
            "nonce-3321",
            "verifier-3321",
            &app.db.master_key.to_base64(),
        ] {
            assert!(!printed.contains(needle), "Debug printed a secret: {printed}");
        }
        assert!(printed.contains("<redacted>"), "{printed}");

        // The database itself, read raw.
        app.server.take().unwrap().shutdown().await.unwrap();
        let raw = raw_database(&app.db).await;
        assert!(contains(&raw, VISIBLE.as_bytes()), "the scan reads the rows");
        assert!(contains(&raw, b"v1:"), "sealed values are there");
        let der_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &private_key);
        for (what, needle) in [
            ("access token", tokens.access_token.as_bytes().to_vec()),
            ("refresh token", refresh_token.as_bytes().to_vec()),
            ("webhook secret", secret.as_bytes().to_vec()),
            ("webhook secret's key", secret.trim_start_matches("whsec_").as_bytes().to_vec()),
            ("security header", HEADER.as_bytes().to_vec()),
            ("Bud private key", private_key.clone()),
            ("Bud private key, hex", hex(&private_key).into_bytes()),
            ("Bud private key, base64", der_b64.into_bytes()),
        ] {
            assert!(!contains(&raw, &needle), "the {what} is readable in the database");
        }
    }

    async fn a_wrong_master_key_changes_nothing_and_a_rotated_one_opens_everything(app: TestApp) {
        let mut app = app;
        let key = app.new_application("rotation").await;
        let r = Receiver::start(vec![Answer::Status(204)]).await;
        let ep = endpoint(&app, &key, json!({"url": r.url()})).await;
        let (id, secret) = (ep["id"].as_str().unwrap().to_string(), ep["secret"].as_str().unwrap().to_string());
        let running = app.server.take().unwrap();
        let before = keys_and_secrets(&app.db).await;

        // A node with another key stops at start, naming the problem, and changes nothing.
        let wrong = MasterKey::generate().unwrap();
        let err = match Server::start(node_config(&app.db, wrong)).await {
            Ok(_) => panic!("a node with the wrong master key started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("does not open this database's data keys"), "{err}");
        assert!(!err.contains(&app.db.master_key.to_base64()), "{err}");
        assert_eq!(keys_and_secrets(&app.db).await, before);

        // Rotation with the CLI, while a node runs with the old key.
        let dir = tempfile::tempdir().unwrap();
        let (old_file, new_file) = (dir.path().join("old.key"), dir.path().join("new.key"));
        std::fs::write(&old_file, app.db.master_key.to_base64()).unwrap();
        let made = keys_cli(&["keys", "new", new_file.to_str().unwrap()]);
        let new = MasterKey::from_base64(&std::fs::read_to_string(&new_file).unwrap()).unwrap();
        assert!(made.contains(&new.fingerprint()), "{made}");
        assert!(!made.contains(&new.to_base64()), "the key itself is never printed: {made}");
        let rotated = keys_cli(&[
            "keys", "rotate",
            "--new-master-key-file", new_file.to_str().unwrap(),
            "--master-key-file", old_file.to_str().unwrap(),
            "--database-url", &app.db.url,
        ]);
        assert!(rotated.contains("rewrapped 1 data key(s)"), "{rotated}");
        let after = keys_and_secrets(&app.db).await;
        assert_ne!(after.0, before.0, "the data key is wrapped anew");
        assert_eq!(after.1, before.1, "no secret was rewritten");

        // The node started before the rotation keeps working: its test event arrives signed.
        test_event(&app, &format!("http://{}", running.addr()), &key, &id).await;
        verify(&secret, &r.wait_for(1, WAIT).await[0]);
        running.shutdown().await.unwrap();

        // Restarted with the old key, a node is refused; with the new one, it opens old data.
        assert!(Server::start(node_config(&app.db, app.db.master_key.clone())).await.is_err());
        let restarted = Server::start(node_config(&app.db, new.clone())).await.expect("starts with the new key");
        test_event(&app, &format!("http://{}", restarted.addr()), &key, &id).await;
        verify(&secret, &r.wait_for(2, WAIT).await[1]);
        restarted.shutdown().await.unwrap();
        let mut reopened = Store::connect(&app.db.url, &Default::default()).await.unwrap();
        reopened.unlock(&new).await.unwrap();
        assert_eq!(keys_and_secrets(&app.db).await, after, "opening changes nothing");
        reopened.close().await;
    }
}

fn node_config(db: &TestDb, key: MasterKey) -> Config {
    let mut config = Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_token = Some(ADMIN_TOKEN.to_string().into());
    config.master_key = Some(key);
    config
}

async fn test_event(app: &TestApp, base: &str, key: &str, id: &str) {
    let r = app
        .http
        .post(format!("{base}/v1/webhook-endpoints/{id}/test"))
        .bearer_auth(key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

/// The `keys` table and every endpoint's stored secret, as stored.
async fn keys_and_secrets(db: &TestDb) -> (Vec<String>, Vec<String>) {
    macro_rules! read {
        ($conn:expr) => {{
            let keys =
                sqlx::query("SELECT id || ' ' || master || ' ' || wrapped FROM keys ORDER BY 1")
                    .fetch_all(&mut $conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
            let secrets = sqlx::query("SELECT secret FROM webhook_endpoints ORDER BY secret")
                .fetch_all(&mut $conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            (keys, secrets)
        }};
    }
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        read!(conn)
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        read!(conn)
    }
}

/// Runs the binary with `args`, which must succeed; its standard output.
fn keys_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(EXE)
        .args(args)
        .env_remove("FRESHET_MASTER_KEY")
        .env_remove("FRESHET_MASTER_KEY_FILE")
        .env_remove("FRESHET_NEW_MASTER_KEY")
        .env_remove("FRESHET_DATABASE_URL")
        .env_remove("FRESHET_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "freshet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
