//! openraft's network, implemented over the [`Transport`] seam: each group's factory makes one
//! client per target node, and every client of every group shares the transport (one
//! multiplexed connection per node pair). Includes `transfer_leader` (openraft's default
//! refuses) and pre-vote.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{EmptyNode, RPCTypes};

use crate::faults::ReplicationFaults;
use crate::transport::{Transport, TransportError};
use crate::types::{C, GroupId, NodeId, Snapshot, SnapshotData, Vote};
use crate::wire::{self, RemoteFailure, RpcKind, RpcMessage};

/// Makes a group's clients.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) node: NodeId,
    pub(crate) group: GroupId,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) faults: Arc<ReplicationFaults>,
}

impl RaftNetworkFactory<C> for NetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &EmptyNode) -> GroupNetwork {
        GroupNetwork {
            node: self.node,
            group: self.group,
            target,
            transport: Arc::clone(&self.transport),
            faults: Arc::clone(&self.faults),
        }
    }
}

/// One group's client to one target node.
#[derive(Debug)]
pub(crate) struct GroupNetwork {
    node: NodeId,
    group: GroupId,
    target: NodeId,
    transport: Arc<dyn Transport>,
    faults: Arc<ReplicationFaults>,
}

enum CallError {
    Timeout(Duration),
    Unreachable(String),
    Network(String),
}

impl CallError {
    fn into_rpc(self, action: RPCTypes, node: NodeId, target: NodeId) -> RPCError<C> {
        match self {
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: node,
                target,
                timeout,
            }),
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }

    fn into_streaming(self, node: NodeId, target: NodeId) -> StreamingError<C> {
        match self {
            CallError::Timeout(timeout) => StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: node,
                target,
                timeout,
            }),
            CallError::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            CallError::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}

fn remote(target: NodeId, f: RemoteFailure) -> CallError {
    match f {
        // Not hosted yet or stopped: back off and retry later.
        RemoteFailure::GroupNotFound => {
            CallError::Unreachable(format!("node {target} does not host the group"))
        }
        RemoteFailure::GroupStopped(m) => {
            CallError::Unreachable(format!("group stopped on node {target}: {m}"))
        }
        RemoteFailure::Malformed(m) => {
            CallError::Network(format!("node {target} rejected the message: {m}"))
        }
    }
}

impl GroupNetwork {
    async fn call<T>(
        &self,
        request: RpcMessage,
        timeout: Duration,
        decode: impl FnOnce(&RpcMessage) -> Result<wire::Reply<T>, crate::binary_codec::DecodeError>,
    ) -> Result<T, CallError> {
        if self.faults.is_cut(&self.group, self.target) {
            return Err(CallError::Unreachable(format!(
                "replication of {} to node {} is cut (test fault)",
                self.group, self.target
            )));
        }
        let response = self
            .transport
            .send(self.target, request, timeout)
            .await
            .map_err(|e| match e {
                TransportError::Timeout { timeout, .. } => CallError::Timeout(timeout),
                TransportError::TooLarge { .. } => CallError::Network(e.to_string()),
                other => CallError::Unreachable(other.to_string()),
            })?;
        match decode(&response) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(f)) => Err(remote(self.target, f)),
            Err(e) => Err(CallError::Network(format!(
                "undecodable response from node {}: {e}",
                self.target
            ))),
        }
    }
}

impl RaftNetworkV2<C> for GroupNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let msg = wire::encode_append_request(self.group, &rpc);
        self.call(msg, option.soft_ttl(), wire::decode_append_response)
            .await
            .map_err(|e| e.into_rpc(RPCTypes::AppendEntries, self.node, self.target))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let msg = wire::encode_vote_request(self.group, RpcKind::Vote, &rpc);
        self.call(msg, option.soft_ttl(), wire::decode_vote_response)
            .await
            .map_err(|e| e.into_rpc(RPCTypes::Vote, self.node, self.target))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let msg = wire::encode_vote_request(self.group, RpcKind::PreVote, &rpc);
        self.call(msg, option.soft_ttl(), wire::decode_vote_response)
            .await
            .map_err(|e| e.into_rpc(RPCTypes::Vote, self.node, self.target))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let msg = wire::encode_snapshot_request(self.group, &vote, &snapshot);
        tokio::select! {
            r = self.call(msg, option.soft_ttl(), wire::decode_snapshot_response) => {
                r.map_err(|e| e.into_streaming(self.node, self.target))
            }
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let msg = wire::encode_transfer_request(self.group, &req);
        self.call(msg, option.soft_ttl(), wire::decode_transfer_response)
            .await
            .map_err(|e| e.into_rpc(RPCTypes::TransferLeader, self.node, self.target))
    }
}
