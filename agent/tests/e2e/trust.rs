//! Trust on a real network, tried with real agents and the real console: what a capture of
//! loopback shows of a secured cluster, scoped tokens held to their scope and revoked at every
//! agent, and a peer dialled only as the node its row names.

use crate::support::*;
use berth_proto::v1 as pb;
use berth_testkit::{
    AgentOptions, AgentProcess, Cmd, ContainerGuard, Result, error, unique, wait_for,
    workload_image,
};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `tcpdump` writing what crosses loopback on some TCP ports to a file, until [`Self::stop`].
struct Capture {
    child: std::process::Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    fn start(ports: &[u16]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("lo.pcap");
        let filter = ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = std::process::Command::new("tcpdump")
            // A large buffer: under a loaded suite the kernel would otherwise drop packets.
            .args(["-i", "lo", "-U", "-s", "0", "-B", "32768", "-w"])
            .arg(&file)
            .arg(&filter)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| error(format!("cannot start tcpdump (is it installed?): {e}")))?;
        // tcpdump says "listening on lo" once it captures.
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| error("no tcpdump stderr"))?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            use std::io::Read as _;
            let n = stderr.read(&mut buf)?;
            if n == 0 {
                return Err(error(format!(
                    "tcpdump stopped: {}",
                    String::from_utf8_lossy(&seen)
                )));
            }
            seen.extend_from_slice(&buf[..n]);
        }
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Ok(Self {
            child,
            file,
            _dir: dir,
        })
    }

    /// Waits (up to 10 s) until the capture so far holds `needle`: packets reach the file a
    /// moment after they cross loopback, later on a loaded machine.
    fn wait_for(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if std::fs::read(&self.file).is_ok_and(|b| contains(&b, needle)) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the capture and returns the pcap file's bytes (headers and payloads).
    fn stop(mut self) -> Result<Vec<u8>> {
        // -U writes each packet as it comes; a moment lets the last ones land.
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        Ok(std::fs::read(&self.file)?)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn secret() -> String {
    berth_shared::trust::new_secret().expect("a random source")
}

/// Two agents with one secret, B joined through A, both seeing both.
async fn secured_pair(secret: &str, a_ip: u8, b_ip: u8) -> Result<(AgentProcess, AgentProcess)> {
    let a = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, a_ip)),
        token: Some(secret.to_owned()),
        ..Default::default()
    })
    .await?;
    let b = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, b_ip)),
        token: Some(secret.to_owned()),
        extra_args: vec!["--join".into(), a.addr.to_string()],
        ..Default::default()
    })
    .await?;
    for agent in [&a, &b] {
        let client = agent.client().await?;
        wait_for("both agents to see both alive", WAIT, || {
            let mut client = client.clone();
            async move {
                let seen = nodes(&mut client).await;
                (seen.len() == 2 && seen.values().all(|s| *s == pb::NodeStatus::Alive))
                    .then_some(())
            }
        })
        .await?;
    }
    Ok((a, b))
}

/// A console drives a container on B through A (so A forwards to B, agent to agent), and a
/// capture of both agents' ports shows neither the secret nor the container's name nor its
/// environment; the same capture of an agent without a secret shows all of them, so the
/// capture would have caught them.
#[tokio::test(flavor = "multi_thread")]
async fn a_capture_of_a_secured_cluster_shows_no_token_and_no_names() -> Result<()> {
    let image = workload_image().await?;
    let secret = secret();
    let (a, b) = secured_pair(&secret, 41, 42).await?;
    let _guards = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
    let open = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 43)),
        ..Default::default()
    })
    .await?;
    let _open_guard = ContainerGuard::node(&open.name);

    let name = unique("wire");
    let env_value = unique("envvalue");
    let capture = Capture::start(&[a.addr.port(), b.addr.port(), open.addr.port()])?;
    let through_a = |args: &[&str]| {
        Cmd::berth(&a.url())
            .env("BERTH_TOKEN", &secret)
            .args(args)
            .run()
            .ok()
    };
    let constraint = format!("node=={}", b.name);
    let env = format!("WIRE={env_value}");
    through_a(&[
        "run",
        "--name",
        &name,
        "--constraint",
        &constraint,
        "-e",
        &env,
        &image,
        "--",
        "--lines",
        "3",
    ]);
    wait_for("A to list the container on B", WAIT, || {
        let ps = through_a(&["ps", "-a"]);
        let name = name.clone();
        async move { ps.stdout.contains(&name).then_some(()) }
    })
    .await?;
    through_a(&["logs", &name]);
    through_a(&["stop", &name]);
    let open_name = unique("plain");
    let open_value = unique("plainenv");
    let open_env = format!("WIRE={open_value}");
    Cmd::berth(&open.url())
        .args(["run", "--name", &open_name, "-e", &open_env, &image])
        .run()
        .ok();
    // The plaintext agent's traffic is the proof the capture works: wait for it to land.
    let caught = capture.wait_for(&open_value);
    let pcap = capture.stop()?;
    assert!(caught, "plaintext is caught (within 10 s)");

    assert!(
        pcap.len() > 20_000,
        "the capture holds the traffic ({} bytes)",
        pcap.len()
    );
    assert!(contains(&pcap, &open_name), "plaintext is caught");
    assert!(contains(&pcap, &open_value), "plaintext is caught");
    assert!(
        !contains(&pcap, &secret),
        "the secret crossed loopback in clear"
    );
    assert!(!contains(&pcap, &name), "a container name crossed in clear");
    assert!(
        !contains(&pcap, &env_value),
        "an env value crossed in clear"
    );
    assert!(!a.log().contains(&secret) && !b.log().contains(&secret));
    Ok(())
}

/// The last line of a command's stdout.
fn last_line(stdout: &str) -> String {
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

/// Each scope is allowed what it should and refused the rest, by the real console through
/// either agent; a revoked token is refused at every agent within seconds, an expired one
/// too, and no agent logs a token.
#[tokio::test(flavor = "multi_thread")]
async fn scoped_tokens_keep_to_their_scope_and_revocation_reaches_every_agent() -> Result<()> {
    let image = workload_image().await?;
    let secret = secret();
    let (a, b) = secured_pair(&secret, 44, 45).await?;
    let _guards = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
    let berth =
        |agent: &AgentProcess, token: &str| Cmd::berth(&agent.url()).env("BERTH_TOKEN", token);
    let mint = |scope: &str, extra: &[&str]| {
        let out = berth(&a, &secret)
            .args(["token", "create", "--scope", scope, "--name", scope])
            .args(extra)
            .run()
            .ok();
        let token = last_line(&out.stdout);
        assert!(token.starts_with("berth-t1-"), "{}", out.report("mint"));
        token
    };
    let read = mint("read", &[]);
    let operate = mint("operate", &[]);
    let admin = mint("admin", &[]);
    let brief = mint("read", &["--ttl", "3s"]);

    // A new token reaches the other agent within seconds.
    wait_for("B to know the read token", WAIT, || {
        let out = berth(&b, &read).arg("nodes").run();
        async move { out.status.success().then_some(()) }
    })
    .await?;
    for agent in [&a, &b] {
        berth(agent, &read).args(["ps", "-a"]).run().ok();
        let refused = berth(agent, &read)
            .args(["run", "--name", &unique("no"), &image])
            .run()
            .fail();
        assert!(
            refused.stderr.contains("Run needs the operate scope"),
            "{}",
            refused.report("read may not run")
        );
        let refused = berth(agent, &operate).args(["token", "ls"]).run().fail();
        assert!(
            refused.stderr.contains("needs the admin scope"),
            "{}",
            refused.report("operate may not list tokens")
        );
    }
    let both = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
    let mut none = 0;
    for g in &both {
        none += g.containers().await?.len();
    }
    assert_eq!(none, 0, "a refused run created nothing");

    let ran = unique("ops");
    wait_for("B to know the operate token", WAIT, || {
        let out = berth(&b, &operate).arg("nodes").run();
        async move { out.status.success().then_some(()) }
    })
    .await?;
    berth(&b, &operate)
        .args(["run", "--name", &ran, &image])
        .run()
        .ok();
    berth(&b, &operate).args(["rm", "-f", &ran]).run().ok();
    let listed = berth(&a, &admin)
        .args(["-o", "json", "token", "ls"])
        .run()
        .ok();
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
    assert_eq!(tokens.len(), 4, "{}", listed.stdout);
    let read_id = berth_shared::trust::ScopedToken::parse(&read)
        .map_err(|e| error(e.to_string()))?
        .id;

    // A `logs -f` opened with the read token before the revocation.
    let talker = unique("talker");
    berth(&b, &operate)
        .args(["run", "--name", &talker, &image, "--"])
        .args(["--forever", "--interval-ms", "200"])
        .run()
        .ok();
    let mut follow = std::process::Command::new(berth_testkit::bin_path("berth")?)
        .args(["--agent", &a.url(), "logs", "-f", &talker])
        .env("BERTH_TOKEN", &read)
        .env_remove("BERTH_AGENT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(follow.try_wait()?.is_none(), "the follow runs");

    berth(&a, &admin)
        .args(["token", "revoke", &read_id])
        .run()
        .ok();
    // The open stream ends too, saying why.
    let status = wait_for("the open follow to end", Duration::from_secs(10), || {
        let done = follow.try_wait().ok().flatten();
        async move { done }
    })
    .await?;
    assert!(!status.success());
    let mut stderr = String::new();
    if let Some(mut e) = follow.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr)?;
    }
    assert!(stderr.contains("was revoked"), "{stderr}");
    for agent in [&a, &b] {
        wait_for(
            "the revoked token to be refused",
            Duration::from_secs(10),
            || {
                let out = berth(agent, &read).arg("nodes").run();
                async move {
                    (!out.status.success() && out.stderr.contains("was revoked")).then_some(())
                }
            },
        )
        .await?;
    }
    wait_for("the brief token to expire", Duration::from_secs(10), || {
        let out = berth(&b, &brief).arg("nodes").run();
        async move { (!out.status.success() && out.stderr.contains("expired")).then_some(()) }
    })
    .await?;

    for agent in [&a, &b] {
        let log = agent.log();
        for t in [&secret, &read, &operate, &admin, &brief] {
            assert!(!log.contains(t.as_str()), "an agent logged a token");
        }
    }
    assert!(
        b.log().contains("mutating call") && b.log().contains("caller=token:"),
        "mutating calls are logged with the token's id"
    );
    Ok(())
}

/// A peer is dialled as the node its row names: an agent of the cluster answering at another
/// node's address is refused at the handshake, so it gets nothing (no call, no token).
#[tokio::test]
async fn a_peer_is_dialled_only_as_the_node_its_row_names() -> Result<()> {
    let secret = secret();
    let real = AgentProcess::spawn(AgentOptions {
        token: Some(secret.clone()),
        ..Default::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let tls =
        berth_agent::tls::AgentTls::load(dir.path(), "dialler", std::slice::from_ref(&secret))
            .map_err(|e| error(e.to_string()))?;
    let pool = berth_agent::cluster::peers::PeerPool::new(Some(Arc::new(tls)));
    let row = |name: &str| pb::Node {
        name: name.to_owned(),
        address: real.addr.to_string(),
        status: pb::NodeStatus::Alive as i32,
        ..Default::default()
    };
    // Its own name: served.
    let mut right = pool
        .client(&row(&real.name))
        .map_err(|e| error(e.to_string()))?;
    right.cluster(pb::ClusterRequest {}).await?;
    // A row that says another node lives there: refused before any request is sent.
    let mut wrong = pool
        .client(&row("some-other-node"))
        .map_err(|e| error(e.to_string()))?;
    let refused = wrong
        .cluster(pb::ClusterRequest {})
        .await
        .expect_err("another node's name");
    let failure = berth_shared::client::tls_failure(&refused);
    assert!(
        matches!(
            failure,
            Some(berth_shared::client::TlsFailure::WrongName { .. })
        ),
        "{refused:?}"
    );
    Ok(())
}

/// A client that finishes the TLS handshake and then sends nothing is closed like one that
/// sends nothing at all, so handshakes alone cannot hold the agent's connections.
#[tokio::test]
async fn a_connection_silent_after_its_handshake_is_closed() -> Result<()> {
    use tokio::io::AsyncReadExt as _;
    let secret = secret();
    let agent = AgentProcess::spawn(AgentOptions {
        token: Some(secret.clone()),
        ..Default::default()
    })
    .await?;
    let cluster = berth_shared::trust::ClusterKey::of_secret(&secret);
    let config =
        berth_shared::trust::client_config(&[cluster], None).map_err(|e| error(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect(agent.addr).await?;
    let name = rustls::pki_types::ServerName::try_from(berth_shared::trust::AGENT_SERVER_NAME)
        .map_err(|e| error(e.to_string()))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    // The agent may send a session ticket first; then it closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection was kept open");
    assert!(
        t0.elapsed() >= Duration::from_secs(8),
        "closed by the deadline, not at once: {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// A rotation through a running three-agent cluster: `berth secret rotate` installs, uses and
/// removes, while a `berth logs -f` (through A, of a container on C) and a `Watch` (through B)
/// stay open and keep delivering; afterwards the old secret gets in nowhere, the new one
/// everywhere, gossip still joins all three, and an agent restarted with the old secret in
/// its flags comes back with the new one from its keyring.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_under_a_running_follow_and_watch_loses_neither() -> Result<()> {
    use futures::StreamExt as _;
    use std::io::Read as _;
    let image = workload_image().await?;
    let old = secret();
    let new = secret();
    let dir = tempfile::tempdir()?;
    let (old_file, new_file) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::write(&old_file, &old)?;
    std::fs::write(&new_file, &new)?;
    let (a, b) = secured_pair(&old, 46, 47).await?;
    let mut c = AgentProcess::spawn(AgentOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 48)),
        token: Some(old.clone()),
        extra_args: vec!["--join".into(), a.addr.to_string()],
        ..Default::default()
    })
    .await?;
    let _guards = [
        ContainerGuard::node(&a.name),
        ContainerGuard::node(&b.name),
        ContainerGuard::node(&c.name),
    ];
    let via_a = a.client().await?;
    wait_for("three alive", WAIT, || {
        let mut via_a = via_a.clone();
        async move {
            let seen = nodes(&mut via_a).await;
            (seen.len() == 3 && seen.values().all(|s| *s == pb::NodeStatus::Alive)).then_some(())
        }
    })
    .await?;
    let talker = unique("talker");
    Cmd::berth(&a.url())
        .env("BERTH_TOKEN", &old)
        .args(["run", "--name", &talker, "--node", &c.name, &image, "--"])
        .args(["--forever", "--interval-ms", "100"])
        .run()
        .ok();

    // `berth logs -f` through A, as a real process writing to a pipe we read.
    let berth = berth_testkit::bin_path("berth")?;
    let mut follow = std::process::Command::new(&berth)
        .args(["--agent", &a.url(), "logs", "-f", &talker])
        .env("BERTH_TOKEN", &old)
        .env_remove("BERTH_AGENT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut out = follow.stdout.take().ok_or_else(|| error("no stdout"))?;
    let lines = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = lines.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let newlines = buf[..n].iter().filter(|b| **b == b'\n').count();
            counted.fetch_add(newlines, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // A Watch through B, opened with the old secret.
    let mut watch = b
        .client()
        .await?
        .watch(pb::WatchRequest {})
        .await?
        .into_inner();
    let _snapshot = watch.next().await.ok_or_else(|| error("no snapshot"))??;
    wait_for("the follow to print", WAIT, || {
        let n = lines.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n >= 3).then_some(()) }
    })
    .await?;

    // An agent certificate of the old CA, on a connection made before the rotation.
    let old_tls = tempfile::tempdir()?;
    let old_pool = berth_agent::cluster::peers::PeerPool::new(Some(Arc::new(
        berth_agent::tls::AgentTls::load(old_tls.path(), "old-dialler", std::slice::from_ref(&old))
            .map_err(|e| error(e.to_string()))?,
    )));
    let mut old_agent = old_pool
        .client(&pb::Node {
            name: a.name.clone(),
            address: a.addr.to_string(),
            status: pb::NodeStatus::Alive as i32,
            ..Default::default()
        })
        .map_err(|e| error(e.to_string()))?;
    old_agent.cluster(pb::ClusterRequest {}).await?;

    let rotated = Cmd::berth(&a.url())
        .arg("--token-file")
        .arg(&old_file)
        .args(["secret", "rotate", "--secret-file"])
        .arg(&new_file)
        .run()
        .ok();
    assert!(
        rotated.stderr.contains("3/3"),
        "{}",
        rotated.report("rotate")
    );
    let after = lines.load(std::sync::atomic::Ordering::Relaxed);
    // The connection made with the old CA's certificate is open still, but counts for nothing.
    let refused = old_agent
        .cluster(pb::ClusterRequest {})
        .await
        .expect_err("an old-CA agent certificate after the rotation");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // The old secret gets in nowhere, the new one everywhere, and all three still see all three.
    for agent in [&a, &b, &c] {
        let refused = Cmd::berth(&agent.url())
            .env("BERTH_TOKEN", &old)
            .arg("nodes")
            .run()
            .fail();
        assert!(
            refused.stderr.contains("not signed by the cluster CA"),
            "{}",
            refused.report("old secret")
        );
        wait_for("all three alive, with the new secret", WAIT, || {
            let out = Cmd::berth(&agent.url())
                .env("BERTH_TOKEN", &new)
                .arg("nodes")
                .run();
            async move {
                (out.status.success() && out.stdout.matches(" alive ").count() == 3).then_some(())
            }
        })
        .await?;
    }
    let listed = Cmd::berth(&b.url())
        .env("BERTH_TOKEN", &new)
        .args(["-o", "json", "secret", "ls"])
        .run()
        .ok();
    let nodes_keys: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
    assert_eq!(nodes_keys.len(), 3);
    for n in &nodes_keys {
        assert_eq!(n["keys"].as_array().map(Vec::len), Some(1), "{n}");
    }

    // The follow kept going, and the watch sees a container made after the rotation.
    wait_for("the follow to keep printing", WAIT, || {
        let n = lines.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n >= after + 5).then_some(()) }
    })
    .await?;
    assert!(follow.try_wait()?.is_none(), "the follow ended");
    let late = unique("late");
    Cmd::berth(&c.url())
        .env("BERTH_TOKEN", &new)
        .args(["run", "--name", &late, &image])
        .run()
        .ok();
    let seen = tokio::time::timeout(WAIT, async {
        while let Some(ev) = watch.next().await {
            if let Ok(pb::WatchEvent {
                event: Some(pb::watch_event::Event::ContainerUpdated(u)),
            }) = ev
                && u.name == late
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        seen.ok(),
        Some(true),
        "the watch opened before the rotation saw it"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // Restarted with the old secret in its flags: the keyring in its data dir wins.
    c.restart().await?;
    wait_for("C back, with the new secret", WAIT, || {
        let out = Cmd::berth(&c.url())
            .env("BERTH_TOKEN", &new)
            .arg("nodes")
            .run();
        async move {
            (out.status.success() && out.stdout.matches(" alive ").count() == 3).then_some(())
        }
    })
    .await?;
    for agent in [&a, &b, &c] {
        assert!(!agent.log().contains(&old) && !agent.log().contains(&new));
    }
    Ok(())
}

/// Encodes a chitchat SYN-ACK whose digest holds `digest` and whose delta holds `ops`
/// (chitchat 0.13's wire format, as `cluster::wire` documents it), each in one plain block.
fn forged_syn_ack(digest: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut d = 45_139u16.to_le_bytes().to_vec();
    d.extend_from_slice(&[1, 1]);
    for part in [digest, ops] {
        d.push(2);
        d.extend_from_slice(&(part.len() as u16).to_le_bytes());
        d.extend_from_slice(part);
        d.push(0);
    }
    d
}

/// A digest entry: the id as in a node op, then heartbeat, GC floor and max version.
fn forged_digest(out: &mut Vec<u8>, node: &str, generation: u64, gossip: std::net::SocketAddr) {
    let mut op = Vec::new();
    forged_node(&mut op, node, generation, gossip);
    // A node op is a tag, the id, and two versions: keep the id.
    out.extend_from_slice(&op[1..op.len() - 16]);
    out.extend_from_slice(&1000u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&3u64.to_le_bytes());
}

fn forged_node(ops: &mut Vec<u8>, node: &str, generation: u64, gossip: std::net::SocketAddr) {
    ops.push(0);
    ops.extend_from_slice(&(node.len() as u16).to_le_bytes());
    ops.extend_from_slice(node.as_bytes());
    ops.extend_from_slice(&generation.to_le_bytes());
    let std::net::IpAddr::V4(ip) = gossip.ip() else {
        panic!("an IPv4 address")
    };
    ops.push(4);
    ops.extend_from_slice(&ip.octets());
    ops.extend_from_slice(&gossip.port().to_le_bytes());
    ops.extend_from_slice(&0u64.to_le_bytes());
    ops.extend_from_slice(&0u64.to_le_bytes());
}

fn forged_key(ops: &mut Vec<u8>, key: &str, value: &str, version: u64) {
    ops.push(1);
    for s in [key, value] {
        ops.extend_from_slice(&(s.len() as u16).to_le_bytes());
        ops.extend_from_slice(s.as_bytes());
    }
    ops.extend_from_slice(&version.to_le_bytes());
    ops.push(0);
}

/// What a member sends is bounded too: datagrams sealed with the real secret (as a stolen or
/// buggy member could) that re-point A's own address under a later incarnation, or carry a
/// version of `u64::MAX`, change nothing: B, which the sender never reached, still dials A at
/// A's address, A keeps publishing, and A counts the datagram it refused.
#[tokio::test]
async fn a_member_s_forged_gossip_cannot_rewrite_a_node_s_own_keys() -> Result<()> {
    let secret = secret();
    let (a, b) = secured_pair(&secret, 49, 50).await?;
    let mut via_a = a.client().await?;
    let mut via_b = b.client().await?;
    let rejected = |snapshot: &pb::ClusterSnapshot| {
        snapshot
            .nodes
            .iter()
            .find(|n| n.name == a.name)
            .and_then(|n| n.stats.as_ref())
            .map_or(0, |s| s.gossip_rejected_datagrams)
    };
    let before = rejected(&via_a.cluster(pb::ClusterRequest {}).await?.into_inner());

    let mut sealer = berth_agent::cluster::seal::Sealer::new(vec![
        berth_agent::cluster::seal::GossipKey::derive(&secret),
    ])
    .ok_or_else(|| error("a sealer"))?;
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let fake: std::net::SocketAddr = "127.0.0.66:7070".parse().map_err(|_| error("addr"))?;
    // A later incarnation of A, pointing A's gRPC at the attacker and marking it left.
    let mut ops = Vec::new();
    forged_node(&mut ops, &a.name, 1 << 62, fake);
    forged_key(&mut ops, "grpc", &fake.to_string(), 1);
    forged_key(&mut ops, "left", "1", 2);
    // With a `node` row, so a view that took the incarnation would show it.
    let row = r#"{"labels":{},"cpu":0.0,"cores":1,"mem_used":0,"mem_total":1,"disk_used":0,"disk_total":1,"load":[0.0,0.0,0.0],"uptime":0,"os":"x","kernel":"x","rt_ok":true,"rt_version":"x","rt_error":"","version":"0.1.0","alloc_cpus":1.0,"alloc_mem":1,"res_cpus":0.0,"res_mem":0}"#;
    forged_key(&mut ops, "node", row, 3);
    // A version no counter survives.
    let mut overflow = Vec::new();
    forged_node(&mut overflow, "ghost", 7, fake);
    forged_key(&mut overflow, "grpc", &fake.to_string(), u64::MAX);
    let mut digest = Vec::new();
    forged_digest(&mut digest, &a.name, 1 << 62, fake);
    for datagram in [
        forged_syn_ack(&digest, &ops),
        forged_syn_ack(&[], &overflow),
    ] {
        let mut sealed = Vec::new();
        sealer.seal(
            &datagram,
            chrono::Utc::now().timestamp_millis(),
            &mut sealed,
        )?;
        attacker.send_to(&sealed, a.addr).await?;
    }
    wait_for("A to count the refused datagram", WAIT, || {
        let mut via_a = via_a.clone();
        async move {
            let snap = via_a
                .cluster(pb::ClusterRequest {})
                .await
                .ok()?
                .into_inner();
            (rejected(&snap) > before).then_some(())
        }
    })
    .await?;
    // Several rounds later B still sees A alive at A's address, and no ghost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = via_b.cluster(pb::ClusterRequest {}).await?.into_inner();
    let a_row = seen
        .nodes
        .iter()
        .find(|n| n.name == a.name)
        .ok_or_else(|| error("B lost A"))?;
    assert_eq!(a_row.address, a.addr.to_string(), "A was re-pointed on B");
    assert_eq!(a_row.status, pb::NodeStatus::Alive as i32);
    assert!(!seen.nodes.iter().any(|n| n.name == "ghost"));
    // A still publishes: a change of A's reaches B.
    let image = workload_image().await?;
    // The scheduler may place it on either node.
    let _guards = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
    let name = unique("after");
    run_ok(&mut via_a, spec(&image, &name, &[])).await;
    wait_for("B to see A's new container", WAIT, || {
        let mut via_b = via_b.clone();
        let name = name.clone();
        async move { find(&mut via_b, &name).await.map(|_| ()) }
    })
    .await?;
    Ok(())
}

/// Two network namespaces joined by a veth pair (multicast works across it), deleted on drop
/// with everything in them.
struct Netns {
    names: [String; 2],
    /// The two addresses, one in each.
    ips: [std::net::Ipv4Addr; 2],
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(error(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

impl Netns {
    fn create() -> Result<Self> {
        let tag = &unique("n")[2..8];
        let names = [format!("berth-{tag}-a"), format!("berth-{tag}-b")];
        let veth = [format!("bv{tag}a"), format!("bv{tag}b")];
        let octet = u8::from_str_radix(&tag[..2], 16).unwrap_or(7);
        let ips = [
            Ipv4Addr::new(10, 213, octet, 1),
            Ipv4Addr::new(10, 213, octet, 2),
        ];
        let ns = Netns { names, ips };
        for n in &ns.names {
            ip_cmd(&["netns", "add", n])?;
        }
        ip_cmd(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ])?;
        for ((n, v), ip) in ns.names.iter().zip(&veth).zip(&ns.ips) {
            ip_cmd(&["link", "set", v, "netns", n])?;
            ip_cmd(&["-n", n, "addr", "add", &format!("{ip}/24"), "dev", v])?;
            ip_cmd(&["-n", n, "link", "set", v, "up"])?;
            ip_cmd(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    /// `program` run inside namespace `i`.
    fn command(&self, i: usize, program: &std::path::Path) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.names[i]]).arg(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                c.env_remove(key);
            }
        }
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip_cmd(&["netns", "del", n]);
        }
    }
}

/// A process killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `berthd --join mdns` in two network namespaces finds the other with no address given and
/// forms a cluster, over TLS and sealed gossip; an agent with another secret, announcing
/// itself on the same LAN, is found and left out.
#[tokio::test(flavor = "multi_thread")]
async fn mdns_join_between_two_namespaces_keeps_other_clusters_out() -> Result<()> {
    let ns = Netns::create()?;
    let dir = tempfile::tempdir()?;
    let secret = secret();
    let token = dir.path().join("token");
    std::fs::write(&token, &secret)?;
    let other = dir.path().join("other");
    std::fs::write(&other, self::secret())?;
    let berthd = berth_testkit::bin_path("berthd")?;
    let berth = berth_testkit::bin_path("berth")?;
    let names = [unique("mdns-a"), unique("mdns-b"), unique("mdns-x")];
    let _guards: Vec<ContainerGuard> = names.iter().map(|n| ContainerGuard::node(n)).collect();
    let spawn = |i: usize, ns_i: usize, port: u16, token: &std::path::Path| -> Result<Killed> {
        let data = dir.path().join(&names[i]);
        let log = std::fs::File::create(dir.path().join(format!("{}.log", names[i])))?;
        let child = ns
            .command(ns_i, &berthd)
            .args(["--listen", &format!("{}:{port}", ns.ips[ns_i])])
            .args(["--name", &names[i], "--join", "mdns", "--token-file"])
            .arg(token)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Killed(child))
    };
    let _a = spawn(0, 0, 7070, &token)?;
    let _b = spawn(1, 1, 7070, &token)?;
    let _x = spawn(2, 1, 7071, &other)?;
    // Ask inside A's namespace, as a console on that LAN would.
    let nodes_seen = |ns_i: usize, port: u16, token: &std::path::Path| {
        let out = ns
            .command(ns_i, &berth)
            .args([
                "--agent",
                &format!("{}:{port}", ns.ips[ns_i]),
                "--token-file",
            ])
            .arg(token)
            .args(["-o", "json", "nodes"])
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).ok())
            .map(|v| {
                v.iter()
                    .filter(|n| n["status"] == "alive")
                    .filter_map(|n| n["name"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let log_of = |i: usize| {
        std::fs::read_to_string(dir.path().join(format!("{}.log", names[i]))).unwrap_or_default()
    };
    let joined = wait_for("A and B to find each other by mDNS", WAIT, || {
        let seen = nodes_seen(0, 7070, &token);
        async move { (seen.len() == 2).then_some(seen) }
    })
    .await
    .map_err(|e| {
        error(format!(
            "{e}\nA's log:\n{}\nB's log:\n{}",
            log_of(0),
            log_of(1)
        ))
    })?;
    assert!(
        joined.contains(&names[0]) && joined.contains(&names[1]),
        "{joined:?}"
    );
    // The other cluster's agent was announcing all along: still out, on both sides.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(nodes_seen(0, 7070, &token).len(), 2);
    assert_eq!(nodes_seen(1, 7071, &other), vec![names[2].clone()]);
    assert!(!log_of(0).contains(&secret));

    // After a rotation, A announces the new CA: B, started afresh on the new secret only,
    // still finds it.
    let new = dir.path().join("new");
    std::fs::write(&new, self::secret())?;
    let rotate = ns
        .command(0, &berth)
        .args(["--agent", &format!("{}:7070", ns.ips[0]), "--token-file"])
        .arg(&token)
        .args(["secret", "rotate", "--secret-file"])
        .arg(&new)
        .output()?;
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    drop(_b);
    std::fs::remove_dir_all(dir.path().join(&names[1]))?;
    // At another port, so A cannot know it from before.
    let _b = spawn(1, 1, 7072, &new)?;
    wait_for(
        "B, restarted on the new secret, to find A by mDNS",
        WAIT,
        || {
            let seen = nodes_seen(1, 7072, &new);
            async move { (seen.len() == 2).then_some(()) }
        },
    )
    .await
    .map_err(|e| {
        error(format!(
            "{e}\nA's log:\n{}\nB's log:\n{}",
            log_of(0),
            log_of(1)
        ))
    })?;
    Ok(())
}
