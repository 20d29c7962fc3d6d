//! Endpoints, the event log and the delivery outbox.

use std::collections::HashSet;

use freshet_model::{
    ApplicationId, CustomerId, EventType, PageRequest,
    webhooks::{DeliveryStatus, EndpointId, EventId},
};
use freshet_store::{
    AttemptRecord, Claim, EventFilter, Fanout, Finished, NewEndpoint, Outcome, StoreError,
    StoredEvent, TakeNext, testing::TestDb,
};
use serde_json::json;
use time::Duration;

use crate::applications::key;

pub(crate) const ALL: &[&str] = &["standard", "bud", "tatra", "klavi", "yodlee"];

pub async fn app(db: &TestDb) -> ApplicationId {
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    db.store
        .create_application("outbox", &key(&lookup))
        .await
        .unwrap()
        .id
}

pub fn endpoint(dialect: &str) -> NewEndpoint {
    NewEndpoint {
        url: "http://127.0.0.1:9/hook".into(),
        dialect: dialect.into(),
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

pub fn event(app: ApplicationId, t: EventType, customer: Option<CustomerId>) -> StoredEvent {
    StoredEvent {
        id: EventId::new(),
        application_id: app,
        event_type: t,
        customer_id: customer,
        created_at: freshet_model::time::now(),
        data: json!({"n": 1}),
    }
}

fn attempt(code: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        attempted_at: freshet_model::time::now(),
        status_code: code,
        latency_ms: 3,
        error: code.is_none().then(|| "connection refused".into()),
        response_excerpt: Some("ok".into()),
        node: "node-a".into(),
    }
}

pub fn finished(c: &Claim, outcome: Outcome, code: Option<u16>) -> Finished {
    Finished {
        application_id: c.delivery.application_id,
        delivery_id: c.delivery.id,
        endpoint_id: c.endpoint.id,
        token: c.token.clone(),
        in_line: c.ordering_key.is_some(),
        attempt: attempt(code),
        outcome,
    }
}

pub async fn claim(db: &TestDb) -> Vec<Claim> {
    db.store
        .claim_due("node-a", Duration::seconds(30), 100)
        .await
        .unwrap()
}

pub async fn endpoints_crud_and_isolation(db: &TestDb) {
    let a = app(db).await;
    let b = app(db).await;
    let mut new = endpoint("tatra");
    new.event_types = Some(vec![EventType::AccountsUpdated, EventType::TransactionsNew]);
    new.retry_schedule = Some(vec![1, 2, 3]);
    let e = db.store.insert_endpoint(a, &new).await.unwrap();
    assert!(e.enabled);
    assert_eq!(e.event_types, new.event_types);
    assert_eq!(e.retry_schedule, Some(vec![1, 2, 3]));
    assert_eq!(
        db.store.get_endpoint(a, e.id).await.unwrap().as_ref(),
        Some(&e)
    );
    assert!(db.store.get_endpoint(b, e.id).await.unwrap().is_none());
    assert!(
        db.store
            .list_endpoints(b, PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    assert_eq!(
        db.store
            .list_endpoints(a, PageRequest::first())
            .await
            .unwrap()
            .data
            .len(),
        1
    );

    let updated = db
        .store
        .update_endpoint::<StoreError>(a, e.id, |e| {
            e.description = Some("changed".into());
            e.previous_secret = Some(e.secret.clone());
            e.secret = "whsec_bmV3".into();
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("changed"));
    assert_eq!(updated.previous_secret.as_deref(), Some("whsec_c2VjcmV0"));
    assert_eq!(db.store.get_endpoint(a, e.id).await.unwrap(), Some(updated));
    let foreign = db
        .store
        .update_endpoint::<StoreError>(b, e.id, |_| Ok(()))
        .await
        .unwrap();
    assert!(foreign.is_none());
    // A refused change leaves the row as it was.
    let refused = db
        .store
        .update_endpoint(a, e.id, |e| {
            e.url = "http://changed".into();
            Err(StoreError::Corrupt("refused".into()))
        })
        .await;
    assert!(refused.is_err());
    assert_ne!(
        db.store.get_endpoint(a, e.id).await.unwrap().unwrap().url,
        "http://changed"
    );

    assert!(!db.store.delete_endpoint(b, e.id).await.unwrap());
    assert!(db.store.delete_endpoint(a, e.id).await.unwrap());
    assert!(db.store.get_endpoint(a, e.id).await.unwrap().is_none());
}

pub async fn events_fan_out_to_matching_endpoints(db: &TestDb) {
    let a = app(db).await;
    let other = app(db).await;
    let all = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let mut only_revoked = endpoint("standard");
    only_revoked.event_types = Some(vec![EventType::ConsentRevoked]);
    db.store.insert_endpoint(a, &only_revoked).await.unwrap();
    db.store
        .insert_endpoint(a, &endpoint("tatra"))
        .await
        .unwrap();
    let mut later = endpoint("standard");
    later.active_from = freshet_model::time::now() + Duration::hours(1);
    db.store.insert_endpoint(a, &later).await.unwrap();
    let off = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    db.store
        .update_endpoint::<StoreError>(a, off.id, |e| {
            e.enabled = false;
            Ok(())
        })
        .await
        .unwrap();
    db.store
        .insert_endpoint(other, &endpoint("standard"))
        .await
        .unwrap();

    // Sent by `standard` only: the enabled, active, unfiltered standard endpoint gets it.
    let e = event(a, EventType::LinkCreated, None);
    assert_eq!(
        db.store
            .record_event(&e, Fanout::to(&["standard"]))
            .await
            .unwrap(),
        1
    );
    let deliveries = db.store.list_event_deliveries(a, e.id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].endpoint_id, all.id);
    assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
    // Revocations also reach the filtered endpoint; tatra's dialect does not send them.
    let r = event(a, EventType::ConsentRevoked, None);
    let n = db
        .store
        .record_event(&r, Fanout::to(&["standard", "bud"]))
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Test events go to the one endpoint named, even a filtered one.
    let t = event(a, EventType::EndpointTest, None);
    assert_eq!(
        db.store
            .record_event(&t, Fanout::Only(off.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.store
            .record_event(
                &event(a, EventType::EndpointTest, None),
                Fanout::Only(EndpointId::new())
            )
            .await
            .unwrap(),
        0
    );

    let stored = db.store.get_event(a, e.id).await.unwrap().unwrap();
    assert_eq!(stored, e);
    assert!(db.store.get_event(other, e.id).await.unwrap().is_none());
    let revoked = EventFilter {
        event_type: Some(EventType::ConsentRevoked),
        ..Default::default()
    };
    let page = db
        .store
        .list_events(a, &revoked, PageRequest::first())
        .await
        .unwrap();
    assert_eq!(
        page.data.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![r.id]
    );
    let future = EventFilter {
        since: Some(freshet_model::time::now() + Duration::hours(1)),
        ..Default::default()
    };
    assert!(
        db.store
            .list_events(a, &future, PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // The test event for a missing endpoint was not stored.
    let everything = db
        .store
        .list_events(a, &EventFilter::default(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(everything.data.len(), 3);
}

pub async fn claims_lease_and_expire(db: &TestDb) {
    let a = app(db).await;
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    for _ in 0..3 {
        db.store
            .record_event(&event(a, EventType::LinkCreated, None), Fanout::to(ALL))
            .await
            .unwrap();
    }
    let first = claim(db).await;
    assert_eq!(first.len(), 3);
    assert!(
        first
            .iter()
            .all(|c| c.delivery.status == DeliveryStatus::Delivering)
    );
    assert!(
        first
            .iter()
            .all(|c| c.event.id == c.delivery.event_id && c.endpoint.id == c.delivery.endpoint_id)
    );
    assert!(
        claim(db).await.is_empty(),
        "leased deliveries are not claimed twice"
    );
    // A node that leased with an already-expired lease (as if it died) loses them to the next.
    let lost = db
        .store
        .claim_due("dead-node", Duration::seconds(-1), 100)
        .await
        .unwrap();
    assert!(lost.is_empty(), "still leased by node-a");
    let a2 = app(db).await;
    db.store
        .insert_endpoint(a2, &endpoint("standard"))
        .await
        .unwrap();
    db.store
        .record_event(&event(a2, EventType::LinkCreated, None), Fanout::to(ALL))
        .await
        .unwrap();
    let short = db
        .store
        .claim_due("dying-node", Duration::milliseconds(-10), 100)
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    let retaken = claim(db).await;
    assert_eq!(retaken.len(), 1, "an expired lease is claimable again");
    assert_eq!(retaken[0].delivery.id, short[0].delivery.id);
}

pub async fn ordered_endpoints_wait_for_earlier_deliveries(db: &TestDb) {
    let a = app(db).await;
    let mut ordered = endpoint("standard");
    ordered.ordered = true;
    db.store.insert_endpoint(a, &ordered).await.unwrap();
    let alice = CustomerId::new();
    let bob = CustomerId::new();
    let fan = Fanout::to(ALL);
    let a1 = event(a, EventType::LinkCreated, Some(alice));
    let a2 = event(a, EventType::ConsentAuthorised, Some(alice));
    let b1 = event(a, EventType::LinkCreated, Some(bob));
    for e in [&a1, &a2, &b1] {
        db.store.record_event(e, fan).await.unwrap();
    }
    let first = claim(db).await;
    let ids: HashSet<_> = first.iter().map(|c| c.event.id).collect();
    assert_eq!(
        ids,
        HashSet::from([a1.id, b1.id]),
        "alice's second waits for her first"
    );
    // Alice's first fails and is due again at once: it goes out again, her second still waits.
    let alice_first = first.iter().find(|c| c.event.id == a1.id).unwrap();
    let now = freshet_model::time::now();
    db.store
        .finish_attempts(&[finished(alice_first, Outcome::Retry { at: now }, Some(503))])
        .await
        .unwrap();
    let retry = claim(db).await;
    assert_eq!(
        retry.iter().map(|c| c.event.id).collect::<Vec<_>>(),
        vec![a1.id]
    );
    // Once it succeeds, the second may leave.
    db.store
        .finish_attempts(&[finished(&retry[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();
    let next = claim(db).await;
    assert_eq!(
        next.iter().map(|c| c.event.id).collect::<Vec<_>>(),
        vec![a2.id]
    );
}

/// A refresh's events recorded together: the first is due, the rest are parked behind it and
/// made due one by one as each settles (success or giving up), so claims never scan them.
pub async fn a_series_recorded_together_leaves_one_by_one(db: &TestDb) {
    let a = app(db).await;
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let customer = CustomerId::new();
    let fan = Fanout::Subscribers {
        dialects: ALL,
        opted_in: &[],
        series: Some("task-1"),
    };
    let events: Vec<StoredEvent> = [
        EventType::RefreshProgress,
        EventType::RefreshProviderCompleted,
        EventType::RefreshCompleted,
    ]
    .into_iter()
    .map(|t| event(a, t, Some(customer)))
    .collect();
    record_together(db, &events, fan).await;
    let parked = db
        .store
        .list_event_deliveries(a, events[2].id)
        .await
        .unwrap();
    assert_eq!(parked[0].next_attempt_at, freshet_store::PARKED);
    for (i, outcome) in [Outcome::Succeeded, Outcome::Dead, Outcome::Succeeded]
        .into_iter()
        .enumerate()
    {
        let claimed = claim(db).await;
        assert_eq!(
            claimed.iter().map(|c| c.event.id).collect::<Vec<_>>(),
            vec![events[i].id],
            "only the next in line is claimed"
        );
        db.store
            .finish_attempts(&[finished(&claimed[0], outcome, Some(200))])
            .await
            .unwrap();
    }
    assert!(claim(db).await.is_empty());
}

/// What settles hands the next in line to the node recording it, leased, when that node could
/// have claimed it: no claim has to find it. Not for an endpoint with limits (its holder paces
/// it) nor one in a partition the node does not hold: those are made due as before.
pub async fn the_next_in_line_goes_to_the_recorder(db: &TestDb) {
    let a = app(db).await;
    let open = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let series = |task| {
        let customer = CustomerId::new();
        let events: Vec<StoredEvent> = [EventType::RefreshProgress; 3]
            .into_iter()
            .map(|t| event(a, t, Some(customer)))
            .collect();
        let fan = Fanout::Subscribers {
            dialects: ALL,
            opted_in: &[],
            series: Some(task),
        };
        (events, fan)
    };
    let (events, fan) = series("task-1");
    record_together(db, &events, fan).await;
    let first = claim(db).await;
    assert_eq!(first.len(), 1);
    let recorded = settle(db, &first[0], None).await;
    assert_eq!(
        recorded.next.iter().map(|c| c.event.id).collect::<Vec<_>>(),
        vec![events[1].id]
    );
    let second = &recorded.next[0];
    assert!(second.token.starts_with("node-b/"), "{}", second.token);
    assert_eq!(second.delivery.status, DeliveryStatus::Delivering);
    assert!(claim(db).await.is_empty(), "leased to the recorder");

    // A node that no longer holds the endpoint's partition makes the next one due instead.
    let elsewhere = [(freshet_store::partition_of(open.id) + 1) % freshet_store::PARTITIONS];
    let recorded = settle(db, second, Some(&elsewhere)).await;
    if db.store.kind() == freshet_store::StoreKind::Postgres {
        assert!(recorded.next.is_empty());
        let third = claim(db).await;
        assert_eq!(
            third.iter().map(|c| c.event.id).collect::<Vec<_>>(),
            vec![events[2].id]
        );
    } else {
        // SQLite's one node holds every partition.
        assert_eq!(recorded.next.len(), 1);
    }

    // Something earlier with the key unsettled again (retried by hand): the next in line is
    // made due and waits for it, as the claim would have it.
    let (events, fan) = series("task-3");
    record_together(db, &events, fan).await;
    let in_series = |claims: Vec<Claim>| -> Vec<Claim> {
        claims
            .into_iter()
            .filter(|c| events.iter().any(|e| e.id == c.event.id))
            .collect()
    };
    let first = in_series(claim(db).await);
    db.store
        .finish_attempts(&[finished(&first[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();
    let second = in_series(claim(db).await);
    assert_eq!(second[0].event.id, events[1].id);
    db.store
        .retry_delivery(a, first[0].delivery.id)
        .await
        .unwrap()
        .unwrap();
    let recorded = settle(db, &second[0], None).await;
    assert!(recorded.next.is_empty(), "the first is unsettled again");
    assert_eq!(
        in_series(claim(db).await)
            .iter()
            .map(|c| c.event.id)
            .collect::<Vec<_>>(),
        vec![events[0].id],
        "the third waits for the first"
    );

    // An endpoint with a limit: only its partition's holder sends to it, within the limit.
    let b = app(db).await;
    db.store
        .insert_endpoint(
            b,
            &NewEndpoint {
                rate_limit: Some(5),
                ..endpoint("standard")
            },
        )
        .await
        .unwrap();
    let customer = CustomerId::new();
    let limited: Vec<StoredEvent> = [EventType::RefreshProgress; 2]
        .into_iter()
        .map(|t| event(b, t, Some(customer)))
        .collect();
    let (_, fan) = series("task-2");
    record_together(db, &limited, fan).await;
    let head: Vec<_> = claim(db)
        .await
        .into_iter()
        .filter(|c| c.event.application_id == b)
        .collect();
    assert_eq!(head.len(), 1);
    let recorded = settle(db, &head[0], None).await;
    assert!(recorded.next.is_empty());
    let waiting = db
        .store
        .list_event_deliveries(b, limited[1].id)
        .await
        .unwrap();
    assert_eq!(waiting[0].status, DeliveryStatus::Pending);
    assert_ne!(waiting[0].next_attempt_at, freshet_store::PARKED);
}

/// Records `events` in one transaction, as a refresh does.
async fn record_together(db: &TestDb, events: &[StoredEvent], fan: Fanout<'_>) {
    let batch: Vec<_> = events.iter().map(|e| (e.clone(), fan)).collect();
    let mut tx = db.store.begin().await.unwrap();
    tx.record_events(&batch).await.unwrap();
    tx.commit().await.unwrap();
}

/// Records `claim` as delivered by node-b, which claims from `partitions` (all when `None`).
async fn settle(db: &TestDb, claim: &Claim, partitions: Option<&[u16]>) -> freshet_store::Recorded {
    let take = TakeNext {
        node: "node-b",
        lease: Duration::seconds(30),
        partitions,
    };
    db.store
        .finish_attempts_taking(
            &[finished(claim, Outcome::Succeeded, Some(200))],
            Some(take),
        )
        .await
        .unwrap()
}

pub async fn attempts_settle_deliveries_and_endpoint_health(db: &TestDb) {
    let a = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let fan = Fanout::to(ALL);
    let e1 = event(a, EventType::LinkCreated, None);
    let e2 = event(a, EventType::LinkCreated, None);
    db.store.record_event(&e1, fan).await.unwrap();
    db.store.record_event(&e2, fan).await.unwrap();
    let claims = claim(db).await;
    let later = freshet_model::time::now() + Duration::minutes(5);
    let failing = db
        .store
        .finish_attempts(&[
            finished(&claims[0], Outcome::Retry { at: later }, Some(500)),
            finished(&claims[1], Outcome::Dead, None),
        ])
        .await
        .unwrap()
        .failing;
    assert_eq!(failing.len(), 1);
    assert_eq!((failing[0].0, failing[0].1), (a, ep.id));
    let d0 = db
        .store
        .get_delivery(a, claims[0].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d0.status, d0.attempts, d0.last_status_code),
        (DeliveryStatus::Failed, 1, Some(500))
    );
    assert_eq!(d0.next_attempt_at, later);
    let d1 = db
        .store
        .get_delivery(a, claims[1].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.status, DeliveryStatus::Dead);
    assert_eq!(d1.last_error.as_deref(), Some("connection refused"));
    let attempts = db.store.list_attempts(a, d0.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].status_code, attempts[0].latency_ms),
        (Some(500), 3)
    );
    assert!(claim(db).await.is_empty(), "the retry is not due yet");
    let since = db
        .store
        .get_endpoint(a, ep.id)
        .await
        .unwrap()
        .unwrap()
        .failing_since
        .unwrap();

    // A success ends the run of failures.
    db.store.retry_delivery(a, d0.id).await.unwrap().unwrap();
    let c = claim(db).await;
    assert_eq!(c.len(), 1);
    assert!(
        db.store
            .finish_attempts(&[finished(&c[0], Outcome::Succeeded, Some(204))])
            .await
            .unwrap()
            .failing
            .is_empty()
    );
    let healthy = db.store.get_endpoint(a, ep.id).await.unwrap().unwrap();
    assert!(healthy.failing_since.is_none());
    assert!(healthy.last_success_at.unwrap() >= since);
    let d0 = db.store.get_delivery(a, d0.id).await.unwrap().unwrap();
    assert_eq!((d0.status, d0.attempts), (DeliveryStatus::Succeeded, 2));
    assert_eq!(db.store.list_attempts(a, d0.id).await.unwrap().len(), 2);
    // Attempts of another application's delivery are invisible.
    let b = app(db).await;
    assert!(db.store.list_attempts(b, d0.id).await.unwrap().is_empty());
    assert!(db.store.get_delivery(b, d0.id).await.unwrap().is_none());
}

pub async fn a_lost_lease_does_not_overwrite(db: &TestDb) {
    let a = app(db).await;
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    db.store
        .record_event(&event(a, EventType::LinkCreated, None), Fanout::to(ALL))
        .await
        .unwrap();
    let slow = db
        .store
        .claim_due("slow", Duration::milliseconds(-10), 10)
        .await
        .unwrap();
    let fast = claim(db).await;
    assert_eq!(fast.len(), 1);
    db.store
        .finish_attempts(&[finished(&fast[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();
    db.store
        .finish_attempts(&[finished(&slow[0], Outcome::Dead, None)])
        .await
        .unwrap();
    let d = db
        .store
        .get_delivery(a, fast[0].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.status,
        DeliveryStatus::Succeeded,
        "the late node's verdict is not applied"
    );
    assert_eq!(
        db.store.list_attempts(a, d.id).await.unwrap().len(),
        2,
        "both attempts are on record"
    );
}

pub async fn retry_and_replay(db: &TestDb) {
    let a = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let fan = Fanout::to(ALL);
    let start = freshet_model::time::now();
    let e1 = event(a, EventType::LinkCreated, None);
    db.store.record_event(&e1, fan).await.unwrap();
    let c = claim(db).await;
    // In flight: cannot be retried.
    assert!(
        db.store
            .retry_delivery(a, c[0].delivery.id)
            .await
            .unwrap()
            .is_none()
    );
    db.store
        .finish_attempts(&[finished(&c[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();

    // An endpoint created afterwards, and an event only the first endpoint got.
    let late = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let (requeued, created) = db
        .store
        .replay_endpoint(
            a,
            late.id,
            start,
            freshet_model::time::now() + Duration::seconds(1),
            |_, _| true,
        )
        .await
        .unwrap();
    assert_eq!((requeued, created), (0, 1));
    let (requeued, created) = db
        .store
        .replay_endpoint(
            a,
            ep.id,
            start,
            freshet_model::time::now() + Duration::seconds(1),
            |_, _| true,
        )
        .await
        .unwrap();
    assert_eq!((requeued, created), (1, 0));
    let first_id = c[0].delivery.id;
    let again = claim(db).await;
    assert_eq!(again.len(), 2);
    let replayed = again.iter().find(|c| c.endpoint.id == ep.id).unwrap();
    assert_eq!(
        (replayed.delivery.id, replayed.delivery.attempts),
        (first_id, 1),
        "the replayed delivery keeps its id and history"
    );
    // A filter that refuses the type creates nothing; a range before the events finds nothing.
    let other = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let none = db
        .store
        .replay_endpoint(a, other.id, start, freshet_model::time::now(), |_, _| false)
        .await
        .unwrap();
    assert_eq!(none, (0, 0));
    let before = db
        .store
        .replay_endpoint(
            a,
            other.id,
            start - Duration::hours(2),
            start - Duration::hours(1),
            |_, _| true,
        )
        .await
        .unwrap();
    assert_eq!(before, (0, 0));
}

pub async fn concurrent_claimers_never_share(db: &TestDb) {
    let a = app(db).await;
    db.store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let mut tx = db.store.begin().await.unwrap();
    for _ in 0..200 {
        tx.record_event(&event(a, EventType::LinkCreated, None), Fanout::to(ALL))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let claimers = (0..4).map(|i| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due(&format!("node-{i}"), Duration::seconds(30), 16)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break mine;
                }
                mine.extend(batch.into_iter().map(|c| c.delivery.id));
            }
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for c in claimers {
        for id in c.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "delivery {id:?} claimed twice");
        }
    }
    assert_eq!(total, 200);
}
