//! `cp`: a container's files, through Docker's archive API, on whichever node owns the
//! container (running or stopped), as `docker cp`.
//!
//! The agent relays tar archives and never unpacks one: Docker makes and extracts them inside
//! the container's filesystem, and the console does `docker cp`'s naming (where a file lands,
//! what a directory is called) with `StatPath`. A container on another node is reached through
//! [`super::forward::Hop`]: `CopyFrom`'s archive and `CopyTo`'s are relayed as they come.

use super::{BoxStream, Owner, Service, first_message, tokens};
use crate::error::AgentError;
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::copy::container_path;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// How long an upload may stall between two messages before it is given up: an idle
/// connection holds a Docker request open.
const IDLE_WAIT: Duration = Duration::from_secs(60);

type Input = pb::copy_to_input::Input;

impl Service {
    pub(super) async fn stat_path_impl(
        &self,
        req: Request<pb::StatPathRequest>,
    ) -> Result<Response<pb::PathStat>, Status> {
        let (meta, _, req) = req.into_parts();
        let path = container_path("path", &req.path)?;
        match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => match self.runtime.stat_path(&c.id, &c.name, &path).await {
                Ok(stat) => Ok(Response::new(stat)),
                Err(AgentError::PathNotFound { .. }) => Ok(Response::new(pb::PathStat::default())),
                Err(e) => Err(e.into()),
            },
            Owner::Peer(c, node) => {
                let fwd = pb::StatPathRequest {
                    container: c.id,
                    path,
                };
                self.hop(node, &meta)?
                    .unary(fwd, |mut peer, r| async move { peer.stat_path(r).await })
                    .await
            }
        }
    }

    pub(super) async fn copy_from_impl(
        &self,
        req: Request<pb::CopyFromRequest>,
    ) -> Result<Response<BoxStream<pb::CopyFromChunk>>, Status> {
        let gone = self.token_gone(&req);
        let (meta, _, req) = req.into_parts();
        let path = container_path("path", &req.path)?;
        let c = match self.locate(&req.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let fwd = pb::CopyFromRequest {
                    container: c.id,
                    path,
                };
                let chunks = self
                    .hop(node, &meta)?
                    .stream(
                        fwd,
                        |mut peer, r| async move { peer.copy_from(r).await },
                        self.stopped(),
                    )
                    .await?;
                return Ok(Response::new(tokens::until_revoked(chunks, gone)));
            }
        };
        // The stat first: a missing path is a clean NOT_FOUND before any byte is sent.
        let stat = self.runtime.stat_path(&c.id, &c.name, &path).await?;
        let archive = self.runtime.copy_from(&c.id, &c.name, &path).await?;
        tracing::info!(id = %c.id, name = %c.name, %path, "copy from");
        let first = futures::stream::once(std::future::ready(Ok(chunk(
            pb::copy_from_chunk::Chunk::Stat(stat),
        ))));
        let data = archive.map(|b| {
            b.map(|b| chunk(pb::copy_from_chunk::Chunk::Data(b.to_vec())))
                .map_err(Status::from)
        });
        let chunks = first.chain(data).take_until(self.stopped());
        Ok(Response::new(tokens::until_revoked(Box::pin(chunks), gone)))
    }

    pub(super) async fn copy_to_impl(
        &self,
        req: Request<Streaming<pb::CopyToInput>>,
    ) -> Result<Response<pb::CopyToResponse>, Status> {
        let gone = self.token_gone(&req);
        let (meta, _, mut input) = req.into_parts();
        let first = first_message(&mut input).await?;
        let Some(Input::Start(start)) = first.input else {
            return Err(ValidationError::new("start", "must be the first message").into());
        };
        let path = container_path("path", &start.path)?;
        let c = match self.locate(&start.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let first = pb::CopyToInput {
                    input: Some(Input::Start(pb::CopyToStart {
                        container: c.id,
                        path,
                        ..start
                    })),
                };
                // The caller's messages as they come. Its stream failing must not look like
                // the archive's end to the owner: the relay then stops sending, never ends,
                // and the call to the owner is dropped (a reset, which it takes as an archive
                // cut short).
                let (broken_tx, broken) = tokio::sync::oneshot::channel::<Status>();
                let rest = futures::stream::unfold(
                    (input, Some(broken_tx)),
                    |(mut input, broken_tx)| async move {
                        match input.next().await {
                            Some(Ok(m)) => Some((m, (input, broken_tx))),
                            Some(Err(status)) => {
                                if let Some(tx) = broken_tx {
                                    let _ = tx.send(status);
                                }
                                std::future::pending().await
                            }
                            None => None,
                        }
                    },
                );
                let upstream = futures::stream::once(std::future::ready(first)).chain(rest);
                let hop = self.hop(node, &meta)?;
                return tokio::select! {
                    answer = hop.unary(upstream, |mut peer, r| async move { peer.copy_to(r).await }) => answer,
                    Ok(status) = broken => Err(status),
                    status = gone => Err(status),
                };
            }
        };
        tracing::info!(id = %c.id, name = %c.name, %path, "copy to");
        let received = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(Mutex::new(None));
        let tar = archive(input, received.clone(), refused.clone());
        let copied = self
            .runtime
            .copy_to(&c.id, &c.name, &path, start.copy_uid_gid, tar);
        let stopped = self.stopped();
        let result = tokio::select! {
            r = copied => r,
            status = gone => return Err(status),
            () = stopped => return Err(Status::unavailable("the agent is shutting down")),
        };
        // What the caller sent wrong, before what Docker made of the cut-short archive.
        if let Some(status) = lock(&refused).take() {
            return Err(status);
        }
        result?;
        Ok(Response::new(pb::CopyToResponse {
            bytes: received.load(Ordering::Relaxed),
        }))
    }
}

fn chunk(c: pb::copy_from_chunk::Chunk) -> pb::CopyFromChunk {
    pb::CopyFromChunk { chunk: Some(c) }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The archive's bytes from the caller's messages. A second start, an empty message, a failed
/// stream or a stall of [`IDLE_WAIT`] ends it with an error (kept in `refused` when it is the
/// caller's fault), so Docker sees an archive cut short rather than one that looks whole.
fn archive(
    input: Streaming<pb::CopyToInput>,
    received: Arc<AtomicU64>,
    refused: Arc<Mutex<Option<Status>>>,
) -> crate::runtime::UploadStream {
    let fail = move |status: Status| {
        let err = std::io::Error::other(status.message().to_owned());
        *lock(&refused) = Some(status);
        Err(err)
    };
    Box::pin(futures::stream::unfold(
        (input, fail, false),
        move |(mut input, fail, done)| {
            let received = received.clone();
            async move {
                if done {
                    return None;
                }
                let item = match tokio::time::timeout(IDLE_WAIT, input.message()).await {
                    Err(_) => fail(Status::deadline_exceeded(format!(
                        "the archive stalled: nothing sent for {}s",
                        IDLE_WAIT.as_secs()
                    ))),
                    Ok(Err(status)) => fail(status),
                    Ok(Ok(None)) => return None,
                    Ok(Ok(Some(m))) => match m.input {
                        Some(Input::Data(b)) => {
                            received.fetch_add(b.len() as u64, Ordering::Relaxed);
                            Ok(bytes::Bytes::from(b))
                        }
                        Some(Input::Start(_)) => {
                            fail(ValidationError::new("start", "sent twice: a copy has one").into())
                        }
                        None => fail(ValidationError::new("input", "is empty").into()),
                    },
                };
                let done = item.is_err();
                Some((item, (input, fail, done)))
            }
        },
    ))
}
