//! Small encodings the vendor formats share: their time formats, hex, base64url.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use time::{
    OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description,
};

/// `2017-12-22T05:47:35Z`: UTC, whole seconds (Bud, Yodlee).
const SECONDS_Z: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `2022-06-25T20:08:17.848Z`: UTC, milliseconds (Klavi).
const MILLIS_Z: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `t` in UTC to the second; finer precision is dropped, as the vendors show none.
pub(crate) fn seconds_z(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(SECONDS_Z)
}

/// `t` in UTC to the millisecond.
pub(crate) fn millis_z(t: OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(MILLIS_Z)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Base64url without padding (JOSE).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn times_are_utc_at_the_vendors_precision() {
        let t = datetime!(2022-06-25 22:08:17.848999 +02:00);
        assert_eq!(seconds_z(t).unwrap(), "2022-06-25T20:08:17Z");
        assert_eq!(millis_z(t).unwrap(), "2022-06-25T20:08:17.848Z");
        assert_eq!(
            millis_z(datetime!(2022-06-25 20:08:17 UTC)).unwrap(),
            "2022-06-25T20:08:17.000Z"
        );
    }

    #[test]
    fn hex_and_base64url() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url_decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(b64url_decode("-_8="), None);
    }
}
