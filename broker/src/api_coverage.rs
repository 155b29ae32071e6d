//! Which (API key, version) pairs this process has served, for the conformance suites.
//!
//! The dispatcher counts every request it hands to a handler. When the broker runs with
//! `SHOAL_API_COVERAGE_FILE` set (the test launchers set it), it appends the counts and the
//! advertised registry to that file on a clean shutdown; `scripts/check-api-coverage` then
//! compares the union of every broker's file with the README's compatibility table. The
//! counters are process-wide atomics, like metrics: counting is one relaxed add per request.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_protocol::kafka_protocol::messages::ApiKey;
use shoal_protocol::registry::ApiRegistry;

/// The environment variable that names the coverage file.
pub const COVERAGE_FILE_ENV: &str = "SHOAL_API_COVERAGE_FILE";

/// API keys counted (Kafka's keys are below this).
const MAX_KEYS: usize = 128;
/// Versions counted per key (Kafka's versions are below this).
const MAX_VERSIONS: usize = 32;

/// Request counts per (API key, version).
#[derive(Debug)]
pub struct ApiCoverage {
    counts: [AtomicU64; MAX_KEYS * MAX_VERSIONS],
}

/// The process's counters, fed by the dispatcher.
pub static API_COVERAGE: ApiCoverage = ApiCoverage::new();

impl ApiCoverage {
    /// Nothing counted yet.
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; MAX_KEYS * MAX_VERSIONS],
        }
    }

    fn slot(key: i16, version: i16) -> Option<usize> {
        let key = usize::try_from(key).ok().filter(|k| *k < MAX_KEYS)?;
        let version = usize::try_from(version)
            .ok()
            .filter(|v| *v < MAX_VERSIONS)?;
        Some(key * MAX_VERSIONS + version)
    }

    /// Counts one request. Keys and versions outside the counted range are ignored (the registry
    /// never lets such a request through).
    pub fn record(&self, key: ApiKey, version: i16) {
        if let Some(slot) = Self::slot(key as i16, version) {
            self.counts[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every (key, version, count) with a non-zero count, in key and version order.
    pub fn counts(&self) -> Vec<(i16, i16, u64)> {
        let mut out = Vec::new();
        for (slot, count) in self.counts.iter().enumerate() {
            let n = count.load(Ordering::Relaxed);
            if n > 0 {
                // Both fit: slots are bounded by MAX_KEYS * MAX_VERSIONS.
                let key = i16::try_from(slot / MAX_VERSIONS).unwrap_or(i16::MAX);
                let version = i16::try_from(slot % MAX_VERSIONS).unwrap_or(i16::MAX);
                out.push((key, version, n));
            }
        }
        out
    }

    /// The report: one `advertised KEY NAME MIN MAX` line per registered API, then one
    /// `exercised KEY VERSION COUNT` line per version served.
    pub fn report(&self, registry: &ApiRegistry) -> String {
        let mut text = String::new();
        for api in registry.apis() {
            let _ = writeln!(
                text,
                "advertised {} {:?} {} {}",
                api.key as i16, api.key, api.min_version, api.max_version
            );
        }
        for (key, version, count) in self.counts() {
            let _ = writeln!(text, "exercised {key} {version} {count}");
        }
        text
    }

    /// Appends [`Self::report`] to `path` in one write (several brokers may share the file).
    pub fn append_report(&self, path: &Path, registry: &ApiRegistry) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(self.report(registry).as_bytes())?;
        file.sync_all()
    }
}

impl Default for ApiCoverage {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use shoal_protocol::registry::ApiSupport;

    use super::*;

    #[test]
    fn counts_requests_per_key_and_version_and_reports_the_registry() {
        static APIS: [ApiSupport; 2] = [
            ApiSupport::new(ApiKey::Produce, 3, 12),
            ApiSupport::new(ApiKey::ApiVersions, 0, 4),
        ];
        let coverage = ApiCoverage::new();
        coverage.record(ApiKey::Produce, 12);
        coverage.record(ApiKey::Produce, 12);
        coverage.record(ApiKey::ApiVersions, 3);
        coverage.record(ApiKey::ApiVersions, 99);
        assert_eq!(coverage.counts(), vec![(0, 12, 2), (18, 3, 1)]);
        assert_eq!(
            coverage.report(&ApiRegistry::new(&APIS)),
            "advertised 0 Produce 3 12\nadvertised 18 ApiVersions 0 4\nexercised 0 12 2\nexercised 18 3 1\n"
        );
    }

    #[test]
    fn reports_append_to_the_file() {
        static APIS: [ApiSupport; 1] = [ApiSupport::new(ApiKey::ApiVersions, 0, 4)];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coverage.txt");
        let coverage = ApiCoverage::new();
        coverage.record(ApiKey::ApiVersions, 4);
        let registry = ApiRegistry::new(&APIS);
        coverage.append_report(&path, &registry).unwrap();
        coverage.append_report(&path, &registry).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("exercised 18 4 1\n").count(), 2);
    }
}
