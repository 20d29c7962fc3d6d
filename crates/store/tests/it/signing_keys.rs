use freshet_store::{NewSigningKey, testing::TestDb};
use time::Duration;

fn key<'a>(kid: &'a str, bytes: &'a [u8]) -> NewSigningKey<'a> {
    NewSigningKey {
        kid,
        algorithm: "ES256",
        private_key: bytes,
    }
}

/// Nodes starting together each try to store a first key; exactly one key results.
pub async fn the_first_key_is_stored_once_under_concurrency(db: &TestDb) {
    let now = freshet_model::time::now();
    assert!(db.store.signing_keys(now).await.unwrap().is_empty());
    let kids: Vec<String> = (0..8).map(|i| format!("kid-{i}")).collect();
    let tries = kids.iter().map(|kid| {
        let store = db.store.clone();
        let kid = kid.clone();
        async move {
            store
                .insert_first_signing_key(&key(&kid, b"pkcs8"))
                .await
                .unwrap()
        }
    });
    let stored = futures::future::join_all(tries).await;
    assert_eq!(stored.iter().filter(|s| **s).count(), 1, "{stored:?}");
    let keys = db.store.signing_keys(now).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].generation, 1);
    assert_eq!(keys[0].private_key, b"pkcs8");
    assert!(!format!("{:?}", keys[0]).contains("private_key"));
    // Once there is a key, a later start stores nothing.
    assert!(
        !db.store
            .insert_first_signing_key(&key("late", b"x"))
            .await
            .unwrap()
    );
}

/// A rotation adds the signing key; the old one stays published until its date, then goes.
pub async fn rotation_keeps_old_keys_published_for_the_overlap(db: &TestDb) {
    db.store
        .insert_first_signing_key(&key("one", b"1"))
        .await
        .unwrap();
    let now = freshet_model::time::now();
    let two = db
        .store
        .rotate_signing_key(&key("two", b"2"), now + Duration::days(7))
        .await
        .unwrap();
    assert_eq!((two.generation, two.retires_at), (2, None));
    let keys = db.store.signing_keys(now).await.unwrap();
    let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["one", "two"], "the last one signs");
    assert!(keys[0].retires_at.is_some());
    let later = now + Duration::days(8);
    let kids: Vec<_> = db.store.signing_keys(later).await.unwrap();
    assert_eq!(
        kids.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["two"]
    );

    // A rotation with no overlap drops the previous key at once, and deletes retired ones.
    db.store
        .rotate_signing_key(&key("three", b"3"), now)
        .await
        .unwrap();
    let keys = db.store.signing_keys(now).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["one", "three"]
    );
    db.store
        .rotate_signing_key(&key("four", b"4"), now + Duration::days(1))
        .await
        .unwrap();
    // "two", retired at once, was deleted (not merely hidden): even an earlier clock misses it.
    let keys = db
        .store
        .signing_keys(now - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["one", "three", "four"]
    );
    // A concurrent first start after rotations adds nothing.
    assert!(
        !db.store
            .insert_first_signing_key(&key("x", b"x"))
            .await
            .unwrap()
    );
}
