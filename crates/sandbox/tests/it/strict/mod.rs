//! The strict sandbox over real HTTPS on loopback: each standard's whole secured flow
//! succeeds, and each thing a real bank refuses is refused with a reason that names it.

mod client;
mod flows;
mod refusals;
