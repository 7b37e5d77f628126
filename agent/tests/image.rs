//! The `FROM scratch` image of `berthd` that `packaging/image.sh` builds, run as the README runs
//! it: the Docker socket mounted, the port published (on loopback here), a token file and
//! `--advertise`. The real console then checks that the agent answers, sees Docker and runs a
//! container through it, and `docker stop` checks that it shuts down cleanly as PID 1.
//!
//! A test binary of its own rather than a module of `e2e`: it builds `berthd` once more
//! (statically, for minutes), and cargo runs test binaries one after another, so that build
//! never takes the CPU from the timing-sensitive cluster tests.
//!
//! Needs Docker with its socket at `/var/run/docker.sock` (or `DOCKER_HOST=unix://…`),
//! `target/debug/berth` (`cargo build --workspace`), and what the script needs: cargo, a C
//! compiler and binutils. Everything it makes (the image tag, the agent's container and its
//! volume, the containers the agent ran) is removed even when it fails.

use berth_testkit::{Cmd, ContainerGuard, Output, free_port, unique, wait_for, workload_image};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The label on the agent's own container, for its guard.
const TEST_LABEL: &str = "berth.test.image";
/// How long the script may take: a cold static build of berthd on two cores is minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long the agent in the container has to answer with Docker available.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the container the agent runs has to print its lines.
const EVENTUALLY: Duration = Duration::from_secs(30);
/// The port berthd listens on inside the container (the image's BERTH_LISTEN).
const IMAGE_PORT: u16 = 7070;
/// How many host ports to try when the one picked was taken before Docker published it.
const PUBLISH_ATTEMPTS: usize = 3;

/// Removes an image tag when the test ends, even when it panicked. Declare it before the
/// container guards: locals drop in reverse order, so the containers go first.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        match std::process::Command::new("docker")
            .args(["image", "rm", &self.0])
            .output()
        {
            Ok(out) if out.status.success() => {}
            // Never built (the script failed first): nothing to remove.
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No such image") => {}
            Ok(out) => eprintln!(
                "cannot remove image {}: {}",
                self.0,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(error) => eprintln!("cannot run docker image rm {}: {error}", self.0),
        }
    }
}

/// The agent's container: prints its log when the test fails, so the failure says what the
/// agent said without a rerun.
struct Berthd {
    container: String,
    addr: String,
    secret: String,
}

impl Berthd {
    /// The real console, pointed at the published port with the secret (TLS is implied).
    fn berth(&self) -> Cmd {
        Cmd::berth(&self.addr).env("BERTH_TOKEN", &self.secret)
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", &self.container]).run();
        format!("{}{}", out.stdout, out.stderr)
    }

    fn running(&self) -> bool {
        let out = docker(&["inspect", "-f", "{{.State.Running}}", &self.container]).run();
        out.stdout.trim() == "true"
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log of berthd in container {} ---\n{}--- end ---",
                self.container,
                self.logs()
            );
        }
    }
}

fn docker(args: &[&str]) -> Cmd {
    Cmd::new("docker").args(args)
}

fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Docker socket to mount: the one `DOCKER_HOST` names, else Docker's default.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

#[track_caller]
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{}", out.report(&format!("stdout is not JSON: {e}"))))
}

#[tokio::test(flavor = "multi_thread")]
async fn scratch_image_runs_berthd_against_the_mounted_docker_socket() {
    let started = Instant::now();
    let tag = format!("berth-test/berthd:{}", unique("image"));
    let _image = ImageGuard(tag.clone());

    // The dev profile: the same code as a release build, in a fraction of the compile time.
    // Niced, so a developer's other work on the machine keeps the CPU it needs.
    Cmd::new("nice")
        .args(["-n", "19", "bash"])
        .arg(workspace_dir().join("packaging").join("image.sh"))
        .arg(&tag)
        .env("BERTH_IMAGE_PROFILE", "dev")
        .timeout(BUILD_TIMEOUT)
        .run_async()
        .await
        .ok();
    let built = started.elapsed();

    let inspect = json(&docker(&["image", "inspect", &tag]).run().ok());
    let image = &inspect[0];
    assert_eq!(
        image["Config"]["Entrypoint"],
        serde_json::json!(["/berthd"]),
        "{image:#}"
    );
    assert_eq!(
        image["Config"]["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION"),
        "{image:#}"
    );
    for port in ["7070/tcp", "7070/udp"] {
        assert!(
            image["Config"]["ExposedPorts"].get(port).is_some(),
            "{port} not exposed: {image:#}"
        );
    }
    // FROM scratch and one COPY: the binary is the whole file system.
    assert_eq!(
        image["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "{image:#}"
    );
    let size = image["Size"].as_u64().unwrap_or_default();

    let workload = workload_image()
        .await
        .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
    let node = unique("imaged");
    let run_label = unique("image");
    let _berthd_guard = ContainerGuard::label(TEST_LABEL, &run_label);
    let _node_guard = ContainerGuard::node(&node);
    let secret = berth_shared::trust::new_secret().expect("a random source");
    // The token as the README passes it: a file mounted read-only, named by BERTH_TOKEN_FILE.
    let dir = tempfile::tempdir().expect("a temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &secret).expect("the token file is written");
    let token_mount = format!("{}:/etc/berth/token:ro", token_file.display());
    let socket_mount = format!("{}:/var/run/docker.sock", docker_socket());
    let label = format!("{TEST_LABEL}={run_label}");

    let mut berthd = None;
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let addr = format!("127.0.0.1:{}", free_port());
        let container = unique("berthd");
        let (tcp, udp) = (
            format!("{addr}:{IMAGE_PORT}/tcp"),
            format!("{addr}:{IMAGE_PORT}/udp"),
        );
        let out = docker(&["run", "-d", "--name", &container, "--label", &label])
            .args(["-v", &socket_mount, "-p", &tcp, "-p", &udp])
            .args([
                "-v",
                &token_mount,
                "-e",
                "BERTH_TOKEN_FILE=/etc/berth/token",
            ])
            .args([tag.as_str(), "--name", &node, "--advertise", &addr])
            .run();
        if out.status.success() {
            berthd = Some(Berthd {
                container,
                addr,
                secret: secret.clone(),
            });
            break;
        }
        let port_taken = out.stderr.contains("already") || out.stderr.contains("in use");
        assert!(
            port_taken && attempt < PUBLISH_ATTEMPTS,
            "{}",
            out.report("docker run of the image failed")
        );
    }
    let berthd = berthd.expect("the loop either starts berthd or fails");

    // Up, and Docker reached through the mounted socket.
    let nodes = wait_for(
        "the agent in the image to answer with docker available",
        START_TIMEOUT,
        || {
            let cmd = berthd.berth().args(["-o", "json", "nodes"]);
            let running = berthd.running();
            async move {
                assert!(running, "the berthd container exited");
                let out = cmd.run_async().await;
                let nodes = serde_json::from_str::<serde_json::Value>(&out.stdout).ok()?;
                (nodes[0]["runtime_available"] == true).then_some(nodes)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let us = &nodes[0];
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes:#}");
    assert_eq!(us["name"], node.as_str(), "{nodes:#}");
    assert_eq!(us["status"], "alive", "{nodes:#}");
    assert_eq!(us["address"], berthd.addr.as_str(), "{nodes:#}");
    // sysinfo reads /proc in the container: the machine's memory, not zero.
    assert!(
        us["memory_total_bytes"].as_u64().unwrap_or_default() > 0,
        "{nodes:#}"
    );

    let version = json(&berthd.berth().args(["-o", "json", "version"]).run().ok());
    assert_eq!(version["agent"], env!("CARGO_PKG_VERSION"), "{version:#}");
    assert_eq!(version["node"], node.as_str(), "{version:#}");

    // A container, run by the agent in the image on the host's engine.
    let name = unique("from-image");
    let run = json(
        &berthd
            .berth()
            .args(["-o", "json", "run", "--name", &name, &workload])
            .args(["--", "--lines", "3"])
            .run()
            .ok(),
    );
    assert_eq!(run["node"], node.as_str(), "{run:#}");
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    let owned = berth_testkit::list_labelled(&format!("{}={node}", berth_shared::labels::NODE))
        .await
        .expect("docker lists containers");
    assert!(
        owned.contains(&id),
        "container {id} is not labelled for node {node}: {owned:?}"
    );
    wait_for("the container's lines in berth logs", EVENTUALLY, || {
        let cmd = berthd.berth().args(["logs", &name]);
        async move {
            cmd.run_async()
                .await
                .stdout
                .contains("line 3")
                .then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // SIGTERM to PID 1: berthd handles it (PID 1 has no default action) and exits 0.
    docker(&["stop", &berthd.container]).run().ok();
    let exit = docker(&["inspect", "-f", "{{.State.ExitCode}}", &berthd.container]).run();
    assert_eq!(
        exit.ok().stdout.trim(),
        "0",
        "berthd did not exit 0 on SIGTERM"
    );
    assert!(
        berthd.logs().contains("shutting down"),
        "no shutdown in the log:\n{}",
        berthd.logs()
    );

    eprintln!(
        "image {tag}: built in {:.0}s, {:.1} MB; whole test {:.0}s",
        built.as_secs_f64(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}
