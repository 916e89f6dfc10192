//! Black-box tests of the HTTP API: the real server on a random loopback
//! port, spoken to over real HTTP.

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
