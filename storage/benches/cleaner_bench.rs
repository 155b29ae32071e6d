//! Cleaner throughput (MB of sealed segments cleaned per second), printed next to a baseline
//! measured in the same run: a plain copy of the same segment files (read, write, fsync), the
//! least IO any rewrite of them costs.
//!
//! The log: 64 MiB of sealed segments (8 MiB each) of batches of 16 records of 1 KiB over 4096
//! distinct keys (so most records are superseded); uncompressed, and lz4 (whose values
//! compress well, so the same bytes hold many more records: compare records/s too). Each
//! measured pass starts from a fresh copy of the prepared directory (the copy is not timed).
//!
//! `cargo bench -p shoal-storage --bench cleaner_bench`; the summary follows criterion's output.

use std::collections::BTreeMap;
use std::fs;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use shoal_storage::{
    BatchBuilder, CleanerLimits, CleanupPolicy, FlushPolicy, LogConfig, PartitionLog, RealFs,
};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const KEYS: u64 = 4096;
const LOG_BYTES: usize = 64 << 20;

static STATS: Mutex<BTreeMap<String, (f64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(name: &str, amount: f64, elapsed: Duration) {
    let mut s = STATS.lock().unwrap();
    let e = s.entry(name.to_string()).or_insert((0.0, Duration::ZERO));
    e.0 += amount;
    e.1 += elapsed;
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 20,
        flush_policy: FlushPolicy::Never,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A batch of records with keys `seq*16+i mod KEYS`, compressed with lz4 when asked (the
/// records section is replaced by an lz4 frame, as the Java producer writes it).
fn batch(seq: u64, lz4: bool) -> Bytes {
    let mut b = BatchBuilder::new(seq as i64);
    let value: Vec<u8> = (0..RECORD - 48)
        .map(|i| ((seq as usize + i) % 251) as u8)
        .collect();
    for i in 0..RECORDS_PER_BATCH as u64 {
        let key = ((seq * RECORDS_PER_BATCH as u64 + i) % KEYS).to_be_bytes();
        b.add_record(seq as i64, Some(&key), Some(&value), &[]);
    }
    let plain = b.build();
    if !lz4 {
        return plain;
    }
    let mut enc = lz4::EncoderBuilder::new()
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .build(Vec::new())
        .unwrap();
    enc.write_all(&plain[61..]).unwrap();
    let (packed, r) = enc.finish();
    r.unwrap();
    let mut out = plain[..61].to_vec();
    out.extend_from_slice(&packed);
    let attributes = i16::from_be_bytes([out[21], out[22]]) | 3;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let len = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// Writes the source log once; returns the bytes of its sealed segments.
fn prepare(dir: &Path, lz4: bool) -> u64 {
    let mut log = PartitionLog::open(dir, config(), RealFs::shared()).unwrap();
    let mut seq = 0u64;
    while (log.size_bytes() as usize) < LOG_BYTES {
        log.append(seq, 1, &batch(seq, lz4), 0).unwrap();
        seq += 1;
    }
    log.roll().unwrap();
    log.flush().unwrap();
    let sealed = log.size_bytes();
    log.close().unwrap();
    sealed
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The baseline: copy every `.log` file with a read and a write, then fsync the copies.
fn plain_copy(from: &Path, to: &Path) -> u64 {
    fs::create_dir_all(to).unwrap();
    let mut total = 0;
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".log") {
            let data = fs::read(e.path()).unwrap();
            let mut f = fs::File::create(to.join(&name)).unwrap();
            f.write_all(&data).unwrap();
            f.sync_data().unwrap();
            total += data.len() as u64;
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    for lz4 in [false, true] {
        let codec = if lz4 { "lz4" } else { "none" };
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("source");
        let sealed = prepare(&source, lz4);
        let mut group = c.benchmark_group(format!("cleaner/{codec}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(sealed));
        let mut round = 0u64;
        group.bench_function("clean", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let dir = root.path().join(format!("clean-{round}"));
                    copy_dir(&source, &dir);
                    let mut log = PartitionLog::open(&dir, config(), RealFs::shared()).unwrap();
                    let start = Instant::now();
                    let stats = log
                        .clean(i64::MAX, 0, CleanerLimits::default())
                        .unwrap()
                        .unwrap();
                    let elapsed = start.elapsed();
                    assert!(stats.applied && stats.records_removed > 0);
                    record(&format!("clean {codec}"), stats.bytes_read as f64, elapsed);
                    record(
                        &format!("records {codec}"),
                        stats.records_read as f64,
                        elapsed,
                    );
                    total += elapsed;
                    drop(log);
                    fs::remove_dir_all(&dir).unwrap();
                }
                total
            })
        });
        group.bench_function("plain copy (baseline)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let dir = root.path().join(format!("copy-{round}"));
                    let start = Instant::now();
                    let bytes = black_box(plain_copy(&source, &dir));
                    let elapsed = start.elapsed();
                    record(&format!("copy {codec}"), bytes as f64, elapsed);
                    total += elapsed;
                    fs::remove_dir_all(&dir).unwrap();
                }
                total
            })
        });
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    let s = STATS.lock().unwrap();
    println!("\n| log | cleaner MB/s | cleaner records/s | plain copy MB/s (baseline) |");
    println!("|---|---|---|---|");
    for codec in ["none", "lz4"] {
        let mb = |k: String| s.get(&k).map_or(0.0, |(a, d)| a / d.as_secs_f64() / 1e6);
        println!(
            "| {codec} | {:.0} | {:.0} | {:.0} |",
            mb(format!("clean {codec}")),
            mb(format!("records {codec}")) * 1e6,
            mb(format!("copy {codec}"))
        );
    }
}
