//! Record-level work on stored or produced batches: streaming decompression and the record
//! walker behind produce validation and timestamp lookups. The batch header itself belongs to
//! the storage crate.

pub mod codec;
pub mod key_value;
pub mod scan;

pub use key_value::{KeyValue, key_values};
pub use scan::{
    ProducePolicy, RecordError, RecordMeta, find_by_timestamp, find_max_timestamp,
    validate_produced, walk_records,
};
