//! The bank API standards freshet speaks: what the connectors implement and the sandbox bank
//! serves, named once for both.

use serde::{Deserialize, Serialize};

/// A bank API standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standard {
    /// UK Open Banking Read/Write Account and Transaction API 3.1.
    Obie,
    /// Berlin Group NextGenPSD2 XS2A 1.3.
    BerlinGroup,
    /// Open Finance Brasil (consents 2, accounts 2).
    OpenFinanceBrasil,
}

impl Standard {
    /// The serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Obie => "obie",
            Self::BerlinGroup => "berlin_group",
            Self::OpenFinanceBrasil => "open_finance_brasil",
        }
    }
}
