//! Product requests: stored with a hidden callback endpoint per product, claimed under a
//! lease, each product settled once, its callback a fixed-body delivery of the outbox.

use std::collections::BTreeMap;

use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId, EventType, NewCustomer, PageRequest,
    products::{ProductKind, ProductRequest, ProductRequestId, ProductStatus, RequestStatus},
    refresh::{Consent, ConsentId, Link, LinkId},
    webhooks::EventId,
};
use freshet_store::{Fanout, StoredEvent, testing::TestDb};
use serde_json::json;
use time::{Duration, macros::date};

use crate::applications::key;

struct Fixture {
    app: ApplicationId,
    customer: CustomerId,
    link: LinkId,
    consent: ConsentId,
}

async fn fixture(db: &TestDb) -> Fixture {
    let lookup = format!("lk_{}", uuid::Uuid::now_v7().simple());
    let app = db
        .store
        .create_application("products", &key(&lookup))
        .await
        .unwrap()
        .id;
    let customer = db
        .store
        .insert_customer(
            app,
            &NewCustomer {
                external_id: None,
                login_name: None,
                personal_tax_id: Some("25872252137".into()),
                business_tax_id: None,
                external_info: None,
            },
        )
        .await
        .unwrap()
        .id;
    let now = freshet_model::time::now();
    let link = Link {
        id: LinkId::new(),
        application_id: app,
        customer_id: customer,
        provider_id: "santander-br".into(),
        number: 7,
        external_track_id: None,
        created_at: now,
    };
    let consent = Consent {
        id: ConsentId::new(),
        application_id: app,
        customer_id: customer,
        link_id: link.id,
        provider_id: "santander-br".into(),
        status: ConsentStatus::Authorised,
        bank_consent_id: "bank-1".into(),
        permissions_requested: vec![],
        permissions_granted: vec![],
        expires_at: None,
        external_track_id: None,
        reconnect_required: false,
        authorisation_url: None,
        redirect_url: None,
        next_refresh_at: None,
        last_refreshed_at: None,
        authorised_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_link(&link).await.unwrap();
    tx.insert_consent(&consent, &format!("state-{}", consent.id), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Fixture {
        app,
        customer,
        link: link.id,
        consent: consent.id,
    }
}

fn request(f: &Fixture) -> ProductRequest {
    let now = freshet_model::time::now();
    let urls: BTreeMap<String, String> = [
        ("pf_checking_account", "https://example.com/checking"),
        ("pf_credit_card", "https://example.com/cards"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ProductRequest {
        id: ProductRequestId::new(),
        application_id: f.app,
        customer_id: f.customer,
        link_id: f.link,
        consent_ids: vec![f.consent],
        products: vec![ProductKind::PfCreditCard, ProductKind::PfCheckingAccount],
        callback_urls: urls,
        tax_id: Some("12345678901".into()),
        period_from: date!(2026 - 01 - 01),
        period_to: date!(2026 - 03 - 31),
        status: RequestStatus::Pending,
        attempts: 0,
        created_at: now,
        updated_at: now,
    }
}

fn event(f: &Fixture, t: EventType) -> StoredEvent {
    StoredEvent {
        id: EventId::new(),
        application_id: f.app,
        event_type: t,
        customer_id: Some(f.customer),
        created_at: freshet_model::time::now(),
        data: json!({"n": 1}),
    }
}

pub async fn requests_round_trip_with_hidden_callback_endpoints(db: &TestDb) {
    let f = fixture(db).await;
    let r = request(&f);
    let mut tx = db.store.begin().await.unwrap();
    let products = tx
        .insert_product_request(&r, "whsec_c2VjcmV0")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(products.len(), 2);

    let view = db
        .store
        .get_product_request(f.app, r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.request, r, "every field reads back as written");
    assert_eq!(view.callback_secret, "whsec_c2VjcmV0");
    let names: Vec<_> = view.products.iter().map(|p| p.product).collect();
    assert_eq!(names, r.products, "in the client's order");
    assert!(
        view.products
            .iter()
            .all(|p| p.status == ProductStatus::Pending)
    );
    assert_eq!(view.products[0].callback_url, "https://example.com/cards");

    // Another application sees nothing.
    let other = fixture(db).await;
    assert!(
        db.store
            .get_product_request(other.app, r.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.store.count_product_requests(f.app).await.unwrap(), 1);
    assert_eq!(db.store.count_product_requests(other.app).await.unwrap(), 0);

    // The callback endpoints are no endpoints of the API's and receive no subscriptions.
    let listed = db
        .store
        .list_endpoints(f.app, PageRequest::first())
        .await
        .unwrap();
    assert!(listed.data.is_empty(), "{:?}", listed.data);
    let hidden = view.products[0].endpoint_id;
    assert!(
        db.store
            .get_endpoint(f.app, hidden)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!db.store.delete_endpoint(f.app, hidden).await.unwrap());
    let n = db
        .store
        .record_event(
            &event(&f, EventType::ProductRequestReceived),
            Fanout::to(&["standard", "klavi", "callback"]),
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
}

pub async fn products_settle_once_under_the_claim(db: &TestDb) {
    let f = fixture(db).await;
    let r = request(&f);
    let mut tx = db.store.begin().await.unwrap();
    let products = tx
        .insert_product_request(&r, "whsec_c2VjcmV0")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let lease = std::time::Duration::from_secs(30);

    let (token, claimed) = db
        .store
        .claim_product_requests("a", lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![r.id]);
    assert_eq!(claimed[0].attempts, 1);
    let (_, again) = db
        .store
        .claim_product_requests("b", lease, 10)
        .await
        .unwrap();
    assert!(again.is_empty(), "a held claim is not shared");

    // A success: the event, a fixed-body delivery to the hidden endpoint, the product row.
    let checking = products
        .iter()
        .find(|p| p.product == ProductKind::PfCheckingAccount)
        .unwrap();
    let body = json!({"accounts": [{"totalCredits": "10.00"}]});
    let e = event(&f, EventType::ProductGeneratedSuccess);
    let mut tx = db.store.begin().await.unwrap();
    tx.record_event(&e, Fanout::to(&["standard"]))
        .await
        .unwrap();
    let delivery = tx
        .insert_fixed_delivery(f.app, e.id, checking.endpoint_id, &body)
        .await
        .unwrap();
    assert!(
        tx.settle_product(r.id, &token, checking.product, None, Some(delivery))
            .await
            .unwrap()
    );
    assert!(
        !tx.complete_product_request(r.id, &token).await.unwrap(),
        "the credit card is still pending"
    );
    tx.commit().await.unwrap();

    // The delivery is claimed like any other and carries its body.
    let claims = db
        .store
        .claim_due("n", Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].delivery.id, delivery);
    assert_eq!(claims[0].endpoint.url, "https://example.com/checking");
    assert_eq!(claims[0].endpoint.secret, "whsec_c2VjcmV0");
    assert_eq!(claims[0].body.as_ref(), Some(&body));

    // A stale token settles nothing; the same product twice neither.
    let card = ProductKind::PfCreditCard;
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.settle_product(r.id, "stale", card, Some("x"), None)
            .await
            .unwrap()
    );
    assert!(
        !tx.settle_product(r.id, &token, checking.product, Some("again"), None)
            .await
            .unwrap()
    );
    assert!(
        tx.settle_product(r.id, &token, card, Some("no credit card account"), None)
            .await
            .unwrap()
    );
    assert!(tx.complete_product_request(r.id, &token).await.unwrap());
    tx.commit().await.unwrap();

    let view = db
        .store
        .get_product_request(f.app, r.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.request.status, RequestStatus::Completed);
    let by = |k| view.products.iter().find(|p| p.product == k).unwrap();
    let ok = by(ProductKind::PfCheckingAccount);
    assert_eq!(ok.status, ProductStatus::Succeeded);
    assert_eq!(ok.delivery_id, Some(delivery));
    assert!(ok.generated_at.is_some());
    let failed = by(card);
    assert_eq!(failed.status, ProductStatus::Failed);
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("no credit card account")
    );
    let (_, none) = db
        .store
        .claim_product_requests("b", lease, 10)
        .await
        .unwrap();
    assert!(none.is_empty(), "a completed request is not claimed again");
}

pub async fn an_expired_or_released_claim_is_taken_over(db: &TestDb) {
    let f = fixture(db).await;
    let r = request(&f);
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_product_request(&r, "whsec_c2VjcmV0")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let short = std::time::Duration::from_millis(1);
    let (first, _) = db
        .store
        .claim_product_requests("a", short, 10)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (second, claimed) = db
        .store
        .claim_product_requests("b", std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the expired lease is taken over");
    assert_eq!(claimed[0].attempts, 2);
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.settle_product(r.id, &first, ProductKind::PfCreditCard, Some("x"), None)
            .await
            .unwrap(),
        "the first claimer lost its claim"
    );
    tx.commit().await.unwrap();
    assert_eq!(db.store.release_product_request_leases().await.unwrap(), 1);
    let (_, third) = db
        .store
        .claim_product_requests("c", std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1, "a released claim is claimable at once");
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.settle_product(r.id, &second, ProductKind::PfCreditCard, Some("x"), None)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}
