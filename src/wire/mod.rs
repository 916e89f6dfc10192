//! The API's replies as they travel: versioned types built from the domain,
//! apart from it, so that renaming a field inside offerlab cannot change
//! what a storefront, a dashboard, the simulator or `offerlab report`
//! reads. The server writes these types, and every reader in this crate
//! (the simulator, the terminal report, the tests) reads them.
//!
//! [`v1`] is what `/v1/…` and `/api/v1/…` answer. A change a reader could
//! trip on (a field removed, renamed or retyped) is a new module beside it;
//! a new optional field is not.

pub mod v1;
