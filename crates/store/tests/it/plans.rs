//! Plans that must not depend on statistics. The machine a node runs on may never analyse
//! its tables (autovacuum off), and a prepared statement keeps the plan it got while a table
//! was small: the hot reads must have only one sensible plan.

use freshet_store::{
    KNOWN_TRANSACTIONS_PG, UNSETTLED_IN_LINE,
    testing::{Backend, TestDb},
};
use sqlx::{Connection, PgConnection, Row};

/// Reconciliation reads each account's recent transactions through the account's index,
/// even from a generic plan over a large, never-analysed table (it once hash-joined a
/// parallel scan of every transaction: 0.4 s a refresh).
#[tokio::test]
async fn known_transactions_are_read_by_account_without_statistics() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    // Rows without their accounts: the foreign key is not what this test is about.
    sqlx::raw_sql(
        "SET session_replication_role = replica; \
         INSERT INTO transactions (id, account_id, provider_transaction_id, immutable_id, status, \
           booking_date, amount, currency, description, removed, created_seq, changed_seq, \
           created_at, updated_at) \
         SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad((i % 2000)::text, 12, '0'))::uuid, \
           i::text, true, 'booked', '2026-10-01', '1.00', 'EUR', 'x', false, i, i, now(), now() \
         FROM generate_series(1, 200000) AS i; \
         SET session_replication_role = origin; \
         SET plan_cache_mode = force_generic_plan;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE known (uuid[], text[]) AS {KNOWN_TRANSACTIONS_PG}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN EXECUTE known (ARRAY['00000000-0000-0000-0000-000000000001']::uuid[], \
         ARRAY['2026-09-01'])",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan on transactions") && plan.contains("Nested Loop"),
        "{plan}"
    );
    conn.close().await.ok();
}

/// The head of every refresh's series asks whether anything of its series is still unsettled.
/// A generic plan made on an empty table once read one endpoint's whole queue for it (2 ms a
/// refresh by 140,000 deliveries); it must read the in-line index, empty table or full.
#[tokio::test]
async fn unsettled_probe_reads_the_in_line_index_without_statistics() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE probe (uuid, text) AS {UNSETTLED_IN_LINE}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let empty = probe_plan(&mut conn).await;
    assert!(empty.contains("deliveries_in_line"), "{empty}");
    // One endpoint's long history, all of it settled: what the probe must not read.
    sqlx::raw_sql(
        "SET session_replication_role = replica; \
         INSERT INTO deliveries (id, application_id, event_id, endpoint_id, status, attempts, \
           next_attempt_at, ordering_key, created_at, updated_at) \
         SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), \
           '00000000-0000-0000-0000-000000000001', 'succeeded', 1, now(), \
           'series:' || (i % 20000), now(), now() \
         FROM generate_series(1, 140000) AS i; \
         SET session_replication_role = origin;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let full = probe_plan(&mut conn).await;
    assert!(full.contains("deliveries_in_line"), "{full}");
    conn.close().await.ok();
}

async fn probe_plan(conn: &mut PgConnection) -> String {
    sqlx::query("EXPLAIN EXECUTE probe ('00000000-0000-0000-0000-000000000001', 'series:x')")
        .fetch_all(conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}
