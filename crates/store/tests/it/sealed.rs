//! Secrets at rest in the store: plaintext left by an older freshet is sealed at the next
//! unlock and reads the same; a sealed value copied into another row does not open there; a
//! store never unlocked neither reads nor writes secrets.

use freshet_model::{ApplicationId, webhooks::EndpointId};
use freshet_store::{
    MasterKey, NewEndpoint, NewSigningKey, Store, StoreError, StoreOptions, testing::TestDb,
};
use sqlx::Connection;
use time::Duration;

use crate::applications::key;

async fn app(db: &TestDb) -> ApplicationId {
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    db.store
        .create_application("sealed", &key(&lookup))
        .await
        .unwrap()
        .id
}

fn endpoint(secret: &str) -> NewEndpoint {
    NewEndpoint {
        url: "http://127.0.0.1:9/hook".into(),
        dialect: "tatra".into(),
        event_types: None,
        description: None,
        ordered: false,
        security_header: Some("Basic aGVhZGVy".into()),
        partner_app_id: None,
        active_from: freshet_model::time::now() - Duration::seconds(1),
        secret: secret.into(),
        retry_schedule: None,
        scheduled_refreshes: false,
        rate_limit: None,
        max_in_flight: None,
        activation: "immediate".into(),
    }
}

/// Runs one statement binding `$1` (text or bytes) and `$2` (a row id) on a connection of its
/// own, as an older freshet or an intruder would.
async fn execute(db: &TestDb, sql: &str, value: Value<'_>, id: Option<uuid::Uuid>) {
    macro_rules! run {
        ($conn:expr) => {{
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
            let q = match value {
                Value::Text(t) => q.bind(t.to_string()),
                Value::Bytes(b) => q.bind(b.to_vec()),
            };
            let q = match id {
                Some(id) => q.bind(id),
                None => q,
            };
            q.execute(&mut $conn).await.unwrap();
        }};
    }
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        run!(conn)
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        run!(conn)
    }
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

async fn stored_secret(db: &TestDb, id: EndpointId) -> String {
    let sql = "SELECT secret FROM webhook_endpoints WHERE id = $1";
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(id.0)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(id.0)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

pub async fn plaintext_is_sealed_at_unlock_and_reads_the_same(db: &TestDb) {
    let a = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("whsec_bmV3"))
        .await
        .unwrap();
    assert!(stored_secret(db, ep.id).await.starts_with("v1:"));
    let der = b"0\x82not-really-der".to_vec();
    db.store
        .insert_first_signing_key(&NewSigningKey {
            kid: "kid-1",
            algorithm: "ES256",
            private_key: &der,
        })
        .await
        .unwrap();

    // What a freshet from before sealing wrote.
    execute(
        db,
        "UPDATE webhook_endpoints SET secret = $1, security_header = 'Basic b2xk' WHERE id = $2",
        Value::Text("whsec_b2xk"),
        Some(ep.id.0),
    )
    .await;
    execute(
        db,
        "UPDATE signing_keys SET private_key = $1",
        Value::Bytes(&der),
        None,
    )
    .await;
    let read = db.store.get_endpoint(a, ep.id).await.unwrap().unwrap();
    assert_eq!(read.secret, "whsec_b2xk", "plaintext reads as is");

    let mut node = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let unlocked = node.unlock(&db.master_key).await.unwrap();
    assert_eq!(unlocked.sealed, 3, "{unlocked:?}");
    assert!(!unlocked.created);
    assert!(stored_secret(db, ep.id).await.starts_with("v1:"));
    let read = node.get_endpoint(a, ep.id).await.unwrap().unwrap();
    assert_eq!(read.secret, "whsec_b2xk");
    assert_eq!(read.security_header.as_deref(), Some("Basic b2xk"));
    let keys = node.signing_keys(freshet_model::time::now()).await.unwrap();
    assert_eq!(keys[0].private_key, der);
    assert_eq!(node.unlock(&db.master_key).await.unwrap().sealed, 0, "once");
    node.close().await;
}

pub async fn a_sealed_value_moved_to_another_row_does_not_open(db: &TestDb) {
    let a = app(db).await;
    let first = db
        .store
        .insert_endpoint(a, &endpoint("whsec_Zmlyc3Q"))
        .await
        .unwrap();
    let second = db
        .store
        .insert_endpoint(a, &endpoint("whsec_c2Vjb25k"))
        .await
        .unwrap();
    let sealed = stored_secret(db, first.id).await;
    execute(
        db,
        "UPDATE webhook_endpoints SET secret = $1 WHERE id = $2",
        Value::Text(&sealed),
        Some(second.id.0),
    )
    .await;
    let err = db.store.get_endpoint(a, second.id).await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    assert_eq!(
        db.store
            .get_endpoint(a, first.id)
            .await
            .unwrap()
            .unwrap()
            .secret,
        "whsec_Zmlyc3Q"
    );
}

pub async fn a_store_without_its_key_keeps_secrets_shut(db: &TestDb) {
    let a = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("whsec_a2V5"))
        .await
        .unwrap();
    let locked = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        locked.get_endpoint(a, ep.id).await,
        Err(StoreError::Keys(_))
    ));
    assert!(matches!(
        locked.insert_endpoint(a, &endpoint("whsec_eA")).await,
        Err(StoreError::Keys(_))
    ));
    let mut wrong = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let err = wrong
        .unlock(&MasterKey::generate().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    locked.close().await;
    wrong.close().await;
}
