//! The one piece of hand-written code here: prost's codec with one change. A request that does
//! not decode (a string field that is not UTF-8, a truncated field) is the caller's bad input,
//! so it is `INVALID_ARGUMENT` naming the field, where tonic-prost answers `INTERNAL`. A
//! response that does not decode (a client's side) stays `INTERNAL`: that is the server's
//! fault, not the user's input.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// prost's encoding; decode errors as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct BerthCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for BerthCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for BerthCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BerthDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BerthDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`; a message that does not decode is the sender's error.
#[derive(Debug, Clone)]
pub struct BerthDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for BerthDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        // prost's message names the field: `RunRequest.spec: ContainerSpec.name: invalid
        // string value: data is not UTF-8 encoded`.
        U::decode(buf).map(Some).map_err(|e| {
            if is_request::<U>() {
                Status::invalid_argument(e.to_string())
            } else {
                Status::internal(e.to_string())
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Whether `U` is what a server decodes: a call's request (`…Request`) or a streaming call's
/// input message (`…Input`), by the API's naming rule (berth.proto keeps to it).
fn is_request<U>() -> bool {
    let name = std::any::type_name::<U>();
    name.ends_with("Request") || name.ends_with("Input")
}

#[cfg(test)]
mod tests {
    #[test]
    fn requests_are_told_from_answers_by_name() {
        use crate::v1 as pb;
        assert!(super::is_request::<pb::StopRequest>());
        assert!(super::is_request::<pb::ExecInput>());
        assert!(super::is_request::<pb::CopyToInput>());
        assert!(!super::is_request::<pb::StopResponse>());
        assert!(!super::is_request::<pb::ContainerDetail>());
        assert!(!super::is_request::<pb::ExecOutput>());
    }
}
