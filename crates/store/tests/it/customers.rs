use freshet_model::{
    ApplicationId, CustomerId, CustomerPatch, NewCustomer, PageRequest, Patch, page::Cursor,
};
use freshet_store::{StoreError, testing::TestDb};
use serde_json::{Map, Value, json};

use crate::applications::key;

async fn app(db: &TestDb, name: &str) -> ApplicationId {
    let lookup = format!("lk_{name}_{}", uuid::Uuid::now_v7().simple());
    db.store
        .create_application(name, &key(&lookup))
        .await
        .unwrap()
        .id
}

fn info(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

pub fn full() -> NewCustomer {
    NewCustomer {
        external_id: Some("ext-1".into()),
        login_name: Some("fri21".into()),
        personal_tax_id: Some("25872252137".into()),
        business_tax_id: None,
        external_info: Some(info(
            json!({"myTraceId": "yourTraceId-1", "n": [1, 2.5, "ü"]}),
        )),
    }
}

pub fn blank() -> NewCustomer {
    NewCustomer {
        external_id: None,
        login_name: None,
        personal_tax_id: None,
        business_tax_id: None,
        external_info: None,
    }
}

pub async fn create_read_update_delete(db: &TestDb) {
    let a = app(db, "crud").await;
    let c = db.store.insert_customer(a, &full()).await.unwrap();
    assert_eq!(c.application_id, a);
    assert_eq!(c.external_id.as_deref(), Some("ext-1"));
    assert_eq!(c.external_info, full().external_info);
    assert_eq!(
        db.store.get_customer(a, c.id).await.unwrap().as_ref(),
        Some(&c)
    );

    let patch = CustomerPatch {
        login_name: Patch::Value("new-login".into()),
        external_info: Patch::Null,
        ..Default::default()
    };
    let u = db
        .store
        .update_customer(a, c.id, patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.login_name.as_deref(), Some("new-login"));
    assert_eq!(u.external_info, None);
    assert_eq!(u.created_at, c.created_at);
    assert!(u.updated_at >= c.updated_at);

    assert!(db.store.delete_customer(a, c.id).await.unwrap());
    assert!(db.store.get_customer(a, c.id).await.unwrap().is_none());
    assert!(!db.store.delete_customer(a, c.id).await.unwrap());
    let missing = db
        .store
        .update_customer(a, c.id, CustomerPatch::default())
        .await
        .unwrap();
    assert!(missing.is_none());
}

pub async fn patch_leaves_absent_fields_alone(db: &TestDb) {
    let a = app(db, "patch").await;
    let c = db.store.insert_customer(a, &full()).await.unwrap();
    let u = db
        .store
        .update_customer(a, c.id, CustomerPatch::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            u.external_id,
            u.login_name,
            u.personal_tax_id,
            u.external_info
        ),
        (
            c.external_id,
            c.login_name,
            c.personal_tax_id,
            c.external_info
        )
    );
}

pub async fn external_id_is_unique_per_application(db: &TestDb) {
    let a = app(db, "uniq-a").await;
    let b = app(db, "uniq-b").await;
    db.store.insert_customer(a, &full()).await.unwrap();
    let err = db.store.insert_customer(a, &full()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                field: "external_id"
            }
        ),
        "{err:?}"
    );
    // Another application may use the same external id, and customers without one never clash.
    db.store.insert_customer(b, &full()).await.unwrap();
    db.store.insert_customer(a, &blank()).await.unwrap();
    let other = db.store.insert_customer(a, &blank()).await.unwrap();
    let clash = CustomerPatch {
        external_id: Patch::Value("ext-1".into()),
        ..Default::default()
    };
    let err = db
        .store
        .update_customer(a, other.id, clash)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                field: "external_id"
            }
        ),
        "{err:?}"
    );
}

pub async fn applications_never_see_each_other(db: &TestDb) {
    let a = app(db, "iso-a").await;
    let b = app(db, "iso-b").await;
    let c = db.store.insert_customer(a, &full()).await.unwrap();
    assert!(db.store.get_customer(b, c.id).await.unwrap().is_none());
    assert!(
        db.store
            .list_customers(b, PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let patch = CustomerPatch {
        login_name: Patch::Value("hijacked".into()),
        ..Default::default()
    };
    assert!(
        db.store
            .update_customer(b, c.id, patch)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!db.store.delete_customer(b, c.id).await.unwrap());
    // Untouched for its owner.
    assert_eq!(db.store.get_customer(a, c.id).await.unwrap(), Some(c));
}

pub async fn pages_cover_everything_once_in_order(db: &TestDb) {
    let a = app(db, "pages").await;
    let mut made: Vec<CustomerId> = Vec::new();
    for _ in 0..7 {
        made.push(db.store.insert_customer(a, &blank()).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = db
            .store
            .list_customers(a, PageRequest { after, limit: 3 })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.data.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made, "every customer once, in creation order");
}

pub async fn times_are_utc_and_exact(db: &TestDb) {
    let a = app(db, "times").await;
    let before = freshet_model::time::now();
    let c = db.store.insert_customer(a, &blank()).await.unwrap();
    let after = freshet_model::time::now();
    assert!(before <= c.created_at && c.created_at <= after);
    assert_eq!(c.created_at.offset(), time::UtcOffset::UTC);
    let read = db.store.get_customer(a, c.id).await.unwrap().unwrap();
    assert_eq!(
        read.created_at, c.created_at,
        "microsecond-exact round trip"
    );
}
