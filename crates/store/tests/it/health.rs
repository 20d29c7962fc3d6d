//! Endpoint health: attempts counted over a window, the last failure whenever it was.

use freshet_model::{ApplicationId, EventType, webhooks::EventId};
use freshet_store::{
    AttemptRecord, FailedAttempt, Fanout, Finished, NewEndpoint, Outcome, StoredEvent,
    testing::TestDb,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::applications::key;

async fn app(db: &TestDb) -> ApplicationId {
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    db.store
        .create_application("health", &key(&lookup))
        .await
        .unwrap()
        .id
}

fn endpoint() -> NewEndpoint {
    NewEndpoint {
        url: "http://127.0.0.1:9/hook".into(),
        dialect: "standard".into(),
        event_types: None,
        description: None,
        ordered: false,
        security_header: None,
        partner_app_id: None,
        active_from: freshet_model::time::now() - Duration::seconds(1),
        secret: "whsec_c2VjcmV0".into(),
        retry_schedule: None,
        scheduled_refreshes: false,
        rate_limit: None,
        max_in_flight: None,
        activation: "immediate".into(),
    }
}

/// Claims the one due delivery and records an attempt made at `at`.
async fn attempt(db: &TestDb, at: OffsetDateTime, code: Option<u16>, outcome: Outcome) {
    let claims = db
        .store
        .claim_due("node-a", Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    db.store
        .finish_attempts(&[Finished {
            application_id: c.delivery.application_id,
            delivery_id: c.delivery.id,
            endpoint_id: c.endpoint.id,
            token: c.token.clone(),
            in_line: c.ordering_key.is_some(),
            attempt: AttemptRecord {
                attempted_at: at,
                status_code: code,
                latency_ms: 5,
                error: code.is_none().then(|| "connection refused".into()),
                response_excerpt: None,
                node: "node-a".into(),
            },
            outcome,
        }])
        .await
        .unwrap();
}

pub async fn counts_a_window_and_keeps_the_last_failure(db: &TestDb) {
    let a = app(db).await;
    let b = app(db).await;
    let busy = db.store.insert_endpoint(a, &endpoint()).await.unwrap().id;
    let quiet = db.store.insert_endpoint(a, &endpoint()).await.unwrap().id;
    let now = freshet_model::time::now();
    let event = StoredEvent {
        id: EventId::new(),
        application_id: a,
        event_type: EventType::EndpointTest,
        customer_id: None,
        created_at: now,
        data: json!({}),
    };
    db.store
        .record_event(&event, Fanout::Only(busy))
        .await
        .unwrap();
    let again = Outcome::Retry {
        at: now - Duration::SECOND,
    };
    attempt(db, now - Duration::hours(30), Some(500), again).await;
    attempt(db, now - Duration::hours(2), None, again).await;
    attempt(db, now - Duration::hours(1), Some(204), Outcome::Succeeded).await;

    let day = db
        .store
        .endpoint_health(a, &[busy, quiet], now - Duration::hours(24))
        .await
        .unwrap();
    let h = &day[&busy];
    assert_eq!(
        (h.attempts, h.succeeded),
        (2, 1),
        "the 30-hour-old attempt is out"
    );
    assert_eq!(
        h.last_failure,
        Some(FailedAttempt {
            at: now - Duration::hours(2),
            status_code: None,
            error: Some("connection refused".into()),
        })
    );
    assert_eq!(
        (day[&quiet].attempts, day[&quiet].last_failure.as_ref()),
        (0, None)
    );

    let two_days = db
        .store
        .endpoint_health(a, &[busy], now - Duration::hours(48))
        .await
        .unwrap();
    assert_eq!(
        (two_days[&busy].attempts, two_days[&busy].succeeded),
        (3, 1)
    );
    let recent = db
        .store
        .endpoint_health(a, &[busy], now - Duration::minutes(30))
        .await
        .unwrap();
    assert_eq!(recent[&busy].attempts, 0);
    assert!(
        recent[&busy].last_failure.is_some(),
        "the last failure is not bound to the window"
    );

    let theirs = db
        .store
        .endpoint_health(b, &[busy], now - Duration::hours(24))
        .await
        .unwrap();
    assert!(
        theirs.is_empty(),
        "another application's endpoint is left out"
    );
    assert!(
        db.store
            .endpoint_health(a, &[], now)
            .await
            .unwrap()
            .is_empty()
    );
}
