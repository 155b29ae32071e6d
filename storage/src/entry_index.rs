//! `.entries`: the dense per-segment index of Raft entries (one entry = the batches of one
//! append). It maps a Raft index to the entry's term, offsets and byte range without reading
//! the log, and it is what marks entry boundaries inside the `.log`.
//!
//! Layout (big-endian). Header, 40 bytes:
//! `magic u32 "SHLE" | version u16 (1) | reserved u16 | base_offset i64 | first_index u64 |
//!  prev_term u64 (term of entry first_index - 1; u64::MAX if unknown) | reserved u32 | crc u32`
//! then one 32-byte record per entry, record `i` describing Raft index `first_index + i`:
//! `term u64 | relative_offset u32 | offset_count u32 | position u32 | length u32 |
//!  reserved u32 | crc u32`.
//! Each CRC-32C covers the bytes before it; a record's CRC also covers its Raft index (8 bytes,
//! big-endian, prepended), so a record read at the wrong slot fails its check.

pub(crate) const HEADER_LEN: usize = 40;
pub(crate) const RECORD_LEN: usize = 32;
const MAGIC: u32 = 0x5348_4c45;
const VERSION: u16 = 1;
const NO_TERM: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntriesHeader {
    pub(crate) base_offset: i64,
    pub(crate) first_index: u64,
    pub(crate) prev_term: Option<u64>,
}

impl EntriesHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[4..6].copy_from_slice(&VERSION.to_be_bytes());
        h[8..16].copy_from_slice(&self.base_offset.to_be_bytes());
        h[16..24].copy_from_slice(&self.first_index.to_be_bytes());
        h[24..32].copy_from_slice(&self.prev_term.unwrap_or(NO_TERM).to_be_bytes());
        let crc = crc32c::crc32c(&h[..36]);
        h[36..40].copy_from_slice(&crc.to_be_bytes());
        h
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, String> {
        if buf.len() < HEADER_LEN {
            return Err(format!(
                "header needs {HEADER_LEN} bytes, file has {}",
                buf.len()
            ));
        }
        let crc = u32::from_be_bytes(buf[36..40].try_into().unwrap_or_default());
        if crc32c::crc32c(&buf[..36]) != crc {
            return Err("header checksum mismatch".into());
        }
        if u32::from_be_bytes(buf[0..4].try_into().unwrap_or_default()) != MAGIC {
            return Err("bad magic".into());
        }
        let version = u16::from_be_bytes([buf[4], buf[5]]);
        if version != VERSION {
            return Err(format!("unsupported version {version}"));
        }
        let prev_term = be_u64(buf, 24);
        Ok(EntriesHeader {
            base_offset: be_u64(buf, 8) as i64,
            first_index: be_u64(buf, 16),
            prev_term: (prev_term != NO_TERM).then_some(prev_term),
        })
    }
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One entry as recorded in `.entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryRecord {
    pub(crate) term: u64,
    pub(crate) relative_offset: u32,
    pub(crate) offset_count: u32,
    pub(crate) position: u32,
    pub(crate) length: u32,
}

impl EntryRecord {
    pub(crate) fn end_position(&self) -> u64 {
        u64::from(self.position) + u64::from(self.length)
    }

    pub(crate) fn end_relative_offset(&self) -> u64 {
        u64::from(self.relative_offset) + u64::from(self.offset_count)
    }

    pub(crate) fn encode(&self, index: u64) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        r[0..8].copy_from_slice(&self.term.to_be_bytes());
        r[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
        r[12..16].copy_from_slice(&self.offset_count.to_be_bytes());
        r[16..20].copy_from_slice(&self.position.to_be_bytes());
        r[20..24].copy_from_slice(&self.length.to_be_bytes());
        let crc = record_crc(index, &r[..28]);
        r[28..32].copy_from_slice(&crc.to_be_bytes());
        r
    }

    /// Decodes record `slot` of a `.entries` file body; `None` if it is missing or fails its CRC.
    pub(crate) fn decode(file: &[u8], slot: u64, index: u64) -> Option<EntryRecord> {
        let at = HEADER_LEN + usize::try_from(slot).ok()? * RECORD_LEN;
        let r = file.get(at..at + RECORD_LEN)?;
        if record_crc(index, &r[..28]) != be_u32(r, 28) {
            return None;
        }
        Some(EntryRecord {
            term: be_u64(r, 0),
            relative_offset: be_u32(r, 8),
            offset_count: be_u32(r, 12),
            position: be_u32(r, 16),
            length: be_u32(r, 20),
        })
    }
}

fn record_crc(index: u64, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_be_bytes()), body)
}

/// Whole records present in a file of `len` bytes.
pub(crate) fn records_in(len: u64) -> u64 {
    len.saturating_sub(HEADER_LEN as u64) / RECORD_LEN as u64
}

pub(crate) fn file_len_for(records: u64) -> u64 {
    HEADER_LEN as u64 + records * RECORD_LEN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_round_trip_and_detect_damage() {
        let h = EntriesHeader {
            base_offset: 42,
            first_index: 7,
            prev_term: Some(3),
        };
        let mut file = h.encode().to_vec();
        assert_eq!(EntriesHeader::decode(&file).unwrap(), h);
        let rec = EntryRecord {
            term: 4,
            relative_offset: 0,
            offset_count: 5,
            position: 0,
            length: 100,
        };
        file.extend_from_slice(&rec.encode(7));
        assert_eq!(EntryRecord::decode(&file, 0, 7), Some(rec));
        assert_eq!(
            EntryRecord::decode(&file, 0, 8),
            None,
            "index is covered by the CRC"
        );
        assert_eq!(EntryRecord::decode(&file, 1, 8), None);
        file[HEADER_LEN + 3] ^= 1;
        assert_eq!(EntryRecord::decode(&file, 0, 7), None);
        file[1] ^= 1;
        assert!(EntriesHeader::decode(&file).is_err());
        let none = EntriesHeader {
            prev_term: None,
            ..h
        };
        assert_eq!(EntriesHeader::decode(&none.encode()).unwrap(), none);
    }
}
