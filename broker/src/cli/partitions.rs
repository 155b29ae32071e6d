//! `shoal partitions`: per partition, the leader, the replicas with their racks, the ISR, and the
//! replica a consumer in each rack would be sent to by a rack-aware leader.
//!
//! It asks any broker (Kafka or Shoal) for Metadata and runs [`crate::replica_selector`] on it.
//! Metadata carries no replication progress, so every in-sync replica is assumed caught up (same
//! log end, caught up now) and the fetch offset is taken as covered: the answer is what a
//! consumer gets while replication keeps up. Replicas reported offline, or whose broker is not
//! in the answer, are not chosen.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use shoal_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use shoal_protocol::kafka_protocol::protocol::StrBytes;
use shoal_protocol::request::encode_request;
use shoal_protocol::response::decode_response;
use shoal_protocol::{RequestKind, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::replica_selector::{
    self, FetchOrigin, MIN_FETCH_VERSION, ReplicaState, ReplicaView, SelectorKind,
};

/// The Metadata versions this command reads (v1 has racks, v7 leader epochs).
const METADATA_VERSIONS: (i16, i16) = (1, 12);
/// The client id of the command's requests.
const CLIENT_ID: &str = "shoal-partitions";
/// Largest response frame accepted.
const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// What went wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum PartitionsError {
    /// Connecting, sending or receiving failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// No answer in time.
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    /// The broker's answer is unusable.
    #[error("{0}")]
    Protocol(String),
}

/// Asks `bootstrap` (`host:port`) for the metadata of `topic` (all topics if `None`).
pub async fn fetch_metadata(
    bootstrap: &str,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<(MetadataResponse, i16), PartitionsError> {
    tokio::time::timeout(timeout, metadata_exchange(bootstrap, topic))
        .await
        .map_err(|_| PartitionsError::Timeout(bootstrap.to_string(), timeout))?
}

async fn metadata_exchange(
    bootstrap: &str,
    topic: Option<&str>,
) -> Result<(MetadataResponse, i16), PartitionsError> {
    let io = |e| PartitionsError::Io(bootstrap.to_string(), e);
    let mut stream = TcpStream::connect(bootstrap).await.map_err(io)?;
    let versions = match exchange(
        &mut stream,
        ApiKey::ApiVersions,
        0,
        1,
        CLIENT_ID,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
    .await?
    {
        ResponseKind::ApiVersions(r) => r,
        _ => {
            return Err(PartitionsError::Protocol(
                "unexpected ApiVersions answer".into(),
            ));
        }
    };
    if versions.error_code != 0 {
        return Err(PartitionsError::Protocol(format!(
            "ApiVersions failed with error code {}",
            versions.error_code
        )));
    }
    let range = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Metadata as i16)
        .map(|k| (k.min_version, k.max_version))
        .ok_or_else(|| PartitionsError::Protocol("the broker does not offer Metadata".into()))?;
    let version = range.1.min(METADATA_VERSIONS.1);
    if version < METADATA_VERSIONS.0.max(range.0) {
        return Err(PartitionsError::Protocol(format!(
            "the broker offers Metadata v{}-v{}; this command needs v{}-v{}",
            range.0, range.1, METADATA_VERSIONS.0, METADATA_VERSIONS.1
        )));
    }
    let mut request = MetadataRequest::default().with_topics(topic.map(|t| {
        vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(t.to_string())))),
        ]
    }));
    if version >= 4 {
        request.allow_auto_topic_creation = false;
    }
    match exchange(
        &mut stream,
        ApiKey::Metadata,
        version,
        2,
        CLIENT_ID,
        RequestKind::Metadata(request),
    )
    .await?
    {
        ResponseKind::Metadata(r) => Ok((r, version)),
        _ => Err(PartitionsError::Protocol(
            "unexpected Metadata answer".into(),
        )),
    }
}

/// One request and its response on `stream` (shared with [`super::healthcheck`]).
pub(crate) async fn exchange(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    body: RequestKind,
) -> Result<ResponseKind, PartitionsError> {
    let io = |e| PartitionsError::Io(format!("{api_key:?}"), e);
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let frame =
        encode_request(&header, &body).map_err(|e| PartitionsError::Protocol(e.to_string()))?;
    stream.write_all(&frame).await.map_err(io)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.map_err(io)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|s| *s <= MAX_FRAME_BYTES)
        .ok_or_else(|| PartitionsError::Protocol(format!("bad {api_key:?} frame size")))?;
    let mut data = vec![0u8; size];
    stream.read_exact(&mut data).await.map_err(io)?;
    let (header, response) = decode_response(Bytes::from(data), api_key, version)
        .map_err(|e| PartitionsError::Protocol(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(PartitionsError::Protocol(format!(
            "{api_key:?}: correlation id {} instead of {correlation_id}",
            header.correlation_id
        )));
    }
    Ok(response)
}

/// One partition's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Leader (-1: none).
    pub leader: i32,
    /// Leader epoch (-1 when the broker does not say).
    pub leader_epoch: i32,
    /// Replicas with their racks.
    pub replicas: Vec<(i32, Option<String>)>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Offline replicas.
    pub offline: Vec<i32>,
    /// Per rack of the cluster: the replica a consumer there reads from (-1: none, no leader).
    pub reads_from: Vec<(String, i32)>,
    /// The partition's error code, if any.
    pub error_code: i16,
}

/// The rows of `metadata`, topics by name, partitions by index.
pub fn rows(metadata: &MetadataResponse) -> Vec<PartitionRow> {
    let racks_by_broker: BTreeMap<i32, Option<String>> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    let racks: BTreeSet<String> = racks_by_broker.values().flatten().cloned().collect();
    let mut out = Vec::new();
    let mut topics: Vec<_> = metadata.topics.iter().collect();
    topics.sort_by_key(|t| t.name.as_ref().map(|n| n.to_string()));
    for topic in topics {
        let name = topic
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let mut partitions: Vec<_> = topic.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        for p in partitions {
            let leader = p.leader_id.0;
            let offline: Vec<i32> = p.offline_replicas.iter().map(|b| b.0).collect();
            let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            let view = |id: i32| ReplicaView {
                state: ReplicaState {
                    broker_id: id,
                    log_end_offset: 0,
                    log_start_offset: 0,
                    in_sync: isr.contains(&id),
                    last_caught_up_ms: Some(0),
                },
                rack: racks_by_broker.get(&id).and_then(|r| r.as_deref()),
                live: racks_by_broker.contains_key(&id) && !offline.contains(&id),
                has_endpoint: racks_by_broker.contains_key(&id),
            };
            let followers: Vec<ReplicaView<'_>> = p
                .replica_nodes
                .iter()
                .map(|b| b.0)
                .filter(|id| *id != leader)
                .map(view)
                .collect();
            let reads_from = racks
                .iter()
                .map(|rack| {
                    let chosen = if leader < 0 {
                        -1
                    } else {
                        let origin = FetchOrigin {
                            version: MIN_FETCH_VERSION,
                            replica_id: -1,
                            client_rack: Some(rack),
                        };
                        replica_selector::preferred_read_replica(
                            SelectorKind::RackAware,
                            true,
                            &origin,
                            0,
                            &view(leader),
                            &followers,
                            0,
                        )
                        .unwrap_or(leader)
                    };
                    (rack.clone(), chosen)
                })
                .collect();
            out.push(PartitionRow {
                topic: name.clone(),
                partition: p.partition_index,
                leader,
                leader_epoch: p.leader_epoch,
                replicas: p
                    .replica_nodes
                    .iter()
                    .map(|b| (b.0, racks_by_broker.get(&b.0).cloned().flatten()))
                    .collect(),
                isr,
                offline,
                reads_from,
                error_code: p.error_code,
            });
        }
    }
    out
}

fn ids(list: &[i32]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The table `shoal partitions` prints.
pub fn render(metadata: &MetadataResponse) -> String {
    let mut lines: Vec<[String; 8]> = vec![[
        "TOPIC".into(),
        "PARTITION".into(),
        "LEADER".into(),
        "EPOCH".into(),
        "REPLICAS(RACK)".into(),
        "ISR".into(),
        "OFFLINE".into(),
        "CONSUMER RACK -> READS FROM".into(),
    ]];
    for row in rows(metadata) {
        let replicas = row
            .replicas
            .iter()
            .map(|(id, rack)| format!("{id}({})", rack.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(",");
        let reads = if row.error_code != 0 {
            format!("error code {}", row.error_code)
        } else if row.reads_from.is_empty() {
            "no broker has a rack: the leader".into()
        } else {
            row.reads_from
                .iter()
                .map(|(rack, id)| {
                    let note = if *id == row.leader { "(leader)" } else { "" };
                    format!("{rack}->{id}{note}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        lines.push([
            row.topic,
            row.partition.to_string(),
            row.leader.to_string(),
            row.leader_epoch.to_string(),
            if replicas.is_empty() {
                "-".into()
            } else {
                replicas
            },
            ids(&row.isr),
            ids(&row.offline),
            reads,
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::kafka_protocol::messages::BrokerId;
    use shoal_protocol::kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn broker(id: i32, rack: Option<&str>) -> MetadataResponseBroker {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("h"))
            .with_port(9000 + id)
            .with_rack(rack.map(|r| StrBytes::from_string(r.to_string())))
    }

    fn partition(
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
        offline: &[i32],
    ) -> MetadataResponsePartition {
        let ids = |l: &[i32]| l.iter().map(|i| BrokerId(*i)).collect();
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(4)
            .with_replica_nodes(ids(replicas))
            .with_isr_nodes(ids(isr))
            .with_offline_replicas(ids(offline))
    }

    fn metadata(partitions: Vec<MetadataResponsePartition>) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![
                broker(1, Some("r1")),
                broker(2, Some("r2")),
                broker(3, Some("r3")),
            ])
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(partitions),
            ])
    }

    fn reads(row: &PartitionRow) -> Vec<i32> {
        row.reads_from.iter().map(|(_, id)| *id).collect()
    }

    #[test]
    fn each_rack_reads_from_its_in_sync_replica() {
        let rows = rows(&metadata(vec![
            partition(1, 2, &[2, 3, 1], &[2, 3, 1], &[]),
            partition(0, 1, &[1, 2, 3], &[1, 2, 3], &[]),
        ]));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].partition, 0, "sorted by partition");
        assert_eq!(reads(&rows[0]), vec![1, 2, 3]);
        assert_eq!(reads(&rows[1]), vec![1, 2, 3]);
        assert_eq!(rows[0].replicas[1], (2, Some("r2".to_string())));
    }

    #[test]
    fn out_of_sync_and_offline_replicas_send_the_rack_to_the_leader() {
        let rows = rows(&metadata(vec![partition(0, 1, &[1, 2, 3], &[1, 2], &[2])]));
        assert_eq!(reads(&rows[0]), vec![1, 1, 1]);
        assert_eq!(rows[0].offline, vec![2]);
    }

    #[test]
    fn a_partition_without_leader_reads_nowhere() {
        let rows = rows(&metadata(vec![partition(
            0,
            -1,
            &[1, 2, 3],
            &[],
            &[1, 2, 3],
        )]));
        assert_eq!(reads(&rows[0]), vec![-1, -1, -1]);
    }

    #[test]
    fn the_table_names_racks_and_marks_the_leader() {
        let text = render(&metadata(vec![partition(
            0,
            1,
            &[1, 2, 3],
            &[1, 2, 3],
            &[],
        )]));
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("TOPIC"), "{text}");
        let row = lines.next().unwrap();
        assert!(row.contains("1(r1),2(r2),3(r3)"), "{text}");
        assert!(row.ends_with("r1->1(leader) r2->2 r3->3"), "{text}");
        let no_racks = MetadataResponse::default()
            .with_brokers(vec![broker(1, None)])
            .with_topics(metadata(vec![partition(0, 1, &[1], &[1], &[])]).topics);
        assert!(render(&no_racks).contains("no broker has a rack: the leader"));
    }
}
