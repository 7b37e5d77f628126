//! Container runtimes behind one interface, as Nomad's task drivers and Swarmkit's executor:
//! Docker (the real one, through bollard) and the in-memory runtime of hollow nodes for scale
//! simulations. The API layer and the placer call [`Runtime`] and never ask which one they have.

pub mod docker;
pub mod logs;
pub mod sim;

use crate::error::AgentError;
use berth_proto::v1 as pb;
use berth_shared::exec::ExecSpec;
use berth_shared::spec::ContainerSpec;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where a run's progress goes (pull progress, created). Best effort: a runtime never waits on
/// a slow reader for progress, and a closed sink means the caller went away.
pub type Progress = mpsc::Sender<pb::RunEvent>;

/// A container's log lines as the runtime produces them; an error is the stream's last item.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogLine, AgentError>> + Send + 'static>>;

/// Bytes as they come (a tar archive, for `cp`); an error is the stream's last item.
pub type ByteStream =
    Pin<Box<dyn Stream<Item = Result<bytes::Bytes, AgentError>> + Send + 'static>>;

/// Bytes a caller sends (a tar archive to extract); an error ends it.
pub type UploadStream =
    Pin<Box<dyn Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static>>;

/// Output of a command run in a container, as it comes. With a terminal there is only stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// A command running in a container: its output (an error is the stream's last item; the end
/// of the stream is the end of the command), its stdin, and the handle to resize its terminal
/// and read its exit code once the output has ended.
pub struct ExecSession {
    pub output: Pin<Box<dyn Stream<Item = Result<ExecChunk, AgentError>> + Send + 'static>>,
    pub stdin: Pin<Box<dyn tokio::io::AsyncWrite + Send + 'static>>,
    pub control: Arc<dyn ExecControl>,
}

#[async_trait::async_trait]
pub trait ExecControl: Send + Sync + 'static {
    /// Resizes the command's terminal (without one, nothing happens).
    async fn resize(&self, rows: u16, cols: u16) -> Result<(), AgentError>;
    /// The command's exit status, once its output has ended.
    async fn exit_code(&self) -> Result<i32, AgentError>;
}

/// What an agent does with containers on its own node. Every method acts only on containers
/// this node owns.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The node this runtime serves: the owner label of its containers.
    fn node(&self) -> &str;

    /// Whether commands can be served now, for the node row.
    fn status(&self) -> pb::RuntimeStatus;

    /// `Ok` when commands can be served now; the reason (as `UNAVAILABLE`) when not.
    fn ready(&self) -> Result<(), AgentError>;

    /// Pulls when missing, creates with Berth's labels, starts; returns the started container.
    /// A container that was created but did not start is removed again.
    async fn run(
        &self,
        spec: &ContainerSpec,
        progress: &Progress,
    ) -> Result<pb::ContainerSummary, AgentError>;

    /// Stops with a grace period, then kills. Returns the container as it is afterwards
    /// (`None` if it went away) and whether it was running. No grace period given: the
    /// container's own (`--stop-timeout`), else Docker's 10 s.
    async fn stop(
        &self,
        id: &str,
        timeout_secs: Option<u32>,
    ) -> Result<(Option<pb::ContainerSummary>, bool), AgentError>;

    /// Removes; `force` kills a running one first. Removing a missing container is not an error.
    async fn remove(&self, id: &str, force: bool) -> Result<(), AgentError>;

    /// A container this node owns, asked of the runtime itself (the view may lag it by an event):
    /// by id, name or id prefix as the runtime resolves them.
    async fn find(&self, reference: &str) -> Result<Option<pb::ContainerSummary>, AgentError>;

    /// The full detail of a container this node owns; `view` is its row in the view, whose live
    /// usage figures the detail keeps.
    async fn inspect(&self, view: &pb::ContainerSummary)
    -> Result<pb::ContainerDetail, AgentError>;

    /// Log lines, with `follow`, `tail` and `since_unix_ms` as the request says.
    async fn logs(&self, id: &str, req: &pb::LogsRequest) -> Result<LogStream, AgentError>;

    /// Pulls an image (with progress, as a run's); returns its id.
    async fn pull_image(
        &self,
        image: &berth_shared::image::ImageRef,
        progress: &Progress,
    ) -> Result<String, AgentError>;

    /// The volumes or networks Berth made on this node, or its images, with the containers that use them.
    async fn list_objects(&self, kind: pb::ObjectKind) -> Result<Vec<pb::NodeObject>, AgentError>;

    /// Removes a volume or network Berth made on this node: `false` when there is none by that
    /// name (or it is not Berth's), `InUse` while a container uses it.
    async fn remove_object(&self, kind: pb::ObjectKind, name: &str) -> Result<bool, AgentError>;

    /// Starts a command in a running container this node owns. `name` is for messages.
    async fn exec(&self, id: &str, name: &str, spec: &ExecSpec) -> Result<ExecSession, AgentError>;

    /// What `path` is in a container this node owns, running or stopped (a symlink is
    /// described, not followed). `name` is for messages.
    async fn stat_path(&self, id: &str, name: &str, path: &str)
    -> Result<pb::PathStat, AgentError>;

    /// A tar archive of `path` in a container this node owns, as Docker makes it.
    async fn copy_from(&self, id: &str, name: &str, path: &str) -> Result<ByteStream, AgentError>;

    /// Extracts the tar archive `tar` into the directory `path` of a container this node owns;
    /// a directory is never replaced by a file. Returns once all of it is extracted.
    async fn copy_to(
        &self,
        id: &str,
        name: &str,
        path: &str,
        copy_uid_gid: bool,
        tar: UploadStream,
    ) -> Result<(), AgentError>;
}
