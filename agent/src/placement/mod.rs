//! Placement: the pure scheduler, and the bookkeeping that keeps optimistic placement honest
//! (this node's admission ledger, the entry agent's pending placements).

pub mod ledger;
pub mod placer;
pub mod requests;
pub mod scheduler;
