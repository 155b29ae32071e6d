//! Classic consumer groups over the wire: join, sync, heartbeat, rebalance, commit and fetch
//! offsets, group administration, and the state surviving a restart as records of
//! `__consumer_offsets` in Kafka's formats.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_protocol::{RequestKind, ResponseKind};
use shoal_tests::records::decode;
use shoal_tests::{Broker, BrokerOptions, Client};

const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const MEMBER_ID_REQUIRED: i16 = 79;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INVALID_REQUEST: i16 = 42;
const FENCED_INSTANCE_ID: i16 = 82;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn broker() -> Broker {
    Broker::start(BrokerOptions::default().with("group.initial.rebalance.delay.ms", 0)).unwrap()
}

/// A consumer-protocol subscription (v0) to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

async fn join(
    client: &mut Client,
    group: &str,
    member: &str,
    instance: Option<&str>,
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(20_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(&["t"])),
        ]);
    match client
        .send(ApiKey::JoinGroup, 9, RequestKind::JoinGroup(request))
        .await
        .unwrap()
    {
        ResponseKind::JoinGroup(r) => r,
        other => panic!("{other:?}"),
    }
}

/// MEMBER_ID_REQUIRED, then the real join.
async fn join_new(client: &mut Client, group: &str) -> JoinGroupResponse {
    let first = join(client, group, "", None).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("shoal-tests-"), "{first:?}");
    join(client, group, &first.member_id, None).await
}

async fn sync(
    client: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    match client
        .send(ApiKey::SyncGroup, 5, RequestKind::SyncGroup(request))
        .await
        .unwrap()
    {
        ResponseKind::SyncGroup(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn heartbeat(client: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member));
    match client
        .send(ApiKey::Heartbeat, 4, RequestKind::Heartbeat(request))
        .await
        .unwrap()
    {
        ResponseKind::Heartbeat(r) => r.error_code,
        other => panic!("{other:?}"),
    }
}

async fn commit(
    client: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(0)
                                .with_committed_metadata(Some(s("meta")))
                        })
                        .collect(),
                ),
        ]);
    match client
        .send(ApiKey::OffsetCommit, 9, RequestKind::OffsetCommit(request))
        .await
        .unwrap()
    {
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

async fn committed(client: &mut Client, group: &str, partitions: &[i32]) -> Vec<i64> {
    let r = client
        .offset_fetch(group, &[("t", partitions)])
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

async fn describe(client: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    match client
        .send(
            ApiKey::DescribeGroups,
            5,
            RequestKind::DescribeGroups(request),
        )
        .await
        .unwrap()
    {
        ResponseKind::DescribeGroups(mut r) => r.groups.remove(0),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn members_join_rebalance_commit_and_the_group_survives_a_restart() {
    let mut broker = broker();
    let mut a = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(a.create_topic("t", 2, &[]).await.unwrap(), 0);
    a.find_coordinator("g").await.unwrap();

    let ja = join_new(&mut a, "g").await;
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));
    assert_eq!(ja.leader, ja.member_id);
    assert_eq!(ja.members.len(), 1);
    let id_a = ja.member_id.to_string();
    let sa = sync(&mut a, "g", &id_a, 1, &[(&id_a, b"p0,p1")]).await;
    assert_eq!((sa.error_code, &sa.assignment[..]), (0, &b"p0,p1"[..]));
    assert_eq!(heartbeat(&mut a, "g", &id_a, 1).await, 0);
    assert_eq!(
        commit(&mut a, "g", &id_a, 1, &[(0, 5), (1, 7)]).await,
        vec![0, 0]
    );
    assert_eq!(
        commit(&mut a, "g", &id_a, 0, &[(0, 9)]).await,
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(committed(&mut a, "g", &[0, 1]).await, vec![5, 7]);

    // A second member: its join waits for the group to rebalance.
    let address = broker.address();
    let second = tokio::spawn(async move {
        let mut b = Client::connect(&address).await.unwrap();
        let jb = join_new(&mut b, "g").await;
        (b, jb)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match heartbeat(&mut a, "g", &id_a, 1).await {
            REBALANCE_IN_PROGRESS => break,
            0 => assert!(tokio::time::Instant::now() < deadline, "no rebalance"),
            other => panic!("heartbeat error {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While the group prepares the rebalance, members of the current generation may still
    // commit what they consumed (Kafka allows it, so nothing is consumed twice).
    assert_eq!(commit(&mut a, "g", &id_a, 1, &[(0, 6)]).await, vec![0]);
    let ja = join(&mut a, "g", &id_a, None).await;
    let (mut b, jb) = second.await.unwrap();
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    let id_b = jb.member_id.to_string();
    assert_eq!(ja.members.len(), 2, "the leader sees both members");
    let sb = tokio::spawn(async move {
        let r = sync(&mut b, "g", &id_b, 2, &[]).await;
        (b, id_b, r)
    });
    let id_b2 = jb.member_id.to_string();
    let sa = sync(&mut a, "g", &id_a, 2, &[(&id_a, b"p0"), (&id_b2, b"p1")]).await;
    let (mut b, id_b, sb) = sb.await.unwrap();
    assert_eq!(
        (&sa.assignment[..], &sb.assignment[..]),
        (&b"p0"[..], &b"p1"[..])
    );
    assert_eq!(commit(&mut b, "g", &id_b, 2, &[(1, 8)]).await, vec![0]);
    let described = describe(&mut a, "g").await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.members.len(), 2);
    drop((a, b));

    // After a restart the coordinator loads the group and the offsets from __consumer_offsets.
    broker.restart().unwrap();
    let mut c = Client::connect(&broker.address()).await.unwrap();
    c.find_coordinator("g").await.unwrap();
    assert_eq!(committed(&mut c, "g", &[0, 1]).await, vec![6, 8]);
    let described = describe(&mut c, "g").await;
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.members.len(), 2);
    assert_eq!(
        heartbeat(&mut c, "g", &id_a, 2).await,
        0,
        "sessions carry over a restart"
    );
    assert_eq!(
        heartbeat(&mut c, "g", "stranger", 2).await,
        UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn static_members_are_replaced_without_a_rebalance_and_the_old_id_is_fenced() {
    let broker = broker();
    let mut a = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(a.create_topic("t", 1, &[]).await.unwrap(), 0);
    a.find_coordinator("static").await.unwrap();
    let first = join(&mut a, "static", "", Some("instance-1")).await;
    assert_eq!(first.error_code, 0, "static members get their id at once");
    let old = first.member_id.to_string();
    assert!(old.starts_with("instance-1-"));
    sync(&mut a, "static", &old, 1, &[(&old, b"all")]).await;
    // The instance restarts: same instance id, no member id.
    let again = join(&mut a, "static", "", Some("instance-1")).await;
    assert_eq!(
        (again.error_code, again.generation_id),
        (0, 1),
        "no new generation"
    );
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    let synced = sync(&mut a, "static", &new, 1, &[]).await;
    assert_eq!(
        &synced.assignment[..],
        b"all",
        "the assignment carries over"
    );
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s("static")))
        .with_generation_id(1)
        .with_member_id(s(&old))
        .with_group_instance_id(Some(s("instance-1")));
    match a
        .send(ApiKey::Heartbeat, 4, RequestKind::Heartbeat(request))
        .await
        .unwrap()
    {
        ResponseKind::Heartbeat(r) => assert_eq!(r.error_code, FENCED_INSTANCE_ID),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn groups_are_listed_described_and_deleted_with_their_offsets() {
    let broker = broker();
    let mut c = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(c.create_topic("t", 1, &[]).await.unwrap(), 0);
    c.find_coordinator("busy").await.unwrap();
    c.find_coordinator("standalone").await.unwrap();
    // A standalone consumer commits without a group generation: a group that holds offsets only.
    assert_eq!(
        commit(&mut c, "standalone", "", -1, &[(0, 3)]).await,
        vec![0]
    );
    let j = join_new(&mut c, "busy").await;
    let member = j.member_id.to_string();
    sync(&mut c, "busy", &member, 1, &[(&member, b"x")]).await;

    let listed = match c
        .send(
            ApiKey::ListGroups,
            5,
            RequestKind::ListGroups(ListGroupsRequest::default()),
        )
        .await
        .unwrap()
    {
        ResponseKind::ListGroups(r) => r,
        other => panic!("{other:?}"),
    };
    let mut groups: Vec<(String, String, String, String)> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        vec![
            (
                "busy".into(),
                "consumer".into(),
                "Stable".into(),
                "classic".into()
            ),
            (
                "standalone".into(),
                "".into(),
                "Empty".into(),
                "classic".into()
            ),
        ]
    );
    let unknown = describe(&mut c, "nobody").await;
    assert_eq!(
        (unknown.error_code, unknown.group_state.as_str()),
        (0, "Dead")
    );

    let delete = |names: &[&str]| {
        RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(names.iter().map(|n| GroupId(s(n))).collect()),
        )
    };
    let results = match c
        .send(
            ApiKey::DeleteGroups,
            2,
            delete(&["busy", "standalone", "nobody"]),
        )
        .await
        .unwrap()
    {
        ResponseKind::DeleteGroups(r) => r.results,
        other => panic!("{other:?}"),
    };
    let mut codes: Vec<(String, i16)> = results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("busy".into(), NON_EMPTY_GROUP),
            ("nobody".into(), GROUP_ID_NOT_FOUND),
            ("standalone".into(), 0),
        ]
    );
    assert_eq!(committed(&mut c, "standalone", &[0]).await, vec![-1]);
}

/// Decodes `__consumer_offsets` keys and values by hand, following Kafka's schemas.
fn read_str(b: &[u8], at: &mut usize) -> String {
    let len = i16::from_be_bytes([b[*at], b[*at + 1]]) as usize;
    let v = String::from_utf8(b[*at + 2..*at + 2 + len].to_vec()).unwrap();
    *at += 2 + len;
    v
}

fn read_i64(b: &[u8], at: &mut usize) -> i64 {
    let v = i64::from_be_bytes(b[*at..*at + 8].try_into().unwrap());
    *at += 8;
    v
}

#[tokio::test]
async fn commits_are_kafka_offset_commit_records_in_the_consumer_offsets_topic() {
    let broker = broker();
    let mut c = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(c.create_topic("t", 1, &[]).await.unwrap(), 0);
    c.find_coordinator("my-group").await.unwrap();
    assert_eq!(
        commit(&mut c, "my-group", "", -1, &[(0, 42)]).await,
        vec![0]
    );
    // "my-group" lives in partition abs("my-group".hashCode()) % 50 = 12.
    let data = c.fetch("__consumer_offsets", 12, 0, 100, 1).await.unwrap();
    let records = decode(data.records.as_ref().unwrap()).unwrap();
    let record = records.last().expect("the commit is in partition 12");
    let key = record.key.as_ref().unwrap();
    let mut at = 0;
    assert_eq!(
        i16::from_be_bytes([key[0], key[1]]),
        1,
        "OffsetCommitKey version 1"
    );
    at += 2;
    assert_eq!(read_str(key, &mut at), "my-group");
    assert_eq!(read_str(key, &mut at), "t");
    assert_eq!(i32::from_be_bytes(key[at..at + 4].try_into().unwrap()), 0);
    let value = record.value.as_ref().unwrap();
    let mut at = 0;
    assert_eq!(
        i16::from_be_bytes([value[0], value[1]]),
        3,
        "OffsetCommitValue version 3"
    );
    at += 2;
    assert_eq!(read_i64(value, &mut at), 42);
    assert_eq!(
        i32::from_be_bytes(value[at..at + 4].try_into().unwrap()),
        0,
        "leader epoch"
    );
    at += 4;
    assert_eq!(read_str(value, &mut at), "meta");
    assert!(
        read_i64(value, &mut at) > 1_700_000_000_000,
        "commit timestamp"
    );
    assert_eq!(at, value.len());
    let metadata = c
        .metadata(Some(&["__consumer_offsets"]), false)
        .await
        .unwrap();
    assert!(metadata.topics[0].is_internal);
    assert_eq!(metadata.topics[0].partitions.len(), 50);
}

#[tokio::test]
async fn find_coordinator_batches_keys_and_refuses_transaction_keys() {
    let broker = broker();
    let mut c = Client::connect(&broker.address()).await.unwrap();
    c.find_coordinator("warm").await.unwrap();
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("a"), s("b")]);
    match c
        .send(
            ApiKey::FindCoordinator,
            6,
            RequestKind::FindCoordinator(request),
        )
        .await
        .unwrap()
    {
        ResponseKind::FindCoordinator(r) => {
            assert_eq!(r.coordinators.len(), 2);
            assert!(
                r.coordinators
                    .iter()
                    .all(|c| c.error_code == 0 && c.node_id.0 == 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // No transaction coordinator: INVALID_REQUEST, as Kafka answers for a coordinator type it
    // does not run, so transactional producers fail fast.
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s("txn"));
    match c
        .send(
            ApiKey::FindCoordinator,
            3,
            RequestKind::FindCoordinator(request),
        )
        .await
        .unwrap()
    {
        ResponseKind::FindCoordinator(r) => {
            assert_eq!((r.error_code, r.node_id.0), (INVALID_REQUEST, -1));
        }
        other => panic!("{other:?}"),
    }
    // Leaving a group that does not exist.
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("warm")))
        .with_members(vec![MemberIdentity::default().with_member_id(s("m"))]);
    match c
        .send(ApiKey::LeaveGroup, 5, RequestKind::LeaveGroup(request))
        .await
        .unwrap()
    {
        ResponseKind::LeaveGroup(r) => {
            assert_eq!(
                (r.error_code, r.members[0].error_code),
                (0, UNKNOWN_MEMBER_ID)
            );
        }
        other => panic!("{other:?}"),
    }
}
