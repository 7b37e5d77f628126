//! The one hop to the node that owns a container. A call about another node's container goes
//! to that node once, with the hop marker (so it is served there or refused, never forwarded
//! again), the caller's deadline, and our certificate or the cluster token; a peer that does
//! not answer is named in the error. Unary, server-streaming and bidirectional calls all go
//! through [`Hop`], so no handler writes the hop itself.

use super::{BoxStream, Service};
use crate::cluster::peers::{forwarded, peer_error};
use berth_proto::v1 as pb;
use berth_shared::client::Client;
use futures::StreamExt;
use std::future::Future;
use tonic::metadata::MetadataMap;
use tonic::{Response, Status, Streaming};

/// A call on its way to `node`, the owner of what it is about.
pub(super) struct Hop<'a> {
    node: Box<pb::Node>,
    client: Client,
    incoming: &'a MetadataMap,
    from: &'a str,
}

impl Service {
    /// The hop to `node` for a call that came in with `incoming`; `UNAVAILABLE` at once when
    /// gossip says the node is down or gone.
    pub(super) fn hop<'a>(
        &'a self,
        node: Box<pb::Node>,
        incoming: &'a MetadataMap,
    ) -> Result<Hop<'a>, Status> {
        let client = self.peers.client(&node)?;
        Ok(Hop {
            node,
            client,
            incoming,
            from: self.me(),
        })
    }
}

impl Hop<'_> {
    /// Relays a unary call: `call` makes it on the peer's client with the forwarded request.
    pub async fn unary<M, R, F, Fut>(self, msg: M, call: F) -> Result<Response<R>, Status>
    where
        F: FnOnce(Client, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let request = forwarded(msg, self.incoming, self.from);
        call(self.client, request)
            .await
            .map_err(|s| peer_error(&self.node, s))
    }

    /// Relays a call answered with a stream: server-streaming (`msg` is the request) or
    /// bidirectional (`msg` is the stream of the caller's messages, relayed as they come).
    /// The peer's items are passed on as they arrive, with no task or channel between its
    /// stream and ours, until `until` resolves (the agent shutting down).
    pub async fn stream<M, T, F, Fut>(
        self,
        msg: M,
        call: F,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<BoxStream<T>, Status>
    where
        F: FnOnce(Client, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<Streaming<T>>, Status>>,
        T: Send + 'static,
    {
        let request = forwarded(msg, self.incoming, self.from);
        let node = self.node;
        let upstream = call(self.client, request)
            .await
            .map_err(|s| peer_error(&node, s))?
            .into_inner();
        Ok(Box::pin(
            upstream
                .map(move |item| item.map_err(|s| peer_error(&node, s)))
                .take_until(until),
        ))
    }
}
