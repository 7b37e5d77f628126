//! `berthd` on its own: its real gRPC API, as a separate process, against the real Docker engine
//! and the test kit's workload image. Every test runs its own agent with a unique node name and a
//! guard that removes that node's containers, even on failure.

use crate::support::*;
use berth_proto::v1 as pb;
use berth_shared::client::Client;
use berth_testkit::{
    AgentOptions, AgentProcess, ContainerGuard, DockerProxy, Registry, Result, free_port, unique,
    wait_for, workload_image,
};
use futures::StreamExt;
use std::time::Duration;
use tonic::Code;

async fn logs(client: &mut Client, req: pb::LogsRequest) -> Vec<pb::LogLine> {
    let mut stream = client.logs(req).await.expect("logs call").into_inner();
    let mut out = Vec::new();
    while let Some(line) = stream.next().await {
        out.push(line.expect("log line"));
    }
    out
}

fn text(lines: &[pb::LogLine], kind: pb::log_line::Stream) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == kind as i32)
        .map(|l| String::from_utf8_lossy(&l.line).into_owned())
        .collect()
}

async fn agent(opts: AgentOptions) -> Result<(AgentProcess, ContainerGuard, Client)> {
    let agent = AgentProcess::spawn(opts).await?;
    let guard = ContainerGuard::node(&agent.name);
    let client = agent.client().await?;
    Ok((agent, guard, client))
}

#[tokio::test]
async fn run_logs_stop_rm_lifecycle() -> Result<()> {
    let image = workload_image().await?;
    let (agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("life");
    let started = run_ok(
        &mut client,
        spec(
            &image,
            &name,
            &[
                "--lines",
                "5",
                "--stderr-every",
                "2",
                "--interval-ms",
                "50",
                "--sleep",
                "600",
            ],
        ),
    )
    .await;
    assert_eq!(started.state, "running");
    assert_eq!(started.node, agent.name);
    assert_eq!(started.name, name);
    assert_eq!(started.id.len(), 64);

    let listed = find(&mut client, &name).await.expect("listed after run");
    assert_eq!(listed.id, started.id);

    // All lines, stdout and stderr kept apart.
    let all = wait_for("five log lines", WAIT, || {
        let mut client = client.clone();
        let name = name.clone();
        async move {
            let lines = logs(
                &mut client,
                pb::LogsRequest {
                    container: name,
                    ..Default::default()
                },
            )
            .await;
            (lines.len() == 5).then_some(lines)
        }
    })
    .await?;
    assert_eq!(
        text(&all, pb::log_line::Stream::Stdout),
        ["line 1", "line 3", "line 5"]
    );
    assert_eq!(text(&all, pb::log_line::Stream::Stderr), ["err 2", "err 4"]);
    assert!(all.iter().all(|l| l.timestamp_unix_ns > 0));

    // Tail, by an id prefix.
    let tail = logs(
        &mut client,
        pb::LogsRequest {
            container: started.id[..12].to_string(),
            tail: Some(2),
            ..Default::default()
        },
    )
    .await;
    let tail_text: Vec<_> = tail
        .iter()
        .map(|l| String::from_utf8_lossy(&l.line).into_owned())
        .collect();
    // Docker orders lines of the two streams by arrival; 50 ms apart, that is print order.
    assert_eq!(tail_text, ["err 4", "line 5"]);

    // Since: after the last line there is nothing.
    let after = all.last().unwrap().timestamp_unix_ns / 1_000_000 + 1;
    let since = logs(
        &mut client,
        pb::LogsRequest {
            container: name.clone(),
            since_unix_ms: after,
            ..Default::default()
        },
    )
    .await;
    assert!(since.is_empty(), "no lines after the last one: {since:?}");
    let first_ms = all[0].timestamp_unix_ns / 1_000_000;
    let since_first = logs(
        &mut client,
        pb::LogsRequest {
            container: name.clone(),
            since_unix_ms: first_ms,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since_first.len(), 5);

    // Stop: exits with the workload's SIGTERM code (0), quickly.
    let t0 = std::time::Instant::now();
    let stopped = client
        .stop(pb::StopRequest {
            container: name.clone(),
            timeout_secs: Some(10),
        })
        .await?
        .into_inner();
    assert!(stopped.was_running);
    assert!(t0.elapsed() < Duration::from_secs(8), "SIGTERM honoured");
    let c = stopped.container.unwrap();
    assert_eq!(c.state, "exited");
    assert_eq!(c.exit_code, 0);
    assert!(c.finished_unix_ms >= c.started_unix_ms);

    // Stopping again is not an error, and says it was not running.
    let again = client
        .stop(pb::StopRequest {
            container: name.clone(),
            timeout_secs: None,
        })
        .await?
        .into_inner();
    assert!(!again.was_running);

    let detail = client
        .inspect(pb::InspectRequest {
            container: name.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(detail.spec.unwrap().image, image);
    let raw: serde_json::Value = serde_json::from_str(&detail.runtime_json)?;
    assert_eq!(raw["Config"]["Labels"]["berth.node"], agent.name.as_str());
    assert_eq!(raw["Config"]["Labels"]["berth.managed"], "true");

    let removed = client
        .remove(pb::RemoveRequest {
            container: name.clone(),
            force: false,
        })
        .await?
        .into_inner();
    assert_eq!(removed.id, started.id);
    assert!(find(&mut client, &name).await.is_none());
    let gone = client
        .inspect(pb::InspectRequest {
            container: name.clone(),
        })
        .await
        .expect_err("removed");
    assert_eq!(gone.code(), Code::NotFound);
    assert!(gone.message().contains(&name), "{}", gone.message());
    Ok(())
}

#[tokio::test]
async fn follow_streams_lines_as_printed_and_ends_when_the_container_stops() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("follow");
    run_ok(
        &mut client,
        spec(
            &image,
            &name,
            &["--lines", "30", "--interval-ms", "100", "--exit", "0"],
        ),
    )
    .await;
    let t0 = std::time::Instant::now();
    let mut stream = client
        .logs(pb::LogsRequest {
            container: name.clone(),
            follow: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut got = Vec::new();
    let mut first_at = None;
    while let Some(line) = tokio::time::timeout(WAIT, stream.next()).await? {
        let line = line?;
        first_at.get_or_insert_with(|| t0.elapsed());
        got.push(String::from_utf8_lossy(&line.line).into_owned());
    }
    let expected: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(got, expected, "every line once, in order");
    // Lines arrive while the container runs (about 3 s), not all at the end.
    let first_at = first_at.unwrap();
    assert!(
        first_at < Duration::from_millis(2500),
        "first line after {first_at:?}"
    );
    wait_for("the view to show it exited", WAIT, || {
        let mut client = client.clone();
        let name = name.clone();
        async move {
            find(&mut client, &name)
                .await
                .filter(|c| c.state == "exited")
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn limits_ports_and_restart_policy_reach_docker() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("limits");
    let host_port = free_port();
    let mut s = spec(&image, &name, &["--listen", "8080"]);
    s.cpus = 0.5;
    s.memory_bytes = 64 * 1024 * 1024;
    s.ports = vec![pb::PortMapping {
        host_ip: "127.0.0.1".into(),
        host_port: u32::from(host_port),
        container_port: 8080,
        protocol: "tcp".into(),
    }];
    s.restart = Some(pb::RestartPolicy {
        kind: pb::restart_policy::Kind::OnFailure as i32,
        max_retries: 3,
    });
    s.env = vec![pb::EnvVar {
        key: "GREETING".into(),
        value: "hello world".into(),
    }];
    s.labels = [("team".to_string(), "infra".to_string())].into();
    let started = run_ok(&mut client, s).await;
    assert_eq!(started.cpus, 0.5);
    assert_eq!(started.memory_limit_bytes, 64 * 1024 * 1024);
    assert_eq!(
        started.labels.get("team").map(String::as_str),
        Some("infra")
    );
    assert!(
        started
            .ports
            .iter()
            .any(|p| p.host_port == u32::from(host_port) && p.container_port == 8080),
        "{:?}",
        started.ports
    );

    let docker = berth_testkit::docker().await?;
    let raw = docker.inspect_container(&started.id, None).await?;
    let host = raw.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    let rp = host.restart_policy.unwrap();
    assert_eq!(
        rp.name.map(|n| n.to_string()).as_deref(),
        Some("on-failure")
    );
    assert_eq!(rp.maximum_retry_count, Some(3));
    let env = raw.config.unwrap().env.unwrap();
    assert!(env.contains(&"GREETING=hello world".to_string()), "{env:?}");

    // The published port answers from the host.
    let greeting = wait_for("the published port to answer", WAIT, || async move {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", host_port))
            .await
            .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        (!buf.is_empty()).then_some(buf)
    })
    .await?;
    assert_eq!(greeting.trim(), "berth-workload");
    Ok(())
}

#[tokio::test]
async fn on_failure_restarts_up_to_the_limit() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("restart");
    let mut s = spec(&image, &name, &["--lines", "1", "--exit", "3"]);
    s.restart = Some(pb::RestartPolicy {
        kind: pb::restart_policy::Kind::OnFailure as i32,
        max_retries: 2,
    });
    run_ok(&mut client, s).await;
    let done = wait_for("two restarts, then exited", Duration::from_secs(40), || {
        let mut client = client.clone();
        let name = name.clone();
        async move {
            find(&mut client, &name)
                .await
                .filter(|c| c.restart_count == 2 && c.state == "exited")
        }
    })
    .await?;
    assert_eq!(done.exit_code, 3);
    Ok(())
}

#[tokio::test]
async fn watch_sends_a_snapshot_then_container_changes() -> Result<()> {
    let image = workload_image().await?;
    let (agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let mut watch = client.watch(pb::WatchRequest {}).await?.into_inner();
    let first = watch.next().await.unwrap()?;
    let Some(pb::watch_event::Event::Snapshot(snap)) = first.event else {
        panic!("first event must be a snapshot: {first:?}");
    };
    assert_eq!(snap.nodes.len(), 1);
    assert_eq!(snap.nodes[0].name, agent.name);

    let name = unique("watch");
    let c = run_ok(&mut client, spec(&image, &name, &[])).await;
    client
        .remove(pb::RemoveRequest {
            container: name.clone(),
            force: true,
        })
        .await?;

    // Running, then removed, as they happen; node stats arrive between them.
    let mut saw_running = false;
    let mut saw_node = false;
    loop {
        let ev = tokio::time::timeout(WAIT, watch.next())
            .await?
            .unwrap()?
            .event
            .unwrap();
        match ev {
            pb::watch_event::Event::ContainerUpdated(u) if u.id == c.id => {
                saw_running |= u.state == "running";
            }
            pb::watch_event::Event::ContainerRemoved(r) if r.id == c.id => break,
            pb::watch_event::Event::NodeUpdated(n) => {
                assert_eq!(n.name, agent.name);
                saw_node = true;
            }
            _ => {}
        }
    }
    assert!(saw_running, "the watch showed the container running");
    // Node stats keep flowing (every 2 s by default).
    if !saw_node {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(6), watch.next())
                .await?
                .unwrap()?;
            if let Some(pb::watch_event::Event::NodeUpdated(n)) = ev.event {
                assert!(n.stats.unwrap().memory_total_bytes > 0);
                break;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn node_reports_stats_and_usage() -> Result<()> {
    let image = workload_image().await?;
    let (agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("usage");
    run_ok(
        &mut client,
        spec(&image, &name, &["--burn-cpu", "--hold-mb", "32"]),
    )
    .await;
    let c = wait_for("cpu and memory usage of the container", WAIT, || {
        let mut client = client.clone();
        let name = name.clone();
        async move {
            find(&mut client, &name)
                .await
                .filter(|c| c.cpu_percent > 20.0 && c.memory_bytes > 30 * 1024 * 1024)
        }
    })
    .await?;
    assert!(
        c.cpu_percent < 150.0,
        "one spinning thread: {}",
        c.cpu_percent
    );
    let snap = client.cluster(pb::ClusterRequest {}).await?.into_inner();
    let node = &snap.nodes[0];
    assert_eq!(node.name, agent.name);
    assert_eq!(node.address, agent.addr.to_string());
    assert_eq!(node.status, pb::NodeStatus::Alive as i32);
    let runtime = node.runtime.clone().unwrap();
    assert!(runtime.available);
    assert!(
        runtime.version.starts_with("docker "),
        "{}",
        runtime.version
    );
    let stats = node.stats.clone().unwrap();
    assert!(stats.cores >= 1);
    assert!(stats.memory_total_bytes > stats.memory_used_bytes);
    assert!(stats.disk_total_bytes > 0);
    assert_eq!(stats.containers.unwrap().running, 1);
    Ok(())
}

#[tokio::test]
async fn restarted_agent_adopts_its_containers_after_kill9() -> Result<()> {
    let image = workload_image().await?;
    let (mut agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let a = run_ok(&mut client, spec(&image, &unique("adopt"), &[])).await;
    let b = run_ok(
        &mut client,
        spec(&image, &unique("adopt"), &["--exit", "4"]),
    )
    .await;
    agent.kill9();
    // The containers outlive the agent.
    let docker = berth_testkit::docker().await?;
    let raw = docker.inspect_container(&a.id, None).await?;
    assert_eq!(raw.state.unwrap().running, Some(true));

    agent.restart().await?;
    let mut client = agent.client().await?;
    let listed = wait_for("both containers listed again", WAIT, || {
        let mut client = client.clone();
        async move {
            let list = containers(&mut client).await;
            (list.len() >= 2).then_some(list)
        }
    })
    .await?;
    let mut ids: Vec<_> = listed.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(ids, want, "none lost, none duplicated");
    let b_now = listed.iter().find(|c| c.id == b.id).unwrap();
    assert_eq!(b_now.state, "exited");
    assert_eq!(b_now.exit_code, 4);
    // And it still manages them.
    client
        .stop(pb::StopRequest {
            container: a.name.clone(),
            timeout_secs: Some(5),
        })
        .await?;
    client
        .remove(pb::RemoveRequest {
            container: a.id[..10].to_string(),
            force: false,
        })
        .await?;
    assert_eq!(containers(&mut client).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn agents_sharing_an_engine_manage_only_their_own_containers() -> Result<()> {
    let image = workload_image().await?;
    let (_a, _ga, mut ca) = agent(AgentOptions::default()).await?;
    let (_b, _gb, mut cb) = agent(AgentOptions::default()).await?;
    let name = unique("mine");
    run_ok(&mut ca, spec(&image, &name, &[])).await;
    assert!(find(&mut cb, &name).await.is_none());
    let err = cb
        .stop(pb::StopRequest {
            container: name.clone(),
            timeout_secs: Some(1),
        })
        .await
        .expect_err("not b's container");
    assert_eq!(err.code(), Code::NotFound);
    let err = cb
        .remove(pb::RemoveRequest {
            container: name.clone(),
            force: true,
        })
        .await
        .expect_err("not b's container");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(find(&mut ca, &name).await.unwrap().state, "running");
    Ok(())
}

#[tokio::test]
async fn docker_going_away_is_reported_and_survived() -> Result<()> {
    let image = workload_image().await?;
    let dir = tempfile::tempdir()?;
    let proxy = DockerProxy::start(dir.path()).await?;
    let (_agent, _guard, mut client) = agent(AgentOptions {
        docker_host: Some(proxy.docker_host()),
        ..Default::default()
    })
    .await?;
    let name = unique("away");
    wait_for("runtime available", WAIT, || {
        let mut client = client.clone();
        async move { runtime(&mut client).await.filter(|r| r.available) }
    })
    .await?;
    let c = run_ok(&mut client, spec(&image, &name, &[])).await;

    proxy.pause();
    let down = wait_for("runtime reported unavailable", WAIT, || {
        let mut client = client.clone();
        async move { runtime(&mut client).await.filter(|r| !r.available) }
    })
    .await?;
    assert!(!down.error.is_empty());
    let err = run(&mut client, spec(&image, &unique("away"), &[]))
        .await
        .1
        .expect_err("docker is away");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("docker"), "{}", err.message());
    let err = client
        .stop(pb::StopRequest {
            container: name.clone(),
            timeout_secs: Some(1),
        })
        .await
        .expect_err("docker is away");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // The last known containers are still listed.
    assert!(find(&mut client, &name).await.is_some());

    proxy.resume().await?;
    wait_for("runtime available again", WAIT, || {
        let mut client = client.clone();
        async move { runtime(&mut client).await.filter(|r| r.available) }
    })
    .await?;
    let again = find(&mut client, &name).await.unwrap();
    assert_eq!(again.id, c.id);
    client
        .remove(pb::RemoveRequest {
            container: name,
            force: true,
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_token_guards_every_call_and_is_never_logged() -> Result<()> {
    let token = format!("tok-{}", unique("secret"));
    let (agent, _guard, mut good) = agent(AgentOptions {
        token: Some(token.clone()),
        ..Default::default()
    })
    .await?;
    good.cluster(pb::ClusterRequest {}).await?;

    // The right CA pinned, but no token or a wrong one: refused at every call.
    let pin = berth_shared::trust::Credential::Secret(token.clone());
    let mut none = berth_shared::client::connect_pinned(&agent.url(), &pin, None).await?;
    let mut wrong =
        berth_shared::client::connect_pinned(&agent.url(), &pin, Some("nope-nope-nope-nope"))
            .await?;
    for client in [&mut none, &mut wrong] {
        let e = client
            .cluster(pb::ClusterRequest {})
            .await
            .expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = client
            .run(pb::RunRequest {
                spec: Some(spec("x", "y", &[])),
                ..Default::default()
            })
            .await
            .expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = client
            .logs(pb::LogsRequest {
                container: "x".into(),
                ..Default::default()
            })
            .await
            .expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // Another cluster's secret: the agent's certificate is refused before anything is sent.
    match berth_shared::client::connect(&agent.url(), Some("another-clusters-secret")).await {
        Err(berth_shared::client::ConnectError::Tls {
            failure: berth_shared::client::TlsFailure::WrongCluster { .. },
            ..
        }) => {}
        Err(e) => panic!("expected a refusal of the certificate, got {e}"),
        Ok(_) => panic!("a client of another cluster connected"),
    }
    // Plaintext, as a console without a token speaks: no answer at all.
    let mut plain = berth_shared::client::connect(&agent.url(), None).await;
    if let Ok(plain) = plain.as_mut() {
        let e = plain
            .cluster(pb::ClusterRequest {})
            .await
            .expect_err("plaintext is not served");
        assert!(
            berth_shared::client::transport_failure(&e).is_some(),
            "a transport failure, not an answer: {e:?}"
        );
    }
    assert!(
        containers(&mut good).await.is_empty(),
        "nothing was created"
    );
    assert!(
        !agent.log().contains(&token),
        "the token leaked into the log"
    );
    Ok(())
}

#[tokio::test]
async fn listening_beyond_loopback_needs_a_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(berth_testkit::bin_path("berthd")?)
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("BERTH_TOKEN")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
    assert!(
        !stderr.contains("BACKTRACE"),
        "a user error is not a crash: {stderr}"
    );
    Ok(())
}

/// A token short enough to guess is refused at start, naming the rule and not the token.
#[tokio::test]
async fn an_agent_refuses_a_weak_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let out = std::process::Command::new(berth_testkit::bin_path("berthd")?)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("BERTH_TOKEN", "k")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 16"), "{stderr}");
    assert!(stderr.contains("token"), "{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, guard, mut client) = agent(AgentOptions::default()).await?;
    let ok = || spec(&image, "", &[]);
    let long = "a".repeat(300);
    let mut cases: Vec<(&str, pb::ContainerSpec)> = vec![
        (
            "image",
            pb::ContainerSpec {
                image: "UPPER/case".into(),
                ..ok()
            },
        ),
        (
            "image",
            pb::ContainerSpec {
                image: "a::b".into(),
                ..ok()
            },
        ),
        (
            "image",
            pb::ContainerSpec {
                image: String::new(),
                ..ok()
            },
        ),
        (
            "image",
            pb::ContainerSpec {
                image: long.clone(),
                ..ok()
            },
        ),
        (
            "name",
            pb::ContainerSpec {
                name: "bad name!".into(),
                ..ok()
            },
        ),
        (
            "name",
            pb::ContainerSpec {
                name: "x".repeat(1_000_000),
                ..ok()
            },
        ),
        ("cpus", pb::ContainerSpec { cpus: -1.0, ..ok() }),
        (
            "cpus",
            pb::ContainerSpec {
                cpus: f64::NAN,
                ..ok()
            },
        ),
        (
            "memory",
            pb::ContainerSpec {
                memory_bytes: 5,
                ..ok()
            },
        ),
        (
            "env",
            pb::ContainerSpec {
                env: vec![pb::EnvVar {
                    key: String::new(),
                    value: "x".into(),
                }],
                ..ok()
            },
        ),
        (
            "labels",
            pb::ContainerSpec {
                labels: [("berth.node".to_string(), "other".to_string())].into(),
                ..ok()
            },
        ),
    ];
    let port = |host_port: u32, protocol: &str| pb::ContainerSpec {
        ports: vec![pb::PortMapping {
            host_ip: String::new(),
            host_port,
            container_port: 80,
            protocol: protocol.into(),
        }],
        ..ok()
    };
    cases.push(("ports", port(99_999, "tcp")));
    cases.push(("ports", port(8080, "xyz")));
    for (field, s) in cases {
        let (_, result) = run(&mut client, s).await;
        let err = result.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().contains(field),
            "the message names {field}: {}",
            err.message()
        );
        assert!(err.message().len() < 400, "no echo of huge values");
    }
    let e = run(&mut client, pb::ContainerSpec::default())
        .await
        .1
        .expect_err("empty spec");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Placement fields: one rule each, shared with the console.
    for (field, r) in [
        (
            "constraint",
            pb::RunRequest {
                constraints: vec!["=!=!".into()],
                ..req(ok())
            },
        ),
        (
            "node",
            pb::RunRequest {
                node: "two words".into(),
                ..req(ok())
            },
        ),
        (
            "strategy",
            pb::RunRequest {
                strategy: 99,
                ..req(ok())
            },
        ),
    ] {
        let err = run(&mut client, r).await.1.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }

    // Unknown containers.
    for r in ["nosuch", "0123456789ab"] {
        let e = client
            .stop(pb::StopRequest {
                container: r.into(),
                timeout_secs: None,
            })
            .await
            .expect_err("unknown");
        assert_eq!(e.code(), Code::NotFound);
        assert!(e.message().contains(r), "{}", e.message());
    }
    let e = client
        .stop(pb::StopRequest {
            container: "x".into(),
            timeout_secs: Some(1_000_000),
        })
        .await
        .expect_err("too long a grace period");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Larger than the agent decodes at all.
    let e = run(
        &mut client,
        pb::ContainerSpec {
            command: vec!["x".repeat(5 * 1024 * 1024)],
            ..ok()
        },
    )
    .await
    .1
    .expect_err("oversized request");
    assert_ne!(e.code(), Code::Ok);

    // An image no registry has (no registry is reachable from here at all).
    let e = run(
        &mut client,
        spec("berth-test/does-not-exist:never", "", &[]),
    )
    .await
    .1
    .expect_err("missing image");
    assert!(
        matches!(e.code(), Code::NotFound | Code::Unavailable),
        "{e:?}"
    );
    assert!(
        e.message().contains("berth-test/does-not-exist"),
        "{}",
        e.message()
    );
    assert!(
        !e.message().contains("is Docker running"),
        "docker is fine; the registry is what is missing: {}",
        e.message()
    );

    // Nothing was created, and the agent still serves.
    assert!(containers(&mut client).await.is_empty());
    assert!(guard.containers().await?.is_empty());
    let c = run_ok(&mut client, spec(&image, &unique("after"), &[])).await;
    assert_eq!(c.state, "running");
    Ok(())
}

/// The `cp` calls: each bad field refused naming it, a missing path answered as missing (stat)
/// or NOT_FOUND (copy), an upload that is not an archive refused by Docker with nothing written,
/// and the agent serving on.
#[tokio::test]
async fn copy_calls_refuse_bad_input_naming_the_field() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let c = run_ok(
        &mut client,
        spec(
            &image,
            &unique("cp-api"),
            &["--forever", "--interval-ms", "1000"],
        ),
    )
    .await;
    let stat = |path: &str| pb::StatPathRequest {
        container: c.id.clone(),
        path: path.into(),
    };
    for (path, says) in [
        ("", "is empty"),
        ("/a\0b", "NUL"),
        (&"a".repeat(5000)[..], "bytes long"),
    ] {
        let e = client.stat_path(stat(path)).await.expect_err(says);
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains("path") && e.message().contains(says),
            "{}",
            e.message()
        );
        assert!(e.message().len() < 400, "no echo of huge values");
    }
    let missing = client.stat_path(stat("/no/such")).await?.into_inner();
    assert!(!missing.exists, "{missing:?}");
    let found = client.stat_path(stat("berth-workload")).await?.into_inner();
    assert!(found.exists && !found.dir && found.size > 0, "{found:?}");
    assert_eq!(found.name, "berth-workload");

    let e = client
        .copy_from(pb::CopyFromRequest {
            container: c.id.clone(),
            path: "/no/such".into(),
        })
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("/no/such"), "{}", e.message());
    let e = client
        .copy_from(pb::CopyFromRequest {
            container: "no-such-container".into(),
            path: "/".into(),
        })
        .await
        .expect_err("no container");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    type In = pb::copy_to_input::Input;
    let start = |path: &str| pb::CopyToInput {
        input: Some(In::Start(pb::CopyToStart {
            container: c.id.clone(),
            path: path.into(),
            copy_uid_gid: false,
        })),
    };
    let data = |b: &[u8]| pb::CopyToInput {
        input: Some(In::Data(b.to_vec())),
    };
    for (messages, field) in [
        (vec![data(b"x")], "start"),
        (vec![start("/"), start("/")], "start"),
        (vec![start("")], "path"),
        (vec![start("/"), pb::CopyToInput { input: None }], "input"),
    ] {
        let e = client
            .copy_to(futures::stream::iter(messages))
            .await
            .expect_err(field);
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let e = client
        .copy_to(futures::stream::iter(vec![start("/"), data(&[0x42; 1024])]))
        .await
        .expect_err("not a tar archive");
    assert!(
        matches!(e.code(), Code::InvalidArgument | Code::Internal) && !e.message().is_empty(),
        "Docker's refusal, passed on: {e:?}"
    );
    let e = client
        .copy_to(futures::stream::iter(vec![start("/no/such/dir")]))
        .await
        .expect_err("no such directory");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // The agent serves on.
    assert_eq!(containers(&mut client).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_taken_name_is_already_exists() -> Result<()> {
    let image = workload_image().await?;
    let (_agent, guard, mut client) = agent(AgentOptions::default()).await?;
    let name = unique("dup");
    run_ok(&mut client, spec(&image, &name, &[])).await;
    let e = run(&mut client, spec(&image, &name, &[]))
        .await
        .1
        .expect_err("name taken");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains(&name));
    assert_eq!(guard.containers().await?.len(), 1);
    let e = client
        .remove(pb::RemoveRequest {
            container: name,
            force: false,
        })
        .await
        .expect_err("running");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("rm -f"), "{}", e.message());
    Ok(())
}

#[tokio::test]
async fn pulls_a_missing_image_from_a_registry_with_progress() -> Result<()> {
    let Some(registry) = Registry::start().await? else {
        return Ok(());
    };
    let image = workload_image().await?;
    let remote = registry.push(&image, &unique("pull")).await?;
    let (_agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    let (events, result) = run(&mut client, spec(&remote, &unique("pulled"), &[])).await;
    let c = result.map_err(|s| format!("run of {remote}: {s:?}"))?;
    assert_eq!(c.state, "running");
    assert_eq!(c.image, remote);
    let pulls: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::run_event::Event::Pull(p)) => Some(p.status.clone()),
            _ => None,
        })
        .collect();
    assert!(!pulls.is_empty(), "pull progress was streamed: {events:?}");
    assert!(
        pulls
            .iter()
            .any(|s| s.contains("Pull complete") || s.contains("Downloaded")),
        "{pulls:?}"
    );
    assert!(matches!(
        events.first().and_then(|e| e.event.as_ref()),
        Some(pb::run_event::Event::Placed(_))
    ));

    // A tag the registry does not have: NOT_FOUND, naming the image.
    let missing = format!("{}/nothing-here:v1", registry.host());
    let e = run(&mut client, spec(&missing, "", &[]))
        .await
        .1
        .expect_err("no such image");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("nothing-here"), "{}", e.message());
    Ok(())
}

#[tokio::test]
async fn sigterm_ends_open_streams_and_exits_cleanly() -> Result<()> {
    let (mut agent, _guard, mut client) = agent(AgentOptions::default()).await?;
    // A console following the cluster must not hold the agent's shutdown up.
    let mut watch = client.watch(pb::WatchRequest {}).await?.into_inner();
    watch.next().await.unwrap()?;
    let t0 = std::time::Instant::now();
    let status = agent.sigterm().await?;
    assert!(status.success(), "exit status {status:?}\n{}", agent.log());
    // Its log went to a file: plain text, no colour codes.
    let log = agent.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file:\n{log}");
    // Within a second with nothing but a watch in flight (1.5 s before: a graceful leave
    // waited three gossip rounds with no peer to tell).
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        t0.elapsed()
    );
    // The stream ended rather than hanging.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = watch.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the watch stream ended with the agent");
    Ok(())
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Connections that send nothing no longer pile up: past `--max-connections` (half of it from
/// one address) they are closed at once, and every silent one is closed after the handshake
/// timeout. A console from another address is served throughout, and the log says what
/// happened once, not once per connection.
#[tokio::test]
async fn silent_connections_are_capped_and_closed() -> Result<()> {
    let agent = AgentProcess::spawn(AgentOptions {
        extra_args: vec!["--max-connections".into(), "64".into()],
        ..Default::default()
    })
    .await?;
    let pid = agent.pid().expect("a pid");
    let baseline = fds(pid);
    let mut silent = Vec::new();
    for _ in 0..500 {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.9:0".parse()?)?;
        if let Ok(s) = socket.connect(agent.addr).await {
            silent.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = fds(pid);
    assert!(
        during <= baseline + 40,
        "{during} fds with 500 silent connections (baseline {baseline}): the cap holds"
    );
    // A console from 127.0.0.1 is served: the silent ones are another address's half.
    let mut client = agent.client().await?;
    client.cluster(pb::ClusterRequest {}).await?;
    // Each silent connection is closed by the agent: read past the server's HTTP/2 settings
    // to the end, EOF or a reset, all at once.
    let started = std::time::Instant::now();
    let total = silent.len();
    let reads = silent.into_iter().map(|mut s| async move {
        use tokio::io::AsyncReadExt;
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut sink))
            .await
            .is_ok()
    });
    let closed = futures::future::join_all(reads)
        .await
        .into_iter()
        .filter(|c| *c)
        .count();
    assert_eq!(closed, total, "every silent connection closed");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "within the 10 s handshake timeout: {:?}",
        started.elapsed()
    );
    let log = agent.log();
    assert_eq!(
        log.matches("refusing connections").count(),
        1,
        "one warning for the burst:\n{log}"
    );
    client.cluster(pb::ClusterRequest {}).await?;
    Ok(())
}

/// A `Run` that says it was forwarded (`x-berth-hop`) still has to meet its constraints on the
/// node it reaches: the marker is not a way around them.
#[tokio::test]
async fn a_forged_hop_marker_does_not_skip_constraints() -> Result<()> {
    let image = workload_image().await?;
    let (agent, _guard, mut client) = agent(AgentOptions {
        extra_args: vec!["--label".into(), "zone=a".into()],
        ..Default::default()
    })
    .await?;
    let name = unique("hop");
    let forged = |constraint: &str| {
        let mut r = tonic::Request::new(pb::RunRequest {
            spec: Some(spec(&image, &name, &[])),
            node: agent.name.clone(),
            constraints: vec![constraint.to_owned()],
            ..Default::default()
        });
        r.metadata_mut()
            .insert("x-berth-hop", "someone".parse().expect("ascii"));
        r
    };
    let err = client
        .run(forged("zone==b"))
        .await
        .expect_err("a forwarded run that does not meet its constraint was accepted");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("zone==b"), "{err:?}");
    assert!(find(&mut client, &name).await.is_none());
    // One that holds goes through.
    let mut stream = client.run(forged("zone==a")).await?.into_inner();
    while let Some(ev) = stream.next().await {
        ev?;
    }
    assert!(find(&mut client, &name).await.is_some());
    Ok(())
}

/// Raw bytes out, a `StopResponse` (or the status) back: a request no generated client can
/// send, such as a string field that is not UTF-8.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::StopResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::StopResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// A request string that is not UTF-8 is the caller's bad input: `INVALID_ARGUMENT` naming the
/// field, not `INTERNAL`.
#[tokio::test]
async fn a_request_string_that_is_not_utf8_is_invalid_argument() -> Result<()> {
    let agent = AgentProcess::spawn(AgentOptions::default()).await?;
    let channel = tonic::transport::Channel::from_shared(agent.url())?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    // StopRequest { container (field 1): the bytes ff fe }.
    let body = vec![0x0a, 0x02, 0xff, 0xfe];
    let path = http::uri::PathAndQuery::from_static("/berth.v1.Berth/Stop");
    let e = grpc
        .unary(tonic::Request::new(body), path, RawCodec)
        .await
        .expect_err("not UTF-8");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("StopRequest.container"),
        "names the field: {}",
        e.message()
    );
    Ok(())
}
