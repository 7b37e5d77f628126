//! A throwaway local image registry (Debian's `docker-registry`, the CNCF distribution server),
//! so tests can exercise real image pulls without any public registry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bollard::query_parameters::{
    ListImagesOptions, PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Context, Result};

/// Where Debian's `docker-registry` package installs the server.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long the registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How many ports to try when the one we picked was taken before the registry bound it.
const START_ATTEMPTS: usize = 3;

/// A running local registry on `127.0.0.1:<free port>`, storing into a temp dir. `Drop` stops it,
/// deletes its storage and untags every local image named `<addr>/…`.
#[derive(Debug)]
pub struct Registry {
    /// Where it listens; image references start with `<addr>/`.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers.
    ///
    /// When the `docker-registry` binary is missing this returns `Ok(None)` after printing why
    /// the test is skipped, unless env `CI` is set (non-empty): then it is an error.
    pub async fn start() -> Result<Option<Registry>> {
        let Some(bin) = find_binary() else {
            let why = format!(
                "{REGISTRY_BIN} not found: install the Debian package docker-registry \
                 (apt-get install docker-registry)"
            );
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                return Err(crate::error(why));
            }
            eprintln!("testkit: skipping registry test: {why}");
            return Ok(None);
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&bin).await {
                Ok(registry) => return Ok(Some(registry)),
                Err(StartError::PortTaken(error)) => last_error = Some(error),
                Err(StartError::Other(error)) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| crate::error("cannot start docker-registry")))
    }

    async fn start_once(bin: &Path) -> Result<Registry, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .context("cannot create a temp dir for the registry")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .with_context(|| format!("cannot reopen {}", log.display()))?,
            )
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot run {} serve {}", bin.display(), config.display()))?;
        let mut registry = Registry { addr, child, dir };

        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = registry.log();
                let error = crate::error(format!(
                    "docker-registry exited at start ({status}):\n{log}"
                ));
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Other(error)
                });
            }
            if v2_answers(addr).await {
                return Ok(registry);
            }
            if std::time::Instant::now() >= deadline {
                return Err(StartError::Other(crate::error(format!(
                    "timed out after {}s waiting for the registry at {addr} to answer \
                         GET /v2/; registry log:\n{}",
                    START_TIMEOUT.as_secs(),
                    registry.log()
                ))));
            }
            tokio::time::sleep(crate::POLL_INTERVAL).await;
        }
    }

    /// `<addr>`, the prefix of every image reference in this registry (without the slash).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's own log (stdout and stderr).
    pub fn log(&self) -> String {
        let path = self.dir.path().join("registry.log");
        std::fs::read(&path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
    }

    /// Tags `local_image` as `<addr>/<repo>:<tag>` (the tag of `local_image`, or `latest`),
    /// pushes it, then removes that local tag so a later run of the reference has to pull.
    /// Returns the full reference.
    pub async fn push(&self, local_image: &str, repo: &str) -> Result<String> {
        let docker = crate::docker().await?;
        let tag = image_tag(local_image);
        let target = format!("{}/{repo}", self.addr);
        let full = format!("{target}:{tag}");
        docker
            .tag_image(
                local_image,
                Some(
                    TagImageOptionsBuilder::default()
                        .repo(&target)
                        .tag(tag)
                        .build(),
                ),
            )
            .await
            .with_context(|| format!("cannot tag {local_image} as {full}"))?;
        let mut progress = docker.push_image(
            &target,
            Some(PushImageOptionsBuilder::default().tag(tag).build()),
            None,
        );
        while let Some(item) = progress.next().await {
            item.with_context(|| format!("cannot push {full}; registry log:\n{}", self.log()))?;
        }
        docker
            .remove_image(
                &full,
                Some(RemoveImageOptionsBuilder::default().build()),
                None,
            )
            .await
            .with_context(|| format!("cannot remove the local tag {full} after pushing it"))?;
        Ok(full)
    }

    /// Untags every local image whose name starts with `<addr>/`.
    async fn remove_local_images(prefix: &str) -> Result<()> {
        let docker = crate::docker().await?;
        let images = docker
            .list_images(Some(ListImagesOptions::default()))
            .await
            .context("cannot list images")?;
        let tags = images
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter(|tag| tag.starts_with(prefix));
        for tag in tags {
            match docker
                .remove_image(
                    &tag,
                    Some(RemoveImageOptionsBuilder::default().build()),
                    None,
                )
                .await
            {
                Ok(_)
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(error) => return Err(error).with_context(|| format!("cannot remove {tag}")),
            }
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let prefix = format!("{}/", self.addr);
        crate::block_on_fresh_thread("registry-cleanup", move || async move {
            if let Err(error) = Registry::remove_local_images(&prefix).await {
                eprintln!("testkit: cannot remove images {prefix}*: {error}");
            }
        });
    }
}

enum StartError {
    /// The port we picked was taken meanwhile: worth another try with a new one.
    PortTaken(crate::Error),
    Other(crate::Error),
}

impl From<crate::Error> for StartError {
    fn from(error: crate::Error) -> Self {
        StartError::Other(error)
    }
}

fn find_binary() -> Option<PathBuf> {
    let installed = PathBuf::from(REGISTRY_BIN);
    if installed.is_file() {
        return Some(installed);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("docker-registry"))
        .find(|path| path.is_file())
}

/// The tag part of an image reference (`latest` when it has none).
fn image_tag(image: &str) -> &str {
    let name = image.rsplit('/').next().unwrap_or(image);
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => "latest",
    }
}

/// `true` when `GET /v2/` answers 200 (a plain HTTP/1.0 exchange; no client library needed).
async fn v2_answers(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(response)) => {
            let status = response.split(|&b| b == b'\n').next().unwrap_or_default();
            String::from_utf8_lossy(status).split_whitespace().nth(1) == Some("200")
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::image_tag;

    #[test]
    fn tag_of_reference() {
        assert_eq!(image_tag("berth-workload:abc"), "abc");
        assert_eq!(image_tag("berth-workload"), "latest");
        assert_eq!(image_tag("127.0.0.1:5000/x"), "latest");
        assert_eq!(image_tag("127.0.0.1:5000/x:v1"), "v1");
    }
}
