//! The sandbox bank over real HTTP: conformance to the standards' specifications, the
//! authorisation flow, the realism clients must cope with, and the control API.

mod answers;
mod harness;
mod openapi;
mod realism;
mod schemas;
mod strict;
