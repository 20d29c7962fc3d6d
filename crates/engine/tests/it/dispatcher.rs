//! Dispatchers over a real store and a real receiver. The dispatcher is format-agnostic, so
//! these tests prepare requests with a minimal closure; dialects are tested on their own.

use std::{sync::Arc, time::Duration};

use freshet_engine::delivery::{
    dispatcher::{Dispatcher, DispatcherConfig, OnLongFailure, Prepare},
    sender::{Outgoing, Sender},
    target::TargetPolicy,
};
use freshet_model::{
    ApplicationId, CustomerId, EventType,
    ids::ApiKeyId,
    webhooks::{DeliveryStatus, EndpointId, EventId},
};
use freshet_store::{Fanout, NewApiKey, NewEndpoint, StoredEvent, testing::TestDb};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use freshet_engine::testing::{Answer, Receiver};

use crate::on_both_stores;

fn prepare() -> Prepare {
    Arc::new(|claim, _now| {
        Ok(Outgoing {
            url: claim.endpoint.url.clone(),
            body: serde_json::to_vec(&claim.event.data).unwrap(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "webhook-id".into(),
                    format!("msg_{}", claim.delivery.id.0.simple()),
                ),
            ],
            timeout: None,
        })
    })
}

struct Setup {
    app: ApplicationId,
    endpoint: EndpointId,
    disabled: Arc<Mutex<Vec<EndpointId>>>,
    dispatcher: Arc<Dispatcher>,
}

async fn setup(db: &TestDb, url: String, schedule: Vec<u32>, disable_after: Duration) -> Setup {
    let unordered = Endpoint {
        ordered: false,
        idle_poll: Duration::from_millis(20),
    };
    setup_with(db, url, schedule, disable_after, unordered).await
}

/// What a test sets of the endpoint and of the dispatcher's polling.
struct Endpoint {
    ordered: bool,
    idle_poll: Duration,
}

async fn setup_with(
    db: &TestDb,
    url: String,
    schedule: Vec<u32>,
    disable_after: Duration,
    endpoint: Endpoint,
) -> Setup {
    let Endpoint { ordered, idle_poll } = endpoint;
    let key = NewApiKey {
        id: ApiKeyId::new(),
        lookup: uuid::Uuid::now_v7().simple().to_string(),
        secret_hash: vec![0; 32],
    };
    let app = db
        .store
        .create_application("dispatch", &key)
        .await
        .unwrap()
        .id;
    let endpoint = db
        .store
        .insert_endpoint(
            app,
            &NewEndpoint {
                url,
                dialect: "standard".into(),
                event_types: None,
                description: None,
                ordered,
                security_header: None,
                partner_app_id: None,
                active_from: freshet_model::time::now() - time::Duration::seconds(1),
                secret: "whsec_dGVzdA==".into(),
                retry_schedule: Some(schedule),
                scheduled_refreshes: false,
                rate_limit: None,
                max_in_flight: None,
                activation: "immediate".into(),
            },
        )
        .await
        .unwrap()
        .id;
    let disabled = Arc::new(Mutex::new(Vec::new()));
    let seen = disabled.clone();
    let on_long_failure: OnLongFailure = Arc::new(move |_app, endpoint, _since| {
        let seen = seen.clone();
        Box::pin(async move {
            seen.lock().await.push(endpoint);
            Ok(())
        })
    });
    let sender = Sender::new(
        Arc::new(TargetPolicy {
            allow_loopback: true,
            ..Default::default()
        }),
        Duration::from_secs(5),
    );
    let config = DispatcherConfig {
        disable_after,
        idle_poll,
        ..Default::default()
    };
    let dispatcher = Arc::new(Dispatcher::new(
        db.store.clone(),
        sender,
        prepare(),
        on_long_failure,
        config,
        Arc::new(Notify::new()),
    ));
    Setup {
        app,
        endpoint,
        disabled,
        dispatcher,
    }
}

async fn emit(db: &TestDb, app: ApplicationId, n: usize) -> Vec<EventId> {
    emit_for(db, app, n, None).await
}

/// Records `n` events about `customer` (if any) in one transaction.
async fn emit_for(
    db: &TestDb,
    app: ApplicationId,
    n: usize,
    customer: Option<CustomerId>,
) -> Vec<EventId> {
    let mut tx = db.store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let e = StoredEvent {
            id: EventId::new(),
            application_id: app,
            event_type: EventType::EndpointTest,
            customer_id: customer,
            created_at: freshet_model::time::now(),
            data: serde_json::json!({"n": i}),
        };
        tx.record_event(&e, Fanout::to(&["standard"]))
            .await
            .unwrap();
        ids.push(e.id);
    }
    tx.commit().await.unwrap();
    ids
}

const LONG: Duration = Duration::from_secs(3600);

on_both_stores! {
    async fn failed_attempts_are_retried_with_the_same_webhook_id(db) {
        let r = Receiver::start(vec![Answer::Status(500), Answer::Status(503), Answer::Status(200)]).await;
        let s = setup(db, r.url(), vec![1, 1], LONG).await;
        let event = emit(db, s.app, 1).await[0];
        for expected in 1..=3 {
            // Each retry becomes due about a second later.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while s.dispatcher.run_once().await.unwrap() == 0 {
                assert!(tokio::time::Instant::now() < deadline, "attempt {expected} never became due");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(r.count(), expected);
        }
        let got = r.got.lock().unwrap().clone();
        let ids: Vec<_> = got.iter().map(|g| g.headers["webhook-id"].clone()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "same webhook-id on every attempt: {ids:?}");
        let delivery = db.store.list_event_deliveries(s.app, event).await.unwrap().remove(0);
        assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Succeeded, 3));
        let attempts = db.store.list_attempts(s.app, delivery.id).await.unwrap();
        let codes: Vec<_> = attempts.iter().map(|a| a.status_code).collect();
        assert_eq!(codes, [Some(500), Some(503), Some(200)]);
        assert!(s.disabled.lock().await.is_empty());
    }

    async fn exhausted_schedules_end_dead(db) {
        let r = Receiver::start(vec![Answer::Status(500)]).await;
        let s = setup(db, r.url(), vec![1], LONG).await;
        let event = emit(db, s.app, 1).await[0];
        s.dispatcher.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(s.dispatcher.run_once().await.unwrap(), 1);
        let delivery = db.store.list_event_deliveries(s.app, event).await.unwrap().remove(0);
        assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Dead, 2));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(s.dispatcher.run_once().await.unwrap(), 0, "dead deliveries are not retried");
    }

    async fn endpoints_failing_too_long_are_reported(db) {
        let r = Receiver::start(vec![Answer::Status(500)]).await;
        let s = setup(db, r.url(), vec![60], Duration::ZERO).await;
        emit(db, s.app, 1).await;
        s.dispatcher.run_once().await.unwrap();
        assert_eq!(*s.disabled.lock().await, vec![s.endpoint]);
    }

    async fn the_pipeline_delivers_everything_and_drains_on_stop(db) {
        let r = Receiver::start(vec![Answer::Status(200)]).await;
        let s = setup(db, r.url(), vec![1], LONG).await;
        let stop = CancellationToken::new();
        let running = tokio::spawn(s.dispatcher.clone().run(stop.clone()));
        let events = emit(db, s.app, 300).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while r.count() < events.len() {
            assert!(tokio::time::Instant::now() < deadline, "only {} of {} arrived", r.count(), events.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Stop while a slow burst is in flight: what was claimed is still sent and recorded.
        r.answer_next(vec![Answer::Hang(Duration::from_millis(300)), Answer::Status(200)]);
        let more = emit(db, s.app, 20).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        running.await.unwrap();
        for id in events.iter().chain(&more) {
            let d = db.store.list_event_deliveries(s.app, *id).await.unwrap().remove(0);
            // Claimed work was finished; unclaimed work waits for the next start. Nothing is
            // left leased after a graceful stop.
            assert!(matches!(d.status, DeliveryStatus::Succeeded | DeliveryStatus::Pending), "{d:?}");
        }
        assert!(r.count() <= events.len() + more.len());
    }

    async fn an_ordered_endpoints_next_delivery_leaves_when_the_one_before_settles(db) {
        let r = Receiver::start(vec![Answer::Status(200)]).await;
        // A poll far longer than the test: only the wake-up that follows each recorded attempt
        // can move the customer's queue along.
        let ordered = Endpoint { ordered: true, idle_poll: LONG };
        let s = setup_with(db, r.url(), vec![1], LONG, ordered).await;
        let events = emit_for(db, s.app, 10, Some(CustomerId::new())).await;
        let stop = CancellationToken::new();
        let running = tokio::spawn(s.dispatcher.clone().run(stop.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while r.count() < events.len() {
            assert!(tokio::time::Instant::now() < deadline, "only {} of {} arrived", r.count(), events.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let order: Vec<u64> = r.got.lock().unwrap().iter()
            .map(|g| serde_json::from_slice::<serde_json::Value>(&g.body).unwrap()["n"].as_u64().unwrap())
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<u64>>());
        stop.cancel();
        running.await.unwrap();
    }
}
