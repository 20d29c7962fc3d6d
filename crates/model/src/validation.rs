//! Field-level validation errors.
//!
//! Parsing functions collect every problem with a request rather than stopping at the first, so
//! a client fixes its payload in one round trip. The API turns a [`Validation`] failure into
//! problem details whose `errors[]` names each offending field.

use serde::Serialize;

/// One problem with one field of an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the input, e.g. `external_info` or `products[2]`.
    pub field: String,
    /// What is wrong, in words a developer can act on.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An accumulator of field errors.
#[derive(Debug, Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Runs a parser over an optional field, recording its error under `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        value: Option<Result<T, E>>,
    ) -> Option<T> {
        match value {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                self.add(field, e.to_string());
                None
            }
            None => None,
        }
    }

    /// `Ok(value)` when nothing was recorded, otherwise every recorded error.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self.errors)
        }
    }
}
