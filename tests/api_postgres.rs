//! The black-box HTTP API suite of `tests/api/` again, with every server
//! it starts storing in PostgreSQL (one throwaway server for the suite, a
//! new database per test): the API behaves the same on both stores.

/// Whether the servers these tests start store in PostgreSQL.
pub const ON_POSTGRES: bool = true;

#[path = "api/admin.rs"]
mod admin;
#[path = "api/allocation.rs"]
mod allocation;
#[path = "api/assign.rs"]
mod assign;
#[path = "api/capping.rs"]
mod capping;
#[path = "common/mod.rs"]
mod common;
#[path = "api/fuzz.rs"]
mod fuzz;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/http.rs"]
mod http;
#[path = "api/keys.rs"]
mod keys;
#[path = "api/pages.rs"]
mod pages;
#[path = "api/track.rs"]
mod track;
#[path = "api/wire.rs"]
mod wire;
