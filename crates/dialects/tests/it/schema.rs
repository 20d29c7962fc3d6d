//! A validator for the subset of JSON Schema (draft 2020-12) the dialect schemas in
//! `crates/dialects/schemas/` use, adapted from the sandbox's OpenAPI validator so the project
//! carries no JSON Schema crate for its tests. Keywords apply as the draft says: `type` is checked
//! on its own, and object, array, string and number keywords only to values of that kind. A
//! schema using a keyword this file does not know is refused outright
//! ([`unknown_keywords`]), so no constraint is silently skipped.

use std::{collections::HashMap, path::PathBuf, sync::Mutex};

use regex::Regex;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Keywords that constrain nothing.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "title",
    "description",
    "examples",
    "default",
];

/// Keywords [`Schema::validate`] enforces.
const ASSERTIONS: &[&str] = &[
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
];

/// One schema document.
pub struct Schema {
    name: String,
    doc: Value,
    patterns: Mutex<HashMap<String, Regex>>,
}

/// Where the project keeps its dialect schemas.
pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

impl Schema {
    /// `schemas/<name>.schema.json`, e.g. `bud/refresh-completed`.
    pub fn load(name: &str) -> Self {
        let path = schemas_dir().join(format!("{name}.schema.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        Self::new(name, doc)
    }

    pub fn new(name: &str, doc: Value) -> Self {
        Self {
            name: name.to_string(),
            doc,
            patterns: Mutex::default(),
        }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every way `value` breaks the schema; empty when it validates.
    pub fn check(&self, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate(&self.doc, value, "$", &mut errors);
        errors
    }

    /// Panics, listing every error, unless `value` validates.
    #[track_caller]
    pub fn assert_valid(&self, value: &Value, what: &str) {
        let errors = self.check(value);
        assert!(
            errors.is_empty(),
            "{what} does not validate against {}:\n  {}\n{}",
            self.name,
            errors.join("\n  "),
            serde_json::to_string_pretty(value).unwrap()
        );
    }

    fn target(&self, r: &str) -> &Value {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{}: only local references: {r}", self.name));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{}: dangling $ref {r}", self.name))
    }

    fn passes(&self, schema: &Value, value: &Value, at: &str) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        self.validate(schema, value, at, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn validate(&self, s: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let s = match s {
            Value::Bool(true) => return,
            Value::Bool(false) => return errors.push(format!("{at}: nothing is allowed here")),
            Value::Object(s) => s,
            other => panic!("{}: {other} is not a schema", self.name),
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.validate(self.target(r), value, at, errors);
        }
        self.combinators(s, value, at, errors);
        if let Some(t) = s.get("type") {
            let names: Vec<&str> = match t {
                Value::String(n) => vec![n.as_str()],
                Value::Array(ns) => ns.iter().filter_map(Value::as_str).collect(),
                other => panic!("{}: type {other}", self.name),
            };
            if !names.iter().any(|n| is_type(n, value)) {
                errors.push(format!("{at}: expected {t}, found {value}"));
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {}", json!(allowed)));
        }
        if let Some(c) = s.get("const")
            && c != value
        {
            errors.push(format!("{at}: {value} is not {c}"));
        }
        match value {
            Value::Object(map) => self.object(s, map, at, errors),
            Value::Array(items) => self.array(s, items, at, errors),
            Value::String(text) => self.string(s, text, at, errors),
            Value::Number(n) => number(s, n.as_f64().unwrap_or_default(), at, errors),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn combinators(
        &self,
        s: &Map<String, Value>,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate(sub, value, at, errors);
        }
        for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            let Some(options) = s.get(key).and_then(Value::as_array) else {
                continue;
            };
            let outcomes: Vec<_> = options.iter().map(|o| self.passes(o, value, at)).collect();
            let passing = outcomes.iter().filter(|o| o.is_ok()).count();
            if passing == 0 {
                let why: Vec<String> = outcomes
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| format!("option {i}: {}", o.unwrap_err().join("; ")))
                    .collect();
                errors.push(format!(
                    "{at}: none of the {key} options match ({})",
                    why.join(" | ")
                ));
            } else if exactly_one && passing > 1 {
                errors.push(format!("{at}: {passing} of the oneOf options match"));
            }
        }
        if let Some(not) = s.get("not")
            && self.passes(not, value, at).is_ok()
        {
            errors.push(format!("{at}: matches what `not` forbids: {not}"));
        }
    }

    fn object(
        &self,
        s: &Map<String, Value>,
        map: &Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(key) {
                errors.push(format!("{at}: `{key}` is required"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, v) in map {
            let field = format!("{at}.{key}");
            match (
                props.and_then(|p| p.get(key)),
                s.get("additionalProperties"),
            ) {
                (Some(p), _) => self.validate(p, v, &field, errors),
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{at}: `{key}` is not allowed"))
                }
                (None, Some(extra)) => self.validate(extra, v, &field, errors),
                (None, None) => {}
            }
        }
    }

    fn array(&self, s: &Map<String, Value>, items: &[Value], at: &str, errors: &mut Vec<String>) {
        let len = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
        if let Some(item) = s.get("items") {
            for (i, v) in items.iter().enumerate() {
                self.validate(item, v, &format!("{at}[{i}]"), errors);
            }
        }
    }

    fn string(&self, s: &Map<String, Value>, text: &str, at: &str, errors: &mut Vec<String>) {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            errors.push(format!("{at}: `{text}` is shorter than {min}"));
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            errors.push(format!("{at}: `{text}` is longer than {max}"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let mut cache = self.patterns.lock().unwrap();
            let re = cache
                .entry(p.to_string())
                .or_insert_with(|| Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}")));
            if !re.is_match(text) {
                errors.push(format!("{at}: `{text}` does not match {p}"));
            }
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            let ok = match format {
                "date-time" => OffsetDateTime::parse(text, &Rfc3339).is_ok(),
                "uri" => uri_like(text),
                other => panic!("{}: format {other} is not checked here", self.name),
            };
            if !ok {
                errors.push(format!("{at}: `{text}` is not a {format}"));
            }
        }
    }
}

fn is_type(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        // JSON Schema: a number with no fractional part.
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type {other}"),
    }
}

/// A scheme, `://` and something after it: what a callback URL needs to be usable.
fn uri_like(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

fn number(s: &Map<String, Value>, n: f64, at: &str, errors: &mut Vec<String>) {
    if let Some(min) = s.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(format!("{at}: {n} is below {min}"));
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(format!("{at}: {n} is above {max}"));
    }
}

/// Every keyword of every (sub)schema in `doc` that is neither enforced nor an annotation,
/// with where it is.
pub fn unknown_keywords(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(doc, "#", &mut found);
    found
}

fn walk(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        if !schema.is_boolean() {
            found.push(format!("{at}: not a schema"));
        }
        return;
    };
    for (key, v) in s {
        let here = format!("{at}/{key}");
        match key.as_str() {
            "properties" | "$defs" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    walk(sub, &format!("{here}/{name}"), found);
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                    walk(sub, &format!("{here}/{i}"), found);
                }
            }
            "items" | "additionalProperties" | "not" => walk(v, &here, found),
            k if ASSERTIONS.contains(&k) || ANNOTATIONS.contains(&k) => {}
            _ => found.push(here),
        }
    }
}

/// The validator's own checks that are not about any dialect: the draft's rules where the
/// dialect schemas lean on them.
#[test]
fn the_validator_follows_the_draft() {
    let s = Schema::new(
        "inline",
        json!({
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": ["integer", "null"], "minimum": 1},
                "one": {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
                "t": {"type": "string", "format": "date-time"},
                "u": {"format": "uri"},
                "r": {"$ref": "#/$defs/r", "maxLength": 3}
            },
            "$defs": {"r": {"type": "string", "pattern": "^a"}}
        }),
    );
    assert_eq!(s.check(&json!({"n": null})), Vec::<String>::new());
    assert_eq!(
        s.check(&json!({"n": 2, "u": 7, "t": "2026-01-01T00:00:00+01:00"})),
        Vec::<String>::new()
    );
    // A string keyword does not apply to a number, but `type` does.
    for bad in [
        json!({}),
        json!({"n": "2"}),
        json!({"n": 1.5}),
        json!({"n": 0}),
        json!({"n": 1, "one": 1}),
        json!({"n": 1, "t": "2026-01-01"}),
        json!({"n": 1, "t": "2026-02-30T00:00:00Z"}),
        json!({"n": 1, "u": "www.example.com/x"}),
        json!({"n": 1, "r": "b"}),
        json!({"n": 1, "r": "abcd"}),
        json!([]),
    ] {
        assert!(!s.check(&bad).is_empty(), "{bad} should be refused");
    }
    assert_eq!(s.check(&json!({"n": 1, "one": -1})), Vec::<String>::new());
    assert_eq!(
        unknown_keywords(&json!({"properties": {"a": {"uniqueItems": true}}, "if": {}})),
        ["#/if", "#/properties/a/uniqueItems"]
    );
}
