//! A cluster: several `berthd` processes on 127.0.0.x addresses, sharing the one Docker engine (each manages
//! only its own labelled containers), joined by real gossip over UDP, talking real gRPC.
//! Measured figures are printed (`cargo test -- --nocapture` shows them).

use crate::support::*;
use berth_proto::v1 as pb;
use berth_testkit::{
    AgentOptions, AgentProcess, ContainerGuard, Result, unique, wait_for, workload_image,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tonic::Code;

pub(crate) struct Cluster {
    pub(crate) agents: Vec<AgentProcess>,
    _guards: Vec<ContainerGuard>,
}

impl Cluster {
    /// `n` agents; the first starts the cluster, the others join it. `args(i)` adds flags.
    pub(crate) async fn start(n: usize, args: impl Fn(usize) -> Vec<String>) -> Result<Self> {
        let mut cluster = Self {
            agents: Vec::new(),
            _guards: Vec::new(),
        };
        for i in 0..n {
            cluster.add(args(i)).await?;
        }
        Ok(cluster)
    }

    /// One more agent: the first starts the cluster, the others join it through the first.
    pub(crate) async fn add(&mut self, mut extra: Vec<String>) -> Result<()> {
        let i = self.agents.len();
        if let Some(first) = self.agents.first() {
            extra.extend(["--join".to_string(), first.addr.to_string()]);
        }
        let agent = AgentProcess::spawn(AgentOptions {
            name: Some(unique(&format!("n{i}"))),
            ip: Some(Ipv4Addr::new(127, 0, 0, 2 + i as u8)),
            extra_args: extra,
            ..Default::default()
        })
        .await?;
        self._guards.push(ContainerGuard::node(&agent.name));
        self.agents.push(agent);
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        self.agents.iter().map(|a| a.name.clone()).collect()
    }

    /// Waits until every agent lists every node alive; returns how long it took.
    pub(crate) async fn converge(&self) -> Result<Duration> {
        let t0 = Instant::now();
        for a in &self.agents {
            let client = a.client().await?;
            let want = self.agents.len();
            wait_for(
                &format!("{} to see {want} nodes alive", a.name),
                WAIT,
                || {
                    let mut client = client.clone();
                    async move {
                        let nodes = nodes(&mut client).await;
                        (nodes
                            .values()
                            .filter(|s| **s == pb::NodeStatus::Alive)
                            .count()
                            == want)
                            .then_some(())
                    }
                },
            )
            .await?;
        }
        Ok(t0.elapsed())
    }
}

#[tokio::test]
async fn any_agent_sees_and_drives_every_node() -> Result<()> {
    let image = workload_image().await?;
    let cluster = Cluster::start(3, |_| Vec::new()).await?;
    let took = cluster.converge().await?;
    eprintln!("figure: 3 agents converged in {took:?}");
    let names = cluster.names();
    let (a, c) = (&cluster.agents[0], &cluster.agents[2]);
    let mut via_a = a.client().await?;
    let via_c = c.client().await?;

    // A watch on A sees containers started anywhere.
    let mut watch = via_a.watch(pb::WatchRequest {}).await?.into_inner();
    let Some(Ok(first)) = watch.next().await else {
        panic!("no snapshot");
    };
    assert!(matches!(
        first.event,
        Some(pb::watch_event::Event::Snapshot(ref s)) if s.nodes.len() == 3
    ));

    // Six back-to-back runs through one agent on three empty nodes: two on each.
    let mut placed: HashMap<String, usize> = HashMap::new();
    for i in 0..6 {
        let c = run_ok(
            &mut via_a,
            req(spec(&image, &unique(&format!("s{i}")), &[])),
        )
        .await;
        *placed.entry(c.node).or_default() += 1;
    }
    for n in &names {
        assert_eq!(placed.get(n), Some(&2), "spread: {placed:?}");
    }
    // Every agent lists all six (gossip carries them).
    let listed = wait_for("C to list all six containers running", WAIT, || {
        let mut via_c = via_c.clone();
        async move {
            let list = containers(&mut via_c).await;
            (list.len() == 6 && list.iter().all(|c| c.state == "running")).then_some(list)
        }
    })
    .await?;

    let deadline = Instant::now() + WAIT;
    let on_c = loop {
        assert!(
            Instant::now() < deadline,
            "the watch never showed a container of C"
        );
        let ev = tokio::time::timeout(WAIT, watch.next())
            .await?
            .expect("watch open")?;
        match ev.event {
            Some(pb::watch_event::Event::ContainerUpdated(c))
                if c.node == names[2] && c.state == "running" =>
            {
                break c;
            }
            _ => continue,
        }
    };
    assert!(listed.iter().any(|c| c.id == on_c.id));

    // Logs -f of a container on C, through A: every line once, then the stream ends.
    let t0 = Instant::now();
    let chatty = run_ok(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(
                &image,
                &unique("chatty"),
                &["--lines", "40", "--interval-ms", "50", "--exit", "0"],
            )),
            node: names[2].clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(chatty.node, names[2]);
    eprintln!(
        "figure: run through a peer until running: {:?}",
        t0.elapsed()
    );
    let mut stream = via_a
        .logs(pb::LogsRequest {
            container: chatty.name.clone(),
            follow: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut lines = Vec::new();
    while let Some(line) = tokio::time::timeout(WAIT, stream.next()).await? {
        lines.push(String::from_utf8_lossy(&line?.line).into_owned());
    }
    let want: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want, "no loss, no duplicates, and the stream ended");

    // Inspect, stop and remove C's container through A.
    let victim = listed.iter().find(|c| c.node == names[2]).unwrap();
    let detail = via_a
        .inspect(pb::InspectRequest {
            container: victim.name.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(detail.summary.unwrap().node, names[2]);
    let stopped = via_a
        .stop(pb::StopRequest {
            container: victim.id[..12].to_string(),
            timeout_secs: Some(5),
        })
        .await?
        .into_inner();
    assert!(stopped.was_running);
    assert_eq!(stopped.container.unwrap().state, "exited");
    via_a
        .remove(pb::RemoveRequest {
            container: victim.name.clone(),
            force: false,
        })
        .await?;
    let docker = berth_testkit::docker().await?;
    assert!(docker.inspect_container(&victim.id, None).await.is_err());

    // Gossip traffic of one node, from its own counters.
    let me = |snap: &pb::ClusterSnapshot| {
        snap.nodes
            .iter()
            .find(|n| n.name == names[0])
            .and_then(|n| n.stats.clone())
            .map(|s| s.gossip_sent_bytes + s.gossip_received_bytes)
            .unwrap_or(0)
    };
    let before = me(&via_a.cluster(pb::ClusterRequest {}).await?.into_inner());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = me(&via_a.cluster(pb::ClusterRequest {}).await?.into_inner());
    assert!(after > before, "gossip flows");
    eprintln!(
        "figure: gossip of one node in a 3-node cluster with 7 containers: {} bytes/s (sent + received)",
        (after - before) / 5
    );
    Ok(())
}

#[tokio::test]
async fn placement_follows_pins_constraints_strategy_and_admission() -> Result<()> {
    let image = workload_image().await?;
    let zones = ["a", "b", "c"];
    let cluster = Cluster::start(3, |i| {
        vec![
            "--label".into(),
            format!("zone={}", zones[i]),
            "--allocatable-memory".into(),
            "256m".into(),
        ]
    })
    .await?;
    cluster.converge().await?;
    let names = cluster.names();
    let mut via_a = cluster.agents[0].client().await?;
    let mut via_b = cluster.agents[1].client().await?;
    let mut via_c = cluster.agents[2].client().await?;

    // A pin.
    let c = run_ok(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(&image, &unique("pin"), &[])),
            node: names[1].clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(c.node, names[1]);
    // Constraints.
    let c = run_ok(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(&image, &unique("zc"), &[])),
            constraints: vec!["zone==c".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(c.node, names[2]);
    let c = run_ok(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(&image, &unique("nota"), &[])),
            constraints: vec!["zone!=a".into(), format!("node!={}", names[2])],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(c.node, names[1]);

    // No candidate: a clear reason per node.
    let (_, e) = run(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(&image, "", &[])),
            constraints: vec!["zone==nowhere".into()],
            ..Default::default()
        },
    )
    .await;
    let e = e.expect_err("no zone nowhere");
    assert_eq!(e.code(), Code::ResourceExhausted);
    for n in &names {
        assert!(
            e.message()
                .contains(&format!("{n}: constraint zone==nowhere not met")),
            "{}",
            e.message()
        );
    }

    // Binpack keeps filling the node that already holds the most, while it fits.
    let mut mem = spec(&image, &unique("bp"), &[]);
    mem.memory_bytes = 80 * MIB;
    let first = run_ok(
        &mut via_b,
        pb::RunRequest {
            spec: Some(mem.clone()),
            node: names[0].clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.node, names[0]);
    wait_for("A's reservation to reach B by gossip", WAIT, || {
        let mut via_b = via_b.clone();
        let a = names[0].clone();
        async move {
            let snap = via_b
                .cluster(pb::ClusterRequest {})
                .await
                .ok()?
                .into_inner();
            snap.nodes
                .iter()
                .any(|n| n.name == a && n.reserved_memory_bytes == 80 * MIB)
                .then_some(())
        }
    })
    .await?;
    mem.name = unique("bp");
    let second = run_ok(
        &mut via_b,
        pb::RunRequest {
            spec: Some(mem.clone()),
            strategy: pb::Strategy::Binpack as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.node, names[0], "binpack packs onto the busiest node");

    // Two consoles at once through different agents, both asking for 200m on C (256m): the
    // owner's ledger admits one and refuses the other; C is never over-committed.
    let mut big = spec(&image, "", &[]);
    big.memory_bytes = 200 * MIB;
    let pinned = |name: String| pb::RunRequest {
        spec: Some(pb::ContainerSpec {
            name,
            ..big.clone()
        }),
        node: names[2].clone(),
        ..Default::default()
    };
    let (r1, r2) = tokio::join!(
        run(&mut via_a, pinned(unique("race"))),
        run(&mut via_b, pinned(unique("race")))
    );
    let outcomes = [r1.1, r2.1];
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one fits: {outcomes:?}");
    let refused = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("memory"),
        "{}",
        refused.message()
    );

    // Unpinned, through A whose view may not show C's new reservation yet: whichever node
    // refuses, the container lands where it fits, and C stays within its 256m.
    let (offered, result) = run(
        &mut via_a,
        pb::RunRequest {
            spec: Some(pb::ContainerSpec {
                name: unique("fits"),
                ..big.clone()
            }),
            constraints: vec![format!("node!={}", names[0])],
            ..Default::default()
        },
    )
    .await;
    let offered = placed(&offered);
    let landed = result.map_err(|s| format!("offered to {offered:?}: {s:?}"))?;
    assert_eq!(
        landed.node, names[1],
        "C is full; B takes it (offered {offered:?})"
    );
    let snap = via_c.cluster(pb::ClusterRequest {}).await?.into_inner();
    let c_node = snap.nodes.iter().find(|n| n.name == names[2]).unwrap();
    assert!(c_node.reserved_memory_bytes <= 256 * MIB);
    Ok(())
}

#[tokio::test]
async fn a_killed_agent_is_down_fast_and_comes_back_whole() -> Result<()> {
    let image = workload_image().await?;
    let mut cluster = Cluster::start(3, |_| Vec::new()).await?;
    cluster.converge().await?;
    let names = cluster.names();
    let mut via_a = cluster.agents[0].client().await?;
    let on_c = run_ok(
        &mut via_a,
        pb::RunRequest {
            spec: Some(spec(&image, &unique("orphan"), &[])),
            node: names[2].clone(),
            ..Default::default()
        },
    )
    .await;
    wait_for("A to list C's container", WAIT, || {
        let mut via_a = via_a.clone();
        let id = on_c.id.clone();
        async move {
            containers(&mut via_a)
                .await
                .iter()
                .any(|c| c.id == id)
                .then_some(())
        }
    })
    .await?;

    cluster.agents[2].kill9();
    let t0 = Instant::now();
    for i in 0..2 {
        let client = cluster.agents[i].client().await?;
        wait_for("C marked down", Duration::from_secs(10), || {
            let mut client = client.clone();
            let c = names[2].clone();
            async move {
                (nodes(&mut client).await.get(&c) == Some(&pb::NodeStatus::Down)).then_some(())
            }
        })
        .await?;
    }
    let detected = t0.elapsed();
    eprintln!("figure: a killed agent was marked down at both others after {detected:?}");
    assert!(
        detected < Duration::from_secs(5),
        "detection took {detected:?}"
    );

    // Commands for its containers fail fast, naming the node.
    let t1 = Instant::now();
    let e = via_a
        .stop(pb::StopRequest {
            container: on_c.name.clone(),
            timeout_secs: Some(1),
        })
        .await
        .expect_err("owner is down");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains(&names[2]), "{}", e.message());
    assert!(t1.elapsed() < Duration::from_secs(2));
    let e = via_a
        .logs(pb::LogsRequest {
            container: on_c.name.clone(),
            ..Default::default()
        })
        .await
        .expect_err("owner is down");
    assert_eq!(e.code(), Code::Unavailable);

    // It restarts, rejoins, and its container is listed once.
    cluster.agents[2].restart().await?;
    wait_for("C alive again", WAIT, || {
        let mut via_a = via_a.clone();
        let c = names[2].clone();
        async move { (nodes(&mut via_a).await.get(&c) == Some(&pb::NodeStatus::Alive)).then_some(()) }
    })
    .await?;
    let listed = wait_for("C's container listed again", WAIT, || {
        let mut via_a = via_a.clone();
        let id = on_c.id.clone();
        async move {
            let list = containers(&mut via_a).await;
            list.iter().any(|c| c.id == id).then_some(list)
        }
    })
    .await?;
    assert_eq!(listed.iter().filter(|c| c.id == on_c.id).count(), 1);
    assert_eq!(
        nodes(&mut via_a).await.len(),
        3,
        "no ghost of C's past life"
    );
    via_a
        .stop(pb::StopRequest {
            container: on_c.name.clone(),
            timeout_secs: Some(1),
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn sigterm_is_a_graceful_leave() -> Result<()> {
    let mut cluster = Cluster::start(2, |_| Vec::new()).await?;
    cluster.converge().await?;
    let names = cluster.names();
    let mut via_a = cluster.agents[0].client().await?;
    let status = cluster.agents[1].sigterm().await?;
    assert!(status.success());
    let seen = nodes(&mut via_a).await;
    assert_eq!(seen.get(&names[1]), Some(&pb::NodeStatus::Left), "{seen:?}");
    // And it stays "left", not "down", after the failure detector has had its say.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = nodes(&mut via_a).await;
    assert_eq!(seen.get(&names[1]), Some(&pb::NodeStatus::Left), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn a_node_with_the_wrong_token_stays_out() -> Result<()> {
    let right = unique("cluster-token");
    let a = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 2)),
        token: Some(right.clone()),
        ..Default::default()
    })
    .await?;
    let b = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 3)),
        token: Some(right.clone()),
        extra_args: vec!["--join".into(), a.addr.to_string()],
        ..Default::default()
    })
    .await?;
    let intruder = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 4)),
        token: Some(unique("other-cluster")),
        extra_args: vec!["--join".into(), a.addr.to_string()],
        ..Default::default()
    })
    .await?;
    let mut via_a = a.client().await?;
    wait_for("A and B to see each other", WAIT, || {
        let mut via_a = via_a.clone();
        async move { (nodes(&mut via_a).await.len() == 2).then_some(()) }
    })
    .await?;
    // Several gossip rounds later, the intruder is still not a member, on either side.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = nodes(&mut via_a).await;
    assert!(!seen.contains_key(&intruder.name), "{seen:?}");
    assert_eq!(seen.len(), 2);
    let mut via_i = intruder.client().await?;
    assert_eq!(nodes(&mut via_i).await.len(), 1);
    // A says so, naming the sender and the likely cause, never the secret.
    let log = a.log();
    assert!(
        log.contains("did not pass the seal check (another cluster")
            && log.contains("unknown_key")
            && log.contains(&intruder.addr.ip().to_string()),
        "A's log does not say it refused the intruder:\n{log}"
    );
    assert!(!log.contains(&right), "the token is never logged");
    drop(b);
    Ok(())
}

/// Hollow nodes (`--runtime sim`): the scheduler and forwarding at a size Docker would not allow
/// here. No Docker behaviour is claimed.
#[tokio::test]
async fn hollow_nodes_spread_placements_evenly() -> Result<()> {
    let cluster = Cluster::start(5, |_| vec!["--runtime".into(), "sim".into()]).await?;
    cluster.converge().await?;
    let names = cluster.names();
    let mut via_a = cluster.agents[0].client().await?;
    let t0 = Instant::now();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for i in 0..50 {
        let c = run_ok(&mut via_a, req(spec("sim/app:1", &format!("h{i}"), &[]))).await;
        *per_node.entry(c.node).or_default() += 1;
    }
    eprintln!(
        "figure: 50 sequential placements over 5 hollow nodes through one agent: {:?}",
        t0.elapsed()
    );
    for n in &names {
        assert_eq!(per_node.get(n), Some(&10), "{per_node:?}");
    }
    // Every agent sees all fifty; a peer's container is stopped and removed through another.
    let mut via_e = cluster.agents[4].client().await?;
    wait_for("E to list fifty", WAIT, || {
        let mut via_e = via_e.clone();
        async move { (containers(&mut via_e).await.len() == 50).then_some(()) }
    })
    .await?;
    let on_a = containers(&mut via_e)
        .await
        .into_iter()
        .find(|c| c.node == names[0])
        .unwrap();
    let stopped = via_e
        .stop(pb::StopRequest {
            container: on_a.name.clone(),
            timeout_secs: None,
        })
        .await?
        .into_inner();
    assert!(stopped.was_running);
    via_e
        .remove(pb::RemoveRequest {
            container: on_a.name.clone(),
            force: false,
        })
        .await?;
    let some = containers(&mut via_e).await[0].name.clone();
    let logs = via_e
        .logs(pb::LogsRequest {
            container: some,
            ..Default::default()
        })
        .await?
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(logs.len(), 2);
    let snap = via_a.cluster(pb::ClusterRequest {}).await?.into_inner();
    assert!(snap.nodes.iter().all(|n| {
        n.runtime
            .as_ref()
            .is_some_and(|r| r.version.starts_with("sim"))
    }));
    Ok(())
}

/// The rejected-datagram counter an agent reports about itself.
async fn rejected(client: &mut berth_shared::client::Client, name: &str) -> u64 {
    match client.cluster(pb::ClusterRequest {}).await {
        Ok(r) => r
            .into_inner()
            .nodes
            .into_iter()
            .find(|n| n.name == name)
            .and_then(|n| n.stats)
            .map_or(0, |s| s.gossip_rejected_datagrams),
        Err(_) => 0,
    }
}

/// Waits for one datagram on `socket`.
async fn datagram(socket: &tokio::net::UdpSocket, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .map_err(|_| format!("no {what} within {WAIT:?}"))??;
    buf.truncate(n);
    Ok(buf)
}

/// With a cluster secret, gossip is sealed: nothing readable on the wire, and a datagram that
/// is not a member's — garbage, plain chitchat (the 6-byte state dump of the finding), a
/// member's datagram altered, or one replayed — is dropped and counted, is never answered, and
/// changes nothing in the view. The log says so once, naming no secret.
#[tokio::test]
async fn sealed_gossip_drops_what_a_member_did_not_send() -> Result<()> {
    let token = unique("sealed-token");
    // B names this socket as a seed too, so the test receives a real sealed datagram.
    let tap = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let a = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 5)),
        token: Some(token.clone()),
        ..Default::default()
    })
    .await?;
    let b = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 6)),
        token: Some(token.clone()),
        extra_args: vec!["--join".into(), format!("{},{}", a.addr, tap.local_addr()?)],
        ..Default::default()
    })
    .await?;
    let mut via_a = a.client().await?;
    wait_for("A and B to gossip, sealed", WAIT, || {
        let mut via_a = via_a.clone();
        async move { (nodes(&mut via_a).await.len() == 2).then_some(()) }
    })
    .await?;
    let sealed = datagram(&tap, "sealed datagram from B").await?;
    assert!(
        !sealed.windows(b.name.len()).any(|w| w == b.name.as_bytes()),
        "B's name is not readable on the wire"
    );
    // A plain chitchat SYN, from an agent without a secret.
    let plain_tap = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let c = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 7)),
        extra_args: vec!["--join".into(), plain_tap.local_addr()?.to_string()],
        ..Default::default()
    })
    .await?;
    let plain = datagram(&plain_tap, "plain datagram from C").await?;
    assert!(
        plain.windows(c.name.len()).any(|w| w == c.name.as_bytes()),
        "plain gossip shows names: the contrast"
    );

    let before = rejected(&mut via_a, &a.name).await;
    let mut bent = sealed.clone();
    let last = bent.len() - 1;
    bent[last] ^= 1;
    let target = a.addr;
    for d in [
        vec![0x53, 0xb0, 0x01, 0x00, 0x00, 0x00],
        plain.clone(),
        bent,
        sealed.clone(),
        sealed.clone(),
    ] {
        attacker.send_to(&d, target).await?;
    }
    // The first copy of B's datagram is authentic and new to A, so A answers it (sealed, to
    // the attacker, who cannot read it); the rest get nothing.
    let mut buf = vec![0u8; 65_535];
    let mut answers = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(1500), attacker.recv_from(&mut buf)).await
    {
        answers += 1;
    }
    assert!(answers <= 1, "{answers} answers to 5 datagrams");
    wait_for("A to count four drops", WAIT, || {
        let mut via_a = via_a.clone();
        let name = a.name.clone();
        async move { (rejected(&mut via_a, &name).await >= before + 4).then_some(()) }
    })
    .await?;
    let seen = nodes(&mut via_a).await;
    assert_eq!(seen.len(), 2, "nothing joined: {seen:?}");
    assert!(!seen.contains_key(&c.name));
    let log = a.log();
    assert!(log.contains("did not pass the seal check"), "{log}");
    assert!(!log.contains(&token), "the secret is never logged");
    assert!(
        log.matches("did not pass the seal check").count() <= 2,
        "rate-limited"
    );
    drop(b);
    Ok(())
}

/// `berthd` as a user starts it by mistake, twice: a second agent on a data dir in use refuses
/// to start naming the dir, and a second agent with a name alive in the cluster (joining it)
/// refuses naming the address that has it — and the first agent's container is untouched.
#[tokio::test]
async fn a_second_agent_with_a_taken_data_dir_or_name_refuses_to_start() -> Result<()> {
    let image = workload_image().await?;
    let a = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 85)),
        ..Default::default()
    })
    .await?;
    let _guard = ContainerGuard::node(&a.name);
    let mut via_a = a.client().await?;
    let c = run_ok(
        &mut via_a,
        spec(
            &image,
            &unique("mine"),
            &["--forever", "--interval-ms", "1000"],
        ),
    )
    .await;
    let berthd = berth_testkit::bin_path("berthd")?;
    // Under `timeout`: an agent that wrongly starts is stopped, and the test fails on what it
    // said rather than hanging.
    let try_start = |args: Vec<String>| -> Result<std::process::Output> {
        Ok(std::process::Command::new("timeout")
            .arg("20")
            .arg(&berthd)
            .args(args)
            .env_remove("BERTH_TOKEN")
            .output()?)
    };

    let out = try_start(vec![
        "--name".into(),
        unique("other"),
        "--listen".into(),
        format!("127.0.0.86:{}", berth_testkit::free_port()),
        "--data-dir".into(),
        a.data_dir().display().to_string(),
    ])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another agent"), "{stderr}");
    assert!(
        stderr.contains(&a.data_dir().display().to_string()),
        "{stderr}"
    );

    let dir = tempfile::tempdir()?;
    let port = berth_testkit::free_port();
    let out = try_start(vec![
        "--name".into(),
        a.name.clone(),
        "--listen".into(),
        format!("127.0.0.87:{port}"),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--join".into(),
        a.addr.to_string(),
    ])?;
    assert!(!out.status.success(), "started with a taken name");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already taken"), "{stderr}");
    assert!(
        stderr.contains(&a.addr.to_string()),
        "names who has it: {stderr}"
    );

    // The first agent and its container are as they were.
    let after = find(&mut via_a, &c.name).await.expect("still there");
    assert_eq!(after.state, "running");
    assert_eq!(
        nodes(&mut via_a).await.len(),
        1,
        "no second node of that name"
    );
    Ok(())
}
