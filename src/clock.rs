//! The time the service runs at: the wall clock when serving, or one fixed
//! instant (`serve --now`), so that a test (or a demo of a past period)
//! never depends on today's date or on when midnight falls.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The wall clock.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => *at,
        }
    }
}
