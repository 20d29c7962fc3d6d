//! Retention's batches, its lease, and the catch-up after a receiver's outage.

use freshet_model::{EventType, webhooks::EventId};
use freshet_store::{Fanout, Outcome, Purged, testing::TestDb};
use time::Duration;
use uuid::Uuid;

use crate::outbox::{ALL, app, claim, endpoint, event, finished};

/// A UUIDv7 of the instant `at`, as the node gives an event created then.
fn id_at(at: time::OffsetDateTime) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.unix_timestamp() as u64,
        at.nanosecond(),
    ))
}

pub async fn old_settled_events_go_in_batches_and_unsettled_ones_stay(db: &TestDb) {
    let a = app(db).await;
    let other = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap()
        .id;
    let other_ep = db
        .store
        .insert_endpoint(other, &endpoint("standard"))
        .await
        .unwrap()
        .id;
    let now = freshet_model::time::now();
    let old = now - Duration::days(60);
    db.store
        .seed_settled_events(a, ep, 1200, old)
        .await
        .unwrap();
    db.store
        .seed_settled_events(other, other_ep, 10, old)
        .await
        .unwrap();
    // An old event whose delivery has not settled, and a recent one.
    let mut stuck = event(a, EventType::LinkCreated, None);
    stuck.id = EventId(id_at(old + Duration::hours(1)));
    stuck.created_at = old + Duration::hours(1);
    db.store
        .record_event(&stuck, Fanout::to(ALL))
        .await
        .unwrap();
    let recent = event(a, EventType::LinkCreated, None);
    db.store
        .record_event(&recent, Fanout::to(ALL))
        .await
        .unwrap();

    let cutoff = now - Duration::days(30);
    let (mut after, mut total, mut batches) = (Uuid::nil(), Purged::default(), 0);
    loop {
        let b = db.store.purge_events(a, cutoff, after, 500).await.unwrap();
        total.add(b.purged);
        batches += 1;
        match b.next {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(batches, 4, "three batches of at most 500, then none left");
    assert_eq!(
        (total.events, total.deliveries, total.delivery_attempts),
        (1200, 1200, 1200)
    );
    assert!(
        db.store.get_event(a, stuck.id).await.unwrap().is_some(),
        "unsettled: kept"
    );
    assert!(
        db.store.get_event(a, recent.id).await.unwrap().is_some(),
        "recent: kept"
    );
    let oldest = db.store.oldest_event_at().await.unwrap().unwrap();
    assert!(
        (oldest - old).abs() < Duration::milliseconds(1),
        "the other application's old events are not this one's to purge: {oldest} {old}"
    );
}

pub async fn a_success_brings_the_endpoint_s_retries_forward(db: &TestDb) {
    let a = app(db).await;
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    for _ in 0..3 {
        let e = event(a, EventType::LinkCreated, None);
        db.store.record_event(&e, Fanout::to(ALL)).await.unwrap();
    }
    let later = freshet_model::time::now() + Duration::minutes(5);
    let failed: Vec<_> = claim(db)
        .await
        .iter()
        .map(|c| finished(c, Outcome::Retry { at: later }, Some(503)))
        .collect();
    assert_eq!(failed.len(), 3);
    db.store.finish_attempts(&failed).await.unwrap();
    assert!(claim(db).await.is_empty(), "the retries wait");

    let e = event(a, EventType::LinkCreated, None);
    db.store.record_event(&e, Fanout::to(ALL)).await.unwrap();
    let fresh = claim(db).await;
    assert_eq!(fresh.len(), 1);
    let recorded = db
        .store
        .finish_attempts(&[finished(&fresh[0], Outcome::Succeeded, Some(204))])
        .await
        .unwrap();
    assert_eq!(recorded.brought_forward, 3);
    assert_eq!(
        claim(db).await.len(),
        3,
        "the receiver is back: the retries go now"
    );
}

pub async fn the_lease_keeps_the_purge_to_one_node(db: &TestDb) {
    let ttl = Duration::seconds(60);
    assert!(
        db.store
            .take_lease("retention", "node-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .take_lease("retention", "node-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .take_lease("retention", "node-a", ttl)
            .await
            .unwrap(),
        "renewed"
    );
    let expired = Duration::seconds(-1);
    assert!(
        db.store
            .take_lease("retention", "node-a", expired)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .take_lease("retention", "node-b", ttl)
            .await
            .unwrap(),
        "taken over"
    );
    db.store.release_lease("retention", "node-a").await.unwrap();
    assert!(
        !db.store
            .take_lease("retention", "node-a", ttl)
            .await
            .unwrap(),
        "not a's to give up"
    );
    db.store.release_lease("retention", "node-b").await.unwrap();
    assert!(
        db.store
            .take_lease("retention", "node-a", ttl)
            .await
            .unwrap(),
        "given up: free"
    );
}
