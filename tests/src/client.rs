//! A raw Kafka protocol client: one request at a time, or raw bytes.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProducerId,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use shoal_protocol::request::encode_request;
use shoal_protocol::response::decode_response;
use shoal_protocol::{RequestKind, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single response may take.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);

/// A connection to a broker.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    /// Connects to `address`.
    pub async fn connect(address: &str) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(RESPONSE_DEADLINE, TcpStream::connect(address))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `body` as `api_key` at `version` and returns the decoded response.
    pub async fn send(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        let correlation_id = self.send_only(api_key, version, &body).await?;
        self.receive(api_key, version, correlation_id).await
    }

    /// Sends a request without waiting for the response; returns its correlation id.
    pub async fn send_only(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
    ) -> anyhow::Result<i32> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("shoal-tests")));
        let frame = encode_request(&header, body)?;
        self.stream.write_all(&frame).await?;
        Ok(self.correlation_id)
    }

    /// Reads the response to a request sent with [`Client::send_only`].
    pub async fn receive(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<ResponseKind> {
        let frame = self
            .read_frame()
            .await?
            .context("connection closed before the response")?;
        let (header, body) = decode_response(frame, api_key, version)?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id {} does not match {correlation_id}",
                header.correlation_id
            );
        }
        Ok(body)
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads one response frame (without its size prefix); `None` if the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> anyhow::Result<Option<Bytes>> {
        tokio::time::timeout(RESPONSE_DEADLINE, async {
            let mut size = [0u8; 4];
            match self.stream.read_exact(&mut size).await {
                Ok(_) => {}
                Err(e) if is_closed(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let size = i32::from_be_bytes(size);
            let size =
                usize::try_from(size).with_context(|| format!("negative response size {size}"))?;
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await?;
            Ok(Some(Bytes::from(body)))
        })
        .await
        .context("no response within the deadline")?
    }

    /// Waits until the broker closes the connection (any data received first is an error).
    pub async fn expect_closed(&mut self) -> anyhow::Result<()> {
        match self.read_frame().await? {
            None => Ok(()),
            Some(frame) => bail!(
                "expected the connection to close, got a {}-byte response",
                frame.len()
            ),
        }
    }

    /// Waits (within [`RESPONSE_DEADLINE`]) until `group`'s coordinator is found and loaded:
    /// FindCoordinator answers without error (the first calls create `__consumer_offsets`) and
    /// an OffsetFetch for the group is no longer refused while the partition loads. Returns the
    /// coordinator's node id.
    pub async fn find_coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let deadline = tokio::time::Instant::now() + RESPONSE_DEADLINE;
        let node = loop {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_string()));
            match self
                .send(
                    ApiKey::FindCoordinator,
                    3,
                    RequestKind::FindCoordinator(request),
                )
                .await?
            {
                ResponseKind::FindCoordinator(r) if r.error_code == 0 => break r.node_id.0,
                ResponseKind::FindCoordinator(r) if r.error_code == 15 => {}
                other => bail!("unexpected FindCoordinator answer {other:?}"),
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no coordinator for {group} within the deadline");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        loop {
            let fetch = self.offset_fetch(group, &[]).await?;
            match fetch.error_code {
                0 => return Ok(node),
                14 | 16 => {}
                other => bail!("OffsetFetch while waiting for the coordinator: error {other}"),
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the coordinator of {group} did not load within the deadline");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// OffsetFetch v7 for `group` and `(topic, partitions)`.
    pub async fn offset_fetch(
        &mut self,
        group: &str,
        topics: &[(&str, &[i32])],
    ) -> anyhow::Result<OffsetFetchResponse> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps.to_vec())
                    })
                    .collect(),
            ));
        match self
            .send(ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(request))
            .await?
        {
            ResponseKind::OffsetFetch(r) => Ok(r),
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// InitProducerId v4 for an idempotent producer; returns (error, producer id, epoch).
    pub async fn init_producer_id(&mut self) -> anyhow::Result<(i16, i64, i16)> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match self
            .send(
                ApiKey::InitProducerId,
                4,
                RequestKind::InitProducerId(request),
            )
            .await?
        {
            ResponseKind::InitProducerId(r) => {
                Ok((r.error_code, r.producer_id.0, r.producer_epoch))
            }
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// ApiVersions at `version`.
    pub async fn api_versions(
        &mut self,
        version: i16,
    ) -> anyhow::Result<kafka_protocol::messages::ApiVersionsResponse> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shoal-tests"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        match self
            .send(
                ApiKey::ApiVersions,
                version,
                RequestKind::ApiVersions(request),
            )
            .await?
        {
            ResponseKind::ApiVersions(r) => Ok(r),
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// Metadata v12 for `topics` (all topics when `None`).
    pub async fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> anyhow::Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.to_string()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        match self
            .send(ApiKey::Metadata, 12, RequestKind::Metadata(request))
            .await?
        {
            ResponseKind::Metadata(r) => Ok(r),
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// CreateTopics v7 for one topic; returns the error code (0 on success).
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> anyhow::Result<i16> {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000);
        match self
            .send(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(request))
            .await?
        {
            ResponseKind::CreateTopics(r) => Ok(r
                .topics
                .first()
                .context("no topic in the response")?
                .error_code),
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// Produce `records` (one or more batches, as bytes) to one partition with `acks` at `version`.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
        version: i16,
    ) -> anyhow::Result<Option<PartitionProduceResponse>> {
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ]),
            ]);
        let body = RequestKind::Produce(request);
        if acks == 0 {
            self.send_only(ApiKey::Produce, version, &body).await?;
            return Ok(None);
        }
        match self.send(ApiKey::Produce, version, body).await? {
            ResponseKind::Produce(r) => Ok(Some(
                r.responses
                    .into_iter()
                    .next()
                    .and_then(|t| t.partition_responses.into_iter().next())
                    .context("no partition in the produce response")?,
            )),
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// Fetch v12 (by name) from one partition.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> anyhow::Result<PartitionData> {
        let spec = PartitionFetch {
            max_wait_ms,
            min_bytes,
            ..PartitionFetch::new(topic, partition, offset)
        };
        self.fetch_partition(12, &spec).await
    }

    /// A consumer's Fetch (by name, `version` 4 to 12) of one partition; fails on a top-level
    /// error, returns the partition's answer.
    pub async fn fetch_partition(
        &mut self,
        version: i16,
        spec: &PartitionFetch<'_>,
    ) -> anyhow::Result<PartitionData> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(spec.max_wait_ms)
            .with_min_bytes(spec.min_bytes)
            .with_max_bytes(50 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_rack_id(StrBytes::from_string(spec.rack.to_string()))
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(spec.topic.to_string())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(spec.partition)
                            .with_current_leader_epoch(spec.current_leader_epoch)
                            .with_fetch_offset(spec.offset)
                            .with_partition_max_bytes(10 << 20),
                    ]),
            ]);
        match self
            .send(ApiKey::Fetch, version, RequestKind::Fetch(request))
            .await?
        {
            ResponseKind::Fetch(r) => {
                if r.error_code != 0 {
                    bail!("fetch failed with top-level error {}", r.error_code);
                }
                r.responses
                    .into_iter()
                    .next()
                    .and_then(|t| t.partitions.into_iter().next())
                    .context("no partition in the fetch response")
            }
            other => bail!("unexpected response {other:?}"),
        }
    }

    /// ListOffsets v9 for one partition at `timestamp`.
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> anyhow::Result<ListOffsetsPartitionResponse> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        match self
            .send(ApiKey::ListOffsets, 9, RequestKind::ListOffsets(request))
            .await?
        {
            ResponseKind::ListOffsets(r) => r
                .topics
                .into_iter()
                .next()
                .and_then(|t| t.partitions.into_iter().next())
                .context("no partition in the ListOffsets response"),
            other => bail!("unexpected response {other:?}"),
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    )
}

/// What a consumer's fetch of one partition asks for ([`Client::fetch_partition`]).
#[derive(Debug, Clone)]
pub struct PartitionFetch<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// 0: answer at once.
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    /// `rack_id` (Fetch v11+); empty: none.
    pub rack: &'a str,
    /// The leader epoch the consumer's metadata gave it; -1: none.
    pub current_leader_epoch: i32,
}

impl<'a> PartitionFetch<'a> {
    /// A fetch at `offset` that answers at once, with no rack and no epoch.
    pub fn new(topic: &'a str, partition: i32, offset: i64) -> Self {
        PartitionFetch {
            topic,
            partition,
            offset,
            max_wait_ms: 0,
            min_bytes: 1,
            rack: "",
            current_leader_epoch: -1,
        }
    }
}
