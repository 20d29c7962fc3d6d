//! Typed identifiers.
//!
//! Every entity id is a UUIDv7 (time-ordered, so ids double as a stable sort key for cursor
//! paging) wrapped in its own type, so a customer id can never be passed where an application
//! id is expected.

use uuid::Uuid;

/// A fresh UUIDv7 for the current instant.
pub fn new_v7() -> Uuid {
    Uuid::now_v7()
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self($crate::ids::new_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl From<::uuid::Uuid> for $name {
            fn from(id: ::uuid::Uuid) -> Self {
                Self(id)
            }
        }
    };
}

pub(crate) use id_type;

id_type!(
    /// An application (tenant): the owner of API keys, customers and webhook endpoints.
    ApplicationId
);
id_type!(
    /// A customer of an application: the person whose banks are refreshed.
    CustomerId
);
id_type!(
    /// An API key's own id (not the secret).
    ApiKeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_time_ordered() {
        let a = CustomerId::new();
        let b = CustomerId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b, "UUIDv7 ids must sort in creation order");
    }

    #[test]
    fn ids_round_trip_through_text() {
        let a = ApplicationId::new();
        assert_eq!(a.to_string().parse::<ApplicationId>().unwrap(), a);
        assert!("not-a-uuid".parse::<ApplicationId>().is_err());
    }
}
