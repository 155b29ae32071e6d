//! Kafka error codes as they appear in responses.
//!
//! The codes themselves come from kafka-protocol's [`ResponseError`]; these helpers turn results
//! into the `i16` fields of response structs so that handlers never spell out numbers.

pub use kafka_protocol::error::ResponseError;

/// The code for success.
pub const NONE: i16 = 0;

/// The response code for an optional error.
pub fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(NONE, |e| e.code())
}

/// The response code for a result whose error is a Kafka error.
pub fn code_of<T>(result: &Result<T, ResponseError>) -> i16 {
    match result {
        Ok(_) => NONE,
        Err(e) => e.code(),
    }
}

/// The error for a response code, `None` for success.
pub fn from_code(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        assert_eq!(code(None), 0);
        assert_eq!(code(Some(ResponseError::UnknownTopicOrPartition)), 3);
        assert_eq!(code_of::<()>(&Err(ResponseError::CorruptMessage)), 2);
        assert_eq!(from_code(0), None);
        assert_eq!(from_code(100), Some(ResponseError::UnknownTopicId));
    }
}
