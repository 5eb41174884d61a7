//! Consumer groups: the classic group protocol state machine and the committed offsets table,
//! both pure (no I/O); the server drives them and persists offsets in an internal log.
pub mod offsets;
pub mod state_machine;

pub use state_machine::{
    Group, GroupDescription, GroupError, GroupLimits, GroupState, JoinMember, JoinRequest, JoinResponse,
    MemberDescription, Reply, SyncResponse, Ticket,
};
