//! The cluster: gossip membership and the shared view (`gossip`), and talking to other agents
//! (`peers`: the client pool and the hop marker); `seal` keeps non-members out of gossip and
//! `wire` bounds what members send.

pub mod gossip;
pub mod mdns;
pub mod peers;
pub mod seal;
pub mod wire;

pub use gossip::*;
