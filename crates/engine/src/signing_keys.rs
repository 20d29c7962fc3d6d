//! The keys Bud-dialect deliveries are signed with, as a node holds them.
//!
//! Keys live in the store, shared by every node: the first start on a database creates one,
//! and `POST /v1/admin/signing-keys/rotate` adds the next, which signs from then on while the
//! older ones stay in the JWKS for an overlap. Rendering is synchronous and happens on every
//! delivery, so a node signs from an in-memory copy that it refreshes from the store once it
//! is older than a short TTL, in the background; a rotation made on another node is picked
//! up within that TTL, and meanwhile the previous key — still published — keeps verifying.
//! The JWKS itself is always served from the store, so it never lags a rotation.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use freshet_dialects::{BudSigningKey, KeyError, jwks};
use freshet_store::{NewSigningKey, Store, StoreError, StoredSigningKey};
use serde_json::Value;
use time::OffsetDateTime;

/// How long retired keys stay published after a rotation, by default and at most.
pub const DEFAULT_OVERLAP: time::Duration = time::Duration::days(7);
pub const MAX_OVERLAP: time::Duration = time::Duration::days(30);
/// How long a node signs from its copy before re-reading the store.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

const ALGORITHM: &str = "ES256";

/// What can go wrong loading or rotating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not make a signing key: {0}")]
    Key(#[from] KeyError),
    #[error("stored signing key {0} is unreadable")]
    Corrupt(String),
    #[error("the overlap must be between 0 and 30 days")]
    Overlap,
}

/// The published keys at one moment; the last one signs.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<BudSigningKey>,
    /// When each key stops being published (`None` for the signing key).
    retires_at: Vec<Option<OffsetDateTime>>,
}

impl KeySet {
    fn from_stored(stored: Vec<StoredSigningKey>) -> Result<Self, KeysError> {
        let mut keys = Vec::with_capacity(stored.len());
        let mut retires_at = Vec::with_capacity(stored.len());
        for s in stored {
            let key = BudSigningKey::from_pkcs8(&s.private_key)
                .ok()
                .filter(|k| s.algorithm == ALGORITHM && k.kid() == s.kid)
                .ok_or_else(|| KeysError::Corrupt(s.kid.clone()))?;
            keys.push(key);
            retires_at.push(s.retires_at);
        }
        if keys.is_empty() {
            return Err(KeysError::Corrupt("(none stored)".into()));
        }
        Ok(Self { keys, retires_at })
    }

    /// A set of one key, for tests.
    #[cfg(test)]
    pub(crate) fn single(key: BudSigningKey) -> Self {
        Self {
            keys: vec![key],
            retires_at: vec![None],
        }
    }

    /// The key that signs now.
    pub fn signing(&self) -> &BudSigningKey {
        self.keys.last().expect("a key set is never empty")
    }

    /// The public keys as a JWK Set.
    pub fn jwks(&self) -> Value {
        jwks(&self.keys)
    }

    /// Each key's id and when it stops being published, oldest first.
    pub fn published(&self) -> impl Iterator<Item = (&str, Option<OffsetDateTime>)> {
        self.keys
            .iter()
            .map(BudSigningKey::kid)
            .zip(self.retires_at.iter().copied())
    }
}

struct Cached {
    set: Arc<KeySet>,
    fetched: Instant,
}

/// A node's signing keys.
pub struct SigningKeys {
    store: Store,
    ttl: Duration,
    cache: RwLock<Cached>,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Reads the keys, creating the first one if the database has none (safe when several
    /// nodes start at once: they all end up with the same key).
    pub async fn load(store: Store, ttl: Duration) -> Result<Arc<Self>, KeysError> {
        let now = freshet_model::time::now();
        let mut stored = store.signing_keys(now).await?;
        if stored.is_empty() {
            let key = BudSigningKey::generate()?;
            let created = store
                .insert_first_signing_key(&NewSigningKey {
                    kid: key.kid(),
                    algorithm: ALGORITHM,
                    private_key: key.pkcs8(),
                })
                .await?;
            if created {
                tracing::info!(kid = key.kid(), "created the first signing key");
            }
            stored = store.signing_keys(now).await?;
        }
        let set = Arc::new(KeySet::from_stored(stored)?);
        Ok(Arc::new(Self {
            store,
            ttl,
            cache: RwLock::new(Cached {
                set,
                fetched: Instant::now(),
            }),
            refreshing: AtomicBool::new(false),
        }))
    }

    /// The keys as this node holds them, without waiting; when the copy is older than the
    /// TTL a refresh from the store starts in the background.
    pub fn current(self: &Arc<Self>) -> Arc<KeySet> {
        let (set, stale) = {
            let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
            (c.set.clone(), c.fetched.elapsed() >= self.ttl)
        };
        if stale
            && let Ok(rt) = tokio::runtime::Handle::try_current()
            && !self.refreshing.swap(true, Ordering::AcqRel)
        {
            let this = self.clone();
            rt.spawn(async move {
                if let Err(e) = this.fresh().await {
                    tracing::warn!(error = %e, "refreshing the signing keys failed");
                }
                this.refreshing.store(false, Ordering::Release);
            });
        }
        set
    }

    /// The keys as stored now; the node's copy is replaced with them.
    pub async fn fresh(&self) -> Result<Arc<KeySet>, KeysError> {
        let stored = self.store.signing_keys(freshet_model::time::now()).await?;
        let set = Arc::new(KeySet::from_stored(stored)?);
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Cached {
            set: set.clone(),
            fetched: Instant::now(),
        };
        Ok(set)
    }

    /// Adds a new signing key; the keys before it stay published for `overlap`.
    pub async fn rotate(&self, overlap: time::Duration) -> Result<Arc<KeySet>, KeysError> {
        if overlap < time::Duration::ZERO || overlap > MAX_OVERLAP {
            return Err(KeysError::Overlap);
        }
        let key = BudSigningKey::generate()?;
        self.store
            .rotate_signing_key(
                &NewSigningKey {
                    kid: key.kid(),
                    algorithm: ALGORITHM,
                    private_key: key.pkcs8(),
                },
                freshet_model::time::now() + overlap,
            )
            .await?;
        tracing::info!(kid = key.kid(), "rotated the signing key");
        self.fresh().await
    }
}
