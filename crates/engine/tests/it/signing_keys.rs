//! Signing keys as several nodes of one database see them.

use std::time::Duration;

use freshet_engine::signing_keys::{DEFAULT_OVERLAP, SigningKeys};
use freshet_store::{Store, StoreOptions, testing::TestDb};

use crate::on_both_stores;

/// Another node of `db`: a store of its own, unlocked with the database's master key.
async fn node(db: &TestDb) -> Store {
    let mut store = Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    store.unlock(&db.master_key).await.unwrap();
    store
}

on_both_stores! {
    async fn nodes_starting_together_share_one_key(db) {
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(node(db).await);
        }
        let loads = stores.iter().map(|s| SigningKeys::load(s.clone(), Duration::from_secs(10)));
        let nodes = futures::future::join_all(loads).await;
        let kids: Vec<String> = nodes
            .into_iter()
            .map(|n| n.unwrap().current().signing().kid().to_string())
            .collect();
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        let stored = db.store.signing_keys(freshet_model::time::now()).await.unwrap();
        assert_eq!(stored.len(), 1);
        // A restart finds the same key.
        let again = SigningKeys::load(db.store.clone(), Duration::from_secs(10)).await.unwrap();
        assert_eq!(again.current().signing().kid(), kids[0]);
    }

    async fn a_rotation_on_one_node_reaches_the_others_within_the_ttl(db) {
        let ttl = Duration::from_millis(200);
        let a = SigningKeys::load(node(db).await, ttl).await.unwrap();
        let b = SigningKeys::load(node(db).await, ttl).await.unwrap();
        let old = b.current().signing().kid().to_string();
        let rotated = a.rotate(DEFAULT_OVERLAP).await.unwrap();
        let new = rotated.signing().kid().to_string();
        assert_ne!(new, old);
        assert_eq!(a.current().signing().kid(), new, "the rotating node signs with it at once");
        // Both keys are published; the old one with an end date about a week away.
        let published: Vec<_> = rotated.published().collect();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].0, old);
        let ends = published[0].1.unwrap() - freshet_model::time::now();
        assert!(ends > time::Duration::days(6) && ends <= time::Duration::days(7), "{ends}");
        assert_eq!(published[1], (new.as_str(), None));
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while b.current().signing().kid() != new {
            assert!(tokio::time::Instant::now() < deadline, "node b never picked up the rotation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(a.rotate(time::Duration::days(31)).await.is_err(), "overlaps are bounded");
    }
}
