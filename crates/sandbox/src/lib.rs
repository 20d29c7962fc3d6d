//! The sandbox bank: OBIE 3.1, Berlin Group 1.3 and Open Finance Brasil over generated data.
//!
//! Not built yet (issue 3); the crate exists so the workspace and its lock file are stable
//! while it is.
