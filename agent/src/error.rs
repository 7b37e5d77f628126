//! The agent's error kinds and their one mapping to gRPC status codes.
//!
//! Docker's answers are classified once, here: 404 → `NOT_FOUND`, 409 → `ALREADY_EXISTS` or
//! `FAILED_PRECONDITION`, a broken connection → `UNAVAILABLE`. Handlers never build a `Status`
//! from a string themselves.

use berth_shared::ValidationError;
use berth_shared::reason::Reason;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no container named or with id prefix {0:?} in {1}")]
    ContainerNotFound(String, String),
    #[error("container reference {reference:?} is ambiguous: it matches {}", .matches.join(", "))]
    Ambiguous {
        reference: String,
        matches: Vec<String>,
    },
    #[error("container name {0:?} is already in use")]
    NameInUse(String),
    #[error("container {0} is running: stop it first or remove it with force (rm -f)")]
    Running(String),
    #[error("no such file or directory in container {container}: {path}")]
    PathNotFound { container: String, path: String },
    #[error("container {0} is not running: exec needs a running container")]
    NotRunning(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    /// What the node does not let containers have (a bind mount, privileged, a capability).
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0} is in use: remove the containers that use it first")]
    InUse(String),
    #[error("image {image} not found: {message}")]
    ImageNotFound { image: String, message: String },
    #[error("docker is unreachable ({0}): is Docker running? try `docker info` on node {1}")]
    DockerUnavailable(String, String),
    /// A pull that failed before the registry could say whether it has the image.
    #[error("cannot pull {image} on node {node}: {}: {message}", registry_failure(*.failure, .registry))]
    RegistryUnreachable {
        image: String,
        node: String,
        /// The registry's host (Docker Hub's is `docker.io`).
        registry: String,
        /// One of the `Registry*` reasons.
        failure: Reason,
        message: String,
    },
    #[error("{0}")]
    Exhausted(String),
    #[error("docker refused the request: {0}")]
    DockerRefused(String),
    #[error("docker failed: {0}")]
    Docker(String),
}

impl AgentError {
    /// Classifies a bollard error for an operation on `what` (a container or image reference).
    pub fn from_docker(err: bollard::errors::Error, node: &str) -> Self {
        use bollard::errors::Error as E;
        match err {
            E::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                400 => AgentError::DockerRefused(message),
                404 => AgentError::Docker(format!("not found: {message}")),
                409 => AgentError::DockerRefused(message),
                _ => AgentError::Docker(message),
            },
            E::DockerStreamError { error } => AgentError::Docker(error),
            E::JsonDataError { message, .. } => AgentError::Docker(message),
            other if is_connection_error(&other) => {
                AgentError::DockerUnavailable(other.to_string(), node.to_owned())
            }
            other => AgentError::Docker(other.to_string()),
        }
    }
}

impl AgentError {
    /// Classifies a bollard error about `path` in container `name` (`cp`): 404 is the path
    /// missing (the container was found a moment ago), 403 a read-only root filesystem, and a
    /// failure with no reason (a HEAD request has no body) says what was asked.
    pub fn from_docker_path(
        err: bollard::errors::Error,
        node: &str,
        name: &str,
        path: &str,
    ) -> Self {
        use bollard::errors::Error as E;
        match &err {
            E::DockerResponseServerError {
                status_code: 404, ..
            } => AgentError::PathNotFound {
                container: name.to_owned(),
                path: path.to_owned(),
            },
            E::DockerResponseServerError {
                status_code: 403, ..
            } => AgentError::NotAllowed(format!(
                "cannot write to {path} in container {name}: it is on a read-only root \
                 filesystem or volume"
            )),
            E::DockerResponseServerError {
                status_code,
                message,
            } if message.trim().is_empty() => AgentError::DockerRefused(format!(
                "cannot read {path} in container {name}: a part of it is not a directory, or \
                 Docker could not read it (HTTP {status_code})"
            )),
            _ => AgentError::from_docker(err, node),
        }
    }
}

/// True when the error means Docker could not be reached at all (as opposed to Docker answering
/// with an error).
pub fn is_connection_error(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
            | E::HyperLegacyError { .. }
    )
}

/// The HTTP status Docker answered with, if it answered.
pub fn docker_status(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// What went wrong with a registry, in words, for [`AgentError::RegistryUnreachable`].
fn registry_failure(failure: Reason, registry: &str) -> String {
    match failure {
        Reason::RegistryResolve => format!("the registry {registry} cannot be resolved (DNS)"),
        Reason::RegistryConnect => format!("cannot connect to the registry {registry}"),
        Reason::RegistryTls => format!("TLS with the registry {registry} failed"),
        Reason::RegistryAuth => format!("the registry {registry} wants credentials"),
        _ => format!("the registry {registry} failed"),
    }
}

impl AgentError {
    /// The reason the console picks its hint by, where the code alone is not enough.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            AgentError::DockerUnavailable(..) => Some(Reason::DockerUnavailable),
            AgentError::RegistryUnreachable { failure, .. } => Some(*failure),
            AgentError::ImageNotFound { .. } => Some(Reason::ImageNotFound),
            AgentError::Exhausted(_) => Some(Reason::NoRoom),
            AgentError::NameInUse(_) => Some(Reason::NameInUse),
            _ => None,
        }
    }
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Self {
        let reason = e.reason();
        let mut status = status_of(e);
        if let Some(r) = reason {
            r.attach(&mut status);
        }
        status
    }
}

fn status_of(e: AgentError) -> Status {
    {
        let msg = e.to_string();
        match e {
            AgentError::Invalid(_) | AgentError::DockerRefused(_) => Status::invalid_argument(msg),
            AgentError::ContainerNotFound(..)
            | AgentError::ImageNotFound { .. }
            | AgentError::PathNotFound { .. } => Status::not_found(msg),
            AgentError::Ambiguous { .. }
            | AgentError::Running(_)
            | AgentError::NotRunning(_)
            | AgentError::NotAllowed(_)
            | AgentError::InUse(_) => Status::failed_precondition(msg),
            AgentError::Unsupported(_) => Status::unimplemented(msg),
            AgentError::NameInUse(_) => Status::already_exists(msg),
            AgentError::Exhausted(_) => Status::resource_exhausted(msg),
            AgentError::DockerUnavailable(..) | AgentError::RegistryUnreachable { .. } => {
                Status::unavailable(msg)
            }
            AgentError::Docker(_) => Status::internal(msg),
        }
    }
}
