//! The store conformance suite: every case runs, unchanged, on SQLite and on PostgreSQL.

mod applications;
mod customers;
mod erasure;
mod health;
mod metrics;
mod migrations;
mod outbox;
mod partitions;
mod plans;
mod products;
mod retention;
mod sealed;
mod signing_keys;

use freshet_store::testing::{Backend, TestDb};

/// Declares each case once and runs it on both engines: `case::sqlite` and `case::postgres`.
macro_rules! on_both_stores {
    ($($module:ident::$case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    run(Backend::Sqlite, |db| Box::pin($module::$case(db))).await;
                }

                #[tokio::test]
                async fn postgres() {
                    run(Backend::Postgres, |db| Box::pin($module::$case(db))).await;
                }
            }
        )*
    };
}

type Case = for<'a> fn(&'a TestDb) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

async fn run(backend: Backend, case: Case) {
    if let Some(db) = TestDb::new(backend).await {
        case(&db).await;
    }
}

on_both_stores!(
    migrations::migrate_is_idempotent_and_concurrent,
    migrations::ping_answers,
    retention::old_settled_events_go_in_batches_and_unsettled_ones_stay,
    retention::a_success_brings_the_endpoint_s_retries_forward,
    retention::the_lease_keeps_the_purge_to_one_node,
    applications::create_and_find_by_key,
    applications::key_lookups_are_unique,
    customers::create_read_update_delete,
    customers::patch_leaves_absent_fields_alone,
    customers::external_id_is_unique_per_application,
    customers::applications_never_see_each_other,
    customers::pages_cover_everything_once_in_order,
    customers::times_are_utc_and_exact,
    outbox::endpoints_crud_and_isolation,
    outbox::events_fan_out_to_matching_endpoints,
    outbox::claims_lease_and_expire,
    outbox::a_series_recorded_together_leaves_one_by_one,
    outbox::the_next_in_line_goes_to_the_recorder,
    outbox::ordered_endpoints_wait_for_earlier_deliveries,
    outbox::attempts_settle_deliveries_and_endpoint_health,
    outbox::a_lost_lease_does_not_overwrite,
    erasure::erases_the_customer_and_keeps_the_log,
    erasure::a_delivery_in_flight_stays_cancelled_and_is_waited_for,
    outbox::retry_and_replay,
    outbox::concurrent_claimers_never_share,
    partitions::nodes_share_partitions_and_take_over_a_silent_one,
    partitions::claims_stay_within_their_scope,
    partitions::a_series_head_goes_to_its_writer_when_nothing_is_before_it,
    products::requests_round_trip_with_hidden_callback_endpoints,
    products::products_settle_once_under_the_claim,
    products::an_expired_or_released_claim_is_taken_over,
    signing_keys::the_first_key_is_stored_once_under_concurrency,
    signing_keys::rotation_keeps_old_keys_published_for_the_overlap,
    metrics::the_queue_counts_unsettled_deliveries_by_endpoint_state,
    metrics::unattended_refreshes_count_per_consent_and_utc_day,
    health::counts_a_window_and_keeps_the_last_failure,
    sealed::plaintext_is_sealed_at_unlock_and_reads_the_same,
    sealed::a_sealed_value_moved_to_another_row_does_not_open,
    sealed::a_store_without_its_key_keeps_secrets_shut,
);
