//! A validator for the subset of OpenAPI 3.0 schema objects the three standards use: `$ref`,
//! `allOf` / `oneOf` / `anyOf`, `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, string lengths, `pattern`, `format` (date, date-time),
//! item counts and numeric bounds. OpenAPI 3.0 is not JSON Schema (`nullable`, no `type`
//! arrays), which is why the project carries this rather than a JSON Schema crate.

use std::{collections::HashMap, path::PathBuf, sync::Mutex};

use regex::Regex;
use serde_json::Value;
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};

pub struct Spec {
    doc: Value,
    patterns: Mutex<HashMap<String, Regex>>,
}

impl Spec {
    /// One of the specification files the project keeps in `specs/`.
    pub fn load(file: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../specs")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self {
            doc: serde_json::from_str(&text).expect("specs are JSON"),
            patterns: Mutex::default(),
        }
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("local references only");
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// The JSON schema of an operation's response.
    pub fn response(&self, path: &str, method: &str, status: u16) -> &Value {
        let item = self.resolve(&self.doc["paths"][path]);
        let op = &item[method];
        assert!(op.is_object(), "the specification has no {method} {path}");
        let resp = self.resolve(&op["responses"][status.to_string()]);
        assert!(
            resp.is_object(),
            "{method} {path} documents no {status} response"
        );
        let content = resp["content"]
            .as_object()
            .expect("the response has a body");
        let media = content
            .get("application/json")
            .or_else(|| content.values().next())
            .expect("a media type");
        &media["schema"]
    }

    /// Every way `value` breaks the schema of `path`'s `method` answering `status`.
    pub fn check(&self, path: &str, method: &str, status: u16, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate(self.response(path, method, status), value, "$", &mut errors);
        errors
    }

    pub fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        if value.is_null() && s["nullable"] == true {
            return;
        }
        for sub in s["allOf"].as_array().into_iter().flatten() {
            self.validate(sub, value, at, errors);
        }
        for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(options) = s[key].as_array() {
                let passing = options
                    .iter()
                    .filter(|o| {
                        let mut e = Vec::new();
                        self.validate(o, value, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (exactly_one && passing > 1) {
                    errors.push(format!("{at}: {passing} of the {key} options match"));
                }
            }
        }
        if let Some(allowed) = s["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        let kind = s["type"]
            .as_str()
            .or_else(|| s.get("properties").map(|_| "object"));
        match (kind, value) {
            (None, _) => {}
            (Some("string"), Value::String(text)) => self.string(s, text, at, errors),
            (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
                number(s, n.as_f64().unwrap_or_default(), at, errors)
            }
            (Some("number"), Value::Number(n)) => {
                number(s, n.as_f64().unwrap_or_default(), at, errors)
            }
            (Some("boolean"), Value::Bool(_)) => {}
            (Some("array"), Value::Array(items)) => {
                if let Some(min) = s["minItems"].as_u64()
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
                if let Some(max) = s["maxItems"].as_u64()
                    && items.len() as u64 > max
                {
                    errors.push(format!("{at}: more than {max} items"));
                }
                for (i, item) in items.iter().enumerate() {
                    self.validate(&s["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
            (Some("object"), Value::Object(map)) => {
                for key in s["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !map.contains_key(key) {
                        errors.push(format!("{at}: `{key}` is required"));
                    }
                }
                let props = s["properties"].as_object();
                for (key, v) in map {
                    let field = format!("{at}.{key}");
                    match props.and_then(|p| p.get(key)) {
                        Some(p) => self.validate(p, v, &field, errors),
                        None => match &s["additionalProperties"] {
                            Value::Bool(false) => {
                                errors.push(format!("{at}: `{key}` is not allowed"))
                            }
                            extra @ Value::Object(_) => self.validate(extra, v, &field, errors),
                            _ => {}
                        },
                    }
                }
            }
            (Some(t), v) => errors.push(format!("{at}: expected {t}, found {v}")),
        }
    }

    fn string(&self, s: &Value, text: &str, at: &str, errors: &mut Vec<String>) {
        let len = text.chars().count() as u64;
        if s["minLength"].as_u64().is_some_and(|min| len < min) {
            errors.push(format!("{at}: `{text}` is shorter than {}", s["minLength"]));
        }
        if s["maxLength"].as_u64().is_some_and(|max| len > max) {
            errors.push(format!("{at}: `{text}` is longer than {}", s["maxLength"]));
        }
        if let Some(p) = s["pattern"].as_str() {
            let mut cache = self.patterns.lock().unwrap();
            let re = cache
                .entry(p.to_string())
                .or_insert_with(|| Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}")));
            if !re.is_match(text) {
                errors.push(format!("{at}: `{text}` does not match {p}"));
            }
        }
        let ok = match s["format"].as_str() {
            Some("date-time") => OffsetDateTime::parse(text, &Rfc3339).is_ok(),
            Some("date") => Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .is_ok(),
            Some("uri" | "url") => url_like(text),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: `{text}` is not a {}", s["format"]));
        }
    }
}

fn url_like(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
}

fn number(s: &Value, n: f64, at: &str, errors: &mut Vec<String>) {
    if s["minimum"].as_f64().is_some_and(|min| n < min) {
        errors.push(format!("{at}: {n} is below {}", s["minimum"]));
    }
    if s["maximum"].as_f64().is_some_and(|max| n > max) {
        errors.push(format!("{at}: {n} is above {}", s["maximum"]));
    }
}

/// The validator itself must refuse what the specifications refuse, or the schema tests
/// prove nothing.
#[test]
fn the_validator_refuses_what_the_specifications_refuse() {
    let spec = Spec::load("obie-account-info-3.1.11.json");
    let path = "/accounts/{AccountId}/balances";
    let good = serde_json::json!({
        "Data": {"Balance": [{
            "AccountId": "a1", "CreditDebitIndicator": "Credit", "Type": "InterimBooked",
            "DateTime": "2026-11-25T10:00:00+00:00", "Amount": {"Amount": "10.00", "Currency": "GBP"},
        }]},
        "Links": {"Self": "http://bank.example/balances"},
        "Meta": {"TotalPages": 1},
    });
    assert_eq!(spec.check(path, "get", 200, &good), Vec::<String>::new());
    let mutations: [(&str, Value); 6] = [
        ("/Data/Balance/0/Amount/Amount", "-10.00".into()),
        ("/Data/Balance/0/CreditDebitIndicator", "Both".into()),
        ("/Data/Balance/0/DateTime", "yesterday".into()),
        ("/Data/Balance/0/Amount/Currency", "pounds".into()),
        ("/Meta/TotalPages", "one".into()),
        ("/Links/Self", 7.into()),
    ];
    for (pointer, bad) in mutations {
        let mut v = good.clone();
        *v.pointer_mut(pointer).unwrap() = bad;
        assert!(
            !spec.check(path, "get", 200, &v).is_empty(),
            "{pointer} should be refused"
        );
    }
    let mut missing = good.clone();
    missing["Data"]["Balance"][0]
        .as_object_mut()
        .unwrap()
        .remove("Type");
    assert!(!spec.check(path, "get", 200, &missing).is_empty());
    let mut extra = good.clone();
    extra["Links"]["Elsewhere"] = "http://x.example".into();
    assert!(!spec.check(path, "get", 200, &extra).is_empty());
    let mut empty = good;
    empty["Data"]["Balance"] = serde_json::json!([]);
    assert!(!spec.check(path, "get", 200, &empty).is_empty(), "minItems");
}
