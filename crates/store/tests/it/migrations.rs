use freshet_store::testing::TestDb;

pub async fn migrate_is_idempotent_and_concurrent(db: &TestDb) {
    // TestDb already migrated once; several nodes starting together must all succeed.
    let (a, b, c) = tokio::join!(db.store.migrate(), db.store.migrate(), db.store.migrate());
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

pub async fn ping_answers(db: &TestDb) {
    db.store.ping().await.unwrap();
}
