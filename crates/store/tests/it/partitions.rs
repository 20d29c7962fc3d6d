//! Outbox partitions: nodes sharing them, claims within them, and what a writer may lease.

use freshet_model::{CustomerId, EventType, webhooks::EndpointId};
use freshet_store::{
    Fanout, Lease, Outcome, PARTITIONS, Scope, StoreKind, partition_of, testing::TestDb,
};
use time::Duration;

use crate::outbox::{ALL, app, claim, endpoint, event, finished};

fn ids(held: &freshet_store::Held) -> Vec<u16> {
    held.partitions.clone()
}

pub async fn nodes_share_partitions_and_take_over_a_silent_one(db: &TestDb) {
    let lease = Duration::seconds(30);
    let a = db.store.hold_partitions("a", lease, &[]).await.unwrap();
    assert_eq!(
        a.partitions.len(),
        PARTITIONS as usize,
        "a node alone holds all"
    );
    if db.store.kind() == StoreKind::Sqlite {
        return; // one node, every partition, nothing to share
    }
    let b = db.store.hold_partitions("b", lease, &[]).await.unwrap();
    assert_eq!(b.nodes, 2);
    assert!(b.partitions.is_empty(), "nothing is free until a lets go");
    let upper: Vec<u16> = (32..PARTITIONS).collect();
    let a = db.store.hold_partitions("a", lease, &upper).await.unwrap();
    assert_eq!(ids(&a), (0..32).collect::<Vec<_>>());
    let b = db.store.hold_partitions("b", lease, &[]).await.unwrap();
    assert_eq!(ids(&b), upper, "b takes what a let go");
    // b falls silent: its lease and its word run out.
    db.store
        .hold_partitions("b", Duration::seconds(-1), &[])
        .await
        .unwrap();
    let a = db.store.hold_partitions("a", lease, &[]).await.unwrap();
    assert_eq!(a.nodes, 1);
    assert_eq!(
        a.partitions.len(),
        PARTITIONS as usize,
        "a takes over b's share"
    );
    db.store.leave_partitions("a").await.unwrap();
    let c = db.store.hold_partitions("c", lease, &[]).await.unwrap();
    assert_eq!(
        c.partitions.len(),
        PARTITIONS as usize,
        "what a left is free at once"
    );
}

/// Endpoints of `app` until two fall in different partitions.
async fn endpoints_apart(
    db: &TestDb,
    app: freshet_model::ApplicationId,
) -> (EndpointId, EndpointId, EndpointId) {
    let first = db
        .store
        .insert_endpoint(app, &endpoint("standard"))
        .await
        .unwrap()
        .id;
    let second = loop {
        let e = db
            .store
            .insert_endpoint(app, &endpoint("standard"))
            .await
            .unwrap();
        if partition_of(e.id) != partition_of(first) {
            break e.id;
        }
        db.store.delete_endpoint(app, e.id).await.unwrap();
    };
    let mut limited = endpoint("standard");
    limited.rate_limit = Some(5);
    let limited = db.store.insert_endpoint(app, &limited).await.unwrap().id;
    (first, second, limited)
}

pub async fn claims_stay_within_their_scope(db: &TestDb) {
    let a = app(db).await;
    let (first, second, limited) = endpoints_apart(db, a).await;
    db.store
        .record_event(&event(a, EventType::LinkCreated, None), Fanout::to(ALL))
        .await
        .unwrap();
    let lease = Duration::seconds(30);
    let mine = [partition_of(first)];
    let claimed = db
        .store
        .claim(
            "n",
            lease,
            10,
            Scope::Unlimited {
                partitions: Some(&mine),
            },
        )
        .await
        .unwrap();
    let endpoints: Vec<EndpointId> = claimed.iter().map(|c| c.endpoint.id).collect();
    match db.store.kind() {
        // One node holds everything: the partitions named do not narrow the claim.
        StoreKind::Sqlite => {
            assert_eq!(endpoints.len(), 2);
            assert!(endpoints.contains(&first) && endpoints.contains(&second));
        }
        StoreKind::Postgres => {
            let expected = if partition_of(second) == partition_of(first) {
                2
            } else {
                1
            };
            assert_eq!(endpoints.len(), expected);
            assert!(endpoints.contains(&first));
        }
    }
    assert!(
        !endpoints.contains(&limited),
        "a limited endpoint is claimed only on its own"
    );
    let own = db
        .store
        .claim("n", lease, 10, Scope::Endpoint(limited))
        .await
        .unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].endpoint.id, limited);
    let none: [u16; 0] = [];
    assert!(
        db.store
            .claim(
                "n",
                lease,
                10,
                Scope::Unlimited {
                    partitions: Some(&none)
                }
            )
            .await
            .unwrap()
            .is_empty(),
        "no partitions, nothing to claim"
    );
}

pub async fn a_series_head_goes_to_its_writer_when_nothing_is_before_it(db: &TestDb) {
    let a = app(db).await;
    let ep = db
        .store
        .insert_endpoint(a, &endpoint("standard"))
        .await
        .unwrap();
    let customer = CustomerId::new();
    let fan = Fanout::Subscribers {
        dialects: ALL,
        opted_in: &[],
        series: Some("task-9"),
    };
    let holds = |_: u16| true;
    let lease = Lease {
        token: "n/1",
        until: freshet_model::time::now() + Duration::seconds(30),
        holds: &holds,
    };
    let write = |t| {
        let e = event(a, t, Some(customer));
        async move {
            let mut tx = db.store.begin().await.unwrap();
            let w = tx.record_batch(&[(e, fan)], Some(lease)).await.unwrap();
            tx.commit().await.unwrap();
            w
        }
    };
    let first = write(EventType::RefreshProgress).await;
    assert_eq!(first.claims.len(), 1, "first of its series: handed over");
    assert_eq!(
        first.claims[0].ordering_key.as_deref(),
        Some("series:task-9")
    );
    let second = write(EventType::RefreshProviderCompleted).await;
    assert!(
        second.claims.is_empty(),
        "the first is not settled: it waits for a claim"
    );
    db.store
        .finish_attempts(&[finished(&first.claims[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();
    let next = claim(db).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].endpoint.id, ep.id);
    db.store
        .finish_attempts(&[finished(&next[0], Outcome::Succeeded, Some(200))])
        .await
        .unwrap();
    let third = write(EventType::RefreshCompleted).await;
    assert_eq!(
        third.claims.len(),
        1,
        "all before it settled: handed over again"
    );
    // A writer that does not hold the partition still sends an unordered delivery itself,
    // but leaves a series' head to the holder, and says where that work is.
    let elsewhere = |_: u16| false;
    let foreign = Lease {
        holds: &elsewhere,
        ..lease
    };
    let mut tx = db.store.begin().await.unwrap();
    let w = tx
        .record_batch(
            &[(event(a, EventType::LinkCreated, None), Fanout::to(ALL))],
            Some(foreign),
        )
        .await
        .unwrap();
    assert_eq!(w.claims.len(), 1);
    assert!(w.announce.is_empty());
    let other_series = Fanout::Subscribers {
        dialects: ALL,
        opted_in: &[],
        series: Some("task-10"),
    };
    let w = tx
        .record_batch(
            &[(
                event(a, EventType::RefreshProgress, Some(customer)),
                other_series,
            )],
            Some(foreign),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(w.claims.is_empty());
    assert_eq!(w.announce, vec![partition_of(ep.id)]);
}
