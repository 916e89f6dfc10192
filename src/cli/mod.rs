//! The command line's side of talking to a running offerlab over HTTP:
//! the typed client ([`client`]) and the simulator's storefront
//! ([`simulate`]). Only the `offerlab` binary builds these; the library
//! holds no HTTP client.

pub mod client;
pub mod simulate;
