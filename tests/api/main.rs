//! Black-box tests of the HTTP API: the real server on a random loopback
//! port, spoken to over real HTTP, storing in sled (`tests/api_postgres.rs`
//! runs the same tests on PostgreSQL).

/// Whether the servers these tests start store in PostgreSQL.
pub const ON_POSTGRES: bool = false;

mod admin;
mod allocation;
mod assign;
mod capping;
#[path = "../common/mod.rs"]
mod common;
mod fuzz;
mod helpers;
mod http;
mod keys;
mod pages;
mod track;
mod wire;
