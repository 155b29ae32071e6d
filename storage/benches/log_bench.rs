//! Storage benchmarks, each printed next to a baseline measured in the same run:
//! - append of 16 KiB batches of 1 KiB records with flush `never` and with group commit, vs. a
//!   plain sequential file write of the same chunks;
//! - sequential reads (each returned `Bytes` copied out, as a socket write would), vs. memcpy
//!   of the same chunk size;
//! - offset and timestamp lookup latency.
//!
//! `cargo bench -p shoal-storage`; the summary table follows criterion's output.

use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use shoal_storage::{
    BatchBuilder, FlushPolicy, Flusher, LogConfig, PartitionLog, RealFs, SystemClock,
};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
/// A log (or baseline file) is recreated when it grows past this, so the run's disk use stays
/// bounded and both sides work mostly in the page cache.
const MAX_LOG_BYTES: u64 = 192 << 20;
const READ_LOG_BYTES: usize = 256 << 20;
const READ_CHUNK: usize = 1 << 20;

/// (bytes or operations, elapsed) summed over every measured call, per figure.
static STATS: Mutex<BTreeMap<&'static str, (f64, Duration)>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, amount: f64, elapsed: Duration) {
    let mut s = STATS.lock().unwrap();
    let e = s.entry(name).or_insert((0.0, Duration::ZERO));
    e.0 += amount;
    e.1 += elapsed;
}

fn rate(name: &str) -> f64 {
    let s = STATS.lock().unwrap();
    s.get(name).map_or(0.0, |(a, d)| a / d.as_secs_f64())
}

fn batch(seq: u64) -> Bytes {
    let mut b = BatchBuilder::new(seq as i64);
    let value = vec![(seq % 251) as u8; RECORD - 40];
    for i in 0..RECORDS_PER_BATCH {
        b.add_record(
            seq as i64 * 16 + i as i64,
            Some(&seq.to_be_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build()
}

struct Scratch {
    root: tempfile::TempDir,
    n: u64,
}

impl Scratch {
    fn new() -> Self {
        // Benchmark data goes next to the target directory (a real disk), not a tmpfs.
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
        std::fs::create_dir_all(&base).unwrap();
        Scratch {
            root: tempfile::tempdir_in(base).unwrap(),
            n: 0,
        }
    }

    fn fresh(&mut self) -> PathBuf {
        self.n += 1;
        let p = self.root.path().join(format!("d{}", self.n));
        if p.exists() {
            std::fs::remove_dir_all(&p).unwrap();
        }
        p
    }
}

fn open(dir: &Path, policy: FlushPolicy) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 64 << 20,
        flush_policy: policy,
        ..LogConfig::default()
    };
    PartitionLog::open(dir, config, RealFs::shared()).unwrap()
}

/// A log with its group-commit flusher and the durable offset it reports.
type GroupCommitLog = (
    Arc<Mutex<PartitionLog>>,
    Flusher,
    Arc<(Mutex<i64>, Condvar)>,
    PathBuf,
);

fn bench_append(c: &mut Criterion) {
    let entry = batch(1);
    let entry_len = entry.len() as u64;
    let mut g = c.benchmark_group("append_16k_batches");
    g.throughput(Throughput::Bytes(entry_len));
    g.sample_size(10).measurement_time(Duration::from_secs(4));

    // Baseline: the same chunks written sequentially to a plain file, no fsync. Measured
    // before and after the log benchmarks; the summary uses both.
    let mut scratch = Scratch::new();
    bench_plain_write(&mut g, &mut scratch, &entry, "baseline_plain_file_write");
    let mut log: Option<(PartitionLog, PathBuf)> = None;
    g.bench_function("log_flush_never", |b| {
        b.iter_custom(|iters| {
            if log
                .as_ref()
                .is_none_or(|l| l.0.size_bytes() > MAX_LOG_BYTES)
            {
                if let Some((l, p)) = log.take() {
                    drop(l);
                    std::fs::remove_dir_all(p).unwrap();
                }
                let p = scratch.fresh();
                log = Some((open(&p, FlushPolicy::Never), p));
            }
            let l = &mut log.as_mut().unwrap().0;
            let start = Instant::now();
            for _ in 0..iters {
                let i = l.next_index();
                black_box(l.append(i, 1, &entry, 0).unwrap());
            }
            let el = start.elapsed();
            record("append_never", (iters * entry_len) as f64, el);
            el
        })
    });
    if let Some((l, p)) = log.take() {
        drop(l);
        std::fs::remove_dir_all(p).unwrap();
    }

    // Group commit: a flusher thread fsyncs while appends continue; each measured call ends
    // when everything it appended is durable.
    g.bench_function("log_group_commit", |b| {
        let mut state: Option<GroupCommitLog> = None;
        b.iter_custom(|iters| {
            if state
                .as_ref()
                .is_none_or(|s| s.0.lock().unwrap().size_bytes() > MAX_LOG_BYTES)
            {
                if let Some((l, f, _, p)) = state.take() {
                    f.shutdown();
                    drop(l);
                    std::fs::remove_dir_all(p).unwrap();
                }
                let p = scratch.fresh();
                let l = Arc::new(Mutex::new(open(&p, FlushPolicy::GroupCommit)));
                let durable = Arc::new((Mutex::new(0i64), Condvar::new()));
                let d = Arc::clone(&durable);
                let f = Flusher::spawn(
                    Arc::clone(&l),
                    FlushPolicy::GroupCommit,
                    Arc::new(SystemClock),
                    Box::new(move |r| {
                        *d.0.lock().unwrap() = r.unwrap().next_offset;
                        d.1.notify_all();
                    }),
                )
                .unwrap();
                state = Some((l, f, durable, p));
            }
            let (l, f, durable, _) = state.as_ref().unwrap();
            let start = Instant::now();
            let mut end = 0;
            for _ in 0..iters {
                let mut g = l.lock().unwrap();
                let i = g.next_index();
                end = g.append(i, 1, &entry, 0).unwrap().next_offset;
                drop(g);
                f.notify();
            }
            let mut d = durable.0.lock().unwrap();
            while *d < end {
                d = durable.1.wait(d).unwrap();
            }
            let el = start.elapsed();
            record("append_group_commit", (iters * entry_len) as f64, el);
            el
        })
    });
    bench_plain_write(
        &mut g,
        &mut scratch,
        &entry,
        "baseline_plain_file_write_again",
    );
    g.finish();
}

fn bench_plain_write(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    scratch: &mut Scratch,
    entry: &Bytes,
    name: &str,
) {
    let entry_len = entry.len() as u64;
    let mut file: Option<(File, u64, PathBuf)> = None;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            if file.as_ref().is_none_or(|f| f.1 > MAX_LOG_BYTES) {
                if let Some((_, _, p)) = file.take() {
                    std::fs::remove_file(p).unwrap();
                }
                let p = scratch.fresh();
                file = Some((File::create(&p).unwrap(), 0, p));
            }
            let f = file.as_mut().unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                f.0.write_all(entry).unwrap();
            }
            let el = start.elapsed();
            f.1 += iters * entry_len;
            record("baseline_write", (iters * entry_len) as f64, el);
            el
        })
    });
    if let Some((_, _, p)) = file.take() {
        std::fs::remove_file(p).unwrap();
    }
}

fn filled_log(scratch: &mut Scratch) -> (PartitionLog, u64) {
    let p = scratch.fresh();
    let mut log = open(&p, FlushPolicy::Never);
    let mut seq = 0;
    while (log.size_bytes() as usize) < READ_LOG_BYTES {
        log.append(seq, 1, &batch(seq), seq as i64 * 16).unwrap();
        seq += 1;
    }
    (log, seq)
}

fn bench_read(c: &mut Criterion) {
    let mut scratch = Scratch::new();
    let (log, batches) = filled_log(&mut scratch);
    let mut g = c.benchmark_group("sequential_read");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(log.size_bytes()));

    // Baseline: copying the same amount in the same chunk size.
    let src = vec![7u8; READ_LOG_BYTES];
    let mut dst = vec![0u8; READ_CHUNK];
    g.bench_function("baseline_memcpy_1MiB_chunks", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for chunk in src.chunks(READ_CHUNK) {
                    dst[..chunk.len()].copy_from_slice(chunk);
                    black_box(&dst);
                }
            }
            let el = start.elapsed();
            record("baseline_memcpy", (iters as usize * src.len()) as f64, el);
            el
        })
    });
    let end = log.log_end_offset();
    let mut out: Vec<u8> = Vec::with_capacity(2 * READ_CHUNK);
    g.bench_function("log_read_1MiB_and_copy", |b| {
        b.iter_custom(|iters| {
            let mut bytes = 0usize;
            let start = Instant::now();
            for _ in 0..iters {
                let mut offset = 0;
                while offset < end {
                    let r = log.read(offset, READ_CHUNK, i64::MAX, true).unwrap();
                    out.clear();
                    out.extend_from_slice(&r.records);
                    black_box(&out);
                    bytes += r.records.len();
                    offset = r.next_offset;
                }
            }
            let el = start.elapsed();
            record("read_copy", bytes as f64, el);
            el
        })
    });
    g.finish();

    let mut g = c.benchmark_group("lookup");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let offsets: Vec<i64> = (0..4096).map(|_| (next() % end as u64) as i64).collect();
    let stamps: Vec<i64> = (0..4096)
        .map(|_| (next() % (batches * 16)) as i64)
        .collect();
    g.bench_function(BenchmarkId::new("offset", "read_min_one"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(
                    log.read(offsets[i % offsets.len()], 1, i64::MAX, true)
                        .unwrap(),
                );
            }
            let el = start.elapsed();
            record("lookup_offset", iters as f64, el);
            el
        })
    });
    g.bench_function(BenchmarkId::new("timestamp", "find_batch"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters as usize {
                black_box(
                    log.find_batch_by_timestamp(stamps[i % stamps.len()], 0)
                        .unwrap(),
                );
            }
            let el = start.elapsed();
            record("lookup_timestamp", iters as f64, el);
            el
        })
    });
    g.bench_function(BenchmarkId::new("entry", "entry_meta"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                black_box(log.entry_meta(i % batches).unwrap());
            }
            let el = start.elapsed();
            record("lookup_entry", iters as f64, el);
            el
        })
    });
    g.finish();
}

fn print_summary() {
    let mb = |r: f64| r / (1 << 20) as f64;
    let write = rate("baseline_write");
    let copy = rate("baseline_memcpy");
    println!();
    println!("=== shoal-storage summary (same run, same machine) ===");
    println!(
        "baseline plain sequential file write : {:>9.1} MiB/s",
        mb(write)
    );
    println!(
        "baseline memcpy (1 MiB chunks)       : {:>9.1} MiB/s",
        mb(copy)
    );
    for (name, label, base, aim) in [
        ("append_never", "append, flush never", write, Some(0.70)),
        (
            "append_group_commit",
            "append, group commit (to durable)",
            write,
            None,
        ),
        (
            "read_copy",
            "sequential read (copied out)",
            copy,
            Some(0.50),
        ),
    ] {
        let r = rate(name);
        let ratio = if base > 0.0 { r / base } else { 0.0 };
        let aim = aim.map_or(String::new(), |a| format!("  (aim >= {:.0}%)", a * 100.0));
        println!(
            "{label:<37}: {:>9.1} MiB/s = {:>5.1}% of baseline{aim}",
            mb(r),
            ratio * 100.0
        );
    }
    for (name, label) in [
        ("lookup_offset", "offset lookup (read, min one batch)"),
        ("lookup_timestamp", "timestamp lookup"),
        ("lookup_entry", "entry lookup by Raft index"),
    ] {
        let r = rate(name);
        let ns = if r > 0.0 { 1e9 / r } else { f64::NAN };
        println!("{label:<37}: {:>9.0} ns/op  (aim < 1000 ns)", ns);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c);
    bench_read(&mut c);
    c.final_summary();
    print_summary();
}
