//! The delivery engine against real HTTP receivers on 127.0.0.1.

mod disable;
mod dispatcher;
mod sender;
mod signing_keys;

/// Runs an async test body on SQLite and on PostgreSQL: `name::sqlite`, `name::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn case($db: &freshet_store::testing::TestDb) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(db) = freshet_store::testing::TestDb::new(freshet_store::testing::Backend::Sqlite).await {
                        case(&db).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = freshet_store::testing::TestDb::new(freshet_store::testing::Backend::Postgres).await {
                        case(&db).await;
                    }
                }
            }
        )*
    };
}
