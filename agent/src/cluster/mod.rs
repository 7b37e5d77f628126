//! The cluster: gossip membership and the shared view (`gossip`), and talking to other agents
//! (`peers`: the client pool and the hop marker).

pub mod gossip;
pub mod peers;
pub mod seal;

pub use gossip::*;
