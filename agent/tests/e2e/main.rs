//! End-to-end tests of `berthd`: real processes, real gRPC, real Docker, real gossip on loopback.
//! One test binary (`mod` per area), so the suite links once.

mod api;
mod cluster;
mod requests;
mod services;
mod support;
mod trust;
