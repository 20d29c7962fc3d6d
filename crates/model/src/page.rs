//! Cursor pagination.
//!
//! Lists are ordered by id; ids are UUIDv7, so that order is creation order and stays stable
//! while rows are added. A cursor is the last id of a page, encoded opaquely so clients do not
//! build them by hand and the encoding can change without breaking anyone.

use serde::Serialize;
use uuid::Uuid;

/// The default and the largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// An opaque position in a list: "after this id".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    const PREFIX: &'static str = "c1_";

    /// The wire form.
    pub fn encode(&self) -> String {
        format!("{}{}", Self::PREFIX, self.0.simple())
    }

    /// Parses the wire form.
    pub fn decode(s: &str) -> Result<Self, &'static str> {
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or("is not a cursor returned by this API")?;
        Uuid::try_parse(hex)
            .map(Self)
            .map_err(|_| "is not a cursor returned by this API")
    }
}

/// Which page to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl PageRequest {
    /// The first page of the default size.
    pub fn first() -> Self {
        Self {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }

    /// Validates a client's `limit` and `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, (&'static str, String)> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => return Err(("limit", format!("must be between 1 and {MAX_LIMIT}"))),
        };
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(Cursor::decode)
            .transpose()
            .map_err(|m| ("cursor", m.to_string()))?;
        Ok(Self { after, limit })
    }
}

/// One page of a list, in the API's list shape `{data, next_cursor}`.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Present when more rows follow; pass it back as `cursor` to read them.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order: the extra row, if any,
    /// only says that another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| Cursor(id_of(r)).encode())
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }

    /// Converts the rows, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("abc").is_err());
        assert!(Cursor::decode("c1_zz").is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::parse(Some(0), None).unwrap_err().0, "limit");
        assert_eq!(
            PageRequest::parse(Some(MAX_LIMIT + 1), None).unwrap_err().0,
            "limit"
        );
        assert_eq!(PageRequest::parse(None, Some("x")).unwrap_err().0, "cursor");
        assert!(PageRequest::parse(None, Some("")).unwrap().after.is_none());
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_overfetch(ids.clone(), 2, |id| *id);
        assert_eq!(page.data.len(), 2);
        assert_eq!(page.next_cursor, Some(Cursor(ids[1]).encode()));
        let last = Page::from_overfetch(ids[..2].to_vec(), 2, |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
