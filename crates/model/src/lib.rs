//! The canonical model of freshet: the types every other crate speaks.
//!
//! Banks, vendors and storage engines all have their own vocabularies; this crate is the one
//! place where freshet's own is defined — ids, customers, consent states, result codes, event
//! types — together with the parsing rules that turn untrusted input into these types. It is
//! pure: no I/O, no HTTP, no SQL, so the rules can be tested in isolation and shared by the
//! store, the engine, the dialects and the API without pulling any of them in.

pub mod consent;
pub mod customer;
pub mod erasure;
pub mod event;
pub mod events;
pub mod ids;
pub mod page;
pub mod products;
pub mod reconcile;
pub mod refresh;
pub mod result_code;
pub mod secret;
pub mod standard;
pub mod time;
pub mod validation;
pub mod webhooks;

pub use consent::ConsentStatus;
pub use customer::{
    Customer, CustomerFields, CustomerPatch, CustomerPatchFields, NewCustomer, Patch,
};
pub use event::EventType;
pub use ids::{ApplicationId, CustomerId, new_v7};
pub use page::{Cursor, Page, PageRequest};
pub use result_code::ResultCode;
pub use standard::Standard;
pub use validation::{FieldError, Validation};
