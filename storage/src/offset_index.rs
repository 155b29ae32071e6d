//! `.index`: Kafka's sparse offset index. Entries of 8 bytes, big-endian: the offset relative to
//! the segment's base offset (u32) and the byte position of a batch in the `.log` (u32). An entry
//! is added when more than `index_interval_bytes` were appended since the previous one, keyed by
//! the batch's last offset (as Kafka's `LogSegment.recover` does).

pub(crate) const ENTRY_LEN: usize = 8;

pub(crate) fn encode(relative_offset: u32, position: u32) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[..4].copy_from_slice(&relative_offset.to_be_bytes());
    e[4..].copy_from_slice(&position.to_be_bytes());
    e
}

pub(crate) fn count(buf: &[u8]) -> usize {
    buf.len() / ENTRY_LEN
}

pub(crate) fn entry(buf: &[u8], i: usize) -> (u32, u32) {
    let e = &buf[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
    (
        u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
        u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
    )
}

/// Position of the entry with the largest relative offset <= `target`; 0 when there is none.
pub(crate) fn lookup(buf: &[u8], target: u32) -> u32 {
    // partition_point over entries: first entry whose offset > target.
    let n = count(buf);
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(buf, mid).0 <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 { 0 } else { entry(buf, lo - 1).1 }
}

/// Cheap consistency check of a loaded index (as Kafka's sanity check, plus bounds): whole
/// entries, first and last entry inside the segment, offsets and positions not decreasing.
pub(crate) fn looks_valid(buf: &[u8], offset_span: u64, size: u64) -> bool {
    if !buf.len().is_multiple_of(ENTRY_LEN) {
        return false;
    }
    let n = count(buf);
    if n == 0 {
        return true;
    }
    let (o0, p0) = entry(buf, 0);
    let (o1, p1) = entry(buf, n - 1);
    o0 <= o1 && p0 <= p1 && u64::from(o1) < offset_span && u64::from(p1) < size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_greatest_lower_bound() {
        let mut buf = Vec::new();
        for (o, p) in [(3u32, 100u32), (7, 200), (20, 300)] {
            buf.extend_from_slice(&encode(o, p));
        }
        assert_eq!(lookup(&buf, 0), 0);
        assert_eq!(lookup(&buf, 2), 0);
        assert_eq!(lookup(&buf, 3), 100);
        assert_eq!(lookup(&buf, 6), 100);
        assert_eq!(lookup(&buf, 7), 200);
        assert_eq!(lookup(&buf, 1000), 300);
        assert_eq!(lookup(&[], 5), 0);
        assert!(looks_valid(&buf, 21, 301));
        assert!(!looks_valid(&buf, 20, 301));
        assert!(!looks_valid(&buf[..5], 100, 1000));
    }
}
