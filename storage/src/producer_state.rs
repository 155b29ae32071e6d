//! Idempotent-producer state of one partition: for every producer id, its epoch and the last
//! [`BATCHES_TO_RETAIN`] batches it wrote (sequence range, offsets, timestamp). Kafka's
//! `ProducerStateManager` / `ProducerStateEntry` / `ProducerAppendInfo`, as plain data.
//!
//! The state is a pure function of the log: [`ProducerStateMap::update`] folds every appended
//! batch in, on every replica alike, and [`ProducerStateMap::check`] decides (before anything is
//! written) whether a client's batch is new, a retry of one already in the log (answered with the
//! original offsets), or out of order / fenced. The log owns one map, updates it on append, and
//! rebuilds it on open and after truncation from the latest snapshot plus the batches after it.
//!
//! # Snapshot format
//! `{offset:020}.producers`: the state as of `offset` (every batch below it folded in).
//! Big-endian: magic `SHLP`, version u16 (1), CRC-32C u32 of everything after it, end offset
//! i64, producer count u32, then per producer: id i64, epoch i16, last timestamp i64, batch
//! count u8, and per batch (oldest first): last sequence i32, last offset i64, offset delta i32,
//! timestamp i64. Unlike Kafka's `.snapshot` files (which keep only each producer's last batch),
//! every retained batch is kept, so a retry of any of the last five batches is still recognised
//! after a restart.

use std::collections::{HashMap, VecDeque};

use crate::record_batch::BatchHeader;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`): the Java client keeps at
/// most five requests in flight per connection when idempotent.
pub const BATCHES_TO_RETAIN: usize = 5;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Kafka's `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SHLP";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_LEN: usize = 4 + 2 + 4 + 8 + 4;
const PRODUCER_HEADER_LEN: usize = 8 + 2 + 8 + 1;
const BATCH_RECORD_LEN: usize = 4 + 8 + 4 + 8;
/// Extension of producer-state snapshot files.
pub const SNAPSHOT_EXT: &str = "producers";

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka's `DefaultRecordBatch.decrementSequence`.
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// One batch as producer-state tracking sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// `base_sequence + last_offset_delta`, wrapping (Kafka's `lastSequence`).
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl ProducerBatch {
    /// The batch described by `header`, placed at `first_offset`.
    pub fn from_header(header: &BatchHeader, first_offset: i64) -> Self {
        let last_sequence = if header.base_sequence == NO_SEQUENCE {
            NO_SEQUENCE
        } else {
            increment_sequence(header.base_sequence, header.last_offset_delta)
        };
        ProducerBatch {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            last_sequence,
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta),
            max_timestamp: header.max_timestamp,
            is_transactional: header.is_transactional(),
            is_control: header.is_control(),
        }
    }
}

/// What the log remembers of one batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// One producer's state (Kafka's `ProducerStateEntry`, without transactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Oldest first, at most [`BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the last batch (the producer's clock): drives expiration.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn empty(producer_id: i64) -> Self {
        ProducerEntry {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
        }
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.producer_epoch != epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
        }
    }

    fn add_batch(&mut self, epoch: i16, last_seq: i32, last_offset: i64, delta: i32, ts: i64) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(BatchMetadata {
            last_seq,
            last_offset,
            offset_delta: delta,
            timestamp: ts,
        });
        self.last_timestamp = ts;
    }

    /// Kafka's `findDuplicateBatch`: the retained batch with exactly this sequence range and
    /// epoch.
    fn duplicate_of(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        if batch.producer_epoch != self.producer_epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == batch.base_sequence && b.last_seq == batch.last_sequence)
            .copied()
    }
}

/// Why a client's batch may not be appended. Kafka's exceptions of the same names; the broker
/// adds the partition name to the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// `INVALID_PRODUCER_EPOCH`: the batch's epoch is older than the producer's current one.
    #[error(
        "Epoch of producer {producer_id} at offset {offset} is {epoch}, which is smaller than the last seen epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        offset: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`: a new epoch must start at sequence 0.
    #[error(
        "Invalid sequence number for new epoch of producer {producer_id} at offset {offset}: {epoch} (request epoch), {sequence} (seq. number), {current_epoch} (current producer epoch)"
    )]
    NewEpochNotAtZero {
        producer_id: i64,
        offset: i64,
        epoch: i16,
        sequence: i32,
        current_epoch: i16,
    },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`: the batch does not follow the producer's last sequence.
    #[error(
        "Out of order sequence number for producer {producer_id} at offset {offset}: {sequence} (incoming seq. number), {last_sequence} (current end sequence number)"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        offset: i64,
        sequence: i32,
        last_sequence: i32,
    },
}

/// The verdict on a client append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// New data in sequence: append it.
    Append,
    /// A retry of a batch already in the log (Kafka answers with its offsets, writing nothing).
    Duplicate(BatchMetadata),
}

/// A snapshot file that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("producer state snapshot is corrupt: {0}")]
pub struct SnapshotError(pub String);

/// Every producer's state at one point of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
    /// Every batch below this offset is folded in.
    end_offset: i64,
}

impl ProducerStateMap {
    /// An empty map for a log whose next offset is `end_offset`.
    pub fn new(end_offset: i64) -> Self {
        ProducerStateMap {
            producers: HashMap::new(),
            end_offset,
        }
    }

    /// Offset up to which batches are folded in.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Kafka's `analyzeAndValidateProducerState` for a client append of `batches` (already
    /// placed at their would-be offsets), in order: a batch equal to one of its producer's
    /// retained batches is a duplicate and stops the check; otherwise epochs may not go back and
    /// sequences must follow on (a new epoch starts at 0; a producer with no state may start
    /// anywhere, as Kafka does since KIP-360, so `UNKNOWN_PRODUCER_ID` is never the answer).
    pub fn check(&self, batches: &[ProducerBatch]) -> Result<AppendCheck, ProducerStateError> {
        // Entries as they would stand after the batches of this append checked so far.
        let mut pending: HashMap<i64, ProducerEntry> = HashMap::new();
        for batch in batches
            .iter()
            .filter(|b| b.producer_id >= 0 && !b.is_control)
        {
            let current = self.producers.get(&batch.producer_id);
            if let Some(duplicate) = current.and_then(|e| e.duplicate_of(batch)) {
                return Ok(AppendCheck::Duplicate(duplicate));
            }
            let empty = ProducerEntry::empty(batch.producer_id);
            let current = current.unwrap_or(&empty);
            let updated = pending
                .entry(batch.producer_id)
                .or_insert_with(|| ProducerEntry {
                    batches: VecDeque::new(),
                    ..current.clone()
                });
            check_epoch_and_sequence(current, updated, batch)?;
            updated.add_batch(
                batch.producer_epoch,
                batch.last_sequence,
                batch.last_offset,
                (batch.last_offset - batch.first_offset) as i32,
                batch.max_timestamp,
            );
        }
        Ok(AppendCheck::Append)
    }

    /// Folds an appended batch in, without validation (Kafka's replication and recovery path):
    /// every replica derives the same state from the same log.
    pub fn update(&mut self, batch: &ProducerBatch) {
        if batch.producer_id >= 0 {
            let entry = self
                .producers
                .entry(batch.producer_id)
                .or_insert_with(|| ProducerEntry::empty(batch.producer_id));
            if batch.is_control {
                // A transaction marker: Kafka moves the epoch and timestamp and keeps no batch.
                entry.maybe_update_epoch(batch.producer_epoch);
                entry.last_timestamp = batch.max_timestamp;
            } else {
                entry.add_batch(
                    batch.producer_epoch,
                    batch.last_sequence,
                    batch.last_offset,
                    (batch.last_offset - batch.first_offset) as i32,
                    batch.max_timestamp,
                );
            }
        }
        self.end_offset = self.end_offset.max(batch.last_offset + 1);
    }

    /// Records that the log now ends at `offset` (entries without producer batches).
    pub fn advance_end_offset(&mut self, offset: i64) {
        self.end_offset = self.end_offset.max(offset);
    }

    /// Kafka's `removeExpiredProducers`: forgets producers whose last batch is at least
    /// `expiration_ms` older than `now_ms` (`producer.id.expiration.ms`). Returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The snapshot file contents (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        let mut body = Vec::with_capacity(
            12 + self.producers.len() * (PRODUCER_HEADER_LEN + 2 * BATCH_RECORD_LEN),
        );
        body.extend_from_slice(&self.end_offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for id in ids {
            let e = &self.producers[id];
            body.extend_from_slice(&e.producer_id.to_be_bytes());
            body.extend_from_slice(&e.producer_epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.offset_delta.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot file; every length is checked against the bytes present.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let err = |m: &str| SnapshotError(m.to_string());
        if bytes.len() < SNAPSHOT_HEADER_LEN {
            return Err(err("shorter than its header"));
        }
        if &bytes[..4] != SNAPSHOT_MAGIC {
            return Err(err("bad magic"));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError(format!("unknown version {version}")));
        }
        let crc = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        let body = &bytes[10..];
        if crc32c::crc32c(body) != crc {
            return Err(err("CRC mismatch"));
        }
        let mut r = Reader { buf: body };
        let end_offset = r.i64()?;
        let count = r.u32()? as usize;
        if count > r.buf.len() / PRODUCER_HEADER_LEN {
            return Err(err("producer count exceeds the file"));
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let producer_id = r.i64()?;
            let producer_epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = usize::from(r.u8()?);
            if n > BATCHES_TO_RETAIN {
                return Err(err("too many batches for one producer"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    last_seq: r.i32()?,
                    last_offset: r.i64()?,
                    offset_delta: r.i32()?,
                    timestamp: r.i64()?,
                });
            }
            producers.insert(
                producer_id,
                ProducerEntry {
                    producer_id,
                    producer_epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        if !r.buf.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(ProducerStateMap {
            producers,
            end_offset,
        })
    }
}

/// Kafka's `ProducerAppendInfo.checkProducerEpoch` and `checkSequence` (client origin).
fn check_epoch_and_sequence(
    current: &ProducerEntry,
    updated: &ProducerEntry,
    batch: &ProducerBatch,
) -> Result<(), ProducerStateError> {
    let offset = batch.first_offset;
    if batch.producer_epoch < updated.producer_epoch {
        return Err(ProducerStateError::InvalidProducerEpoch {
            producer_id: batch.producer_id,
            offset,
            epoch: batch.producer_epoch,
            current_epoch: updated.producer_epoch,
        });
    }
    if batch.producer_epoch != updated.producer_epoch {
        if batch.base_sequence != 0 && updated.producer_epoch != NO_PRODUCER_EPOCH {
            return Err(ProducerStateError::NewEpochNotAtZero {
                producer_id: batch.producer_id,
                offset,
                epoch: batch.producer_epoch,
                sequence: batch.base_sequence,
                current_epoch: updated.producer_epoch,
            });
        }
        return Ok(());
    }
    let last_sequence = if !updated.batches.is_empty() {
        updated.last_seq()
    } else if batch.producer_epoch == current.producer_epoch {
        current.last_seq()
    } else {
        NO_SEQUENCE
    };
    let in_sequence = i64::from(batch.base_sequence) == i64::from(last_sequence) + 1
        || (batch.base_sequence == 0 && last_sequence == i32::MAX);
    if current.producer_epoch == NO_PRODUCER_EPOCH || in_sequence {
        Ok(())
    } else {
        Err(ProducerStateError::OutOfOrderSequence {
            producer_id: batch.producer_id,
            offset,
            sequence: batch.base_sequence,
            last_sequence,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if self.buf.len() < N {
            return Err(SnapshotError("truncated".into()));
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[..N]);
        self.buf = &self.buf[N..];
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            last_sequence: increment_sequence(seq, count - 1),
            first_offset: offset,
            last_offset: offset + i64::from(count) - 1,
            max_timestamp: 1_000 + offset,
            is_transactional: false,
            is_control: false,
        }
    }

    /// Checks then folds in, as the log does for a client append.
    fn append(
        map: &mut ProducerStateMap,
        b: ProducerBatch,
    ) -> Result<AppendCheck, ProducerStateError> {
        let verdict = map.check(&[b])?;
        if verdict == AppendCheck::Append {
            map.update(&b);
        }
        Ok(verdict)
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
    }

    #[test]
    fn in_order_batches_are_accepted_and_a_retry_is_a_duplicate_with_its_offsets() {
        let mut map = ProducerStateMap::new(0);
        assert_eq!(
            append(&mut map, batch(7, 0, 0, 3, 0)),
            Ok(AppendCheck::Append)
        );
        assert_eq!(
            append(&mut map, batch(7, 0, 3, 2, 3)),
            Ok(AppendCheck::Append)
        );
        // A retry of the first batch arrives after both were written (at a later offset).
        match append(&mut map, batch(7, 0, 0, 3, 5)).unwrap() {
            AppendCheck::Duplicate(b) => {
                assert_eq!((b.first_offset(), b.last_offset), (0, 2));
                assert_eq!((b.first_seq(), b.last_seq), (0, 2));
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert_eq!(map.end_offset(), 5);
        assert_eq!(map.get(7).unwrap().batches.len(), 2);
    }

    #[test]
    fn only_the_last_five_batches_are_recognised() {
        let mut map = ProducerStateMap::new(0);
        for i in 0..6 {
            append(&mut map, batch(1, 0, i, 1, i64::from(i))).unwrap();
        }
        assert_eq!(map.get(1).unwrap().batches.len(), BATCHES_TO_RETAIN);
        assert!(matches!(
            map.check(&[batch(1, 0, 1, 1, 6)]),
            Ok(AppendCheck::Duplicate(_))
        ));
        // The sixth-last batch is forgotten: a retry of it is out of order.
        assert!(matches!(
            map.check(&[batch(1, 0, 0, 1, 6)]),
            Err(ProducerStateError::OutOfOrderSequence {
                sequence: 0,
                last_sequence: 5,
                ..
            })
        ));
    }

    #[test]
    fn gaps_and_overlaps_are_out_of_order() {
        let mut map = ProducerStateMap::new(0);
        append(&mut map, batch(1, 0, 0, 5, 0)).unwrap();
        assert!(matches!(
            map.check(&[batch(1, 0, 6, 1, 5)]),
            Err(ProducerStateError::OutOfOrderSequence {
                sequence: 6,
                last_sequence: 4,
                ..
            })
        ));
        // Overlapping but not identical to a retained batch.
        assert!(matches!(
            map.check(&[batch(1, 0, 2, 3, 5)]),
            Err(ProducerStateError::OutOfOrderSequence { .. })
        ));
        assert_eq!(map.check(&[batch(1, 0, 5, 1, 5)]), Ok(AppendCheck::Append));
    }

    #[test]
    fn epochs_fence_older_producers_and_a_new_epoch_starts_at_zero() {
        let mut map = ProducerStateMap::new(0);
        append(&mut map, batch(1, 3, 0, 2, 0)).unwrap();
        assert!(matches!(
            map.check(&[batch(1, 2, 2, 1, 2)]),
            Err(ProducerStateError::InvalidProducerEpoch {
                epoch: 2,
                current_epoch: 3,
                ..
            })
        ));
        assert!(matches!(
            map.check(&[batch(1, 4, 7, 1, 2)]),
            Err(ProducerStateError::NewEpochNotAtZero { .. })
        ));
        // The Java client's own epoch bump (KIP-360 for idempotent producers) restarts at 0.
        assert_eq!(
            append(&mut map, batch(1, 4, 0, 1, 2)),
            Ok(AppendCheck::Append)
        );
        let e = map.get(1).unwrap();
        assert_eq!((e.producer_epoch, e.batches.len()), (4, 1));
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        // Its earlier batches may have been deleted by retention; Kafka accepts (no
        // UNKNOWN_PRODUCER_ID since KIP-360).
        let map = ProducerStateMap::new(100);
        assert_eq!(
            map.check(&[batch(9, 2, 4242, 3, 100)]),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn sequence_wraps_after_the_maximum() {
        let mut map = ProducerStateMap::new(0);
        append(&mut map, batch(1, 0, i32::MAX - 1, 2, 0)).unwrap();
        assert_eq!(map.check(&[batch(1, 0, 0, 1, 2)]), Ok(AppendCheck::Append));
    }

    #[test]
    fn several_batches_of_one_append_are_checked_in_turn() {
        let mut map = ProducerStateMap::new(0);
        append(&mut map, batch(1, 0, 0, 2, 0)).unwrap();
        assert_eq!(
            map.check(&[batch(1, 0, 2, 2, 2), batch(1, 0, 4, 2, 4)]),
            Ok(AppendCheck::Append)
        );
        assert!(
            map.check(&[batch(1, 0, 2, 2, 2), batch(1, 0, 7, 2, 4)])
                .is_err()
        );
    }

    #[test]
    fn non_idempotent_batches_are_ignored_but_move_the_end() {
        let mut map = ProducerStateMap::new(0);
        let plain = ProducerBatch {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_sequence: -1,
            first_offset: 0,
            last_offset: 9,
            max_timestamp: 5,
            is_transactional: false,
            is_control: false,
        };
        assert_eq!(map.check(&[plain]), Ok(AppendCheck::Append));
        map.update(&plain);
        assert!(map.is_empty());
        assert_eq!(map.end_offset(), 10);
    }

    #[test]
    fn expired_producers_are_forgotten() {
        let mut map = ProducerStateMap::new(0);
        append(&mut map, batch(1, 0, 0, 1, 0)).unwrap(); // timestamp 1000
        append(&mut map, batch(2, 0, 0, 1, 1)).unwrap(); // timestamp 1001
        assert_eq!(map.remove_expired(1_500, 500), 1);
        assert!(map.get(1).is_none());
        assert!(map.get(2).is_some());
    }

    #[test]
    fn snapshots_round_trip_and_corruption_is_detected() {
        let mut map = ProducerStateMap::new(0);
        for i in 0..7 {
            append(&mut map, batch(1, 0, i * 2, 2, i64::from(i) * 2)).unwrap();
        }
        append(&mut map, batch(105, 3, 10, 1, 14)).unwrap();
        let bytes = map.encode();
        assert_eq!(ProducerStateMap::decode(&bytes), Ok(map.clone()));
        for cut in [0, 5, 20, bytes.len() - 1] {
            assert!(
                ProducerStateMap::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(ProducerStateMap::decode(&flipped).is_err());
        assert_eq!(
            ProducerStateMap::decode(&ProducerStateMap::new(42).encode())
                .unwrap()
                .end_offset(),
            42
        );
    }
}
