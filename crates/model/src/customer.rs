//! Customers: the people whose bank data an application refreshes.
//!
//! The fields beyond the id exist because vendors' webhooks echo them: `login_name` is Yodlee's
//! `loginName`, the tax ids and `external_info` are Klavi's `personalTaxId`, `businessTaxId`
//! and `externalInfo`. Parsing happens here so every entry point applies the same rules.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{
    ids::{ApplicationId, CustomerId},
    validation::{FieldError, Validation},
};

/// Longest `external_id` and `login_name` accepted.
pub const MAX_TEXT_LEN: usize = 255;
/// Largest `external_info`, serialised.
pub const MAX_EXTERNAL_INFO_BYTES: usize = 16 * 1024;

/// A stored customer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    pub application_id: ApplicationId,
    pub external_id: Option<String>,
    pub login_name: Option<String>,
    pub personal_tax_id: Option<String>,
    pub business_tax_id: Option<String>,
    pub external_info: Option<Map<String, Value>>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A customer's fields as a client sends them, before parsing.
#[derive(Clone, Debug, Default)]
pub struct CustomerFields {
    pub external_id: Option<String>,
    pub login_name: Option<String>,
    pub personal_tax_id: Option<String>,
    pub business_tax_id: Option<String>,
    pub external_info: Option<Value>,
}

/// A customer about to be created; every field already valid.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCustomer {
    pub external_id: Option<String>,
    pub login_name: Option<String>,
    pub personal_tax_id: Option<String>,
    pub business_tax_id: Option<String>,
    pub external_info: Option<Map<String, Value>>,
}

impl NewCustomer {
    /// Parses a client's fields, reporting every invalid one.
    pub fn parse(raw: CustomerFields) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let external_id = v.check("external_id", raw.external_id.map(|s| parse_text(&s)));
        let login_name = v.check("login_name", raw.login_name.map(|s| parse_text(&s)));
        let personal_tax_id = v.check(
            "personal_tax_id",
            raw.personal_tax_id
                .map(|s| parse_tax_id(&s, TaxIdKind::Personal)),
        );
        let business_tax_id = v.check(
            "business_tax_id",
            raw.business_tax_id
                .map(|s| parse_tax_id(&s, TaxIdKind::Business)),
        );
        let external_info = v.check("external_info", raw.external_info.map(parse_external_info));
        v.finish(|| Self {
            external_id,
            login_name,
            personal_tax_id,
            business_tax_id,
            external_info,
        })
    }
}

/// A field of a partial update: left alone, cleared, or set.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    /// Applies the patch to a current value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Absent => current,
            Self::Null => None,
            Self::Value(v) => Some(v),
        }
    }

    /// Parses the value, if one was given.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Self::Absent => Patch::Absent,
            Self::Null => Patch::Null,
            Self::Value(v) => Patch::Value(f(v)?),
        })
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only reached when the field is present; `#[serde(default)]` covers absence.
        Ok(match Option::<T>::deserialize(d)? {
            None => Self::Null,
            Some(v) => Self::Value(v),
        })
    }
}

/// The raw fields of a customer update.
#[derive(Clone, Debug, Default)]
pub struct CustomerPatchFields {
    pub external_id: Patch<String>,
    pub login_name: Patch<String>,
    pub personal_tax_id: Patch<String>,
    pub business_tax_id: Patch<String>,
    pub external_info: Patch<Value>,
}

/// A parsed customer update.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomerPatch {
    pub external_id: Patch<String>,
    pub login_name: Patch<String>,
    pub personal_tax_id: Patch<String>,
    pub business_tax_id: Patch<String>,
    pub external_info: Patch<Map<String, Value>>,
}

impl CustomerPatch {
    /// Parses a client's update, reporting every invalid field.
    pub fn parse(raw: CustomerPatchFields) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let mut field = |name: &str, r: Result<Patch<_>, String>| match r {
            Ok(p) => p,
            Err(e) => {
                v.add(name, e);
                Patch::Absent
            }
        };
        let external_id = field("external_id", raw.external_id.try_map(|s| parse_text(&s)));
        let login_name = field("login_name", raw.login_name.try_map(|s| parse_text(&s)));
        let personal_tax_id = field(
            "personal_tax_id",
            raw.personal_tax_id
                .try_map(|s| parse_tax_id(&s, TaxIdKind::Personal)),
        );
        let business_tax_id = field(
            "business_tax_id",
            raw.business_tax_id
                .try_map(|s| parse_tax_id(&s, TaxIdKind::Business)),
        );
        let external_info = match raw.external_info.try_map(parse_external_info) {
            Ok(p) => p,
            Err(e) => {
                v.add("external_info", e);
                Patch::Absent
            }
        };
        v.finish(|| Self {
            external_id,
            login_name,
            personal_tax_id,
            business_tax_id,
            external_info,
        })
    }

    /// Applies the update to a customer.
    pub fn apply(self, c: &mut Customer) {
        c.external_id = self.external_id.apply(c.external_id.take());
        c.login_name = self.login_name.apply(c.login_name.take());
        c.personal_tax_id = self.personal_tax_id.apply(c.personal_tax_id.take());
        c.business_tax_id = self.business_tax_id.apply(c.business_tax_id.take());
        c.external_info = self.external_info.apply(c.external_info.take());
    }
}

/// Free text used as an identifier: trimmed, non-empty, bounded, no control characters.
fn parse_text(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().count() > MAX_TEXT_LEN {
        return Err(format!("must be at most {MAX_TEXT_LEN} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

#[derive(Clone, Copy)]
enum TaxIdKind {
    /// Brazil's CPF: 11 digits.
    Personal,
    /// Brazil's CNPJ: 14 digits.
    Business,
}

/// Brazilian tax ids, accepted with or without their usual punctuation and stored as digits.
fn parse_tax_id(s: &str, kind: TaxIdKind) -> Result<String, String> {
    let (digits_wanted, name) = match kind {
        TaxIdKind::Personal => (11, "a CPF"),
        TaxIdKind::Business => (14, "a CNPJ"),
    };
    let mut digits = String::with_capacity(digits_wanted);
    for c in s.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '.' | '-' | '/' | ' ' => {}
            _ => {
                return Err(format!(
                    "must be {name}: digits, optionally with . - / separators"
                ));
            }
        }
    }
    if digits.len() != digits_wanted {
        return Err(format!("must be {name} of {digits_wanted} digits"));
    }
    Ok(digits)
}

/// `external_info` is echoed verbatim in Klavi events, so it must be a JSON object of bounded size.
fn parse_external_info(v: Value) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(map) => {
            let size = serde_json::to_vec(&map)
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if size > MAX_EXTERNAL_INFO_BYTES {
                Err(format!(
                    "must be at most {MAX_EXTERNAL_INFO_BYTES} bytes of JSON"
                ))
            } else {
                Ok(map)
            }
        }
        _ => Err("must be a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn valid_fields_parse_and_normalise() {
        let c = NewCustomer::parse(CustomerFields {
            external_id: Some("  user-42 ".into()),
            login_name: Some("fri21".into()),
            personal_tax_id: Some("258.722.521-37".into()),
            business_tax_id: Some("12.345.678/0001-95".into()),
            external_info: Some(json!({"myTraceId": "yourTraceId-1"})),
        })
        .unwrap();
        assert_eq!(c.external_id.as_deref(), Some("user-42"));
        assert_eq!(c.personal_tax_id.as_deref(), Some("25872252137"));
        assert_eq!(c.business_tax_id.as_deref(), Some("12345678000195"));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errs = NewCustomer::parse(CustomerFields {
            external_id: Some("   ".into()),
            login_name: Some("x".repeat(MAX_TEXT_LEN + 1)),
            personal_tax_id: Some("1234".into()),
            business_tax_id: Some("abc".into()),
            external_info: Some(json!([1, 2])),
        })
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "external_id",
                "login_name",
                "personal_tax_id",
                "business_tax_id",
                "external_info"
            ]
        );
    }

    #[test]
    fn oversized_external_info_is_refused() {
        let big = json!({"k": "x".repeat(MAX_EXTERNAL_INFO_BYTES)});
        let errs = NewCustomer::parse(CustomerFields {
            external_info: Some(big),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(errs[0].field, "external_info");
    }

    #[test]
    fn patch_distinguishes_absent_null_and_value() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default)]
            a: Patch<String>,
            #[serde(default)]
            b: Patch<String>,
            #[serde(default)]
            c: Patch<String>,
        }
        let p: P = serde_json::from_value(json!({"b": null, "c": "x"})).unwrap();
        assert_eq!(p.a, Patch::Absent);
        assert_eq!(p.b, Patch::Null);
        assert_eq!(p.c, Patch::Value("x".into()));
        assert_eq!(Patch::<u8>::Absent.apply(Some(1)), Some(1));
        assert_eq!(Patch::<u8>::Null.apply(Some(1)), None);
        assert_eq!(Patch::Value(2).apply(Some(1)), Some(2));
    }

    #[test]
    fn patch_validates_only_given_fields() {
        let patch = CustomerPatch::parse(CustomerPatchFields {
            personal_tax_id: Patch::Value("nope".into()),
            login_name: Patch::Null,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(patch.len(), 1);
        assert_eq!(patch[0].field, "personal_tax_id");
    }
}
