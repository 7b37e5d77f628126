//! Berth's wire API (`berth.v1`): the code tonic and prost generate from `proto/berth/v1/*.proto`.
//!
//! This crate is generated code and, in `codec.rs`, the codec it uses (prost's, with decode
//! errors as `INVALID_ARGUMENT`). Domain types and their validation live in `berth-shared`,
//! which converts to and from these messages at the boundary.

pub mod codec;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}
