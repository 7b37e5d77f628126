//! `Exec`: a command in a running container, as `docker exec`, on whichever node owns it.
//!
//! One bidirectional stream. The caller's first message says what to run; its later messages
//! (stdin, resizes, the close of stdin) are pumped to Docker by a task of their own while the
//! command's output is relayed back, and the exit code ends the answer. A container on another
//! node is reached through [`super::forward::Hop`], the caller's messages relayed as they come.
//! The session ends when the command does, when the caller goes away (its stdin is closed and
//! its terminal hung up), or when the agent shuts down.

use super::{BoxStream, Owner, STREAM_BUFFER, Service, first_message, tokens};
use crate::runtime::{ExecChunk, ExecControl, ExecSession};
use berth_proto::v1 as pb;
use berth_shared::ValidationError;
use berth_shared::exec::{ExecSpec, terminal_size};
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The most of a command line a log line shows.
const LOGGED_COMMAND_CHARS: usize = 256;

type Input = pb::exec_input::Input;

impl Service {
    pub(super) async fn exec_impl(
        &self,
        req: Request<Streaming<pb::ExecInput>>,
    ) -> Result<Response<BoxStream<pb::ExecOutput>>, Status> {
        let gone = self.token_gone(&req);
        let (meta, _, mut input) = req.into_parts();
        let first = first_message(&mut input).await?;
        let Some(Input::Start(start)) = first.input else {
            return Err(ValidationError::new("start", "must be the first message").into());
        };
        let spec = ExecSpec::from_proto(&start)?;
        let c = match self.locate(&spec.container, &meta).await? {
            Owner::Local(c) => c,
            Owner::Peer(c, node) => {
                let first = pb::ExecInput {
                    input: Some(Input::Start(pb::ExecStart {
                        container: c.id,
                        ..start
                    })),
                };
                // The caller's messages as they come; its stream's end or failure ends ours,
                // which the owner takes as the caller gone.
                let rest = input
                    .take_while(|m| std::future::ready(m.is_ok()))
                    .filter_map(|m| std::future::ready(m.ok()));
                let upstream = futures::stream::once(std::future::ready(first)).chain(rest);
                let output = self
                    .hop(node, &meta)?
                    .stream(
                        upstream,
                        |mut peer, r| async move { peer.exec(r).await },
                        self.stopped(),
                    )
                    .await?;
                return Ok(Response::new(tokens::until_revoked(output, gone)));
            }
        };
        if c.state != "running" {
            return Err(crate::error::AgentError::NotRunning(c.name).into());
        }
        let command: String = spec
            .command
            .join(" ")
            .chars()
            .take(LOGGED_COMMAND_CHARS)
            .collect();
        // The command, never its input: what is typed into a shell may be a password.
        tracing::info!(id = %c.id, name = %c.name, %command, tty = spec.tty, "exec");
        let session = self.runtime.exec(&c.id, &c.name, &spec).await?;
        let (tx, out) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(relay(session, input, spec.stdin, tx, self.stopped()));
        Ok(Response::new(tokens::until_revoked(
            Box::pin(ReceiverStream::new(out)),
            gone,
        )))
    }
}

/// Relays the command's output to `tx`, then its exit code, while a task pumps the caller's
/// messages to it. Ends early when the caller goes away, sends a bad message, or the agent
/// stops; dropping the session then closes the command's stdin and hangs up its terminal.
async fn relay(
    session: ExecSession,
    input: Streaming<pb::ExecInput>,
    attached: bool,
    tx: mpsc::Sender<Result<pb::ExecOutput, Status>>,
    stopped: impl std::future::Future<Output = ()>,
) {
    let ExecSession {
        mut output,
        stdin,
        control,
    } = session;
    let (bad_tx, mut bad_rx) = oneshot::channel();
    let pump = tokio::spawn(pump(input, stdin, control.clone(), attached, bad_tx));
    let _pump = AbortOnDrop(pump);
    let mut pump_done = false;
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(ExecChunk::Stdout(b))) => {
                    if tx.send(Ok(output_of(pb::exec_output::Output::Stdout(b.to_vec())))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(ExecChunk::Stderr(b))) => {
                    if tx.send(Ok(output_of(pb::exec_output::Output::Stderr(b.to_vec())))).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
                None => break,
            },
            bad = &mut bad_rx, if !pump_done => {
                pump_done = true;
                if let Ok(status) = bad {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            () = tx.closed() => return,
            () = &mut stopped => {
                let _ = tx.send(Err(Status::unavailable("the agent is shutting down"))).await;
                return;
            }
        }
    }
    let last = control
        .exit_code()
        .await
        .map(|code| output_of(pb::exec_output::Output::ExitCode(code)))
        .map_err(Status::from);
    let _ = tx.send(last).await;
}

fn output_of(o: pb::exec_output::Output) -> pb::ExecOutput {
    pb::ExecOutput { output: Some(o) }
}

/// The caller's messages to the command: stdin bytes, resizes, the close of stdin. The end of
/// the caller's stream closes stdin too. A bad message is sent to `bad` and ends the pump.
async fn pump(
    mut input: Streaming<pb::ExecInput>,
    mut stdin: Pin<Box<dyn AsyncWrite + Send>>,
    control: Arc<dyn ExecControl>,
    attached: bool,
    bad: oneshot::Sender<Status>,
) {
    let mut open = attached;
    loop {
        let msg = match input.message().await {
            Ok(Some(m)) => m,
            // The caller is done sending, or gone.
            Ok(None) | Err(_) => break,
        };
        match msg.input {
            Some(Input::Stdin(bytes)) => {
                if !attached {
                    let _ = bad.send(
                        ValidationError::new("stdin", "sent to a command started without stdin")
                            .into(),
                    );
                    return;
                }
                // A command that closed its stdin takes no more; the session goes on.
                if open && stdin.write_all(&bytes).await.is_err() {
                    open = false;
                }
            }
            Some(Input::Resize(size)) => match terminal_size("resize", &size) {
                Ok((rows, cols)) => {
                    if let Err(e) = control.resize(rows, cols).await {
                        tracing::debug!(error = %e, "exec resize failed");
                    }
                }
                Err(e) => {
                    let _ = bad.send(e.into());
                    return;
                }
            },
            Some(Input::CloseStdin(_)) => {
                if open {
                    let _ = stdin.shutdown().await;
                    open = false;
                }
            }
            Some(Input::Start(_)) => {
                let _ = bad.send(
                    ValidationError::new("start", "sent twice: a session runs one command").into(),
                );
                return;
            }
            None => {
                let _ = bad.send(ValidationError::new("input", "is empty").into());
                return;
            }
        }
    }
    if open {
        let _ = stdin.shutdown().await;
    }
}

/// Aborts the task when dropped: the pump lives no longer than the session it feeds.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
