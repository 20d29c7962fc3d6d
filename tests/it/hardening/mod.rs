//! Regression tests for the faults an outside tester found (issue 17): each test is one fault,
//! shown the way the tester met it.

mod auth_throttle;
mod callback_logs;
mod limits;
mod nul;
mod outage;
mod ssrf;
