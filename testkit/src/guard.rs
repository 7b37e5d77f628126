//! Removes a test's containers when the test ends, even when it panicked.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptionsBuilder};

use crate::{Context, Result};

/// Force-removes (with volumes), on `Drop`, every container carrying one label `key=value` —
/// and no other container. Give each test its own value (see [`crate::unique`]).
#[derive(Debug)]
pub struct ContainerGuard {
    key: String,
    value: String,
}

impl ContainerGuard {
    /// Guards the containers labelled `key=value`.
    pub fn label(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Guards the containers an agent named `node` owns (label `berth.node=<node>`).
    pub fn node(node: &str) -> Self {
        Self::label(berth_shared::labels::NODE, node)
    }

    /// The guarded label's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The guarded label's value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The label as a map, ready for `ContainerCreateBody::labels`.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(self.key.clone(), self.value.clone())])
    }

    /// The label as a Docker filter value (`key=value`).
    pub fn filter(&self) -> String {
        format!("{}={}", self.key, self.value)
    }

    /// The ids of the guarded containers, running or not.
    pub async fn containers(&self) -> Result<Vec<String>> {
        list(&crate::docker().await?, &self.filter()).await
    }

    /// Force-removes the guarded containers now (with volumes); returns how many there were.
    pub async fn remove_all(&self) -> Result<usize> {
        remove_labelled(&self.filter()).await
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let filter = self.filter();
        crate::block_on_fresh_thread("container-guard", move || async move {
            if let Err(error) = remove_labelled(&filter).await {
                eprintln!("testkit: cannot remove containers labelled {filter}: {error}");
            }
        });
    }
}

/// The ids of the containers labelled `filter` (`key=value`), running or not; removes nothing.
pub async fn list_labelled(filter: &str) -> Result<Vec<String>> {
    list(&crate::docker().await?, filter).await
}

async fn list(docker: &bollard::Docker, filter: &str) -> Result<Vec<String>> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![filter.to_string()],
        )])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("cannot list containers labelled {filter}"))?;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
}

/// Force-removes (with volumes) every container labelled `filter` (`key=value`), eight at a
/// time (Docker removes in parallel well; hundreds one by one is slow); returns how many there
/// were. Containers already gone or being removed count as removed.
pub async fn remove_labelled(filter: &str) -> Result<usize> {
    use futures::StreamExt;
    let docker = crate::docker().await?;
    let ids = list(&docker, filter).await?;
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let failures: Vec<_> = futures::stream::iter(ids.iter().cloned())
        .map(|id| {
            let (docker, options) = (docker.clone(), options.clone());
            async move {
                match docker.remove_container(&id, Some(options)).await {
                    // Gone already, or being removed by someone else: either way it goes away.
                    Ok(())
                    | Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404 | 409,
                        ..
                    }) => None,
                    Err(error) => Some((id, error)),
                }
            }
        })
        .buffer_unordered(8)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    if let Some((id, error)) = failures.into_iter().next() {
        return Err(error)
            .with_context(|| format!("cannot remove container {id} (labelled {filter})"));
    }
    Ok(ids.len())
}
