//! Time as freshet keeps it: UTC, microsecond precision.
//!
//! Both stores keep microseconds (PostgreSQL's `timestamptz` resolution), so values are
//! truncated once, here, and a time read back from either store equals the one written.

use time::OffsetDateTime;

/// The current instant in UTC, truncated to whole microseconds.
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

/// Drops sub-microsecond precision and normalises the offset to UTC.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000)
        .expect("a truncated nanosecond is always in range")
}

/// Microseconds since the Unix epoch: the SQLite representation of a timestamp.
pub fn to_unix_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The inverse of [`to_unix_micros`].
pub fn from_unix_micros(micros: i64) -> Result<OffsetDateTime, time::error::ComponentRange> {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let t = now();
        assert_eq!(from_unix_micros(to_unix_micros(t)).unwrap(), t);
        assert_eq!(t.nanosecond() % 1_000, 0);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = time::macros::datetime!(2026-11-24 10:00:00.123456789 +02:00);
        let u = truncate_to_micros(t);
        assert_eq!(u.offset(), time::UtcOffset::UTC);
        assert_eq!(u, time::macros::datetime!(2026-11-24 08:00:00.123456 UTC));
    }
}
