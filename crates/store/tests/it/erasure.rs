//! Erasure: what goes, what stays with its personal fields replaced, and deliveries in flight.

use std::time::Duration as StdDuration;

use freshet_model::{
    CustomerId, EventType,
    webhooks::{DeliveryStatus, EventId},
};
use freshet_store::{Fanout, Outcome, StoredEvent, testing::TestDb};
use serde_json::json;

use crate::{
    customers::{blank, full},
    outbox::{app, claim, endpoint, event, finished},
};

fn personal(app: freshet_model::ApplicationId, customer: CustomerId) -> StoredEvent {
    let mut e = event(app, EventType::ConsentRevoked, Some(customer));
    e.data = json!({
        "customer": {"id": customer.to_string(), "external_id": "ext-1", "login_name": "fri21",
            "personal_tax_id": "25872252137", "external_info": {"myTraceId": "yourTraceId-1"}},
        "consent": {"id": "k1", "external_track_id": "trk-9"},
    });
    e
}

pub async fn erases_the_customer_and_keeps_the_log(db: &TestDb) {
    let a = app(db).await;
    let c = db.store.insert_customer(a, &full()).await.unwrap();
    let other = db.store.insert_customer(a, &blank()).await.unwrap();
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let theirs = personal(a, c.id);
    let kept = personal(a, other.id);
    for e in [&theirs, &kept] {
        db.store
            .record_event(e, Fanout::to(&["standard"]))
            .await
            .unwrap();
    }

    let mut tx = db.store.begin().await.unwrap();
    let erased = tx.erase_customer(a, c.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(erased.counts.events_scrubbed, 1);
    assert_eq!(erased.counts.deliveries_cancelled, 1);
    assert!(!erased.in_flight(), "nothing was claimed");
    assert!(db.store.get_customer(a, c.id).await.unwrap().is_none());
    assert!(db.store.get_customer(a, other.id).await.unwrap().is_some());

    let event = db.store.get_event(a, theirs.id).await.unwrap().unwrap();
    assert_eq!(
        event.data,
        json!({
            "customer": {"id": c.id.to_string(), "external_id": null, "login_name": null,
                "personal_tax_id": null, "external_info": null},
            "consent": {"id": "k1", "external_track_id": null},
        })
    );
    let untouched = db.store.get_event(a, kept.id).await.unwrap().unwrap();
    assert_eq!(untouched.data, kept.data);
    let status =
        |id: EventId| async move { db.store.list_event_deliveries(a, id).await.unwrap()[0].status };
    assert_eq!(status(theirs.id).await, DeliveryStatus::Cancelled);
    assert_eq!(status(kept.id).await, DeliveryStatus::Pending);
    let claimed = claim(db).await;
    assert_eq!(claimed.len(), 1, "a cancelled delivery is never claimed");
    assert_eq!(claimed[0].event.id, kept.id);

    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.erase_customer(a, c.id).await.unwrap().is_none());
}

pub async fn a_delivery_in_flight_stays_cancelled_and_is_waited_for(db: &TestDb) {
    let a = app(db).await;
    let c = db.store.insert_customer(a, &full()).await.unwrap();
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let (sending, failed) = (personal(a, c.id), personal(a, c.id));
    for e in [&sending, &failed] {
        db.store
            .record_event(e, Fanout::to(&["standard"]))
            .await
            .unwrap();
    }
    let claims = claim(db).await;
    assert_eq!(claims.len(), 2);
    let of = |id: EventId| claims.iter().find(|c| c.event.id == id).unwrap();
    // One attempt already failed (the receiver's answer is on record); the other is in flight.
    let retry = Outcome::Retry {
        at: freshet_model::time::now() + time::Duration::minutes(5),
    };
    db.store
        .finish_attempts(&[finished(of(failed.id), retry, Some(503))])
        .await
        .unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let erased = tx.erase_customer(a, c.id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(erased.counts.deliveries_cancelled, 2);
    assert_eq!(erased.counts.attempt_excerpts, 1);
    assert!(erased.in_flight_until.is_some());

    // The wait lasts until the dispatcher in flight records its attempt, not a lease's length.
    let (store, e) = (db.store.clone(), erased.clone());
    let waiting = tokio::spawn(async move { store.await_erased_in_flight(a, c.id, &e).await });
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert!(
        !waiting.is_finished(),
        "returned while a send was in flight"
    );
    db.store
        .finish_attempts(&[finished(of(sending.id), Outcome::Succeeded, Some(204))])
        .await
        .unwrap();
    tokio::time::timeout(StdDuration::from_secs(5), waiting)
        .await
        .expect("the wait ends once the attempt is recorded")
        .unwrap()
        .unwrap();

    for id in [sending.id, failed.id] {
        let d = &db.store.list_event_deliveries(a, id).await.unwrap()[0];
        assert_eq!(d.status, DeliveryStatus::Cancelled, "{d:?}");
        assert_eq!(
            d.last_error.as_deref(),
            Some(freshet_store::CANCELLED_REASON)
        );
        assert!(db.store.retry_delivery(a, d.id).await.unwrap().is_none());
        let attempts = db.store.list_attempts(a, d.id).await.unwrap();
        assert!(
            attempts.iter().all(|t| t.response_excerpt.is_none()),
            "{attempts:?}"
        );
    }
    assert!(claim(db).await.is_empty());
}
