//! `.timeindex`: Kafka's sparse time index. Entries of 12 bytes, big-endian: a timestamp (i64)
//! and an offset relative to the segment base (u32). An entry (T, o) says that the largest
//! timestamp up to the batch ending at offset o is T, so every batch before it has a smaller
//! maximum timestamp. Timestamps strictly increase; a sealed segment ends with its maximum.

pub(crate) const ENTRY_LEN: usize = 12;

pub(crate) fn encode(timestamp: i64, relative_offset: u32) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[..8].copy_from_slice(&timestamp.to_be_bytes());
    e[8..].copy_from_slice(&relative_offset.to_be_bytes());
    e
}

pub(crate) fn count(buf: &[u8]) -> usize {
    buf.len() / ENTRY_LEN
}

pub(crate) fn entry(buf: &[u8], i: usize) -> (i64, u32) {
    let e = &buf[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&e[..8]);
    (
        i64::from_be_bytes(ts),
        u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
    )
}

pub(crate) fn last(buf: &[u8]) -> Option<(i64, u32)> {
    let n = count(buf);
    (n > 0).then(|| entry(buf, n - 1))
}

/// The entry with the largest timestamp <= `target` (Kafka's `TimeIndex.lookup`).
pub(crate) fn lookup(buf: &[u8], target: i64) -> Option<(i64, u32)> {
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
    (lo > 0).then(|| entry(buf, lo - 1))
}

/// Cheap consistency check: whole entries, first/last ordered, last offset in the segment.
pub(crate) fn looks_valid(buf: &[u8], offset_span: u64) -> bool {
    if !buf.len().is_multiple_of(ENTRY_LEN) {
        return false;
    }
    match (count(buf), last(buf)) {
        (0, _) => true,
        (_, Some((t1, o1))) => {
            let (t0, o0) = entry(buf, 0);
            t0 <= t1 && o0 <= o1 && u64::from(o1) < offset_span
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_the_largest_timestamp_not_above_the_target() {
        let mut buf = Vec::new();
        for (t, o) in [(100i64, 1u32), (200, 5), (300, 9)] {
            buf.extend_from_slice(&encode(t, o));
        }
        assert_eq!(lookup(&buf, 50), None);
        assert_eq!(lookup(&buf, 100), Some((100, 1)));
        assert_eq!(lookup(&buf, 250), Some((200, 5)));
        assert_eq!(lookup(&buf, 999), Some((300, 9)));
        assert_eq!(last(&buf), Some((300, 9)));
        assert!(looks_valid(&buf, 10));
        assert!(!looks_valid(&buf, 9));
    }
}
