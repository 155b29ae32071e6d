//! One module per Kafka API. Each declares the versions it implements (`SUPPORT`); the dispatcher
//! builds the registry that ApiVersions advertises from exactly these declarations.

pub mod alter_configs;
pub mod api_versions;
mod config_resource;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use shoal_protocol::kafka_protocol::protocol::StrBytes;

/// Kafka's `ConfigResource.Type` ids.
pub(crate) mod resource_type {
    /// A topic.
    pub(crate) const TOPIC: i8 = 2;
    /// A broker (or, with an empty name, the cluster-wide defaults).
    pub(crate) const BROKER: i8 = 4;
    /// A broker's loggers.
    pub(crate) const BROKER_LOGGER: i8 = 8;
}

/// `AclOperation` codes.
mod acl_operation {
    pub(super) const CREATE: u8 = 5;
    pub(super) const READ: u8 = 3;
    pub(super) const WRITE: u8 = 4;
    pub(super) const DELETE: u8 = 6;
    pub(super) const ALTER: u8 = 7;
    pub(super) const DESCRIBE: u8 = 8;
    pub(super) const CLUSTER_ACTION: u8 = 9;
    pub(super) const DESCRIBE_CONFIGS: u8 = 10;
    pub(super) const ALTER_CONFIGS: u8 = 11;
    pub(super) const IDEMPOTENT_WRITE: u8 = 12;
}

fn operations_bitfield(ops: &[u8]) -> i32 {
    ops.iter().fold(0i32, |acc, op| acc | (1 << op))
}

/// Authorised operations on a topic without an authorizer: every operation a topic supports
/// (Kafka's `AclEntry.supportedOperations(TOPIC)`).
pub(crate) fn topic_authorized_operations() -> i32 {
    use acl_operation::*;
    operations_bitfield(&[
        READ,
        WRITE,
        CREATE,
        DESCRIBE,
        DELETE,
        ALTER,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ])
}

/// Authorised operations on the cluster without an authorizer.
pub(crate) fn cluster_authorized_operations() -> i32 {
    use acl_operation::*;
    operations_bitfield(&[
        CREATE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        ALTER,
        DESCRIBE,
    ])
}

/// Authorised operations on a group without an authorizer (`supportedOperations(GROUP)`).
pub(crate) fn group_authorized_operations() -> i32 {
    use acl_operation::*;
    operations_bitfield(&[READ, DESCRIBE, DELETE])
}

/// Kafka's "not requested" value for authorised-operation fields.
pub(crate) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// A string field.
pub(crate) fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn operation_bitfields_match_kafka() {
        // Bit positions are the AclOperation codes Kafka sets for each resource type.
        assert_eq!(super::topic_authorized_operations(), 3576);
        assert_eq!(super::cluster_authorized_operations(), 8096);
        assert_eq!(super::group_authorized_operations(), 328);
    }
}
