//! Tests of the harness itself, against the real Docker engine.

// A failed unwrap in a test is a failed test with a location, which is what we want here.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_proto::v1::ClusterRequest;
use berth_testkit::{
    AgentOptions, AgentProcess, Cmd, ContainerGuard, DockerProxy, Registry, Result, docker,
    free_port, unique, wait_for, workload_image,
};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

/// The label key every test here puts on its containers (with a unique value per test).
const TEST_LABEL: &str = "berth.testkit.test";

/// Creates and starts a workload container with `args`, labelled for `guard`.
async fn run_workload(
    docker: &bollard::Docker,
    guard: &ContainerGuard,
    args: &[&str],
    host_config: Option<HostConfig>,
) -> Result<String> {
    let image = workload_image().await?;
    // The engine only applies port bindings of exposed ports (the CLI's `-p` exposes them too).
    let exposed_ports = host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .map(|bindings| bindings.keys().cloned().collect());
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: Some(args.iter().map(|a| a.to_string()).collect()),
        labels: Some(guard.labels()),
        exposed_ports,
        host_config,
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&unique("testkit"))
        .build();
    let id = docker.create_container(Some(options), body).await?.id;
    docker.start_container(&id, None).await?;
    Ok(id)
}

/// Waits until the container has exited; returns its exit code.
async fn wait_exited(docker: &bollard::Docker, id: &str) -> Result<i64> {
    wait_for("the container to exit", Duration::from_secs(30), || async {
        let state = docker.inspect_container(id, None).await.ok()?.state?;
        (state.status == Some(ContainerStateStatusEnum::EXITED)).then_some(state.exit_code)
    })
    .await?
    .ok_or_else(|| "exited container has no exit code".into())
}

#[tokio::test]
async fn workload_prints_exits_and_guard_removes_it() -> Result<()> {
    let docker = docker().await?;
    let guard = ContainerGuard::label(TEST_LABEL, unique("exit"));
    let id = run_workload(
        &docker,
        &guard,
        &["--lines", "3", "--stderr-every", "2", "--exit", "3"],
        None,
    )
    .await?;
    assert_eq!(wait_exited(&docker, &id).await?, 3);

    let logs: Vec<LogOutput> = docker
        .logs(
            &id,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        )
        .try_collect()
        .await?;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for chunk in logs {
        match chunk {
            LogOutput::StdOut { message } => stdout.push_str(&String::from_utf8_lossy(&message)),
            LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
            _ => {}
        }
    }
    assert_eq!(stdout, "line 1\nline 3\n");
    assert_eq!(stderr, "err 2\n");

    assert_eq!(guard.containers().await?, vec![id.clone()]);
    drop(guard);
    assert!(
        docker.inspect_container(&id, None).await.is_err(),
        "the guard left {id} behind"
    );
    Ok(())
}

#[tokio::test]
async fn workload_listens_and_stops_on_sigterm() -> Result<()> {
    let docker = docker().await?;
    let guard = ContainerGuard::label(TEST_LABEL, unique("listen"));
    let host_port = free_port();
    let host_config = HostConfig {
        port_bindings: Some(HashMap::from([(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_string()),
                host_port: Some(host_port.to_string()),
            }]),
        )])),
        ..Default::default()
    };
    let id = run_workload(&docker, &guard, &["--listen", "8080"], Some(host_config)).await?;

    let answer = wait_for(
        "the workload to answer",
        Duration::from_secs(20),
        || async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", host_port))
                .await
                .ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.ok()?;
            // Docker's proxy accepts before the container answers; an empty read means "not yet".
            (!answer.is_empty()).then_some(answer)
        },
    )
    .await?;
    assert_eq!(answer, "berth-workload\n");

    let started = Instant::now();
    docker
        .stop_container(
            &id,
            Some(StopContainerOptionsBuilder::default().t(10).build()),
        )
        .await?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(wait_exited(&docker, &id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn workload_ignoring_sigterm_is_killed_after_grace() -> Result<()> {
    let docker = docker().await?;
    let guard = ContainerGuard::label(TEST_LABEL, unique("ignore"));
    let id = run_workload(&docker, &guard, &["--ignore-sigterm"], None).await?;
    let started = Instant::now();
    docker
        .stop_container(
            &id,
            Some(StopContainerOptionsBuilder::default().t(1).build()),
        )
        .await?;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(wait_exited(&docker, &id).await?, 137);
    Ok(())
}

#[tokio::test]
async fn registry_push_removes_local_tag_and_pull_works() -> Result<()> {
    let Some(registry) = Registry::start().await? else {
        return Ok(());
    };
    let docker = docker().await?;
    let image = workload_image().await?;
    let reference = registry.push(&image, &unique("workload")).await?;
    assert!(reference.starts_with(&format!("{}/", registry.addr)));
    assert!(
        docker.inspect_image(&reference).await.is_err(),
        "{reference} is still tagged locally"
    );

    let pull = CreateImageOptionsBuilder::default()
        .from_image(&reference)
        .build();
    docker
        .create_image(Some(pull), None, None)
        .try_collect::<Vec<_>>()
        .await?;
    docker.inspect_image(&reference).await?;

    drop(registry);
    assert!(
        docker.inspect_image(&reference).await.is_err(),
        "{reference} outlived the registry"
    );
    docker.inspect_image(&image).await?;
    Ok(())
}

#[tokio::test]
async fn docker_proxy_pauses_and_resumes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let proxy = DockerProxy::start(dir.path()).await?;
    assert_eq!(
        proxy.docker_host(),
        format!("unix://{}/docker.sock", dir.path().display())
    );
    let docker = proxy.docker().await?;
    docker.ping().await?;

    proxy.pause();
    assert!(!proxy.socket_path().exists());
    assert!(
        docker.ping().await.is_err(),
        "ping went through a paused proxy"
    );

    proxy.resume().await?;
    docker.ping().await?;
    Ok(())
}

#[tokio::test]
async fn docker_proxy_cuts_open_connections() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let proxy = DockerProxy::start(dir.path()).await?;
    let docker = proxy.docker().await?;
    let guard = ContainerGuard::label(TEST_LABEL, unique("cut"));
    let real = berth_testkit::docker().await?;
    let id = run_workload(&real, &guard, &["--forever", "--interval-ms", "50"], None).await?;
    let mut logs = docker.logs(
        &id,
        Some(
            LogsOptionsBuilder::default()
                .stdout(true)
                .follow(true)
                .build(),
        ),
    );
    logs.next().await.ok_or("no log line")??;
    proxy.pause();
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = logs.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "a followed log stream outlived pause");
    Ok(())
}

#[tokio::test]
async fn wait_for_says_what_timed_out() {
    let error = wait_for("nothing", Duration::from_millis(300), || async {
        None::<()>
    })
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "timed out after 0.3s waiting for nothing"
    );
    let value = wait_for("a value", Duration::from_secs(1), || async { Some(7) })
        .await
        .unwrap();
    assert_eq!(value, 7);
}

#[test]
fn unique_names_have_eight_hex() {
    let a = unique("node");
    let suffix = a.strip_prefix("node-").unwrap();
    assert_eq!(suffix.len(), 8);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, unique("node"));
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn bin_path_explains_missing_binary() {
    let error = berth_testkit::bin_path("no-such-binary").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("run cargo build --workspace first"),
        "{error}"
    );
}

#[test]
fn cmd_reports_command_status_and_output() {
    let out = Cmd::new("sh")
        .args(["-c", "cat; echo oops >&2; exit 4"])
        .stdin("hello")
        .env("X", "a b")
        .run()
        .fail();
    assert_eq!(out.code(), Some(4));
    assert_eq!(out.stdout, "hello");
    assert_eq!(out.stderr, "oops\n");
    assert_eq!(
        out.command_line(),
        "X='a b' sh -c 'cat; echo oops >&2; exit 4'"
    );

    let panic =
        std::panic::catch_unwind(|| Cmd::new("sh").args(["-c", "echo out; exit 1"]).run().ok())
            .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("command: sh -c 'echo out; exit 1'"),
        "{message}"
    );
    assert!(message.contains("status: exit status: 1"), "{message}");
    assert!(message.contains("--- stdout ---\nout\n"), "{message}");

    Cmd::new("true").run().ok();
}

#[test]
fn cmd_times_out() {
    let panic = std::panic::catch_unwind(|| {
        Cmd::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(200))
            .run()
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("timed out"), "{message}");
}

#[test]
fn guard_drop_works_outside_a_runtime() {
    // Nothing carries this label; the point is that Drop runs without a runtime around it.
    drop(ContainerGuard::node(&unique("nobody")));
}

#[tokio::test]
async fn agent_process_answers_restarts_and_stops() -> Result<()> {
    let mut agent = AgentProcess::spawn(AgentOptions::default()).await?;
    assert!(agent.name.starts_with("node-"));
    assert_eq!(agent.url(), format!("http://{}", agent.addr));
    let snapshot = agent
        .client()
        .await?
        .cluster(ClusterRequest::default())
        .await?;
    drop(snapshot);
    assert!(agent.log().contains(&agent.name), "log:\n{}", agent.log());

    let (addr, name, pid) = (agent.addr, agent.name.clone(), agent.pid());
    agent.kill9();
    assert!(agent.client().await.is_err(), "killed agent still answers");
    agent.restart().await?;
    assert_eq!((agent.addr, &agent.name), (addr, &name));
    assert_ne!(agent.pid(), pid);
    agent
        .client()
        .await?
        .cluster(ClusterRequest::default())
        .await?;

    let status = agent.sigterm().await?;
    assert!(status.success(), "{status}; log:\n{}", agent.log());
    Ok(())
}

#[tokio::test]
async fn agent_process_with_token_is_up_and_refuses_strangers() -> Result<()> {
    let token = unique("cluster-token");
    let agent = AgentProcess::spawn(AgentOptions {
        token: Some(token.clone()),
        ..Default::default()
    })
    .await?;
    agent
        .client()
        .await?
        .cluster(ClusterRequest::default())
        .await?;
    // The cluster's CA pinned, but no token.
    let pin = berth_shared::trust::Credential::Secret(token.clone());
    let mut stranger = berth_shared::client::connect_pinned(&agent.url(), &pin, None).await?;
    let refused = stranger
        .cluster(ClusterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(!agent.log().contains(&token), "the log shows the token");
    Ok(())
}

#[tokio::test]
async fn agent_process_failure_carries_its_log() {
    let error = AgentProcess::spawn(AgentOptions {
        extra_args: vec!["--no-such-flag".to_string()],
        ..Default::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("exited at start"), "{error}");
    assert!(error.contains("--no-such-flag"), "{error}");
}

#[tokio::test]
async fn berth_cmd_runs_through_an_agent_behind_a_proxy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let proxy = DockerProxy::start(dir.path()).await?;
    let agent = AgentProcess::spawn(AgentOptions {
        docker_host: Some(proxy.docker_host()),
        ..Default::default()
    })
    .await?;
    let guard = ContainerGuard::node(&agent.name);
    let image = workload_image().await?;

    // `run` blocks this thread; the proxy keeps serving on its own runtime.
    let name = unique("cmd");
    // A console with a token expects TLS, and an agent without a secret speaks plaintext:
    // refused, naming what did not match, and nothing is created.
    let refused = Cmd::berth(&agent.url())
        .args(["run", "--name", &name, &image, "--", "--lines", "2"])
        .env("BERTH_TOKEN", "a-token-for-some-cluster")
        .run()
        .fail();
    assert!(
        refused.stderr.contains("did not answer in TLS"),
        "{}",
        refused.stderr
    );
    assert!(guard.containers().await?.is_empty());
    Cmd::berth(&agent.url())
        .args(["run", "--name", &name, &image, "--", "--lines", "2"])
        .run()
        .ok();
    let nodes = Cmd::berth(&agent.url()).arg("nodes").run().ok();
    assert!(nodes.stdout.contains(&agent.name), "{}", nodes.stdout);
    assert_eq!(guard.containers().await?.len(), 1);

    drop(guard);
    let real = docker().await?;
    assert!(
        real.inspect_container(&name, None).await.is_err(),
        "the node guard left {name} behind"
    );
    Ok(())
}

#[tokio::test]
async fn guard_cleans_up_after_a_panicking_test() -> Result<()> {
    let value = unique("panic");
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let label = value.clone();
    let task = tokio::spawn(async move {
        let guard = ContainerGuard::label(TEST_LABEL, label);
        let docker = docker().await.unwrap();
        let id = run_workload(&docker, &guard, &["--lines", "1"], None)
            .await
            .unwrap();
        id_tx.send(id).unwrap();
        panic!("the test fails while its container runs");
    });
    assert!(task.await.unwrap_err().is_panic());
    let id = id_rx.await?;
    let docker = docker().await?;
    assert!(
        docker.inspect_container(&id, None).await.is_err(),
        "{id} outlived the panic"
    );
    Ok(())
}
