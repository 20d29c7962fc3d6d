//! Secrets sealed at rest: bank tokens, webhook secrets, security headers and signing keys are
//! never written to the database in clear.
//!
//! Two levels of keys. A *data key* (AES-256-GCM) seals each secret column value; data keys
//! live in the `keys` table only wrapped (sealed) by the operator's *master key*, which the
//! database never sees. Rotating the master key therefore rewraps a few data keys instead of
//! rewriting every secret, and a copy of the database without the master key reveals nothing.
//!
//! A sealed value is text, `v1:<data key id>:<base64 of nonce ‖ ciphertext ‖ tag>`, with the
//! table, column and row it belongs to as associated data: a value copied into another row or
//! column no longer opens. A value without the `v1:` prefix is plaintext left by a freshet that
//! did not seal yet; it is read as is and sealed by the next start's sweep (see `keys.rs`).

use std::{collections::HashMap, fmt};

use base64::{Engine as _, engine::general_purpose::STANDARD_NO_PAD as B64};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};

/// The prefix of every sealed value, naming the format's version.
pub(crate) const PREFIX: &str = "v1:";

/// Bytes in a master or data key (AES-256).
pub const KEY_LEN: usize = 32;

/// Where the development profile keeps a generated master key: next to the SQLite database
/// (or in the working directory for PostgreSQL).
pub const MASTER_KEY_FILE: &str = "freshet-master-key";

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A master key that is not the base64 of 32 bytes.
    #[error(
        "the master key must be the base64 of 32 random bytes (`freshet keys new FILE` writes one)"
    )]
    BadMasterKey,
    /// The master key given wraps none of the database's data keys.
    #[error(
        "the master key given (fingerprint {given}) does not open this database's data keys, \
         which are wrapped by master key {expected}: wrong key file or FRESHET_MASTER_KEY, or \
         the key was rotated since this node was configured; nothing was changed"
    )]
    WrongMasterKey { given: String, expected: String },
    /// A wrapped data key does not open with the master key its row names.
    #[error(
        "data key {0} does not open with the master key that claims to wrap it: the keys table is damaged"
    )]
    Unwrap(String),
    /// A sealed value names a data key this node does not hold.
    #[error("a sealed value of {0} names data key {1}, which this database does not have")]
    UnknownKey(String, String),
    /// A sealed value did not open: damaged, or moved from another row or column.
    #[error("the sealed value of {0} does not open: damaged, or copied from another row")]
    Open(String),
    /// The store was used before a master key was given to it.
    #[error("the store has no master key: secrets can be neither read nor written")]
    Locked,
    /// The system's random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// The operator's key, which wraps the data keys. Never printed: its `Debug` shows only the
/// fingerprint, which identifies it without revealing it.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// Reads a key written as base64 (surrounding whitespace ignored), as in a key file or
    /// `FRESHET_MASTER_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::BadMasterKey)?;
        Ok(Self(bytes.try_into().map_err(|_| KeyError::BadMasterKey)?))
    }

    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(random_key()?))
    }

    /// The key as base64, for a key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// A short public name of the key: which master key wraps a data key is recorded by it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"freshet master key fingerprint\0")
            .chain_update(self.0)
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aead(&self) -> LessSafeKey {
        aead_key(&self.0)
    }

    /// Seals a data key for the `keys` table.
    pub(crate) fn wrap_data_key(
        &self,
        id: &str,
        data_key: &[u8; KEY_LEN],
    ) -> Result<String, KeyError> {
        let sealed = seal_raw(&self.aead(), &wrap_aad(id), data_key)?;
        Ok(B64.encode(sealed))
    }

    /// Opens a data key from the `keys` table.
    pub(crate) fn unwrap_data_key(
        &self,
        id: &str,
        wrapped: &str,
    ) -> Result<[u8; KEY_LEN], KeyError> {
        let fail = || KeyError::Unwrap(id.to_string());
        let bytes = B64.decode(wrapped).map_err(|_| fail())?;
        let plain = open_raw(&self.aead(), &wrap_aad(id), bytes).ok_or_else(fail)?;
        plain.try_into().map_err(|_| fail())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

fn wrap_aad(id: &str) -> Vec<u8> {
    format!("freshet data key {id}").into_bytes()
}

/// Where a sealed value lives; bound into its ciphertext so it opens only there.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl Place<'_> {
    fn aad(&self, key_id: &str) -> Vec<u8> {
        format!(
            "freshet:v1:{key_id}:{}.{}:{}",
            self.table, self.column, self.row
        )
        .into_bytes()
    }

    fn name(&self) -> String {
        format!("{}.{} of {}", self.table, self.column, self.row)
    }
}

/// The unwrapped data keys a node seals and opens with; the newest seals.
pub struct Keyring {
    sealing: String,
    keys: HashMap<String, LessSafeKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("sealing", &self.sealing)
            .field("keys", &ids)
            .finish()
    }
}

impl Keyring {
    /// A keyring from unwrapped data keys; `sealing` must be one of them.
    pub(crate) fn new(sealing: String, keys: Vec<(String, [u8; KEY_LEN])>) -> Self {
        Self {
            sealing,
            keys: keys
                .iter()
                .map(|(id, k)| (id.clone(), aead_key(k)))
                .collect(),
        }
    }

    /// Seals `plain` for `at`.
    pub(crate) fn seal(&self, at: Place<'_>, plain: &[u8]) -> Result<String, KeyError> {
        let key = self.keys.get(&self.sealing).ok_or(KeyError::Locked)?;
        let sealed = seal_raw(key, &at.aad(&self.sealing), plain)?;
        Ok(format!("{PREFIX}{}:{}", self.sealing, B64.encode(sealed)))
    }

    /// Seals a text value, if any.
    pub(crate) fn seal_opt(
        &self,
        at: Place<'_>,
        plain: Option<&str>,
    ) -> Result<Option<String>, KeyError> {
        plain.map(|p| self.seal(at, p.as_bytes())).transpose()
    }

    /// Opens what [`Keyring::seal`] made; a value without the prefix is plaintext from before
    /// sealing and is returned as is.
    pub(crate) fn open(&self, at: Place<'_>, stored: &[u8]) -> Result<Vec<u8>, KeyError> {
        let Some(rest) = stored.strip_prefix(PREFIX.as_bytes()) else {
            return Ok(stored.to_vec());
        };
        let fail = || KeyError::Open(at.name());
        let rest = std::str::from_utf8(rest).map_err(|_| fail())?;
        let (id, body) = rest.split_once(':').ok_or_else(fail)?;
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| KeyError::UnknownKey(at.name(), id.to_string()))?;
        let bytes = B64.decode(body).map_err(|_| fail())?;
        open_raw(key, &at.aad(id), bytes).ok_or_else(fail)
    }

    /// Opens a text column, for row mappers.
    pub(crate) fn open_text(&self, at: Place<'_>, stored: String) -> Result<String, sqlx::Error> {
        let plain = self.open(at, stored.as_bytes()).map_err(decode_error)?;
        String::from_utf8(plain).map_err(|_| decode_error(KeyError::Open(at.name())))
    }

    /// Opens an optional text column, for row mappers.
    pub(crate) fn open_opt_text(
        &self,
        at: Place<'_>,
        stored: Option<String>,
    ) -> Result<Option<String>, sqlx::Error> {
        stored.map(|s| self.open_text(at, s)).transpose()
    }
}

/// Whether a stored value is sealed (rather than plaintext from before sealing).
pub(crate) fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX.as_bytes())
}

fn decode_error(e: KeyError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// A new random key, for a data key or a master key.
pub(crate) fn random_key() -> Result<[u8; KEY_LEN], KeyError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyError::Random)?;
    Ok(key)
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is AES-256's key length"),
    )
}

/// `nonce ‖ ciphertext ‖ tag`, under a random nonce: 96 random bits stay far from colliding
/// for the number of secrets one data key seals.
fn seal_raw(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError::Random)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| KeyError::Random)?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn open_raw(key: &LessSafeKey, aad: &[u8], mut sealed: Vec<u8>) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let mut body = sealed.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&sealed).ok()?;
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut body).ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new("k1".into(), vec![("k1".into(), random_key().unwrap())])
    }

    const AT: Place<'static> = Place {
        table: "consents",
        column: "access_token",
        row: "row-1",
    };

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let keys = ring();
        let sealed = keys.seal(AT, b"token-123").unwrap();
        assert!(sealed.starts_with("v1:k1:"), "{sealed}");
        assert!(!sealed.contains("token-123"));
        assert_eq!(keys.open(AT, sealed.as_bytes()).unwrap(), b"token-123");
        let other_row = Place { row: "row-2", ..AT };
        assert!(matches!(
            keys.open(other_row, sealed.as_bytes()),
            Err(KeyError::Open(_))
        ));
        let other_column = Place {
            column: "refresh_token",
            ..AT
        };
        assert!(keys.open(other_column, sealed.as_bytes()).is_err());
        // Another keyring (another database) holds another key under the same id.
        assert!(ring().open(AT, sealed.as_bytes()).is_err());
        // One changed character is refused.
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.open(AT, &tampered).is_err());
    }

    #[test]
    fn plaintext_from_before_sealing_reads_as_is() {
        assert_eq!(ring().open(AT, b"whsec_abc").unwrap(), b"whsec_abc");
        assert!(!is_sealed(b"whsec_abc"));
    }

    #[test]
    fn master_keys_wrap_data_keys_and_print_only_their_fingerprint() {
        let master = MasterKey::generate().unwrap();
        let data = random_key().unwrap();
        let wrapped = master.wrap_data_key("d1", &data).unwrap();
        assert_eq!(master.unwrap_data_key("d1", &wrapped).unwrap(), data);
        assert!(master.unwrap_data_key("d2", &wrapped).is_err());
        assert!(
            MasterKey::generate()
                .unwrap()
                .unwrap_data_key("d1", &wrapped)
                .is_err()
        );

        let again = MasterKey::from_base64(&format!(" {}\n", master.to_base64())).unwrap();
        assert_eq!(again.fingerprint(), master.fingerprint());
        assert_eq!(
            format!("{master:?}"),
            format!("MasterKey({})", master.fingerprint())
        );
        assert!(!format!("{master:?}").contains(&master.to_base64()));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
