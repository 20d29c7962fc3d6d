//! The schema files themselves: each one listed, well formed and using only keywords the
//! validator enforces; and each seed example in `tests/fixtures/` (the vendors' own messages)
//! validating against its schema, but for the departures named here.

use std::collections::BTreeSet;

use freshet_dialects::Dialect;
use serde_json::Value;

use crate::{
    conformance::{SCHEMAS, load_all},
    schema::{schemas_dir, unknown_keywords},
    support::{fixture, fixtures_dir},
};
/// Each seed example against its schema, with the errors it is expected to have. Yodlee's
/// examples leave out `notificationId` (its attribute table lists it; freshet always sends it)
/// and its failure example misspells `DATA_RETRIEVAL_FAILED`: those, and only those, are
/// refused. Everything else validates as the vendor wrote it.
const FIXTURE_SCHEMAS: &[(&str, &str, &[ExpectedError])] = &[
    (
        "seed-000-bud-refresh-completed-success.json",
        "bud/refresh-completed",
        &[],
    ),
    (
        "seed-000-bud-refresh-completed-failed.json",
        "bud/refresh-completed",
        &[],
    ),
    (
        "seed-001-tatra-transaction-event.json",
        "tatra/transaction-event",
        &[],
    ),
    (
        "seed-001-tatra-account-event.json",
        "tatra/account-event",
        &[],
    ),
    ("seed-002-klavi-link-created.json", "klavi/event", &[]),
    ("seed-002-klavi-consent-authorised.json", "klavi/event", &[]),
    ("seed-002-klavi-consent-error.json", "klavi/event", &[]),
    ("seed-002-klavi-consent-rejected.json", "klavi/event", &[]),
    ("seed-002-klavi-consent-expired.json", "klavi/event", &[]),
    ("seed-002-klavi-consent-revoked.json", "klavi/event", &[]),
    (
        "seed-002-klavi-consent-deleted-by-user.json",
        "klavi/event",
        &[],
    ),
    (
        "seed-002-klavi-product-request-received.json",
        "klavi/event",
        &[],
    ),
    (
        "seed-002-klavi-product-generated-success.json",
        "klavi/event",
        &[],
    ),
    (
        "seed-002-klavi-product-generated-failed.json",
        "klavi/event",
        &[],
    ),
    (
        "seed-003-yodlee-payload-structure.json",
        "yodlee/process-completed",
        NO_NOTIFICATION_ID,
    ),
    (
        "seed-003-yodlee-interim-login-success.json",
        "yodlee/interim-progress",
        NO_NOTIFICATION_ID,
    ),
    (
        "seed-003-yodlee-interim-account-summary.json",
        "yodlee/interim-progress",
        NO_NOTIFICATION_ID,
    ),
    (
        "seed-003-yodlee-completed-success.json",
        "yodlee/process-completed",
        NO_NOTIFICATION_ID,
    ),
    (
        "seed-003-yodlee-completed-failure.json",
        "yodlee/process-completed",
        &[
            ("$.event", "`notificationId` is required"),
            (
                "$.event.data.providerAccount[0].dataset[0].additionalStatus",
                "\"DATA_RETREIVAL_FAILED\" is not one of",
            ),
            // The same word, seen through the success-or-failure `oneOf`.
            (
                "$.event.data.providerAccount[0]",
                "none of the oneOf options match",
            ),
        ],
    ),
];

/// Where an error is, and a fragment of what it says.
type ExpectedError = (&'static str, &'static str);

const NO_NOTIFICATION_ID: &[ExpectedError] = &[("$.event", "`notificationId` is required")];

#[test]
fn every_seed_example_validates_but_for_the_known_departures() {
    let schemas = load_all();
    let listed: BTreeSet<&str> = FIXTURE_SCHEMAS.iter().map(|(f, _, _)| *f).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(on_disk, listed.iter().map(|s| s.to_string()).collect());
    for (file, schema, expected) in FIXTURE_SCHEMAS {
        let errors = schemas[schema].check(&fixture(file));
        for e in &errors {
            assert!(
                expected
                    .iter()
                    .any(|(at, what)| e.starts_with(&format!("{at}: ")) && e.contains(what)),
                "{file} against {schema}: unexpected {e}"
            );
        }
        for (at, what) in *expected {
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{at}: ")) && e.contains(what)),
                "{file} against {schema}: expected {at}: {what}, got {errors:?}"
            );
        }
    }
}

#[test]
fn every_schema_file_is_listed_and_well_formed() {
    let mut on_disk = BTreeSet::new();
    for dir in std::fs::read_dir(schemas_dir()).unwrap() {
        let dir = dir.unwrap();
        let dialect = dir.file_name().into_string().unwrap();
        assert!(Dialect::parse(&dialect).is_some(), "schemas/{dialect}");
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap().file_name().into_string().unwrap();
            let name = file
                .strip_suffix(".schema.json")
                .unwrap_or_else(|| panic!("schemas/{dialect}/{file}"));
            on_disk.insert(format!("{dialect}/{name}"));
        }
    }
    assert_eq!(on_disk, SCHEMAS.iter().map(|s| s.to_string()).collect());
    for (name, schema) in load_all() {
        let doc = schema.doc();
        assert_eq!(
            doc["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(
            doc["$id"],
            format!("urn:freshet:dialects:{}", name.replace('/', ":")),
            "{name}"
        );
        assert!(
            doc["title"].is_string() && doc["description"].is_string(),
            "{name}"
        );
        assert_eq!(unknown_keywords(doc), Vec::<String>::new(), "{name}");
        let mut refs = Vec::new();
        find_refs(doc, &mut refs);
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{name}: {r}"));
            assert!(doc.pointer(pointer).is_some(), "{name}: dangling {r}");
        }
    }
}

fn find_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            out.extend(m.get("$ref").and_then(Value::as_str));
            m.values().for_each(|x| find_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| find_refs(x, out)),
        _ => {}
    }
}

/// The example messages in `docs/dialects/<dialect>.md` (its `json` blocks) are messages the
/// dialect sends: each validates against one of the dialect's schemas, so the pages cannot
/// drift from what freshet sends.
#[test]
fn every_example_in_the_dialect_pages_validates() {
    let schemas = load_all();
    let docs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/dialects");
    for dialect in Dialect::ALL {
        let page = format!("{}.md", dialect.name());
        let text = std::fs::read_to_string(docs.join(&page))
            .unwrap_or_else(|e| panic!("docs/dialects/{page}: {e}"));
        let examples = json_blocks(&text);
        assert!(!examples.is_empty(), "{page} shows no example");
        let prefix = format!("{}/", dialect.name());
        for (line, block) in examples {
            let value: Value = serde_json::from_str(&block)
                .unwrap_or_else(|e| panic!("{page}:{line}: not JSON: {e}"));
            let errors: Vec<(&str, Vec<String>)> = schemas
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix))
                .map(|(n, s)| (*n, s.check(&value)))
                .collect();
            assert!(
                errors.iter().any(|(_, e)| e.is_empty()),
                "{page}:{line}: the example validates against none of {prefix}*: {errors:#?}"
            );
        }
    }
}

/// Each fenced `json` block with the line it starts on.
fn json_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some((i + 1, String::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed json block");
    blocks
}
