use freshet_model::ids::ApiKeyId;
use freshet_store::{NewApiKey, StoreError, testing::TestDb};

pub fn key(lookup: &str) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        lookup: lookup.to_string(),
        secret_hash: vec![7; 32],
    }
}

pub async fn create_and_find_by_key(db: &TestDb) {
    let k = key("lk_one");
    let app = db.store.create_application("Acme", &k).await.unwrap();
    assert_eq!(app.name, "Acme");
    let found = db.store.find_api_key("lk_one").await.unwrap().unwrap();
    assert_eq!(found.application_id, app.id);
    assert_eq!(found.id, k.id);
    assert_eq!(found.secret_hash, vec![7; 32]);
    assert_eq!(db.store.get_application(app.id).await.unwrap(), Some(app));
    assert!(db.store.find_api_key("lk_other").await.unwrap().is_none());
}

pub async fn key_lookups_are_unique(db: &TestDb) {
    db.store
        .create_application("A", &key("lk_same"))
        .await
        .unwrap();
    let err = db
        .store
        .create_application("B", &key("lk_same"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}
