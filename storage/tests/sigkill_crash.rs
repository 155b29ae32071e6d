//! Crash test: a child process (this binary, re-executed with `SHOAL_CRASH_CHILD=<dir>`)
//! appends entries with a group-commit flusher and prints every durable point it is told
//! about; the parent SIGKILLs it after a random number of reports. On reopen every entry the
//! child reported durable must be there, CRC-valid, at the same offsets, with its content.
//!
//! `SHOAL_CRASH_ROUNDS` (default 6) and `SHOAL_CRASH_SEED` (default: time-based, printed)
//! control the run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_storage::record_batch::{set_base_offset, set_partition_leader_epoch, validate};
use shoal_storage::{
    BatchBuilder, FlushPolicy, Flusher, LogConfig, PartitionLog, RealFs, SystemClock, split_batches,
};

const CHILD_ENV: &str = "SHOAL_CRASH_CHILD";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        flush_policy: FlushPolicy::GroupCommit,
        ..LogConfig::default()
    }
}

fn records_in(index: u64) -> usize {
    1 + (index % 5) as usize
}

fn value(index: u64, record: usize) -> Vec<u8> {
    let mut v = format!("entry-{index}-record-{record}-").into_bytes();
    v.resize(150, b'x');
    v
}

fn entry(index: u64) -> Bytes {
    let mut b = BatchBuilder::new(index as i64);
    for r in 0..records_in(index) {
        b.add_record(index as i64, None, Some(&value(index, r)), &[]);
    }
    b.build()
}

fn expected_base_offset(index: u64) -> i64 {
    (0..index).map(|i| records_in(i) as i64).sum()
}

/// Entries the child may have appended beyond the durable point (keeps the run short).
const MAX_IN_FLIGHT: u64 = 32;

fn child(dir: &str) {
    let log = PartitionLog::open(dir, config(), RealFs::shared()).expect("child open");
    let log = Arc::new(Mutex::new(log));
    let durable = Arc::new((Mutex::new(0u64), Condvar::new()));
    let d = Arc::clone(&durable);
    let flusher = Flusher::spawn(
        Arc::clone(&log),
        FlushPolicy::GroupCommit,
        Arc::new(SystemClock),
        Box::new(move |r| {
            let p = r.expect("flush failed in child");
            let mut o = std::io::stdout().lock();
            writeln!(
                o,
                "durable {} {}",
                p.index.map_or(-1, |i| i as i64),
                p.next_offset
            )
            .unwrap();
            o.flush().unwrap();
            *d.0.lock().unwrap() = p.index.map_or(0, |i| i + 1);
            d.1.notify_all();
        }),
    )
    .expect("flusher");
    loop {
        let index = {
            let mut l = log.lock().unwrap();
            let index = l.next_index();
            let info = l
                .append(index, 1 + index / 100, &entry(index), index as i64)
                .expect("append");
            assert_eq!(info.base_offset, expected_base_offset(index));
            index
        };
        flusher.notify();
        let (lock, cv) = &*durable;
        let mut done = lock.lock().unwrap();
        while index >= *done + MAX_IN_FLIGHT {
            done = cv.wait(done).unwrap();
        }
    }
}

/// Small deterministic generator for the kill points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn verify(dir: &std::path::Path, durable_index: i64, durable_offset: i64) -> u64 {
    let log = PartitionLog::open(dir, config(), RealFs::shared()).expect("reopen after SIGKILL");
    let next = log.next_index();
    assert!(
        next as i64 > durable_index,
        "entry {durable_index} was reported durable but the log ends at {next}"
    );
    assert!(log.log_end_offset() >= durable_offset);
    // Every entry present (durable or not) must be whole and where it belongs.
    for e in log.read_entries(0, next, usize::MAX).expect("read entries") {
        let i = e.meta.index;
        assert_eq!(
            e.meta.base_offset,
            expected_base_offset(i),
            "entry {i} moved"
        );
        assert_eq!(e.meta.term, 1 + i / 100);
        let batches: Vec<Bytes> = split_batches(&e.bytes)
            .map(|b| b.expect("whole batch"))
            .collect();
        assert_eq!(batches.len(), 1);
        let h =
            validate(&batches[0]).unwrap_or_else(|err| panic!("entry {i} fails validation: {err}"));
        assert_eq!(h.record_count as usize, records_in(i));
        let mut expected = entry(i).to_vec();
        set_base_offset(&mut expected, expected_base_offset(i)).unwrap();
        set_partition_leader_epoch(&mut expected, (1 + i / 100) as i32).unwrap();
        assert_eq!(&e.bytes[..], &expected[..], "entry {i} content");
    }
    // Kafka reads agree with the entries.
    let r = log.read(0, usize::MAX, i64::MAX, true).expect("read");
    assert!(r.records.len() as u64 <= log.size_bytes());
    next
}

fn parent() {
    let seed: u64 = std::env::var("SHOAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ u64::from(std::process::id())
        });
    let rounds: u32 = std::env::var("SHOAL_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    println!("sigkill_crash: seed {seed}, {rounds} rounds (SHOAL_CRASH_SEED to reproduce)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut last_next = 0;
    for round in 0..rounds {
        let kill_after = 1 + rng.below(60);
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut durable = (-1i64, 0i64);
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < kill_after {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("child produced no durable point in time (round {round}): {e}");
                }
            };
            durable = parse(&line).max(durable);
            seen += 1;
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child was killed");
        // Lines written before the kill are still in the pipe.
        reader.join().expect("reader");
        while let Ok(line) = rx.try_recv() {
            durable = parse(&line).max(durable);
        }
        let next = verify(dir.path(), durable.0, durable.1);
        println!(
            "round {round}: killed after {seen} reports; durable index {}, log recovered to {next} entries",
            durable.0
        );
        assert!(next >= last_next.min(durable.0 as u64 + 1));
        last_next = next;
    }
    println!("sigkill_crash: ok");
}

fn parse(line: &str) -> (i64, i64) {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["durable", i, o] => (i.parse().expect("index"), o.parse().expect("offset")),
        _ => panic!("unexpected child output {line:?}"),
    }
}

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(dir) => child(&dir),
        Err(_) => parent(),
    }
}
