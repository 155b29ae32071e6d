//! What consumers were served, by whom and across which racks, in Prometheus's text format.
//!
//! [`FetchMetrics`] counts, per topic-partition, serving role (leader or follower) and client
//! rack, the record-batch bytes and records returned to consumers, and the preferred-replica
//! redirects a leader issued. The fetch path adds to atomics found in one of 16 sharded maps
//! under a read lock (a write lock only the first time a series appears), so no lock is shared
//! by all fetches. Cardinality is bounded: client racks are labelled only if a broker or
//! `client.rack.cidrs` names them (others are `other`, unknown ones empty), the number of rack
//! labels is capped, and series of deleted topics are dropped when the endpoint renders.
//! [`endpoint`] serves the text on `metrics.listener`.

pub mod endpoint;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use uuid::Uuid;

use crate::partition::{Role, TopicPartition};

/// Rack label of a client whose rack is unknown.
pub const UNKNOWN_RACK_LABEL: &str = "";
/// Rack label of a client rack that neither a broker nor `client.rack.cidrs` names.
pub const OTHER_RACK_LABEL: &str = "other";
/// Distinct client rack labels kept; later ones count as [`OTHER_RACK_LABEL`].
pub const MAX_RACK_LABELS: usize = 256;
const SHARDS: usize = 16;

/// An interned client-rack label (cheap to copy into series keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RackLabel(u16);

#[derive(Debug, Default)]
struct Served {
    bytes: AtomicU64,
    records: AtomicU64,
}

#[derive(Debug)]
struct Series<V> {
    topic: Arc<str>,
    value: V,
}

type ServedKey = (Uuid, i32, bool, RackLabel);
type RedirectKey = (Uuid, i32, RackLabel, i32);
type Shards<K, V> = [RwLock<HashMap<K, Series<V>>>; SHARDS];

/// Consumer-fetch counters of one broker.
#[derive(Debug)]
pub struct FetchMetrics {
    node_id: i32,
    broker_rack: Option<Arc<str>>,
    rack_source: &'static str,
    labels: RwLock<Vec<Arc<str>>>,
    served: Shards<ServedKey, Served>,
    redirects: Shards<RedirectKey, AtomicU64>,
}

fn shard_of(topic_id: &Uuid, partition: i32) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (topic_id, partition).hash(&mut h);
    (h.finish() as usize) % SHARDS
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Adds to the series `key` of `shards`, creating it on first use.
fn bump<K: Eq + Hash + Copy, V: Default>(
    shards: &Shards<K, V>,
    shard: usize,
    key: K,
    topic: &str,
    add: impl Fn(&V),
) {
    if let Some(series) = read(&shards[shard]).get(&key) {
        add(&series.value);
        return;
    }
    let mut map = write(&shards[shard]);
    let series = map.entry(key).or_insert_with(|| Series {
        topic: Arc::from(topic),
        value: V::default(),
    });
    add(&series.value);
}

/// Prometheus label value escaping.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl FetchMetrics {
    /// Counters of broker `node_id` in `broker_rack`, which came from `rack_source` (`static`,
    /// `env`, `aws`, `gcp`, `azure` or `none`).
    pub fn new(node_id: i32, broker_rack: Option<&str>, rack_source: &'static str) -> Self {
        FetchMetrics {
            node_id,
            broker_rack: broker_rack.map(Arc::from),
            rack_source,
            labels: RwLock::new(vec![
                Arc::from(UNKNOWN_RACK_LABEL),
                Arc::from(OTHER_RACK_LABEL),
            ]),
            served: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            redirects: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }

    /// The label for a client in `client_rack`; `known` says whether a broker or the CIDR map
    /// names that rack.
    pub fn rack_label(&self, client_rack: Option<&str>, known: impl Fn(&str) -> bool) -> RackLabel {
        let rack = match client_rack {
            None | Some("") => return RackLabel(0),
            Some(rack) if !known(rack) || rack == OTHER_RACK_LABEL => return RackLabel(1),
            Some(rack) => rack,
        };
        if let Some(i) = read(&self.labels).iter().position(|l| l.as_ref() == rack) {
            return RackLabel(i as u16);
        }
        let mut labels = write(&self.labels);
        if let Some(i) = labels.iter().position(|l| l.as_ref() == rack) {
            return RackLabel(i as u16);
        }
        if labels.len() >= MAX_RACK_LABELS {
            return RackLabel(1);
        }
        labels.push(Arc::from(rack));
        RackLabel((labels.len() - 1) as u16)
    }

    /// Records a consumer fetch answer: `bytes` of batches holding `records` records.
    pub fn record_served(
        &self,
        tp: &TopicPartition,
        role: Role,
        client_rack: RackLabel,
        bytes: u64,
        records: u64,
    ) {
        let key = (tp.topic_id, tp.partition, role == Role::Leader, client_rack);
        bump(
            &self.served,
            shard_of(&tp.topic_id, tp.partition),
            key,
            &tp.topic,
            |s: &Served| {
                s.bytes.fetch_add(bytes, Ordering::Relaxed);
                s.records.fetch_add(records, Ordering::Relaxed);
            },
        );
    }

    /// Records that a leader sent a consumer in `client_rack` to `replica`.
    pub fn record_redirect(&self, tp: &TopicPartition, client_rack: RackLabel, replica: i32) {
        let key = (tp.topic_id, tp.partition, client_rack, replica);
        bump(
            &self.redirects,
            shard_of(&tp.topic_id, tp.partition),
            key,
            &tp.topic,
            |c: &AtomicU64| {
                c.fetch_add(1, Ordering::Relaxed);
            },
        );
    }

    /// Forgets series of topics for which `live` is false (deleted topics).
    pub fn retain_topics(&self, live: impl Fn(&Uuid) -> bool) {
        for shard in &self.served {
            write(shard).retain(|k, _| live(&k.0));
        }
        for shard in &self.redirects {
            write(shard).retain(|k, _| live(&k.0));
        }
    }

    /// The counters in Prometheus's text exposition format (version 0.0.4), sorted.
    pub fn render(&self) -> String {
        let labels: Vec<Arc<str>> = read(&self.labels).clone();
        let label = |l: RackLabel| escape(labels.get(l.0 as usize).map_or("", |s| s.as_ref()));
        let broker_rack = self.broker_rack.as_deref().unwrap_or("");
        let broker_rack_escaped = escape(broker_rack);

        let mut served: Vec<(String, i32, &'static str, String, u64, u64)> = Vec::new();
        for shard in &self.served {
            for (key, series) in read(shard).iter() {
                served.push((
                    escape(&series.topic),
                    key.1,
                    if key.2 { "leader" } else { "follower" },
                    label(key.3),
                    series.value.bytes.load(Ordering::Relaxed),
                    series.value.records.load(Ordering::Relaxed),
                ));
            }
        }
        served.sort();
        let mut redirects: Vec<(String, i32, String, i32, u64)> = Vec::new();
        for shard in &self.redirects {
            for (key, series) in read(shard).iter() {
                redirects.push((
                    escape(&series.topic),
                    key.1,
                    label(key.2),
                    key.3,
                    series.value.load(Ordering::Relaxed),
                ));
            }
        }
        redirects.sort();

        let mut out = String::with_capacity(256 + 200 * (served.len() * 3 + redirects.len()));
        out.push_str(
            "# HELP shoal_broker_info This broker: node id, rack and where the rack came from.\n",
        );
        out.push_str("# TYPE shoal_broker_info gauge\n");
        let _ = writeln!(
            out,
            "shoal_broker_info{{node_id=\"{}\",rack=\"{broker_rack_escaped}\",rack_source=\"{}\"}} 1",
            self.node_id, self.rack_source
        );
        let series_labels = |(topic, partition, role, rack, ..): &(
            String,
            i32,
            &'static str,
            String,
            u64,
            u64,
        )| {
            format!(
                "topic=\"{topic}\",partition=\"{partition}\",role=\"{role}\",broker_rack=\"{broker_rack_escaped}\",client_rack=\"{rack}\""
            )
        };
        for (name, help, pick) in [
            (
                "shoal_consumer_fetch_bytes_total",
                "Bytes of record batches returned to consumers.",
                0,
            ),
            (
                "shoal_consumer_fetch_records_total",
                "Records in the batches returned to consumers.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for s in &served {
                let value = if pick == 0 { s.4 } else { s.5 };
                let _ = writeln!(out, "{name}{{{}}} {value}", series_labels(s));
            }
        }
        let name = "shoal_consumer_fetch_cross_rack_bytes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Bytes returned to consumers whose rack is known and differs from this broker's.\n# TYPE {name} counter"
        );
        if !broker_rack.is_empty() {
            for s in served
                .iter()
                .filter(|s| !s.3.is_empty() && s.3 != broker_rack_escaped)
            {
                let _ = writeln!(out, "{name}{{{}}} {}", series_labels(s), s.4);
            }
        }
        let name = "shoal_preferred_read_replica_redirects_total";
        let _ = writeln!(
            out,
            "# HELP {name} Fetches this leader answered with a preferred read replica instead of records.\n# TYPE {name} counter"
        );
        for (topic, partition, rack, replica, count) in &redirects {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{topic}\",partition=\"{partition}\",client_rack=\"{rack}\",replica=\"{replica}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, id: u128, partition: i32) -> TopicPartition {
        TopicPartition {
            topic_id: Uuid::from_u128(id),
            topic: topic.into(),
            partition,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn counts_served_bytes_and_records_per_series() {
        let m = FetchMetrics::new(2, Some("r2"), "static");
        let known = |r: &str| ["r1", "r2", "r3"].contains(&r);
        let r1 = m.rack_label(Some("r1"), known);
        let r2 = m.rack_label(Some("r2"), known);
        let none = m.rack_label(None, known);
        let t0 = tp("t", 1, 0);
        m.record_served(&t0, Role::Follower, r1, 100, 3);
        m.record_served(&t0, Role::Follower, r1, 50, 2);
        m.record_served(&t0, Role::Follower, r2, 7, 1);
        m.record_served(&t0, Role::Leader, none, 9, 1);
        m.record_redirect(&tp("t", 1, 1), r1, 1);
        m.record_redirect(&tp("t", 1, 1), r1, 1);
        let text = m.render();
        assert!(
            text.contains("shoal_broker_info{node_id=\"2\",rack=\"r2\",rack_source=\"static\"} 1")
        );
        assert_eq!(
            line(
                &text,
                "shoal_consumer_fetch_bytes_total{topic=\"t\",partition=\"0\",role=\"follower\",broker_rack=\"r2\",client_rack=\"r1\"}"
            ),
            Some(
                "shoal_consumer_fetch_bytes_total{topic=\"t\",partition=\"0\",role=\"follower\",broker_rack=\"r2\",client_rack=\"r1\"} 150"
            )
        );
        assert!(text.contains("shoal_consumer_fetch_records_total{topic=\"t\",partition=\"0\",role=\"follower\",broker_rack=\"r2\",client_rack=\"r1\"} 5\n"));
        assert!(text.contains("shoal_consumer_fetch_bytes_total{topic=\"t\",partition=\"0\",role=\"leader\",broker_rack=\"r2\",client_rack=\"\"} 9\n"));
        // Cross-rack: r1 only (r2 is local, the unknown rack is not counted).
        let cross: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("shoal_consumer_fetch_cross_rack_bytes_total{"))
            .collect();
        assert_eq!(
            cross,
            vec![
                "shoal_consumer_fetch_cross_rack_bytes_total{topic=\"t\",partition=\"0\",role=\"follower\",broker_rack=\"r2\",client_rack=\"r1\"} 150"
            ]
        );
        assert!(text.contains("shoal_preferred_read_replica_redirects_total{topic=\"t\",partition=\"1\",client_rack=\"r1\",replica=\"1\"} 2\n"));
        for name in [
            "shoal_consumer_fetch_bytes_total",
            "shoal_consumer_fetch_records_total",
            "shoal_consumer_fetch_cross_rack_bytes_total",
            "shoal_preferred_read_replica_redirects_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} counter\n")), "{name}");
        }
    }

    #[test]
    fn client_rack_labels_are_bounded() {
        let m = FetchMetrics::new(1, None, "none");
        let any = |_: &str| true;
        assert_eq!(m.rack_label(Some(""), any), m.rack_label(None, any));
        let unknown = m.rack_label(Some("made-up"), |_| false);
        assert_eq!(unknown, m.rack_label(Some(OTHER_RACK_LABEL), any));
        for i in 0..(MAX_RACK_LABELS * 2) {
            m.rack_label(Some(&format!("rack-{i}")), any);
        }
        assert_eq!(read(&m.labels).len(), MAX_RACK_LABELS);
        assert_eq!(m.rack_label(Some("one-more"), any), unknown);
        assert_eq!(m.rack_label(Some("rack-3"), any), RackLabel(5));
    }

    #[test]
    fn no_broker_rack_means_no_cross_rack_series() {
        let m = FetchMetrics::new(1, None, "none");
        let r1 = m.rack_label(Some("r1"), |_| true);
        m.record_served(&tp("t", 1, 0), Role::Leader, r1, 10, 1);
        let text = m.render();
        assert!(!text.contains("shoal_consumer_fetch_cross_rack_bytes_total{"));
        assert!(text.contains("broker_rack=\"\",client_rack=\"r1\"} 10"));
    }

    #[test]
    fn deleted_topics_are_forgotten_and_labels_escaped() {
        let m = FetchMetrics::new(1, Some("r\"1"), "static");
        let r = m.rack_label(None, |_| true);
        m.record_served(&tp("gone", 1, 0), Role::Leader, r, 1, 1);
        m.record_served(&tp("kept", 2, 0), Role::Leader, r, 1, 1);
        m.record_redirect(&tp("gone", 1, 0), r, 3);
        m.retain_topics(|id| *id == Uuid::from_u128(2));
        let text = m.render();
        assert!(!text.contains("gone"), "{text}");
        assert!(text.contains("topic=\"kept\""));
        assert!(text.contains("rack=\"r\\\"1\""));
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = Arc::new(FetchMetrics::new(1, None, "none"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let r = m.rack_label(None, |_| true);
                    for p in 0..50 {
                        m.record_served(&tp("t", 1, p), Role::Leader, r, 2, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total: u64 = m
            .render()
            .lines()
            .filter(|l| l.starts_with("shoal_consumer_fetch_bytes_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 4 * 50 * 2);
    }
}
