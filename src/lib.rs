//! offerlab: A/B experiments for upsell and cross-sell offers.
//!
//! The pure core (assignment, statistics, cycles, analysis) does no I/O;
//! storage hides behind [`store`]; the HTTP shell lives in [`http`]; the
//! `offerlab` binary (`src/main.rs`, `src/cli/`) parses flags and holds the
//! only HTTP client.

pub mod aggregates;
pub mod allocation;
pub mod analysis;
pub mod assignment;
pub mod attribution;
pub mod background;
pub mod backup;
pub mod bucketing;
pub mod capping;
pub mod charts;
pub mod clock;
pub mod config;
pub mod currency;
pub mod cycles;
pub mod experiment;
pub mod features;
pub mod floors;
pub mod format;
pub mod http;
pub mod ids;
pub mod notify;
pub mod offline;
pub mod records;
pub mod reporting;
pub mod segments;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod terminal;
pub mod tracking;
pub mod views;
pub mod warehouse;
pub mod wire;
