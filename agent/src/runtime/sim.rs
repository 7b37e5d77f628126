//! The in-memory runtime of hollow nodes (`berthd --runtime sim`), for scale simulations of many
//! agents on one machine, as Nomad's mock driver or Kubernetes' kubemark. Containers exist only
//! in this process: they "run" at once, stop at once, and print two synthetic log lines.
//!
//! **Not** for any test that claims Docker behaviour: those use the Docker runtime.

use super::{LogStream, Progress, Runtime};
use crate::error::AgentError;
use berth_proto::v1 as pb;
use berth_shared::spec::ContainerSpec;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct SimRuntime {
    node: String,
    containers: Mutex<HashMap<String, (pb::ContainerSummary, ContainerSpec)>>,
    counter: AtomicU64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SimRuntime {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            containers: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (pb::ContainerSummary, ContainerSpec)>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// "Creates and starts" a container: it is running as soon as this returns.
    fn create(&self, spec: &ContainerSpec) -> Result<pb::ContainerSummary, AgentError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let digest = sha2::Sha256::digest(format!("{}\0{n}\0{}", self.node, now_ms()).as_bytes());
        let id: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("sim-{}", &id[..8]));
        let mut containers = self.lock();
        if containers.values().any(|(c, _)| c.name == name) {
            return Err(AgentError::NameInUse(name));
        }
        let now = now_ms();
        let summary = pb::ContainerSummary {
            id: id.clone(),
            name,
            image: spec.image.clone(),
            node: self.node.clone(),
            state: "running".into(),
            created_unix_ms: now,
            started_unix_ms: now,
            cpus: spec.cpus,
            memory_limit_bytes: spec.memory_bytes,
            ports: spec.ports.iter().map(Into::into).collect(),
            labels: spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            slot: spec.slot.as_ref().map(|s| s.to_proto()),
            request_id: spec.request.clone().unwrap_or_default(),
            ..Default::default()
        };
        containers.insert(id, (summary.clone(), spec.clone()));
        Ok(summary)
    }

    /// Stops at once; `(summary, was_running)`.
    fn stop_now(&self, id: &str) -> Option<(pb::ContainerSummary, bool)> {
        let mut containers = self.lock();
        let (c, _) = containers.get_mut(id)?;
        let was_running = c.state == "running";
        if was_running {
            c.state = "exited".into();
            c.finished_unix_ms = now_ms();
            c.exit_code = 0;
        }
        Some((c.clone(), was_running))
    }

    fn remove_now(&self, id: &str, force: bool) -> Result<(), AgentError> {
        let mut containers = self.lock();
        if let Some((c, _)) = containers.get(id)
            && c.state == "running"
            && !force
        {
            return Err(AgentError::Running(c.name.clone()));
        }
        containers.remove(id);
        Ok(())
    }

    fn detail(&self, id: &str) -> Option<pb::ContainerDetail> {
        let containers = self.lock();
        let (c, spec) = containers.get(id)?;
        Some(pb::ContainerDetail {
            summary: Some(c.clone()),
            spec: Some(spec.to_proto()),
            runtime_json: r#"{"Runtime":"sim"}"#.into(),
            error: String::new(),
            oom_killed: false,
        })
    }

    /// Two lines, one per stream, stamped with the container's start.
    fn lines(&self, id: &str) -> Vec<pb::LogLine> {
        let containers = self.lock();
        let Some((c, _)) = containers.get(id) else {
            return Vec::new();
        };
        let ts = c.started_unix_ms.saturating_mul(1_000_000);
        vec![
            pb::LogLine {
                stream: pb::log_line::Stream::Stdout as i32,
                timestamp_unix_ns: ts,
                line: format!("sim container {} started", c.name).into_bytes(),
            },
            pb::LogLine {
                stream: pb::log_line::Stream::Stderr as i32,
                timestamp_unix_ns: ts,
                line: b"sim containers print nothing else".to_vec(),
            },
        ]
    }
}

#[async_trait::async_trait]
impl Runtime for SimRuntime {
    fn node(&self) -> &str {
        &self.node
    }

    fn status(&self) -> pb::RuntimeStatus {
        pb::RuntimeStatus {
            available: true,
            version: "sim (in-memory)".into(),
            error: String::new(),
        }
    }

    fn ready(&self) -> Result<(), AgentError> {
        Ok(())
    }

    async fn run(
        &self,
        spec: &ContainerSpec,
        progress: &Progress,
    ) -> Result<pb::ContainerSummary, AgentError> {
        let c = self.create(spec)?;
        let created = pb::Created {
            id: c.id.clone(),
            name: c.name.clone(),
            warnings: Vec::new(),
        };
        let _ = progress
            .send(pb::RunEvent {
                event: Some(pb::run_event::Event::Created(created)),
            })
            .await;
        Ok(c)
    }

    async fn stop(
        &self,
        id: &str,
        _timeout_secs: Option<u32>,
    ) -> Result<(Option<pb::ContainerSummary>, bool), AgentError> {
        Ok(match self.stop_now(id) {
            Some((c, was_running)) => (Some(c), was_running),
            None => (None, false),
        })
    }

    async fn remove(&self, id: &str, force: bool) -> Result<(), AgentError> {
        self.remove_now(id, force)
    }

    async fn find(&self, _reference: &str) -> Result<Option<pb::ContainerSummary>, AgentError> {
        // Every sim container is in the view the moment it exists: nothing to catch up on.
        Ok(None)
    }

    async fn inspect(
        &self,
        view: &pb::ContainerSummary,
    ) -> Result<pb::ContainerDetail, AgentError> {
        self.detail(&view.id)
            .ok_or_else(|| AgentError::ContainerNotFound(view.name.clone(), self.node.clone()))
    }

    async fn logs(&self, id: &str, _req: &pb::LogsRequest) -> Result<LogStream, AgentError> {
        let lines = self.lines(id).into_iter().map(Ok);
        Ok(Box::pin(futures::stream::iter(lines)))
    }

    async fn pull_image(
        &self,
        image: &berth_shared::image::ImageRef,
        _progress: &super::Progress,
    ) -> Result<String, AgentError> {
        // Hollow nodes have every image.
        Ok(format!("sim:{image}"))
    }

    async fn list_objects(&self, _kind: pb::ObjectKind) -> Result<Vec<pb::NodeObject>, AgentError> {
        // Hollow containers mount and join nothing.
        Ok(Vec::new())
    }

    async fn remove_object(&self, _kind: pb::ObjectKind, _name: &str) -> Result<bool, AgentError> {
        Ok(false)
    }

    async fn exec(
        &self,
        _id: &str,
        name: &str,
        _spec: &berth_shared::exec::ExecSpec,
    ) -> Result<super::ExecSession, AgentError> {
        // A hollow container has no process to run a command next to.
        Err(AgentError::Unsupported(format!(
            "exec in {name}: node {} runs hollow containers (--runtime sim)",
            self.node()
        )))
    }

    async fn stat_path(
        &self,
        _id: &str,
        name: &str,
        _path: &str,
    ) -> Result<pb::PathStat, AgentError> {
        Err(self.no_files(name))
    }

    async fn copy_from(
        &self,
        _id: &str,
        name: &str,
        _path: &str,
    ) -> Result<super::ByteStream, AgentError> {
        Err(self.no_files(name))
    }

    async fn copy_to(
        &self,
        _id: &str,
        name: &str,
        _path: &str,
        _copy_uid_gid: bool,
        _tar: super::UploadStream,
    ) -> Result<(), AgentError> {
        Err(self.no_files(name))
    }
}

impl SimRuntime {
    /// A hollow container has no files to copy.
    fn no_files(&self, name: &str) -> AgentError {
        AgentError::Unsupported(format!(
            "cp with {name}: node {} runs hollow containers (--runtime sim)",
            self.node()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            options: Default::default(),
            image: "sim/app:1".into(),
            name: Some(name.into()),
            entrypoint: None,
            command: vec![],
            env: vec![],
            ports: vec![],
            cpus: 0.5,
            memory_bytes: 64 << 20,
            restart: berth_shared::spec::RestartPolicy::No,
            labels: Default::default(),
            slot: None,
            health: None,
            request: None,
        }
    }

    #[tokio::test]
    async fn lifecycle_in_memory() {
        let sim = SimRuntime::new("n1");
        let (progress, mut events) = tokio::sync::mpsc::channel(4);
        let c = sim.run(&spec("a"), &progress).await.expect("runs");
        assert_eq!(c.state, "running");
        assert_eq!(c.id.len(), 64);
        assert!(matches!(
            events.try_recv().map(|e| e.event),
            Ok(Some(pb::run_event::Event::Created(_)))
        ));
        assert!(matches!(
            sim.run(&spec("a"), &progress).await,
            Err(AgentError::NameInUse(_))
        ));
        assert!(matches!(
            sim.remove(&c.id, false).await,
            Err(AgentError::Running(_))
        ));
        let (stopped, was) = sim.stop(&c.id, Some(10)).await.expect("known");
        assert!(was);
        assert_eq!(stopped.expect("still there").state, "exited");
        assert_eq!(sim.lines(&c.id).len(), 2);
        assert!(sim.inspect(&c).await.is_ok());
        sim.remove(&c.id, false).await.expect("stopped");
        assert!(sim.inspect(&c).await.is_err());
    }
}
