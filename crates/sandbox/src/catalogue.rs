//! The banks the sandbox plays, and where each standard's endpoints live under them.

use serde::Serialize;

pub use freshet_model::Standard;

/// Where a standard's API sits under a bank's root.
fn api_path(standard: Standard) -> &'static str {
    match standard {
        Standard::Obie => "/open-banking/v3.1/aisp",
        Standard::BerlinGroup | Standard::OpenFinanceBrasil => "",
    }
}

/// One sandbox bank.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Bank {
    /// freshet's provider id, also the bank's path segment.
    pub id: &'static str,
    pub name: &'static str,
    pub code: &'static str,
    /// A stable integer id (Yodlee's `providerId`).
    pub numeric_id: i64,
    pub standard: Standard,
    /// ISO 3166 country.
    pub country: &'static str,
    /// Currencies its accounts are held in, the first the usual one.
    #[serde(skip)]
    pub currencies: &'static [&'static str],
    /// BIC (Berlin Group) or COMPE code and CNPJ (Brasil), for account details.
    #[serde(skip)]
    pub institution: &'static str,
}

/// The five sandbox banks of DESIGN.md section 6.
pub const BANKS: [Bank; 5] = [
    Bank {
        id: "natwest",
        name: "Natwest",
        code: "NWB",
        numeric_id: 10_001,
        standard: Standard::Obie,
        country: "GB",
        currencies: &["GBP", "EUR", "USD"],
        institution: "NWBKGB2L",
    },
    Bank {
        id: "lloyds",
        name: "Lloyds",
        code: "LOY",
        numeric_id: 10_002,
        standard: Standard::Obie,
        country: "GB",
        currencies: &["GBP", "EUR"],
        institution: "LOYDGB2L",
    },
    Bank {
        id: "tatrabanka",
        name: "Tatra banka",
        code: "TB",
        numeric_id: 20_001,
        standard: Standard::BerlinGroup,
        country: "SK",
        currencies: &["EUR", "CZK", "USD"],
        institution: "TATRSKBX",
    },
    Bank {
        id: "slsp",
        name: "Slovenská sporiteľňa",
        code: "SLSP",
        numeric_id: 20_002,
        standard: Standard::BerlinGroup,
        country: "SK",
        currencies: &["EUR", "CZK"],
        institution: "GIBASKBX",
    },
    Bank {
        id: "santander-br",
        name: "Santander Brasil",
        code: "033",
        numeric_id: 30_001,
        standard: Standard::OpenFinanceBrasil,
        country: "BR",
        currencies: &["BRL"],
        institution: "90400888000142",
    },
];

/// The bank with this id.
pub fn bank(id: &str) -> Option<&'static Bank> {
    BANKS.iter().find(|b| b.id == id)
}

/// Where a bank's endpoints are, relative to the sandbox root (e.g. `/sandbox`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub api_base: String,
    pub authorize: String,
    pub token: String,
}

impl Bank {
    /// This bank's endpoints under `root`, the sandbox's base URL or path.
    pub fn paths(&self, root: &str) -> Paths {
        let root = root.trim_end_matches('/');
        Paths {
            api_base: format!("{root}/{}{}", self.id, api_path(self.standard)),
            authorize: format!("{root}/{}/authorize", self.id),
            token: format!("{root}/{}/token", self.id),
        }
    }
}
