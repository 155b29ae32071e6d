//! The controller group: cluster metadata replicated like KRaft's metadata log.

use bytes::Bytes;

/// Error a caller's state machine reports when it cannot restore a snapshot.
pub type RestoreError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's metadata state machine, fed every committed command in log order on every
/// node that hosts the controller group (voters and observers).
pub trait ControllerStateMachine: Send + 'static {
    /// Applies the command committed at `offset`; the reply goes back to its proposer.
    fn apply(&mut self, offset: i64, command: &[u8]) -> Bytes;
    /// The whole state, serialized (a snapshot compacts the log up to the last applied
    /// command).
    fn snapshot(&self) -> Bytes;
    /// Replaces the state with a snapshot taken by [`ControllerStateMachine::snapshot`].
    fn restore(&mut self, snapshot: Bytes) -> Result<(), RestoreError>;
}
