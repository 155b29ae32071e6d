//! Wall-clock time, injectable for tests: the storage crate's clock, so that the broker and its
//! logs always agree on what "now" is.

pub use shoal_storage::{Clock, ManualClock, SystemClock};
