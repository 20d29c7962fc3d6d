//! Webhook delivery, the whole outbox: everything between "this happened" and a receiver's
//! answer being on record.
//!
//! - [`outbox`]: [`Engine::start`](crate::Engine::start), the one call that starts a node's
//!   delivery (event writer, hand-off, dispatcher and what it needs).
//! - [`transaction`]: recording events in a caller's transaction; committing it hands what it
//!   recorded to the dispatcher in the same step.
//! - [`record`]: the writes themselves: group commit for events recorded on their own, and
//!   deliveries written already leased and handed straight to this node's dispatcher.
//! - [`dispatcher`]: claiming due deliveries, sending them and writing the attempt log.
//! - [`partitions`]: which outbox partitions this node holds, so nodes claim apart, and
//!   the announcements that wake a partition's holder.
//! - [`limits`]: an endpoint's `rate_limit` and `max_in_flight`, kept by its partition's holder.
//! - [`render`]: a claimed delivery rendered in its endpoint's dialect and signed.
//! - [`sender`]: the HTTP client; [`target`]: the guard on where it may connect.
//! - [`retry`]: retry schedules and what follows an attempt.
//! - [`disable`]: disabling an endpoint that fails for too long.
//! - [`replay`]: test events and replays a client asks for.
//!
//! The rules for what an endpoint may be are in [`crate::webhooks`].

pub mod disable;
pub mod dispatcher;
pub mod limits;
pub mod outbox;
pub mod partitions;
pub mod record;
pub mod render;
pub mod replay;
pub mod retry;
pub mod sender;
pub mod target;
pub mod transaction;
