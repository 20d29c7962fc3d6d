//! What every handler can reach.

use freshet_engine::{
    Engine, metrics::Exporter, products::Products, refresh::Refresher, signing_keys::SigningKeys,
    webhooks::Endpoints,
};
use std::sync::Arc;

use freshet_store::Store;

use crate::{auth::KeyCache, throttle::AuthThrottle};
use secrecy::SecretString;

/// Shared state of the API: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Engine,
    pub endpoints: Endpoints,
    pub refresher: Refresher,
    /// Builds data products and sends them to their callback URLs.
    pub products: Products,
    /// The keys Bud-dialect deliveries are signed with.
    pub signing_keys: Arc<SigningKeys>,
    /// Guards `/v1/applications`; `None` switches the admin API off.
    pub admin_token: Option<SecretString>,
    /// Recently verified API keys.
    pub keys: Arc<KeyCache>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<AuthThrottle>,
    /// Renders `/metrics`.
    pub exporter: Arc<Exporter>,
}
