//! The seam between Raft groups and the network: a node sends [`RpcMessage`]s to other nodes
//! through a [`Transport`] and answers the ones it receives with its [`RpcHandler`] (the
//! replica manager). Two implementations: TCP between brokers (`tcp_transport.rs`) and an
//! in-process network with injected faults for tests (`sim_transport.rs`).

use std::fmt;
use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::types::NodeId;
pub use crate::wire::RpcMessage;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection to the target could be made (unknown address, refused, down).
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    /// The connection broke before the response arrived.
    #[error("connection to node {node} lost: {reason}")]
    ConnectionLost { node: NodeId, reason: String },
    #[error("no response from node {node} within {timeout:?}")]
    Timeout { node: NodeId, timeout: Duration },
    /// The message exceeds the frame limit.
    #[error("message of {size} bytes exceeds the frame limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// The send queue to the target is full (it is not keeping up).
    #[error("send queue to node {0} is full")]
    QueueFull(NodeId),
    #[error("transport is shut down")]
    Closed,
}

/// Sends requests to other nodes.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Sends `request` to `target` and waits at most `timeout` for its response.
    fn send(
        &self,
        target: NodeId,
        request: RpcMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RpcMessage, TransportError>>;

    /// Where received requests go (the replica manager registers itself).
    fn attach(&self, handler: Weak<dyn RpcHandler>);
}

/// Answers requests received from other nodes.
pub trait RpcHandler: Send + Sync + 'static {
    fn handle(&self, from: NodeId, request: RpcMessage) -> BoxFuture<'static, RpcMessage>;
}
