//! freshet's engines: the work that happens between API calls.
//!
//! The delivery engine (`delivery/`) turns the outbox into HTTP requests: events are recorded
//! in the transaction of the change they report, dispatchers claim due deliveries under a
//! lease, render them in the endpoint's dialect, sign, POST, record the attempt and
//! reschedule; [`Engine::start`] starts it for a node in one call. The refresh engine carries
//! out refresh tasks against the banks and schedules them. The products engine builds data
//! products from what refreshes stored and sends each to its callback URL through the same
//! outbox. Endpoint rules are in `webhooks`. Engines talk to the world through the store and
//! HTTP only, and each exposes a step a test can drive deterministically.

pub mod delivery;
mod handle;
pub mod metrics;
pub mod products;
pub mod refresh;
pub mod retention;
pub mod signing_keys;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

pub use handle::Engine;
