//! Reading bank answers into typed structs.
//!
//! Each standard's answers are declared in its own `wire` module after its official OpenAPI
//! document (`specs/`). This module holds what they share: the parse that names the JSON path
//! of the first field that does not fit, the field types the standards have in common (amounts
//! as decimal strings, dates, date-times), and the paging helper that drops rows a bank repeats
//! across pages. A bank answer that breaks its standard ends the call with
//! [`ResultCode::ProviderFailure`] and a detail naming the field; it never becomes a default
//! value or a silently skipped row, which the refresh would take for the bank's truth.

use freshet_model::ResultCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;
use time::{
    Date, OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339,
    macros::format_description,
};

use crate::BankError;

/// Reads a bank answer as `T`; `what` names the answer in the detail, e.g. `OBIE accounts`.
pub fn parse<T: DeserializeOwned>(what: &str, body: &Value) -> Result<T, BankError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        malformed(what, &path, &inner)
    })
}

/// The failure for an answer that breaks its standard at `path`.
pub fn malformed(what: &str, path: &str, problem: &str) -> BankError {
    // serde reports a missing field at the object that lacks it; name the field itself.
    let detail = match missing_field(problem) {
        Some(field) if path == "." => format!("{what}: {field}: missing field"),
        Some(field) => format!("{what}: {path}.{field}: missing field"),
        None if path == "." => format!("{what}: {problem}"),
        None => format!("{what}: {path}: {problem}"),
    };
    BankError::new(ResultCode::ProviderFailure, detail)
}

fn missing_field(problem: &str) -> Option<&str> {
    problem
        .strip_prefix("missing field `")?
        .strip_suffix('`')
        .filter(|f| !f.contains('`'))
}

/// Takes the rows of the array at `pointer` out of a page, to pair with their parsed forms.
pub fn raw_rows(page: &mut Value, pointer: &str) -> Vec<Value> {
    page.pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default()
}

/// Appends a page of rows, leaving out those repeated from the page before: banks repeat
/// rows across page boundaries, and a repeated row is the same row, not a twin. Genuine
/// twins differ in their ids, so equality of the whole row as the bank sent it (every field,
/// declared or not) is the test; each row travels with what freshet read from it.
pub fn extend_page<T>(
    rows: &mut Vec<(Value, T)>,
    previous: usize,
    page: impl IntoIterator<Item = (Value, T)>,
) -> usize {
    let start = rows.len();
    for row in page {
        if !rows[previous..start].iter().any(|(raw, _)| *raw == row.0) {
            rows.push(row);
        }
    }
    start
}

/// What makes a row that parsed unusable: the field (relative to the row) and the problem.
pub type FieldError = (&'static str, String);

/// Converts each parsed row of a list, naming the row in a failure: `list` is the path of the
/// array in the answer, e.g. `Data.Transaction`.
pub fn convert_rows<T, U>(
    what: &str,
    list: &str,
    parsed: Vec<T>,
    convert: impl Fn(T) -> Result<U, FieldError>,
) -> Result<Vec<U>, BankError> {
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            convert(row).map_err(|(field, problem)| {
                malformed(what, &format!("{list}[{i}].{field}"), &problem)
            })
        })
        .collect()
}

/// Rows read from a page, each with the JSON it was read from, for [`extend_page`].
pub type Rows<U> = Vec<(Value, U)>;

/// A page's rows and the link to the next page, if any.
pub type PageRows<U> = (Rows<U>, Option<String>);

/// Pairs each converted row of a page with the JSON it was read from.
pub fn with_raw<U>(raw: Vec<Value>, rows: Vec<U>) -> Rows<U> {
    debug_assert_eq!(raw.len(), rows.len(), "rows parsed from this JSON");
    raw.into_iter().zip(rows).collect()
}

/// An error body read for what it can tell, or nothing: the HTTP status already says the
/// call failed, and a body that breaks its schema must not turn that into another failure.
pub fn lenient<T: DeserializeOwned + Default>(body: &Value) -> T {
    T::deserialize(body).unwrap_or_default()
}

/// A signed amount sent as a decimal string (`"-12.30"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed(pub Decimal);

/// An amount the standard sends without a sign, next to a credit/debit indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsigned(pub Decimal);

fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let raw = String::deserialize(d)?;
    raw.trim()
        .parse::<Decimal>()
        .map_err(|_| serde::de::Error::custom(format!("invalid amount `{raw}`")))
}

impl<'de> Deserialize<'de> for Signed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        decimal(d).map(Self)
    }
}

impl<'de> Deserialize<'de> for Unsigned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = decimal(d)?;
        if v.is_sign_negative() && !v.is_zero() {
            return Err(serde::de::Error::custom(format!(
                "amount `{v}` has a sign where the standard sends none"
            )));
        }
        Ok(Self(v))
    }
}

/// An ISO 8601 date-time. The standards demand an offset; a bank that leaves it out is
/// read as UTC, since the date is what a refresh needs and it is the one written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    /// The calendar date as the bank wrote it, in the bank's own offset.
    pub fn date(self) -> Date {
        self.0.date()
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        timestamp(&raw)
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid date-time `{raw}`")))
    }
}

fn timestamp(raw: &str) -> Option<OffsetDateTime> {
    const NAIVE: &[time::format_description::FormatItem<'static>] = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    OffsetDateTime::parse(raw, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(raw, NAIVE)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })
}

/// An ISO 8601 calendar date (`2026-11-20`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ymd(pub Date);

impl<'de> Deserialize<'de> for Ymd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Date::parse(&raw, YMD)
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("invalid date `{raw}`")))
    }
}

/// `[year]-[month]-[day]`, the date format of query parameters and date fields.
pub const YMD: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Row {
        amount: Signed,
        when: Option<Timestamp>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Page {
        rows: Vec<Row>,
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let body = json!({"rows": [{"amount": "1.00"}, {"when": "2026-11-20T10:00:00Z"}]});
        let err = parse::<Page>("Test rows", &body).unwrap_err();
        assert_eq!(err.result, ResultCode::ProviderFailure);
        assert_eq!(err.detail, "Test rows: rows[1].amount: missing field");
        let err = parse::<Page>("Test rows", &json!({})).unwrap_err();
        assert_eq!(err.detail, "Test rows: rows: missing field");
    }

    #[test]
    fn a_malformed_field_is_named_with_its_path() {
        let body = json!({"rows": [{"amount": "1.00"}, {"amount": "ten"}]});
        let err = parse::<Page>("Test rows", &body).unwrap_err();
        assert_eq!(
            err.detail,
            "Test rows: rows[1].amount: invalid amount `ten`"
        );
        let body = json!({"rows": [{"amount": 1.5}]});
        let err = parse::<Page>("Test rows", &body).unwrap_err();
        assert!(
            err.detail
                .starts_with("Test rows: rows[0].amount: invalid type"),
            "{}",
            err.detail
        );
        let body = json!({"rows": [{"amount": "1", "when": "yesterday"}]});
        let err = parse::<Page>("Test rows", &body).unwrap_err();
        assert_eq!(
            err.detail,
            "Test rows: rows[0].when: invalid date-time `yesterday`"
        );
    }

    #[test]
    fn unsigned_amounts_refuse_a_sign() {
        let u: Unsigned = serde_json::from_value(json!("12.30")).unwrap();
        assert_eq!(u.0, Decimal::new(1230, 2));
        assert!(serde_json::from_value::<Unsigned>(json!("-12.30")).is_err());
        assert!(serde_json::from_value::<Unsigned>(json!("")).is_err());
        let s: Signed = serde_json::from_value(json!("-12.30")).unwrap();
        assert_eq!(s.0, Decimal::new(-1230, 2));
    }

    #[test]
    fn date_times_with_or_without_an_offset() {
        let t: Timestamp = serde_json::from_value(json!("2026-11-20T23:30:00-03:00")).unwrap();
        assert_eq!(t.date(), date!(2026 - 11 - 20), "the bank's own date");
        let t: Timestamp = serde_json::from_value(json!("2026-11-20T10:00:00.123Z")).unwrap();
        assert_eq!(t.0, datetime!(2026-11-20 10:00:00.123 UTC));
        let t: Timestamp = serde_json::from_value(json!("2026-11-20T10:00:00")).unwrap();
        assert_eq!(t.0, datetime!(2026-11-20 10:00:00 UTC));
        assert!(serde_json::from_value::<Timestamp>(json!("2026-11-20")).is_err());
        let d: Ymd = serde_json::from_value(json!("2026-02-28")).unwrap();
        assert_eq!(d.0, date!(2026 - 02 - 28));
        assert!(serde_json::from_value::<Ymd>(json!("2026-02-30")).is_err());
    }

    #[test]
    fn repeated_rows_are_dropped_and_twins_kept() {
        let a = json!({"id": "a", "amount": "1"});
        let b = json!({"id": "b", "amount": "1"});
        let mut rows = Vec::new();
        let previous = extend_page(&mut rows, 0, [(a.clone(), 1), (b.clone(), 2)]);
        extend_page(&mut rows, previous, [(b.clone(), 2), (a.clone(), 3)]);
        // Both rows of the second page repeat the first.
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 2]);
        let mut rows = Vec::new();
        let previous = extend_page(&mut rows, 0, [(a.clone(), 1), (a.clone(), 2)]);
        assert_eq!(rows.len(), 2, "twins on one page both stay");
        extend_page(&mut rows, previous, [(b, 3)]);
        assert_eq!(rows.len(), 3);
    }
}
