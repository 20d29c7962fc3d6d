//! What `/metrics` reads from the database: the outbox's backlog, and each consent's
//! unattended refreshes per UTC day.

use freshet_model::{
    ConsentStatus, EventType, NewCustomer,
    refresh::{Consent, ConsentId, Link, LinkId},
    webhooks::EventId,
};
use freshet_store::{
    Fanout, Finished, NewEndpoint, Outcome, QueueStats, RefreshEnd, StoreError, StoredEvent,
    UnattendedUse, testing::TestDb,
};
use serde_json::json;
use time::{Duration, macros::date};

use crate::applications::key;

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

pub async fn the_queue_counts_unsettled_deliveries_by_endpoint_state(db: &TestDb) {
    assert_eq!(db.store.queue_stats().await.unwrap(), QueueStats::default());
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    let app = db
        .store
        .create_application("q", &key(&lookup))
        .await
        .unwrap()
        .id;
    let on = db.store.insert_endpoint(app, &endpoint()).await.unwrap();
    let off = db.store.insert_endpoint(app, &endpoint()).await.unwrap();
    let mut first = None;
    for _ in 0..3 {
        let e = StoredEvent {
            id: EventId::new(),
            application_id: app,
            event_type: EventType::EndpointTest,
            customer_id: None,
            created_at: freshet_model::time::now(),
            data: json!({}),
        };
        let to_both = Fanout::to(&["standard"]);
        db.store.record_event(&e, to_both).await.unwrap();
        first.get_or_insert(e);
    }
    db.store
        .update_endpoint::<StoreError>(app, off.id, |e| {
            e.enabled = false;
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
    let deliveries = db
        .store
        .list_event_deliveries(app, first.unwrap().id)
        .await
        .unwrap();
    let oldest = deliveries.iter().map(|d| d.next_attempt_at).min();
    assert_eq!(
        db.store.queue_stats().await.unwrap(),
        QueueStats {
            depth: 3,
            oldest_due: oldest,
            parked: 3,
            waiting_for_limits: 0,
        }
    );

    // In flight still counts; settled does not, and a retry counts until it settles.
    let claims = db
        .store
        .claim_due("node-a", Duration::seconds(30), 10)
        .await
        .unwrap();
    assert!(claims.iter().all(|c| c.endpoint.id == on.id));
    assert_eq!(db.store.queue_stats().await.unwrap().depth, 3);
    let later = freshet_model::time::now() + Duration::hours(1);
    let outcomes = [
        Outcome::Succeeded,
        Outcome::Dead,
        Outcome::Retry { at: later },
    ];
    let done: Vec<Finished> = claims
        .iter()
        .zip(outcomes)
        .map(|(c, outcome)| Finished {
            application_id: app,
            delivery_id: c.delivery.id,
            endpoint_id: c.endpoint.id,
            token: c.token.clone(),
            in_line: c.ordering_key.is_some(),
            attempt: freshet_store::AttemptRecord {
                attempted_at: freshet_model::time::now(),
                status_code: Some(500),
                latency_ms: 1,
                error: None,
                response_excerpt: None,
                node: "node-a".into(),
            },
            outcome,
        })
        .collect();
    db.store.finish_attempts(&done).await.unwrap();
    let stats = db.store.queue_stats().await.unwrap();
    assert_eq!((stats.depth, stats.parked), (1, 3));
    assert_eq!(
        stats.oldest_due,
        Some(later),
        "only the retry is left, due later"
    );
}

async fn consent(db: &TestDb, provider: &str) -> (freshet_model::ApplicationId, ConsentId) {
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    let app = db
        .store
        .create_application("b", &key(&lookup))
        .await
        .unwrap()
        .id;
    let new = NewCustomer {
        external_id: None,
        login_name: None,
        personal_tax_id: None,
        business_tax_id: None,
        external_info: None,
    };
    let customer = db.store.insert_customer(app, &new).await.unwrap().id;
    let now = freshet_model::time::now();
    let link = Link {
        id: LinkId::new(),
        application_id: app,
        customer_id: customer,
        provider_id: provider.into(),
        number: 1,
        external_track_id: None,
        created_at: now,
    };
    let c = Consent {
        id: ConsentId::new(),
        application_id: app,
        customer_id: customer,
        link_id: link.id,
        provider_id: provider.into(),
        status: ConsentStatus::Authorised,
        bank_consent_id: "bank-1".into(),
        permissions_requested: vec![],
        permissions_granted: vec![],
        expires_at: None,
        external_track_id: None,
        reconnect_required: false,
        authorisation_url: None,
        redirect_url: None,
        next_refresh_at: Some(now - Duration::minutes(1)),
        last_refreshed_at: None,
        authorised_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_link(&link).await.unwrap();
    tx.insert_consent(&c, &format!("state-{}", c.id), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (app, c.id)
}

async fn end(db: &TestDb, id: ConsentId, end: RefreshEnd) {
    let mut tx = db.store.begin().await.unwrap();
    tx.end_refresh(id, end).await.unwrap();
    tx.commit().await.unwrap();
}

fn used(provider: &str, used: u32, consents: u64) -> UnattendedUse {
    UnattendedUse {
        provider_id: provider.into(),
        used,
        consents,
    }
}

pub async fn unattended_refreshes_count_per_consent_and_utc_day(db: &TestDb) {
    let (d1, d2) = (date!(2026 - 11 - 24), date!(2026 - 11 - 25));
    let on = |day| RefreshEnd {
        next_refresh: None,
        unattended_on: Some(day),
    };
    let (_, a) = consent(db, "natwest").await;
    let (_, b) = consent(db, "natwest").await;
    let (_, c) = consent(db, "lloyds").await;
    end(db, a, on(d1)).await;
    end(db, a, on(d1)).await;
    end(db, b, on(d1)).await;
    let later = freshet_model::time::now() + Duration::hours(6);
    let present = RefreshEnd {
        next_refresh: Some(later),
        unattended_on: None,
    };
    end(db, b, present).await;
    assert_eq!(
        db.store.unattended_use(d1).await.unwrap(),
        vec![used("natwest", 1, 1), used("natwest", 2, 1)],
        "a refresh with the customer present is not counted"
    );
    let now = freshet_model::time::now();
    let due = db.store.consents_due(now, d1, 10).await.unwrap();
    let due: Vec<(ConsentId, u32)> = due
        .iter()
        .map(|d| (d.consent.id, d.unattended_used))
        .collect();
    assert!(due.contains(&(a, 2)) && due.contains(&(c, 0)), "{due:?}");
    assert!(
        !due.iter().any(|(id, _)| *id == b),
        "the successful refresh moved b's next one: {due:?}"
    );
    let tomorrow = db.store.consents_due(now, d2, 10).await.unwrap();
    assert!(
        tomorrow.iter().all(|d| d.unattended_used == 0),
        "a new day starts at 0"
    );

    // A count from another day starts again.
    end(db, a, on(d2)).await;
    assert_eq!(
        db.store.unattended_use(d2).await.unwrap(),
        vec![used("natwest", 1, 1)]
    );
    assert_eq!(
        db.store.unattended_use(d1).await.unwrap(),
        vec![used("natwest", 1, 1)],
        "a moved to the new day"
    );

    // Only authorised consents count.
    let mut tx = db.store.begin().await.unwrap();
    let revoked = tx
        .move_consent(b, &[ConsentStatus::Authorised], ConsentStatus::Revoked)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(revoked);
    assert!(db.store.unattended_use(d1).await.unwrap().is_empty());
}
