//! The HTTP shell: building and running the service ([`startup`]), what
//! handlers share ([`state`]), the handlers ([`routes`]: parse, call, map
//! errors), every error mapped to a status once ([`error`]), access keys
//! ([`auth`]), the layers around every request ([`middleware`]), the
//! Prometheus counters ([`metrics`]) and scheduled backups ([`backups`]).

pub mod auth;
pub mod backups;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod routes;
pub mod startup;
pub mod state;
