//! freshet as its users see it: a real server on an ephemeral port, a database of its own,
//! real HTTP. Every test that touches the store runs on SQLite and on PostgreSQL.

mod applications;
mod backup;
mod bad_input;
mod cli;
mod crash;
mod customers;
mod dashboard;
mod dashboard_api;
mod dialects;
mod erasure;
mod hardening;
mod lifecycle;
mod listen;
mod logs;
mod metrics;
mod products;
mod refresh;
mod retention;
mod sandbox;
mod scaling;
mod secrets;
mod strict;
mod support;
mod tenancy;
mod vendor_bank;
mod vendor_refresh;
mod webdriver;
mod webhooks;

/// Declares a test once and runs it on both stores: `name::sqlite`, `name::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn case($app: $crate::support::TestApp) $body

                #[tokio::test]
                async fn sqlite() {
                    $crate::support::run(freshet_store::testing::Backend::Sqlite, case).await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::support::run(freshet_store::testing::Backend::Postgres, case).await;
                }
            }
        )*
    };
}
