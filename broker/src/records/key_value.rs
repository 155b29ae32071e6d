//! Keys and values of a stored batch's records, for the broker's own readers of internal topics
//! (the group coordinator loading `__consumer_offsets`). Decompresses as needed; every length
//! is bounded by the data actually present.

use std::io::{self, BufReader, Read};

use bytes::Bytes;
use shoal_storage::{BATCH_HEADER_LEN, BatchHeader};

use super::codec::records_reader;
use super::scan::{RecordError, read_exact_byte, read_varlong, skip_bytes_field};

/// One record's offset, key and value (`None` for null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Every record of `batch` (header included), in order.
pub fn key_values(batch: &[u8], header: &BatchHeader) -> Result<Vec<KeyValue>, RecordError> {
    let compression = header
        .compression()
        .map_err(|e| RecordError::Corrupt(e.to_string()))?;
    let body = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or_else(|| RecordError::Invalid("batch shorter than its header".into()))?;
    let bad = |e: io::Error, i: i32| RecordError::Corrupt(format!("record {i}: {e}"));
    let reader = records_reader(compression, body)
        .map_err(|e| RecordError::Corrupt(format!("cannot decompress: {e}")))?;
    let mut reader = BufReader::with_capacity(8 * 1024, reader);
    let mut out = Vec::new();
    for i in 0..header.record_count.max(0) {
        let length = read_varlong(&mut reader).map_err(|e| bad(e, i))?;
        if !(1..=i64::from(i32::MAX)).contains(&length) {
            return Err(RecordError::Invalid(format!(
                "record {i} has invalid length {length}"
            )));
        }
        let mut record = (&mut reader).take(length as u64);
        let _attributes = read_exact_byte(&mut record).map_err(|e| bad(e, i))?;
        let _timestamp_delta = read_varlong(&mut record).map_err(|e| bad(e, i))?;
        let offset_delta = read_varlong(&mut record).map_err(|e| bad(e, i))?;
        let key = read_field(&mut record).map_err(|e| bad(e, i))?;
        let value = read_field(&mut record).map_err(|e| bad(e, i))?;
        let headers = read_varlong(&mut record).map_err(|e| bad(e, i))?;
        for _ in 0..headers.max(0) {
            skip_bytes_field(&mut record, false).map_err(|e| bad(e, i))?;
            skip_bytes_field(&mut record, true).map_err(|e| bad(e, i))?;
        }
        out.push(KeyValue {
            offset: header.base_offset + offset_delta,
            key,
            value,
        });
    }
    Ok(out)
}

/// A varint-length-prefixed nullable byte field.
fn read_field(r: &mut impl Read) -> io::Result<Option<Bytes>> {
    let len = read_varlong(r)?;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("negative length {len}"),
        ));
    }
    // Grows with the data read, never by the declared length alone.
    let mut buf = Vec::new();
    r.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() as i64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "field runs past the record",
        ));
    }
    Ok(Some(Bytes::from(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_storage::BatchBuilder;

    #[test]
    fn keys_and_values_including_nulls_come_back() {
        let mut b = BatchBuilder::new(5);
        b.add_record(5, Some(b"k1"), Some(b"v1"), &[]);
        b.add_record(6, Some(b"k2"), None, &[]);
        let bytes = b.build();
        let header = shoal_storage::validate(&bytes).unwrap();
        let kvs = key_values(&bytes, &header).unwrap();
        assert_eq!(kvs.len(), 2);
        assert_eq!(kvs[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(kvs[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!((kvs[1].offset, kvs[1].value.clone()), (1, None));
        let cut = &bytes[..bytes.len() - 3];
        assert!(key_values(cut, &header).is_err());
    }
}
