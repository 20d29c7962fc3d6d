//! Webhook delivery: retry policy, outbound-target guard, HTTP sender and dispatchers.

pub mod dispatcher;
pub mod record;
pub mod render;
pub mod retry;
pub mod sender;
pub mod target;
