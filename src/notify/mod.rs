//! Notifications: a signed webhook when a test's verdict changes, so a
//! harmed guardrail or a broken split is not found weeks later.
//!
//! - [`delivery`]: what is stored for each notification until a webhook
//!   takes it, and when to try again (pure);
//! - [`message`]: the JSON and Slack bodies and their signature (pure);
//! - [`notifier`]: the service's two tasks, one re-evaluating verdicts on a
//!   schedule and recording the changes with their deliveries in the store
//!   at once, one sending what is due.
//!
//! Delivery is at least once, with the same delivery id on every try: a
//! delivery is written to the store in the same durable step as the verdict
//! change that made it, and removed only after its webhook answered.

pub mod delivery;
pub mod message;
pub mod notifier;

pub use delivery::{AfterTry, Delivery, LastDelivery, Tried};
pub use notifier::Notifier;
