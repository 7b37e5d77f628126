//! Berth's domain types and their validation, used by both the agent and the console.
//!
//! The console validates early so bad flags are refused before anything is sent; the agent
//! validates again because it never trusts a client. Everything here is pure: no Docker, no
//! terminal, no network except [`client`], which builds the authenticated gRPC connector, and
//! [`trust`], which derives the TLS material it uses.
//!
//! Prost types from `berth-proto` are converted at this boundary (`spec::ContainerSpec` ⇄
//! `berth_proto::v1::ContainerSpec`), so the rest of the code works with checked values.

pub mod client;
pub mod constraint;
pub mod copy;
pub mod defaults;
pub mod error;
pub mod exec;
pub mod image;
pub mod labels;
pub mod options;
pub mod port;
pub mod quantity;
pub mod reason;
pub mod request;
pub mod service;
pub mod spec;
pub mod time;
pub mod token;
pub mod trust;

pub use error::ValidationError;
