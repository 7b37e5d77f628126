//! Container runtimes: Docker (the real one, through bollard) and the in-memory runtime of
//! hollow nodes for scale simulations.

pub mod docker;
pub mod logs;
pub mod sim;
