//! The Docker runtime: one connection kept alive by a supervisor, and every container operation
//! the agent performs, through bollard.
//!
//! The agent owns only containers labelled `berth.node=<its name>`; every listing and event
//! subscription here is filtered by that label, so several agents can share one engine.

use super::{ExecChunk, ExecControl, ExecSession, LogStream, Progress, Runtime};
use crate::error::{AgentError, docker_status};
use berth_proto::v1 as pb;
use berth_shared::labels;
use berth_shared::options::PullPolicy;
use berth_shared::spec::{ContainerSpec, RestartPolicy};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, PortBinding, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// How long one attempt to reach Docker may take before it counts as unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: starts here, doubles, and stops growing at [`MAX_RECONNECT_BACKOFF`].
pub const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// Where the runtime connection stands. The supervisor is its only writer.
#[derive(Clone, Debug)]
pub enum Conn {
    Connecting,
    Up {
        docker: Docker,
        version: String,
        root_dir: String,
    },
    Down {
        error: String,
    },
}

impl Conn {
    pub fn status(&self) -> pb::RuntimeStatus {
        match self {
            Conn::Connecting => pb::RuntimeStatus {
                available: false,
                version: String::new(),
                error: "connecting to docker".into(),
            },
            Conn::Up { version, .. } => pb::RuntimeStatus {
                available: true,
                version: format!("docker {version}"),
                error: String::new(),
            },
            Conn::Down { error } => pb::RuntimeStatus {
                available: false,
                version: String::new(),
                error: error.clone(),
            },
        }
    }
}

/// A handle on the Docker runtime for one node. Cheap to clone.
#[derive(Clone)]
pub struct DockerRuntime {
    node: String,
    host: Option<String>,
    conn: watch::Sender<Conn>,
    /// What this node lets containers have beyond the defaults.
    allowed: std::sync::Arc<berth_shared::options::Allowed>,
}

/// Docker's own networks: never created or removed by us.
const BUILTIN_NETWORKS: &[&str] = &["bridge", "host", "none", "default"];

impl DockerRuntime {
    pub fn new(node: String, host: Option<String>) -> Self {
        let (conn, _) = watch::channel(Conn::Connecting);
        Self {
            node,
            host,
            conn,
            allowed: Default::default(),
        }
    }

    /// With what this node allows (`--allow-bind`, `--allow-privileged`, `--allow-cap`).
    pub fn with_allowed(mut self, allowed: berth_shared::options::Allowed) -> Self {
        self.allowed = std::sync::Arc::new(allowed);
        self
    }

    /// Refuses what this node does not allow, before anything is pulled or created. A bind
    /// source is judged by the real path it names (symlinks followed), so a link under an
    /// allowed prefix cannot lead out of it.
    fn check_allowed(&self, spec: &ContainerSpec) -> Result<(), AgentError> {
        self.allowed
            .check(&self.node, &spec.options, |path| {
                std::fs::canonicalize(path).map_err(|e| e.to_string())
            })
            .map_err(|e| AgentError::NotAllowed(e.0))
    }

    /// The labels of what Berth makes on this node besides containers (volumes, networks).
    fn own_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NODE.to_owned(), self.node.clone()),
        ])
    }

    /// Creates the named volumes and the network a spec uses when they are missing, labelled as
    /// this node's. Docker would make a missing volume itself, unlabelled: `berth volume ls`
    /// could not tell it was ours.
    async fn ensure_volumes_and_network(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
    ) -> Result<(), AgentError> {
        for volume in spec.options.named_volumes() {
            match docker.inspect_volume(volume).await {
                Ok(_) => continue,
                Err(e) if docker_status(&e) == Some(404) => {}
                Err(e) => return Err(self.err(e)),
            }
            let request = bollard::models::VolumeCreateRequest {
                name: Some(volume.to_owned()),
                labels: Some(self.own_labels()),
                ..Default::default()
            };
            docker
                .create_volume(request)
                .await
                .map_err(|e| self.err(e))?;
            tracing::info!(volume, "volume created");
        }
        let Some(network) = spec.options.network.as_deref() else {
            return Ok(());
        };
        if BUILTIN_NETWORKS.contains(&network) {
            return Ok(());
        }
        match docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if docker_status(&e) == Some(404) => {}
            Err(e) => return Err(self.err(e)),
        }
        let request = bollard::models::NetworkCreateRequest {
            name: network.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(self.own_labels()),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => tracing::info!(network, "network created"),
            // Made meanwhile by another run (or another agent on this engine): use it.
            Err(e) if docker_status(&e) == Some(409) => {}
            Err(e) => return Err(self.err(e)),
        }
        Ok(())
    }

    /// The names of the volumes Berth made on this node, sorted, at most
    /// [`crate::cluster::gossip::MAX_GOSSIPED_VOLUMES`].
    pub async fn volume_names(&self, docker: &Docker) -> Result<Vec<String>, AgentError> {
        let ours = HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={}", labels::NODE, self.node)],
        )]);
        let listed = docker
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(ours),
            }))
            .await
            .map_err(|e| self.err(e))?;
        let mut names: Vec<String> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names.sort();
        names.truncate(crate::cluster::gossip::MAX_GOSSIPED_VOLUMES);
        Ok(names)
    }

    pub fn watch(&self) -> watch::Receiver<Conn> {
        self.conn.subscribe()
    }

    pub fn set_conn(&self, conn: Conn) {
        self.conn.send_replace(conn);
    }

    pub fn conn(&self) -> Conn {
        self.conn.borrow().clone()
    }

    /// The live client, or `UNAVAILABLE` at once when Docker is not reachable right now.
    pub fn client(&self) -> Result<Docker, AgentError> {
        match &*self.conn.borrow() {
            Conn::Up { docker, .. } => Ok(docker.clone()),
            Conn::Connecting => Err(AgentError::DockerUnavailable(
                "still connecting".into(),
                self.node.clone(),
            )),
            Conn::Down { error } => Err(AgentError::DockerUnavailable(
                error.clone(),
                self.node.clone(),
            )),
        }
    }

    fn err(&self, e: bollard::errors::Error) -> AgentError {
        AgentError::from_docker(e, &self.node)
    }

    /// One attempt to reach Docker: connect, agree on an API version, read version and root dir.
    pub async fn connect(&self) -> Result<Conn, String> {
        let docker = match &self.host {
            Some(h) => Docker::connect_with_host(h),
            None => Docker::connect_with_defaults(),
        }
        .map_err(|e| format!("cannot connect to docker: {e}"))?
        .with_timeout(Duration::from_secs(120));
        let attempt = async {
            let docker = docker
                .negotiate_version()
                .await
                .map_err(|e| e.to_string())?;
            let info = docker.info().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(Conn::Up {
                version: info.server_version.unwrap_or_default(),
                root_dir: info.docker_root_dir.unwrap_or_default(),
                docker,
            })
        };
        match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from docker within {}s",
                DEFAULT_CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    fn owned_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={}", labels::NODE, self.node)],
        )])
    }

    /// Every container this node owns, inspected.
    pub async fn list_owned(
        &self,
        docker: &Docker,
    ) -> Result<Vec<pb::ContainerSummary>, AgentError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(
                self.owned_filter()
                    .into_iter()
                    .collect::<HashMap<String, Vec<String>>>(),
            ),
            ..Default::default()
        };
        let list = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            let Some(id) = c.id else { continue };
            match self.inspect_raw(docker, &id).await {
                Ok(Some(raw)) => out.push(summary_from_inspect(&self.node, &raw)),
                Ok(None) => {} // removed between list and inspect
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Docker's inspect document for one container, or `None` when it does not exist.
    pub async fn inspect_raw(
        &self,
        docker: &Docker,
        id: &str,
    ) -> Result<Option<ContainerInspectResponse>, AgentError> {
        match docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if docker_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Container events for this node's containers, from `since` (unix seconds) on.
    pub fn events(
        &self,
        docker: &Docker,
        since: i64,
    ) -> impl Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>> + use<>
    {
        let mut filters = self.owned_filter();
        filters.insert("type".into(), vec!["container".into()]);
        docker.events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        }))
    }

    /// Creates and starts a container from a validated spec, pulling its image first when it is
    /// missing. `progress` receives pull progress; it returns the started container.
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        progress: &Progress,
    ) -> Result<pb::ContainerSummary, AgentError> {
        self.check_allowed(spec)?;
        let docker = self.client()?;
        let image = spec.image_ref()?;
        let policy = spec.options.pull;
        if policy == PullPolicy::Always {
            self.pull(&docker, &image, progress).await?;
        } else {
            match docker.inspect_image(&spec.image).await {
                Ok(_) => {}
                Err(e) if docker_status(&e) == Some(404) && policy == PullPolicy::Never => {
                    return Err(AgentError::ImageNotFound {
                        image: spec.image.clone(),
                        message: format!(
                            "node {} does not have it, and --pull is never",
                            self.node
                        ),
                    });
                }
                Err(e) if docker_status(&e) == Some(404) => {
                    self.pull(&docker, &image, progress).await?;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        if progress.is_closed() {
            // The caller went away during the pull: create nothing, as `docker run` would.
            return Err(AgentError::Docker("the client cancelled the run".into()));
        }

        self.ensure_volumes_and_network(&docker, spec).await?;
        let body = create_body(&self.node, spec)?;
        let opts = CreateContainerOptions {
            name: spec.name.clone(),
            platform: String::new(),
        };
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| match docker_status(&e) {
                Some(409) => AgentError::NameInUse(spec.name.clone().unwrap_or_default()),
                _ => self.err(e),
            })?;
        let id = created.id;
        let inspected = self.inspect_raw(&docker, &id).await?;
        let name = inspected
            .as_ref()
            .and_then(|c| c.name.clone())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let _ = progress
            .send(pb::RunEvent {
                event: Some(pb::run_event::Event::Created(pb::Created {
                    id: id.clone(),
                    name,
                    warnings: created.warnings,
                })),
            })
            .await;

        if let Err(e) = docker.start_container(&id, None).await {
            // A container that never started is garbage nobody asked for: remove it, so a
            // failed run changes nothing (unlike `docker run`, which leaves it "Created").
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            return Err(match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    AgentError::DockerRefused(format!("cannot start container: {message}"))
                }
                other => self.err(other),
            });
        }
        let raw = self
            .inspect_raw(&docker, &id)
            .await?
            .ok_or_else(|| AgentError::Docker(format!("container {id} vanished after start")))?;
        Ok(summary_from_inspect(&self.node, &raw))
    }

    async fn pull(
        &self,
        docker: &Docker,
        image: &berth_shared::image::ImageRef,
        progress: &Progress,
    ) -> Result<(), AgentError> {
        let tag = image
            .digest
            .clone()
            .unwrap_or_else(|| image.tag_or_latest().to_owned());
        let opts = CreateImageOptions {
            from_image: Some(image.repository()),
            tag: Some(tag),
            ..Default::default()
        };
        let mut stream = docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let detail = info.progress_detail.unwrap_or_default();
                    let ev = pb::PullProgress {
                        status: info.status.unwrap_or_default(),
                        layer: info.id.unwrap_or_default(),
                        current: detail.current.unwrap_or(0).max(0) as u64,
                        total: detail.total.unwrap_or(0).max(0) as u64,
                    };
                    // Progress is best effort: a slow client must not stall the pull.
                    let _ = progress.try_send(pb::RunEvent {
                        event: Some(pb::run_event::Event::Pull(ev)),
                    });
                }
                Err(e) => return Err(classify_pull_error(image, e, &self.node)),
            }
        }
        Ok(())
    }

    /// Stops with a grace period (Docker sends SIGTERM, then SIGKILL). `Ok(false)`: it was not
    /// running.
    async fn stop_container(
        &self,
        id: &str,
        timeout_secs: Option<u32>,
    ) -> Result<bool, AgentError> {
        let docker = self.client()?;
        let opts = StopContainerOptions {
            t: timeout_secs.map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
            signal: None,
        };
        match docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(true),
            Err(e) if docker_status(&e) == Some(304) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn remove_container(&self, id: &str, force: bool) -> Result<(), AgentError> {
        let docker = self.client()?;
        self.remove_on(&docker, id, force).await
    }

    /// Removes a container through `docker`, a connection not yet published as this runtime's
    /// (the supervisor's first resync runs before the runtime counts as up).
    pub async fn remove_on(
        &self,
        docker: &Docker,
        id: &str,
        force: bool,
    ) -> Result<(), AgentError> {
        let opts = RemoveContainerOptions {
            force,
            v: true,
            link: false,
        };
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if docker_status(&e) == Some(404) => Ok(()),
            Err(e) if docker_status(&e) == Some(409) => Err(AgentError::Running(id.to_owned())),
            Err(e) => Err(self.err(e)),
        }
    }

    /// One CPU/memory sample of a running container (Docker's one-shot stats).
    pub async fn sample(&self, docker: &Docker, id: &str) -> Option<Sample> {
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = docker.stats(id, Some(opts)).next().await?.ok()?;
        Some(sample_of(stats))
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn node(&self) -> &str {
        &self.node
    }

    fn status(&self) -> pb::RuntimeStatus {
        self.conn().status()
    }

    fn ready(&self) -> Result<(), AgentError> {
        self.client().map(|_| ())
    }

    async fn run(
        &self,
        spec: &ContainerSpec,
        progress: &Progress,
    ) -> Result<pb::ContainerSummary, AgentError> {
        self.create_and_start(spec, progress).await
    }

    async fn stop(
        &self,
        id: &str,
        timeout_secs: Option<u32>,
    ) -> Result<(Option<pb::ContainerSummary>, bool), AgentError> {
        let docker = self.client()?;
        // Docker answers 304 or 204 for a container that is not running, depending on its
        // version; ask it for the state instead of guessing from the answer.
        let Some(before) = self.inspect_raw(&docker, id).await? else {
            return Ok((None, false));
        };
        let state = before
            .state
            .as_ref()
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let was_running = matches!(state.as_str(), "running" | "restarting" | "paused")
            && self.stop_container(id, timeout_secs).await?;
        let after = self.inspect_raw(&docker, id).await?;
        Ok((
            after.map(|raw| summary_from_inspect(&self.node, &raw)),
            was_running,
        ))
    }

    async fn remove(&self, id: &str, force: bool) -> Result<(), AgentError> {
        self.remove_container(id, force).await
    }

    async fn find(&self, reference: &str) -> Result<Option<pb::ContainerSummary>, AgentError> {
        let docker = self.client()?;
        Ok(self
            .inspect_raw(&docker, reference)
            .await?
            .filter(|raw| owned_by(raw, &self.node))
            .map(|raw| summary_from_inspect(&self.node, &raw)))
    }

    async fn inspect(
        &self,
        view: &pb::ContainerSummary,
    ) -> Result<pb::ContainerDetail, AgentError> {
        let docker = self.client()?;
        let raw = self.inspect_raw(&docker, &view.id).await?.ok_or_else(|| {
            AgentError::ContainerNotFound(view.name.clone(), format!("node {}", self.node))
        })?;
        let mut summary = summary_from_inspect(&self.node, &raw);
        summary.cpu_percent = view.cpu_percent;
        summary.memory_bytes = view.memory_bytes;
        let state = raw.state.clone().unwrap_or_default();
        let runtime_json = serde_json::to_string(&raw)
            .map_err(|e| AgentError::Docker(format!("cannot encode docker's inspect: {e}")))?;
        Ok(pb::ContainerDetail {
            summary: Some(summary),
            spec: spec_from_inspect(&raw).map(|s| s.to_proto()),
            runtime_json,
            error: state.error.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
        })
    }

    async fn logs(&self, id: &str, req: &pb::LogsRequest) -> Result<LogStream, AgentError> {
        let docker = self.client()?;
        let since_secs = i32::try_from(req.since_unix_ms / 1000).unwrap_or(i32::MAX);
        let since_ns = req.since_unix_ms.saturating_mul(1_000_000);
        let opts = LogsOptions {
            follow: req.follow,
            stdout: true,
            stderr: true,
            since: since_secs,
            until: 0,
            timestamps: true,
            tail: req
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let frames = docker.logs(id, Some(opts));
        Ok(Box::pin(super::logs::log_lines(
            frames,
            self.node.clone(),
            since_ns,
        )))
    }

    async fn pull_image(
        &self,
        image: &berth_shared::image::ImageRef,
        progress: &Progress,
    ) -> Result<String, AgentError> {
        let docker = self.client()?;
        self.pull(&docker, image, progress).await?;
        let inspected = docker
            .inspect_image(&image.to_string())
            .await
            .map_err(|e| self.err(e))?;
        Ok(inspected.id.unwrap_or_default())
    }

    async fn list_objects(&self, kind: pb::ObjectKind) -> Result<Vec<pb::NodeObject>, AgentError> {
        let docker = self.client()?;
        let ours = HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={}", labels::NODE, self.node)],
        )]);
        // Our containers, for what uses what.
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(ours.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.err(e))?;
        let name_of = |c: &bollard::models::ContainerSummary| {
            c.names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default()
        };
        let mut objects = Vec::new();
        match kind {
            pb::ObjectKind::Volume => {
                let listed = docker
                    .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                        filters: Some(ours),
                    }))
                    .await
                    .map_err(|e| self.err(e))?;
                for v in listed.volumes.unwrap_or_default() {
                    let used_by = containers
                        .iter()
                        .filter(|c| {
                            c.mounts
                                .iter()
                                .flatten()
                                .any(|m| m.name.as_deref() == Some(&v.name))
                        })
                        .map(name_of)
                        .collect();
                    objects.push(pb::NodeObject {
                        node: self.node.clone(),
                        kind: kind as i32,
                        name: v.name,
                        id: String::new(),
                        driver: v.driver,
                        created_unix_ms: v.created_at.map(|t| t.timestamp_millis()).unwrap_or(0),
                        used_by,
                        ..Default::default()
                    });
                }
            }
            pb::ObjectKind::Network => {
                let listed = docker
                    .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                        filters: Some(ours),
                    }))
                    .await
                    .map_err(|e| self.err(e))?;
                for n in listed {
                    let name = n.name.unwrap_or_default();
                    let used_by = containers
                        .iter()
                        .filter(|c| {
                            c.network_settings
                                .as_ref()
                                .and_then(|s| s.networks.as_ref())
                                .is_some_and(|nets| nets.contains_key(&name))
                        })
                        .map(name_of)
                        .collect();
                    objects.push(pb::NodeObject {
                        node: self.node.clone(),
                        kind: kind as i32,
                        name,
                        id: n.id.unwrap_or_default(),
                        driver: n.driver.unwrap_or_default(),
                        created_unix_ms: n.created.map(|t| t.timestamp_millis()).unwrap_or(0),
                        used_by,
                        ..Default::default()
                    });
                }
            }
            pb::ObjectKind::Image => {
                let listed = docker
                    .list_images(None::<bollard::query_parameters::ListImagesOptions>)
                    .await
                    .map_err(|e| self.err(e))?;
                for image in listed {
                    let used_by: Vec<String> = containers
                        .iter()
                        .filter(|c| c.image_id.as_deref() == Some(image.id.as_str()))
                        .map(name_of)
                        .collect();
                    let tags = if image.repo_tags.is_empty() {
                        vec!["<none>:<none>".to_owned()]
                    } else {
                        image.repo_tags.clone()
                    };
                    for repo_tag in tags {
                        let (repo, tag) = repo_tag
                            .rsplit_once(':')
                            .filter(|(_, t)| !t.contains('/'))
                            .unwrap_or((repo_tag.as_str(), ""));
                        objects.push(pb::NodeObject {
                            node: self.node.clone(),
                            kind: kind as i32,
                            name: repo.to_owned(),
                            tag: tag.to_owned(),
                            id: image.id.clone(),
                            size_bytes: u64::try_from(image.size).unwrap_or(0),
                            created_unix_ms: image.created.saturating_mul(1000),
                            used_by: used_by.clone(),
                            ..Default::default()
                        });
                    }
                }
            }
            pb::ObjectKind::Unspecified => {}
        }
        objects.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        Ok(objects)
    }

    async fn remove_object(&self, kind: pb::ObjectKind, name: &str) -> Result<bool, AgentError> {
        let docker = self.client()?;
        let is_ours = |l: Option<&HashMap<String, String>>| {
            l.and_then(|l| l.get(labels::NODE)) == Some(&self.node)
        };
        let what = match kind {
            pb::ObjectKind::Network => format!("network {name}"),
            _ => format!("volume {name}"),
        };
        let removed = match kind {
            pb::ObjectKind::Volume => match docker.inspect_volume(name).await {
                Err(e) if docker_status(&e) == Some(404) => return Ok(false),
                Err(e) => return Err(self.err(e)),
                Ok(v) if !is_ours(Some(&v.labels)) => return Ok(false),
                Ok(_) => {
                    docker
                        .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                        .await
                }
            },
            pb::ObjectKind::Network => match docker.inspect_network(name, None).await {
                Err(e) if docker_status(&e) == Some(404) => return Ok(false),
                Err(e) => return Err(self.err(e)),
                Ok(n) if !is_ours(n.labels.as_ref()) => return Ok(false),
                Ok(_) => docker.remove_network(name).await,
            },
            pb::ObjectKind::Image | pb::ObjectKind::Unspecified => return Ok(false),
        };
        match removed {
            Ok(()) => {
                tracing::info!(%what, "removed");
                Ok(true)
            }
            Err(e) if matches!(docker_status(&e), Some(403 | 409)) => {
                Err(AgentError::InUse(format!("{what} on node {}", self.node)))
            }
            Err(e) if docker_status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn exec(
        &self,
        id: &str,
        name: &str,
        spec: &berth_shared::exec::ExecSpec,
    ) -> Result<ExecSession, AgentError> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        let docker = self.client()?;
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            console_size: spec
                .size
                .map(|(rows, cols)| vec![usize::from(rows), usize::from(cols)]),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(spec.command.clone()),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            ..Default::default()
        };
        let created = docker.create_exec(id, config).await.map_err(|e| {
            match docker_status(&e) {
                // Docker's 409 here: the container is not running (or paused, or restarting).
                Some(409) => AgentError::NotRunning(name.to_owned()),
                Some(404) => {
                    AgentError::ContainerNotFound(name.to_owned(), format!("node {}", self.node))
                }
                _ => AgentError::from_docker(e, &self.node),
            }
        })?;
        let options = StartExecOptions {
            detach: false,
            tty: spec.tty,
            output_capacity: None,
        };
        let started = docker
            .start_exec(&created.id, Some(options))
            .await
            .map_err(|e| AgentError::from_docker(e, &self.node))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(AgentError::Docker(
                "docker detached an attached exec".into(),
            ));
        };
        let control = DockerExec {
            docker,
            exec: created.id,
            node: self.node.clone(),
            failure: Default::default(),
        };
        if let Some((rows, cols)) = spec.size {
            // Engines before API 1.42 ignore the size given at create: set it now, as the
            // Docker CLI does, trying again while the process is still starting.
            for attempt in 1..=5u64 {
                match control.resize(rows, cols).await {
                    Ok(()) => break,
                    Err(e) if attempt == 5 => {
                        tracing::debug!(error = %e, "cannot set the exec's terminal size")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10 * attempt)).await,
                }
            }
        }
        let failure = control.failure.clone();
        let seen = failure.clone();
        let node = self.node.clone();
        let mut first = true;
        let output = output.filter_map(move |frame| {
            let chunk = match frame {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    Some(Ok(ExecChunk::Stderr(message)))
                }
                Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message },
                ) => {
                    // Docker reports a command it could not start as the session's first
                    // output: it is Docker's error, so it goes to stderr.
                    if std::mem::take(&mut first) && message.starts_with(OCI_EXEC_FAILED) {
                        *lock(&seen) = Some(String::from_utf8_lossy(&message).into_owned());
                        Some(Ok(ExecChunk::Stderr(message)))
                    } else {
                        Some(Ok(ExecChunk::Stdout(message)))
                    }
                }
                Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(AgentError::from_docker(e, &node))),
            };
            if matches!(chunk, Some(Ok(ExecChunk::Stderr(_)))) {
                first = false;
            }
            std::future::ready(chunk)
        });
        Ok(ExecSession {
            output: Box::pin(output),
            stdin: input,
            control: std::sync::Arc::new(control),
        })
    }

    async fn stat_path(
        &self,
        id: &str,
        name: &str,
        path: &str,
    ) -> Result<pb::PathStat, AgentError> {
        let docker = self.client()?;
        let options = bollard::query_parameters::ContainerArchiveInfoOptions { path: path.into() };
        let stat = docker
            .get_container_archive_info(id, Some(options))
            .await
            .map_err(|e| AgentError::from_docker_path(e, &self.node, name, path))?;
        Ok(path_stat(&stat))
    }

    async fn copy_from(
        &self,
        id: &str,
        name: &str,
        path: &str,
    ) -> Result<super::ByteStream, AgentError> {
        let docker = self.client()?;
        let options = bollard::query_parameters::DownloadFromContainerOptions { path: path.into() };
        let this = self.clone();
        let (name, path) = (name.to_owned(), path.to_owned());
        Ok(Box::pin(
            docker
                .download_from_container(id, Some(options))
                .map(move |chunk| {
                    chunk.map_err(|e| AgentError::from_docker_path(e, &this.node, &name, &path))
                }),
        ))
    }

    async fn copy_to(
        &self,
        id: &str,
        name: &str,
        path: &str,
        copy_uid_gid: bool,
        tar: super::UploadStream,
    ) -> Result<(), AgentError> {
        let docker = self.client()?;
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: path.into(),
            // As `docker cp`: a directory is never replaced by a file, nor a file by one.
            no_overwrite_dir_non_dir: Some("true".into()),
            copy_uidgid: copy_uid_gid.then(|| "true".into()),
        };
        docker
            .upload_to_container(id, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(|e| AgentError::from_docker_path(e, &self.node, name, path))
    }
}

/// Docker's stat of a path (Go's `os.FileMode` bits) as the API gives it.
fn path_stat(s: &bollard::container::PathStatResponse) -> pb::PathStat {
    const GO_DIR: u32 = 1 << 31;
    const GO_SYMLINK: u32 = 1 << 27;
    const GO_SETUID: u32 = 1 << 23;
    const GO_SETGID: u32 = 1 << 22;
    const GO_STICKY: u32 = 1 << 20;
    let m = s.file_mode;
    let special = [
        (GO_SETUID, 0o4000),
        (GO_SETGID, 0o2000),
        (GO_STICKY, 0o1000),
    ]
    .into_iter()
    .filter(|(go, _)| m & go != 0)
    .fold(0, |acc, (_, unix)| acc | unix);
    pb::PathStat {
        exists: true,
        name: s.name.clone(),
        size: u64::try_from(s.size).unwrap_or(0),
        dir: m & GO_DIR != 0,
        symlink: m & GO_SYMLINK != 0,
        permissions: (m & 0o777) | special,
        modified_unix_ms: s
            .modification_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp_millis()),
        link_target: s.link_target.clone(),
    }
}

/// How Docker's message for a command it could not start begins.
const OCI_EXEC_FAILED: &[u8] = b"OCI runtime exec failed";

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The exit status Docker gives a command it could not start is 126 whatever the cause; as
/// `docker run` does (and a shell), a program that is not there is 127.
fn start_failure_code(code: i32, failure: Option<&str>) -> i32 {
    match failure {
        Some(text)
            if code == 126
                && (text.contains("executable file not found")
                    || text.contains("no such file or directory")) =>
        {
            127
        }
        _ => code,
    }
}

/// One exec instance in Docker.
struct DockerExec {
    docker: Docker,
    exec: String,
    node: String,
    /// Docker's message when it could not start the command.
    failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// How long Docker may take to record an exec's exit code after its output ended.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(2);

#[async_trait::async_trait]
impl ExecControl for DockerExec {
    async fn resize(&self, rows: u16, cols: u16) -> Result<(), AgentError> {
        let size = bollard::exec::ResizeExecOptions {
            height: rows,
            width: cols,
        };
        self.docker
            .resize_exec(&self.exec, size)
            .await
            .map_err(|e| AgentError::from_docker(e, &self.node))
    }

    async fn exit_code(&self) -> Result<i32, AgentError> {
        let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
        loop {
            let inspected = self
                .docker
                .inspect_exec(&self.exec)
                .await
                .map_err(|e| AgentError::from_docker(e, &self.node))?;
            match (inspected.running, inspected.exit_code) {
                (Some(false), Some(code)) => {
                    let code = i32::try_from(code).unwrap_or(i32::MAX);
                    return Ok(start_failure_code(code, lock(&self.failure).as_deref()));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(AgentError::Docker(format!(
                        "exec {} ended its output but Docker has no exit code for it",
                        crate::state::short_id(&self.exec)
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// A raw usage sample; CPU % comes from the difference of two.
/// One sample from Docker's stats answer: CPU counters, memory without the page cache (as the
/// docker CLI counts it), network totals over every interface, block I/O from cgroup v1's or
/// v2's `io_service_bytes_recursive`.
fn sample_of(stats: bollard::models::ContainerStatsResponse) -> Sample {
    let cpu = stats.cpu_stats.unwrap_or_default();
    let mem = stats.memory_stats.unwrap_or_default();
    let usage = mem.usage.unwrap_or(0);
    // As the docker CLI: the page cache is not the container's own memory.
    let cache = mem
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    let mut io = Io::default();
    for n in stats.networks.iter().flat_map(|n| n.values()) {
        io.net_rx = io.net_rx.saturating_add(n.rx_bytes.unwrap_or(0));
        io.net_tx = io.net_tx.saturating_add(n.tx_bytes.unwrap_or(0));
    }
    let entries = stats
        .blkio_stats
        .and_then(|b| b.io_service_bytes_recursive)
        .unwrap_or_default();
    for e in entries {
        // cgroup v1 says Read/Write, v2 read/write.
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => io.block_read = io.block_read.saturating_add(e.value.unwrap_or(0)),
            Some("write") => io.block_write = io.block_write.saturating_add(e.value.unwrap_or(0)),
            _ => {}
        }
    }
    Sample {
        container_cpu_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
        online_cpus: cpu.online_cpus.unwrap_or(1).max(1),
        memory_bytes: usage.saturating_sub(cache),
        io,
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub container_cpu_ns: u64,
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    pub memory_bytes: u64,
    pub io: Io,
}

/// Network and block I/O totals of a container since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Io {
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
}

impl Sample {
    /// CPU % between `prev` and `self`, as `docker stats` computes it (100 % = one core).
    pub fn cpu_percent_since(&self, prev: &Sample) -> f64 {
        let dc = self.container_cpu_ns.saturating_sub(prev.container_cpu_ns) as f64;
        let ds = self.system_cpu_ns.saturating_sub(prev.system_cpu_ns) as f64;
        if ds <= 0.0 {
            return 0.0;
        }
        dc / ds * f64::from(self.online_cpus) * 100.0
    }
}

fn classify_pull_error(
    image: &berth_shared::image::ImageRef,
    e: bollard::errors::Error,
    node: &str,
) -> AgentError {
    let message = match &e {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        _ => return AgentError::from_docker(e, node),
    };
    let registry = image.domain.as_deref().unwrap_or("docker.io");
    match pull_failure(&message) {
        // Docker Hub answers so for a private repository and for one that does not exist.
        None if message.contains("may require 'docker login'") => AgentError::ImageNotFound {
            image: image.to_string(),
            message: format!(
                "registry {registry} has no such image, or it is private (berth cannot pass \
                 registry credentials yet: `docker login` and `docker pull` on the node): \
                 {message}"
            ),
        },
        None => AgentError::ImageNotFound {
            image: image.to_string(),
            message: format!("registry {registry} has no such image: {message}"),
        },
        Some(failure) => AgentError::RegistryUnreachable {
            image: image.to_string(),
            node: node.to_owned(),
            registry: registry.to_owned(),
            failure,
            message,
        },
    }
}

/// What Docker's pull error says failed: `None` when the registry answered that it has no such
/// image. Docker gives only text (the registry client's error, wrapped), so this is the one
/// place it is read; everything after goes by the [`Reason`] it returns.
fn pull_failure(message: &str) -> Option<berth_shared::reason::Reason> {
    use berth_shared::reason::Reason;
    let lower = message.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    // Name resolution first: Go's resolver error also says "dial tcp".
    if has(&[
        "no such host",
        "server misbehaving",
        "temporary failure in name resolution",
    ]) {
        return Some(Reason::RegistryResolve);
    }
    if has(&[
        "x509:",
        "tls:",
        "certificate",
        "server gave http response to https client",
    ]) {
        return Some(Reason::RegistryTls);
    }
    if has(&[
        "connection refused",
        "i/o timeout",
        "no route to host",
        "network is unreachable",
        "connection reset",
        "context deadline exceeded",
        "request canceled while waiting for connection",
    ]) {
        return Some(Reason::RegistryConnect);
    }
    if has(&[
        "manifest unknown",
        "not found",
        "does not exist",
        "repository name not known",
        "name unknown",
    ]) {
        return None;
    }
    // A registry that refuses outright (Docker Hub's "may require 'docker login'", which it
    // says of a missing repository too, is read above as not found and worded for both).
    if has(&[
        "pull access denied",
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
    ]) {
        return Some(Reason::RegistryAuth);
    }
    Some(Reason::RegistryOther)
}

/// Docker's create body for a validated spec, with Berth's labels.
pub fn create_body(node: &str, spec: &ContainerSpec) -> Result<ContainerCreateBody, AgentError> {
    let spec_json = serde_json::to_string(spec)
        .map_err(|e| AgentError::Docker(format!("cannot encode spec: {e}")))?;
    let mut lbls: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    lbls.insert(labels::MANAGED.into(), "true".into());
    lbls.insert(labels::NODE.into(), node.into());
    lbls.insert(labels::SPEC.into(), spec_json);
    if let Some(slot) = &spec.slot {
        lbls.insert(labels::SERVICE.into(), slot.service_id.clone());
        lbls.insert(labels::SERVICE_NAME.into(), slot.service.clone());
        lbls.insert(labels::SLOT.into(), slot.slot.clone());
        lbls.insert(labels::VERSION.into(), slot.version.to_string());
    }
    if let Some(id) = &spec.request {
        lbls.insert(labels::REQUEST.into(), id.clone());
    }

    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.container_port, proto_name(p.protocol));
        let binding = PortBinding {
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
        };
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    let mut exposed: Vec<String> = bindings.keys().cloned().collect();
    for e in &spec.options.expose {
        if !exposed.contains(e) {
            exposed.push(e.clone());
        }
    }
    exposed.sort();
    let o = &spec.options;
    let mounts: Vec<bollard::models::Mount> = o.mounts.iter().map(docker_mount).collect();
    let some_list = |l: &Vec<String>| (!l.is_empty()).then(|| l.clone());

    let restart = match spec.restart {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(i64::from(max_retries)),
        ),
    };

    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(lbls),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(HostConfig {
            nano_cpus: (spec.cpus > 0.0).then(|| (spec.cpus * 1e9).round() as i64),
            memory: (spec.memory_bytes > 0).then_some(spec.memory_bytes as i64),
            restart_policy: Some(bollard::models::RestartPolicy {
                name: Some(restart.0),
                maximum_retry_count: restart.1,
            }),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            network_mode: o.network.clone(),
            dns: some_list(&o.dns),
            extra_hosts: some_list(&o.add_hosts),
            publish_all_ports: o.publish_all.then_some(true),
            init: o.init.then_some(true),
            readonly_rootfs: o.read_only.then_some(true),
            cap_add: some_list(&o.cap_add),
            cap_drop: some_list(&o.cap_drop),
            privileged: o.privileged.then_some(true),
            ..Default::default()
        }),
        healthcheck: spec.health.as_ref().map(health_config),
        working_dir: o.workdir.clone(),
        user: o.user.clone(),
        hostname: o.hostname.clone(),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout_secs.map(i64::from),
        ..Default::default()
    })
}

/// Docker's mount for one of ours.
fn docker_mount(m: &berth_shared::options::Mount) -> bollard::models::Mount {
    use berth_shared::options::MountKind;
    bollard::models::Mount {
        target: Some(m.target.clone()),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        typ: Some(match m.kind {
            MountKind::Volume => bollard::models::MountType::VOLUME,
            MountKind::Bind => bollard::models::MountType::BIND,
            MountKind::Tmpfs => bollard::models::MountType::TMPFS,
        }),
        read_only: m.read_only.then_some(true),
        tmpfs_options: (m.kind == MountKind::Tmpfs && m.tmpfs_size_bytes > 0).then(|| {
            bollard::models::MountTmpfsOptions {
                size_bytes: Some(i64::try_from(m.tmpfs_size_bytes).unwrap_or(i64::MAX)),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
}

/// Docker's `HealthConfig` for a validated check: `CMD-SHELL` as `docker run --health-cmd`,
/// `NONE` for `--no-healthcheck`, zero for Docker's defaults.
fn health_config(h: &berth_shared::spec::HealthCheck) -> bollard::models::HealthConfig {
    let ns =
        |ms: u64| (ms > 0).then(|| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
    if h.disabled {
        return bollard::models::HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
    }
    bollard::models::HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), h.cmd.clone()]),
        interval: ns(h.interval_ms),
        timeout: ns(h.timeout_ms),
        retries: (h.retries > 0).then_some(i64::from(h.retries)),
        start_period: ns(h.start_period_ms),
        ..Default::default()
    }
}

fn proto_name(p: berth_shared::port::Protocol) -> &'static str {
    match p {
        berth_shared::port::Protocol::Tcp => "tcp",
        berth_shared::port::Protocol::Udp => "udp",
    }
}

/// Docker writes `0001-01-01T00:00:00Z` for "never"; that and anything unparsable become 0.
fn parse_docker_time_ms(s: Option<&str>) -> i64 {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .filter(|ms| *ms > 0)
        .unwrap_or(0)
}

/// The summary the API serves, from Docker's inspect document.
pub fn summary_from_inspect(node: &str, c: &ContainerInspectResponse) -> pb::ContainerSummary {
    let config = c.config.clone().unwrap_or_default();
    let host = c.host_config.clone().unwrap_or_default();
    let state = c.state.clone().unwrap_or_default();
    let all_labels = config.labels.clone().unwrap_or_default();
    let spec: Option<ContainerSpec> = all_labels
        .get(labels::SPEC)
        .and_then(|s| serde_json::from_str(s).ok());
    let image = spec
        .as_ref()
        .map(|s| s.image.clone())
        .or(config.image.clone())
        .unwrap_or_default();
    let user_labels = all_labels
        .into_iter()
        .filter(|(k, _)| !k.starts_with(labels::RESERVED_PREFIX))
        .collect();

    // Live bindings while running; the requested ones otherwise (Docker clears the live map).
    let live = c.network_settings.as_ref().and_then(|n| n.ports.clone());
    let port_map = match live {
        Some(m) if !m.is_empty() => m,
        _ => host.port_bindings.clone().unwrap_or_default(),
    };
    let mut ports = Vec::new();
    for (key, binds) in port_map {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u32>() else {
            continue;
        };
        let binds = binds.unwrap_or_default();
        if binds.is_empty() {
            ports.push(pb::PortMapping {
                host_ip: String::new(),
                host_port: 0,
                container_port,
                protocol: proto.to_owned(),
            });
        }
        for b in binds {
            ports.push(pb::PortMapping {
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.and_then(|p| p.parse().ok()).unwrap_or(0),
                container_port,
                protocol: proto.to_owned(),
            });
        }
    }
    ports.sort_by(|a, b| {
        (a.container_port, &a.protocol, &a.host_ip).cmp(&(
            b.container_port,
            &b.protocol,
            &b.host_ip,
        ))
    });

    pb::ContainerSummary {
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image,
        node: node.to_owned(),
        state: state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        created_unix_ms: c.created.map(|t| t.timestamp_millis()).unwrap_or(0),
        started_unix_ms: parse_docker_time_ms(state.started_at.as_deref()),
        finished_unix_ms: parse_docker_time_ms(state.finished_at.as_deref()),
        exit_code: state.exit_code.unwrap_or(0),
        restart_count: u32::try_from(c.restart_count.unwrap_or(0)).unwrap_or(0),
        ports,
        cpu_percent: 0.0,
        memory_bytes: 0,
        cpus: host.nano_cpus.unwrap_or(0) as f64 / 1e9,
        memory_limit_bytes: u64::try_from(host.memory.unwrap_or(0)).unwrap_or(0),
        labels: user_labels,
        slot: spec
            .as_ref()
            .and_then(|s| s.slot.as_ref())
            .map(|s| s.to_proto()),
        request_id: spec
            .as_ref()
            .and_then(|s| s.request.clone())
            .unwrap_or_default(),
        health: state
            .health
            .as_ref()
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| matches!(s.as_str(), "starting" | "healthy" | "unhealthy"))
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The spec a container was made from (from its `berth.spec` label), if it carries one.
pub fn spec_from_inspect(c: &ContainerInspectResponse) -> Option<ContainerSpec> {
    c.config
        .as_ref()
        .and_then(|cfg| cfg.labels.as_ref())
        .and_then(|l| l.get(labels::SPEC))
        .and_then(|s| serde_json::from_str(s).ok())
}

/// True when the container carries `berth.node=<node>`.
pub fn owned_by(c: &ContainerInspectResponse, node: &str) -> bool {
    c.config
        .as_ref()
        .and_then(|cfg| cfg.labels.as_ref())
        .and_then(|l| l.get(labels::NODE))
        .is_some_and(|n| n == node)
}

#[cfg(test)]
mod exec_tests {
    use super::{Io, pull_failure, sample_of, start_failure_code};

    #[test]
    fn a_sample_reads_rx_tx_and_block_io_of_cgroup_v1_and_v2() {
        let v1 = serde_json::json!({
            "networks": {
                "eth0": {"rx_bytes": 1000, "tx_bytes": 30},
                "eth1": {"rx_bytes": 5, "tx_bytes": 7}
            },
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Sync", "value": 1},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288},
                {"major": 8, "minor": 16, "op": "Read", "value": 4}
            ]},
            "cpu_stats": {"cpu_usage": {"total_usage": 5000}, "system_cpu_usage": 90000, "online_cpus": 2},
            "memory_stats": {"usage": 10_485_760, "stats": {"total_inactive_file": 1_048_576}}
        });
        let s = sample_of(serde_json::from_value(v1).expect("a v1 answer"));
        assert_eq!(
            s.io,
            Io {
                net_rx: 1005,
                net_tx: 37,
                block_read: 4100,
                block_write: 8192
            },
            "rx and tx apart, summed over interfaces and devices; Sync and Total not counted"
        );
        assert_eq!(
            s.memory_bytes, 9_437_184,
            "the page cache is not the container's"
        );
        assert_eq!(
            (s.container_cpu_ns, s.system_cpu_ns, s.online_cpus),
            (5000, 90000, 2)
        );

        let v2 = serde_json::json!({
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 259, "minor": 0, "op": "read", "value": 100},
                {"major": 259, "minor": 0, "op": "write", "value": 200}
            ]},
            "memory_stats": {"usage": 3000, "stats": {"inactive_file": 1000}}
        });
        let s = sample_of(serde_json::from_value(v2).expect("a v2 answer"));
        assert_eq!((s.io.block_read, s.io.block_write), (100, 200));
        assert_eq!(s.memory_bytes, 2000);
        assert_eq!(s.online_cpus, 1, "an answer without it counts one CPU");
        // No networks (--network none) and no block I/O: zeros, not a failure.
        let s = sample_of(serde_json::from_value(serde_json::json!({})).expect("empty"));
        assert_eq!(s.io, Io::default());
    }

    #[test]
    fn a_missing_program_is_127_and_other_start_failures_stay_126() {
        let missing = "OCI runtime exec failed: exec failed: unable to start container process: \
                       exec: \"nope\": executable file not found in $PATH: unknown";
        assert_eq!(start_failure_code(126, Some(missing)), 127);
        let denied = "OCI runtime exec failed: exec failed: unable to start container process: \
                      exec: \"/etc\": permission denied: unknown";
        assert_eq!(start_failure_code(126, Some(denied)), 126);
        // A program's own 126, with no message of Docker's, is its own.
        assert_eq!(start_failure_code(126, None), 126);
        assert_eq!(start_failure_code(3, Some(missing)), 3);
    }

    /// Docker's own words for each failure (20.10's registry client), read the one way.
    #[test]
    fn pull_failures_are_told_apart_by_what_failed() {
        use berth_shared::reason::Reason;
        let cases = [
            (
                "Get \"https://nosuch.example/v2/\": dial tcp: lookup nosuch.example on \
                 127.0.0.11:53: no such host",
                Some(Reason::RegistryResolve),
            ),
            (
                "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: \
                 connection refused",
                Some(Reason::RegistryConnect),
            ),
            (
                "Get \"https://10.1.1.1/v2/\": dial tcp 10.1.1.1:443: i/o timeout",
                Some(Reason::RegistryConnect),
            ),
            (
                "Get \"https://127.0.0.1:5000/v2/\": http: server gave HTTP response to HTTPS \
                 client",
                Some(Reason::RegistryTls),
            ),
            (
                "Get \"https://reg:5000/v2/\": x509: certificate signed by unknown authority",
                Some(Reason::RegistryTls),
            ),
            (
                "Head \"https://reg:5000/v2/app/manifests/1\": no basic auth credentials",
                Some(Reason::RegistryAuth),
            ),
            (
                "unauthorized: authentication required",
                Some(Reason::RegistryAuth),
            ),
            (
                "manifest for 127.0.0.1:5000/app:nope not found: manifest unknown: manifest \
                 unknown",
                None,
            ),
            (
                "pull access denied for nosuch, repository does not exist or may require \
                 'docker login': denied: requested access to the resource is denied",
                None,
            ),
            (
                "received unexpected HTTP status: 500 Internal Server Error",
                Some(Reason::RegistryOther),
            ),
        ];
        for (message, want) in cases {
            assert_eq!(pull_failure(message), want, "{message}");
        }
    }
}
