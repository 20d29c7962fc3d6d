//! Column codecs: how freshet's types are written to and read from each engine.
//!
//! PostgreSQL has native `uuid`, `timestamptz` and `jsonb`. SQLite has none: UUIDs are 16-byte
//! BLOBs (which sort like UUIDv7 ids), JSON is TEXT, and times are INTEGER microseconds since
//! the epoch — so they compare and sort correctly in SQL, which SQLite's text dates do not
//! when fractional digits vary. [`Ts`] binds a time in whichever form the engine wants, and
//! [`RowExt`] reads any column back the same way on both.

use serde::de::DeserializeOwned;
use sqlx::{
    Database, Encode, Postgres, Row, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgRow, PgTypeInfo},
    sqlite::{SqliteRow, SqliteTypeInfo},
    types::Json,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// A UTC time as a bind parameter.
#[derive(Clone, Copy, Debug)]
pub struct Ts(pub OffsetDateTime);

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode(freshet_model::time::to_unix_micros(self.0), buf)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// Typed column access that reads the same on both engines.
pub trait RowExt {
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error>;
    fn opt_i64(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn i64(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn bool(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn ts(&self, col: &str) -> Result<OffsetDateTime, sqlx::Error>;
    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>;
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>, sqlx::Error>;
}

macro_rules! row_ext_common {
    () => {
        fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_i64(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
            self.try_get(col)
        }
        fn text(&self, col: &str) -> Result<String, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
            self.try_get(col)
        }
        fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
            self.try_get(col)
        }
        fn i64(&self, col: &str) -> Result<i64, sqlx::Error> {
            self.try_get(col)
        }
        fn bool(&self, col: &str) -> Result<bool, sqlx::Error> {
            self.try_get(col)
        }
        fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>, sqlx::Error> {
            Ok(self.try_get::<Option<Json<T>>, _>(col)?.map(|j| j.0))
        }
    };
}

impl RowExt for SqliteRow {
    row_ext_common!();

    fn ts(&self, col: &str) -> Result<OffsetDateTime, sqlx::Error> {
        micros_to_time(col, self.try_get(col)?)
    }

    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        self.try_get::<Option<i64>, _>(col)?
            .map(|m| micros_to_time(col, m))
            .transpose()
    }
}

impl RowExt for PgRow {
    row_ext_common!();

    fn ts(&self, col: &str) -> Result<OffsetDateTime, sqlx::Error> {
        self.try_get(col)
    }

    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        self.try_get(col)
    }
}

fn micros_to_time(col: &str, micros: i64) -> Result<OffsetDateTime, sqlx::Error> {
    freshet_model::time::from_unix_micros(micros).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(e),
    })
}
