//! The dialects against the seeds: every fixture in `tests/fixtures/` (copied from the seeds'
//! own examples) is rendered from the canonical event the seed describes and compared field for
//! field; plus the signatures and refusals each dialect's receiver relies on, and every message
//! checked against the JSON Schema kept for it in `crates/dialects/schemas/`.

mod bud;
mod catalogue;
mod conformance;
mod klavi;
mod mutations;
mod refusals;
mod schema;
mod schema_files;
mod standard;
mod support;
mod tatra;
mod yodlee;

use std::collections::BTreeSet;

/// Every fixture file is some golden test's expected output, and no golden test names a file
/// that is not there.
#[test]
fn every_fixture_has_a_golden_test() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(support::fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let tested: BTreeSet<String> = [
        bud::FIXTURES,
        tatra::FIXTURES,
        klavi::FIXTURES,
        yodlee::FIXTURES,
    ]
    .concat()
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tested, on_disk);
}
