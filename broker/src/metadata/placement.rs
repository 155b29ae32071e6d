//! Replica placement for new partitions: replicas spread across racks, leaders spread across
//! brokers.
//!
//! Brokers are ordered so that consecutive entries alternate racks (Kafka's rack-alternated broker
//! list); partition `p` takes `rf` consecutive entries starting at `start + p`. With one broker
//! every partition lives on it.

use std::collections::BTreeMap;

/// A broker that can host replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id.
    pub node_id: i32,
    /// Rack, if any.
    pub rack: Option<String>,
}

/// Placement is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "The target replication factor of {replication_factor} cannot be reached because only {usable} broker(s) are registered."
)]
pub struct PlacementError {
    /// Requested replication factor.
    pub replication_factor: i16,
    /// Unfenced brokers.
    pub usable: usize,
}

/// Replica lists for `partitions` new partitions with `replication_factor` replicas each.
/// `start` rotates the layout (use the topic's existing partition count when adding partitions).
pub fn place(
    candidates: &[Candidate],
    partitions: usize,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > candidates.len() {
        return Err(PlacementError {
            replication_factor,
            usable: candidates.len(),
        });
    }
    let ordered = rack_alternated(candidates);
    let n = ordered.len();
    Ok((0..partitions)
        .map(|p| (0..rf).map(|i| ordered[(start + p + i) % n]).collect())
        .collect())
}

fn rack_alternated(candidates: &[Candidate]) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for c in candidates {
        by_rack
            .entry(c.rack.as_deref())
            .or_default()
            .push(c.node_id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(candidates.len());
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(i) {
                out.push(*id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i32, rack: &str) -> Candidate {
        Candidate {
            node_id: id,
            rack: Some(rack.to_string()),
        }
    }

    #[test]
    fn single_broker() {
        let one = [Candidate {
            node_id: 1,
            rack: None,
        }];
        assert_eq!(
            place(&one, 3, 1, 0).unwrap(),
            vec![vec![1], vec![1], vec![1]]
        );
        assert_eq!(
            place(&one, 1, 2, 0),
            Err(PlacementError {
                replication_factor: 2,
                usable: 1
            })
        );
    }

    #[test]
    fn replicas_span_racks_and_leaders_rotate() {
        let brokers = [c(1, "a"), c(2, "a"), c(3, "b"), c(4, "b")];
        let layout = place(&brokers, 4, 2, 0).unwrap();
        let rack = |id: i32| if id <= 2 { "a" } else { "b" };
        for replicas in &layout {
            assert_eq!(replicas.len(), 2);
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{layout:?}");
        }
        let mut leaders: Vec<i32> = layout.iter().map(|r| r[0]).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 2, 3, 4]);
    }
}
