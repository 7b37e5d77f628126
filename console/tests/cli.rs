//! The real `berth` binary against a real `berthd` (started by the testkit) and real Docker,
//! with the testkit's workload image. Every test has its own agent (a unique node name) and a
//! `ContainerGuard` for that node, so its containers go away even when it fails, and tests run in
//! parallel without seeing each other's containers.
//!
//! Needs `target/debug/berthd` (`cargo build -p berth-agent`) and a Docker engine.

use berth_testkit::{AgentOptions, AgentProcess, Cmd, ContainerGuard, Output};
use std::time::{Duration, Instant};

/// How long to wait for something the cluster view reports eventually.
const EVENTUALLY: Duration = Duration::from_secs(30);

/// An agent of its own, the guard of its containers, and the workload image.
struct Setup {
    agent: AgentProcess,
    image: String,
    _guard: ContainerGuard,
}

async fn setup(options: AgentOptions) -> Setup {
    let image = berth_testkit::workload_image()
        .await
        .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
    let agent = AgentProcess::spawn(options)
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
    let guard = ContainerGuard::node(&agent.name);
    Setup {
        agent,
        image,
        _guard: guard,
    }
}

impl Setup {
    fn berth(&self) -> Cmd {
        Cmd::berth(&self.agent.url())
    }

    /// `berth -o json ps -a --node <ours>`, parsed.
    fn ps_json(&self) -> Vec<serde_json::Value> {
        let out = self
            .berth()
            .args(["-o", "json", "ps", "-a", "--node", &self.agent.name])
            .run()
            .ok();
        match serde_json::from_str::<serde_json::Value>(&out.stdout) {
            Ok(serde_json::Value::Array(items)) => items,
            other => panic!("ps -o json is not an array: {other:?}\n{}", out.report("")),
        }
    }

    /// The `ps -a` JSON object of the container named `name`, if listed.
    fn ps_find(&self, name: &str) -> Option<serde_json::Value> {
        self.ps_json().into_iter().find(|c| c["name"] == name)
    }
}

/// Polls `f` (which may run commands) until it returns `Some`, or panics saying what it waited for.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            EVENTUALLY.as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first word of a command's stdout (`sha256sum`'s digest), empty when there is none.
fn first_word(out: &Output) -> String {
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[track_caller]
fn assert_contains(out: &Output, stream: &str, needle: &str) {
    let text = if stream == "stdout" {
        &out.stdout
    } else {
        &out.stderr
    };
    assert!(
        text.contains(needle),
        "{}",
        out.report(&format!("expected {stream} to contain {needle:?}"))
    );
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

mod lifecycle {
    use super::*;

    /// run → ps (table, json) → logs (all, split, tail, since, -t) → stop → ps -a → rm → gone.
    #[tokio::test(flavor = "multi_thread")]
    async fn run_ps_logs_stop_rm() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("life");
        let run = s
            .berth()
            .args(["run", "--name", &name, "--label", "suite=cli", &s.image])
            .args([
                "--lines",
                "6",
                "--stderr-every",
                "3",
                "--interval-ms",
                "20",
                "--sleep",
                "600",
            ])
            .run()
            .ok();
        let id = run.stdout.trim().to_owned();
        assert_eq!(
            id.len(),
            64,
            "{}",
            run.report("run should print the full id")
        );
        assert!(
            id.chars().all(|c| c.is_ascii_hexdigit()),
            "{}",
            run.report("hex id")
        );
        assert_contains(&run, "stderr", &format!("placed on {}", s.agent.name));
        assert_contains(&run, "stderr", &format!("created {id}"));

        // ps: the table and the JSON both show it running.
        let ps = eventually("ps to list it", || {
            let out = s.berth().arg("ps").run().ok();
            out.stdout.contains(&name).then_some(out)
        });
        let header = ps.stdout.lines().next().unwrap_or_default();
        for column in [
            "CONTAINER ID",
            "NAME",
            "IMAGE",
            "NODE",
            "STATE",
            "STATUS",
            "CPU %",
            "MEM",
        ] {
            assert!(
                header.contains(column),
                "{}",
                ps.report(&format!("no {column} column"))
            );
        }
        let row = ps
            .stdout
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{}", ps.report("ps does not list the container")));
        assert!(
            row.starts_with(&id[..12]),
            "{}",
            ps.report("short id first")
        );
        assert!(
            row.contains("running") && row.contains("Up "),
            "{}",
            ps.report("running")
        );
        assert!(row.contains(&s.agent.name), "{}", ps.report("node column"));

        let c = eventually("ps -o json to list it", || s.ps_find(&name));
        assert_eq!(c["id"], id.as_str());
        assert_eq!(c["state"], "running");
        assert_eq!(c["node"], s.agent.name.as_str());
        assert_eq!(c["image"], s.image.as_str());
        assert!(
            c["status"].as_str().is_some_and(|st| st.starts_with("Up ")),
            "{c}"
        );

        // logs: stdout lines to stdout, stderr lines to stderr, in order.
        let logs = eventually("all six lines in the logs", || {
            let out = s.berth().args(["logs", &name]).run().ok();
            (out.stderr.contains("err 6")).then_some(out)
        });
        assert_eq!(
            lines(&logs.stdout),
            ["line 1", "line 2", "line 4", "line 5"],
            "{}",
            logs.report("")
        );
        assert_eq!(
            lines(&logs.stderr),
            ["err 3", "err 6"],
            "{}",
            logs.report("")
        );

        // --tail counts lines of both streams, as Docker does.
        let tail = s.berth().args(["logs", "--tail", "2", &name]).run().ok();
        assert_eq!(lines(&tail.stdout), ["line 5"], "{}", tail.report(""));
        assert_eq!(lines(&tail.stderr), ["err 6"], "{}", tail.report(""));

        // -t: Docker's fixed-width RFC 3339 with nanoseconds, then a space.
        let stamped = s.berth().args(["logs", "-t", &name]).run().ok();
        let stamped_lines = lines(&stamped.stdout);
        assert_eq!(stamped_lines.len(), 4, "{}", stamped.report(""));
        for line in &stamped_lines {
            let (ts, rest) = line.split_once(' ').expect("timestamp and line");
            assert_eq!(ts.len(), "2026-01-01T00:00:00.000000000Z".len(), "{line}");
            assert!(ts.ends_with('Z'), "{line}");
            assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
            assert!(rest.starts_with("line "), "{line}");
        }

        // --since: an hour ago shows everything; a time after the last line shows nothing.
        let since = s.berth().args(["logs", "--since", "1h", &name]).run().ok();
        assert_eq!(lines(&since.stdout).len(), 4, "{}", since.report(""));
        std::thread::sleep(Duration::from_millis(1100));
        let later = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let none = s
            .berth()
            .args(["logs", "--since", &later, &name])
            .run()
            .ok();
        assert_eq!(none.stdout, "", "{}", none.report("nothing since now"));
        assert_eq!(none.stderr, "", "{}", none.report("nothing since now"));

        // stop prints the name as given; ps hides it, ps -a shows it exited (0: SIGTERM).
        let stop = s.berth().args(["stop", "-t", "5", &name]).run().ok();
        assert_eq!(stop.stdout, format!("{name}\n"));
        eventually("ps to stop listing it", || {
            let out = s.berth().arg("ps").run().ok();
            (!out.stdout.contains(&name)).then_some(())
        });
        let exited = eventually("ps -a to show it exited", || {
            s.ps_find(&name).filter(|c| c["state"] == "exited")
        });
        assert!(
            exited["status"]
                .as_str()
                .is_some_and(|st| st.starts_with("Exited (0)")),
            "{exited}"
        );
        let ps_all = s.berth().args(["ps", "-a"]).run().ok();
        assert_contains(&ps_all, "stdout", "Exited (0)");

        // rm prints the name; ps -a no longer shows it.
        let rm = s.berth().args(["rm", &name]).run().ok();
        assert_eq!(rm.stdout, format!("{name}\n"));
        eventually("ps -a to forget it", || {
            s.ps_find(&name).is_none().then_some(())
        });
        let gone = s.berth().args(["logs", &name]).run().fail();
        assert_contains(&gone, "stderr", &name);
    }

    /// `logs -f` streams until the container exits, and the exit code shows in ps -a.
    #[tokio::test(flavor = "multi_thread")]
    async fn logs_follow_ends_when_the_container_stops() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("follow");
        s.berth()
            .args(["run", "--name", &name, &s.image, "--"])
            .args([
                "--lines",
                "3",
                "--interval-ms",
                "300",
                "--sleep",
                "1",
                "--exit",
                "3",
            ])
            .run()
            .ok();
        let started = Instant::now();
        let follow = s
            .berth()
            .args(["logs", "-f", &name])
            .timeout(Duration::from_secs(30))
            .run()
            .ok();
        assert_eq!(
            lines(&follow.stdout),
            ["line 1", "line 2", "line 3"],
            "{}",
            follow.report("")
        );
        assert!(started.elapsed() < Duration::from_secs(25));
        let exited = eventually("ps -a to show exit code 3", || {
            s.ps_find(&name).filter(|c| c["state"] == "exited")
        });
        assert!(
            exited["status"]
                .as_str()
                .is_some_and(|st| st.starts_with("Exited (3)")),
            "{exited}"
        );
    }

    /// Ports in `-o wide`, env from the console's environment, inspect's JSON, `run -o json`.
    #[tokio::test(flavor = "multi_thread")]
    async fn ports_env_inspect_and_run_json() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("wide");
        let port = berth_testkit::free_port();
        let run = s
            .berth()
            .args(["-o", "json", "run", "--name", &name])
            .args([
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                "-e",
                "FROM_CONSOLE",
                "-e",
                "EMPTY=",
            ])
            .args([
                "--memory",
                "64m",
                "--restart",
                "on-failure:2",
                &s.image,
                "--listen",
                "8080",
            ])
            .env("FROM_CONSOLE", "hello there")
            .run()
            .ok();
        let json: serde_json::Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.report("")));
        assert_eq!(keys(&json), ["id", "name", "node"]);
        assert_eq!(json["name"], name.as_str());
        assert_eq!(json["node"], s.agent.name.as_str());

        let wide = eventually("ps -o wide to list it", || {
            let out = s.berth().args(["ps", "-o", "wide"]).run().ok();
            out.stdout.contains(&name).then_some(out)
        });
        let header = wide.stdout.lines().next().unwrap_or_default();
        assert!(
            header.contains("PORTS") && header.contains("CREATED"),
            "{}",
            wide.report("")
        );
        assert_contains(&wide, "stdout", &format!("127.0.0.1:{port}->8080/tcp"));

        let inspect = s.berth().args(["inspect", &name]).run().ok();
        let v: serde_json::Value = serde_json::from_str(&inspect.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}", inspect.report("")));
        assert_eq!(
            keys(&v),
            ["error", "oom_killed", "runtime", "spec", "summary"]
        );
        assert_eq!(v["summary"]["name"], name.as_str());
        assert_eq!(v["summary"]["id"], json["id"]);
        assert_eq!(
            v["spec"]["command"],
            serde_json::json!(["--listen", "8080"])
        );
        assert_eq!(v["spec"]["memory_bytes"], 64 * 1024 * 1024);
        assert_eq!(v["spec"]["restart"], "on-failure:2");
        let env = v["spec"]["env"].as_array().cloned().unwrap_or_default();
        assert!(env.contains(&"FROM_CONSOLE=hello there".into()), "{v}");
        assert!(env.contains(&"EMPTY=".into()), "{v}");
        // Docker's own document, nested as an object.
        assert_eq!(v["runtime"]["Id"], json["id"]);
        assert_eq!(v["runtime"]["State"]["Running"], true);

        // rm without -f refuses a running container; with -f it goes.
        s.berth().args(["rm", &name]).run().fail();
        s.berth().args(["rm", "-f", &name]).run().ok();
        eventually("ps -a to forget it", || {
            s.ps_find(&name).is_none().then_some(())
        });
    }

    /// `--env-file` reads Docker's format (comments, blank lines, values as written, quotes
    /// and all), `-e` wins over it, and the container gets exactly that; a bad line is
    /// refused naming the file and the line, and nothing is created.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_file_in_docker_s_format() {
        let s = setup(AgentOptions::default()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("app.env");
        std::fs::write(
            &file,
            "# settings\n\nMODE=prod\nGREETING=\"hello there\"\n  PADDED=a b \nOVERRIDDEN=file\nFROM_SHELL\n",
        )
        .expect("env file");
        let name = berth_testkit::unique("envfile");
        s.berth()
            .arg("run")
            .arg("--env-file")
            .arg(&file)
            .args(["-e", "OVERRIDDEN=flag", "--name", &name, &s.image])
            .env("FROM_SHELL", "inherited")
            .run()
            .ok();
        let inspect = s.berth().args(["inspect", &name]).run().ok();
        let v: serde_json::Value = serde_json::from_str(&inspect.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}", inspect.report("")));
        let docker_env: Vec<String> = v["runtime"]["Config"]["Env"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect();
        for want in [
            "MODE=prod",
            "GREETING=\"hello there\"",
            "PADDED=a b ",
            "OVERRIDDEN=flag",
            "FROM_SHELL=inherited",
        ] {
            assert!(
                docker_env.iter().any(|e| e == want),
                "{want} in {docker_env:?}"
            );
        }
        assert!(
            !docker_env.iter().any(|e| e == "OVERRIDDEN=file"),
            "{docker_env:?}"
        );
        s.berth().args(["rm", "-f", &name]).run().ok();

        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "OK=1\nNOT OK=2\n").expect("env file");
        let other = berth_testkit::unique("envbad");
        let refused = s
            .berth()
            .arg("run")
            .arg("--env-file")
            .arg(&bad)
            .args(["--name", &other, &s.image])
            .run()
            .fail();
        assert_contains(&refused, "stderr", "invalid env-file");
        assert_contains(&refused, "stderr", "bad.env line 2");
        assert!(s.ps_find(&other).is_none(), "nothing was created");
    }
}

mod pull {
    use super::*;

    /// An image only a (local) registry has: the run pulls it, with progress on stderr (plain
    /// lines, as stderr is not a terminal) and the id alone on stdout. An image no registry has
    /// is the agent's NOT_FOUND, worded by it.
    #[tokio::test(flavor = "multi_thread")]
    async fn run_pulls_with_progress_and_reports_missing_images() {
        let s = setup(AgentOptions::default()).await;
        let registry = match berth_testkit::Registry::start().await {
            Ok(Some(r)) => r,
            Ok(None) => return, // no docker-registry here; the testkit said why
            Err(e) => panic!("cannot start a registry: {e}"),
        };
        let repo = berth_testkit::unique("pull");
        let reference = registry
            .push(&s.image, &repo)
            .await
            .unwrap_or_else(|e| panic!("cannot push: {e}"));
        let run = s.berth().args(["run", &reference]).run().ok();
        assert_contains(&run, "stderr", &format!("pulling {reference}"));
        let id = run.stdout.trim();
        assert_eq!(id.len(), 64, "{}", run.report("only the id on stdout"));
        let progress_lines = run.stderr.lines().count();
        assert!(
            progress_lines >= 4,
            "{}",
            run.report("placed, pulling, a layer, created")
        );

        let missing = format!("{}/{repo}-missing:1", registry.host());
        let out = s.berth().args(["run", &missing]).run().fail();
        assert_contains(&out, "stderr", &format!("{repo}-missing"));
        assert_contains(
            &out,
            "stderr",
            &format!("registry {} has no such image", registry.host()),
        );
        assert_contains(&out, "stderr", "berth images");
        assert!(out.stdout.is_empty(), "{}", out.report("nothing on stdout"));

        // A registry that refuses the connection is neither Docker's fault nor a missing image.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("cannot find a free port: {e}"));
        let gone = format!("{closed}/{repo}:1");
        let out = s.berth().args(["run", &gone]).run().fail();
        assert_contains(
            &out,
            "stderr",
            &format!("cannot connect to the registry {closed}"),
        );
        assert_contains(&out, "stderr", "reachable from that node");
        for wrong in ["docker info", "Docker is unreachable", "no such image"] {
            assert!(
                !out.stderr.contains(wrong),
                "{}",
                out.report(&format!("not {wrong:?}"))
            );
        }
    }

    /// `berth pull --all` on two nodes through one, `berth images` across them, and the run's
    /// --pull policies: never refuses a node without the image (creating nothing), always pulls
    /// an image the node has.
    #[tokio::test(flavor = "multi_thread")]
    async fn pull_everywhere_images_and_pull_policies() {
        use std::net::Ipv4Addr;
        let image = berth_testkit::workload_image()
            .await
            .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
        let registry = match berth_testkit::Registry::start().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => panic!("cannot start a registry: {e}"),
        };
        let a = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, 69)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let b = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, 70)),
            extra_args: vec!["--join".into(), a.addr.to_string()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let _guards = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
        let via_a = || Cmd::berth(&a.url());
        eventually("both nodes alive through A", || {
            let out = via_a().args(["nodes"]).run().ok();
            (out.stdout.lines().filter(|l| l.contains(" alive ")).count() == 2).then_some(())
        });
        let repo = berth_testkit::unique("pullall");
        let reference = registry
            .push(&image, &repo)
            .await
            .unwrap_or_else(|e| panic!("cannot push: {e}"));
        let never = berth_testkit::unique("never");
        let out = via_a()
            .args(["run", "--name", &never, "--pull", "never", &reference])
            .run()
            .fail();
        assert_contains(&out, "stderr", "--pull is never");
        assert!(
            via_a()
                .args(["ps", "-a"])
                .run()
                .ok()
                .stdout
                .lines()
                .all(|l| !l.contains(&never))
        );

        let pulled = via_a().args(["pull", "--all", &reference]).run().ok();
        let mut nodes: Vec<&str> = pulled
            .stdout
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .next()?
                    .strip_prefix(&format!("{reference}@"))
            })
            .collect();
        nodes.sort();
        let mut expected = [a.name.as_str(), b.name.as_str()];
        expected.sort();
        assert_eq!(nodes, expected, "{}", pulled.report("pulled on both"));
        assert_contains(
            &pulled,
            "stderr",
            &format!("pulling {reference} on {}", b.name),
        );

        let tag = reference.rsplit(':').next().unwrap_or_default().to_owned();
        let images = via_a().args(["images"]).run().ok();
        for node in [&a.name, &b.name] {
            assert!(
                images
                    .stdout
                    .lines()
                    .any(|l| l.starts_with(node.as_str()) && l.contains(&repo) && l.contains(&tag)),
                "{}",
                images.report("the image on both nodes, with its tag")
            );
        }
        let always = via_a()
            .args(["run", "--node", &b.name, "--pull", "always", &reference])
            .run()
            .ok();
        assert_contains(&always, "stderr", &format!("pulling {reference}"));

        let missing = format!("{}/{repo}-missing:1", registry.host());
        let out = via_a()
            .args(["pull", "--node", &b.name, &missing])
            .run()
            .fail();
        assert_contains(&out, "stderr", &format!("node {} cannot pull", b.name));
    }
}

mod json {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn nodes_and_ps_field_names() {
        let s = setup(AgentOptions::default()).await;
        let out = s.berth().args(["nodes", "-o", "json"]).run().ok();
        let nodes: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.report("")));
        let node = nodes
            .iter()
            .find(|n| n["name"] == s.agent.name.as_str())
            .unwrap_or_else(|| panic!("{}", out.report("our node is not listed")));
        assert_eq!(
            keys(node),
            [
                "address",
                "age_ms",
                "containers",
                "cpu_percent",
                "drained",
                "labels",
                "memory_total_bytes",
                "memory_used_bytes",
                "name",
                "node_id",
                "runtime_available",
                "status",
                "updated",
                "volumes"
            ]
        );
        assert_eq!(node["status"], "alive");
        assert_eq!(node["runtime_available"], true);
        assert!(
            node["node_id"].as_str().is_some_and(|id| id.len() == 32),
            "the node's own id: {node}"
        );
        assert!(
            node["memory_total_bytes"].as_u64().is_some_and(|m| m > 0),
            "{node}"
        );

        let table = s.berth().arg("nodes").run().ok();
        let header = table.stdout.lines().next().unwrap_or_default();
        assert_eq!(
            header
                .split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>(),
            [
                "NAME",
                "ADDRESS",
                "STATUS",
                "AGE",
                "CPU %",
                "MEMORY",
                "CONTAINERS"
            ],
            "{}",
            table.report("")
        );
        assert_contains(&table, "stdout", &s.agent.name);
        let wide = s.berth().args(["nodes", "-o", "wide"]).run().ok();
        assert_contains(&wide, "stdout", "DOCKER");
        assert_contains(&wide, "stdout", "UPTIME");

        let name = berth_testkit::unique("json");
        s.berth()
            .args(["run", "--name", &name, &s.image])
            .run()
            .ok();
        let c = eventually("ps -o json to list it", || s.ps_find(&name));
        assert_eq!(
            keys(&c),
            [
                "cpu_percent",
                "created",
                "health",
                "id",
                "image",
                "memory_bytes",
                "name",
                "node",
                "node_status",
                "ports",
                "state",
                "status"
            ]
        );
        assert_eq!(c["node_status"], "alive");
        let created = c["created"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{c}");
    }
}

mod failures {
    use super::*;

    /// A user error (here: no agent at the address) under `RUST_BACKTRACE=1` captures no
    /// backtrace: it runs in 64 MiB of data, where resolving one (which color-eyre does as the
    /// error is made) needs far more and aborts.
    #[test]
    fn a_user_error_captures_no_backtrace_even_with_rust_backtrace_set() {
        let bin = berth_testkit::bin_path("berth").expect("the berth binary");
        let script = format!(
            "unset RUST_LIB_BACKTRACE; ulimit -d 65536; exec '{}' --agent 127.0.0.1:1 nodes",
            bin.display()
        );
        let out = Cmd::new("bash")
            .args(["-c", &script])
            .env("RUST_BACKTRACE", "1")
            .run();
        assert_eq!(
            out.code(),
            Some(1),
            "{}",
            out.report("a plain failure, not an abort")
        );
        assert_contains(&out, "stderr", "cannot reach agent at");
        assert!(
            !out.stderr.contains("BACKTRACE"),
            "{}",
            out.report("no backtrace")
        );
    }

    /// The connection to the agent breaks while the agent is between Docker's create and start
    /// (the Docker proxy holds the start; a TCP proxy cuts the console's connection). `berth run`
    /// tries again with the same request id and answers with the one container the first try
    /// made: exactly one exists.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_run_whose_answer_is_lost_is_retried_without_a_second_copy() {
        let dir = tempfile::Builder::new()
            .prefix("bp")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let docker = berth_testkit::DockerProxy::start(dir.path())
            .await
            .expect("docker proxy");
        let s = setup(AgentOptions {
            docker_host: Some(docker.docker_host()),
            ..Default::default()
        })
        .await;
        let line = s.agent.addr;
        let tcp = berth_testkit::TcpProxy::start(line)
            .await
            .expect("tcp proxy");
        // Wait for the runtime before holding anything: its first resync goes through Docker.
        s.berth()
            .args(["run", "--label", "warm=1", &s.image])
            .run()
            .ok();
        let mark = berth_testkit::unique("lost");
        docker.hold("/start ");
        let run = Cmd::berth(&tcp.url())
            .args(["run", "--label", &format!("t={mark}"), &s.image])
            .run_async();
        let run = tokio::spawn(run);
        let filter = format!("t={mark}");
        berth_testkit::wait_for("the start to be held", EVENTUALLY, || async {
            (docker.held() > 0).then_some(())
        })
        .await
        .expect("held");
        assert!(tcp.cut() > 0, "no console connection to cut");
        docker.release();
        let out = run.await.expect("berth run").ok();
        assert_contains(&out, "stderr", "same request id");
        let made = berth_testkit::list_labelled(&filter).await.expect("list");
        assert_eq!(made.len(), 1, "{made:?}\n{}", out.report("copies"));
        assert!(
            made[0].starts_with(out.stdout.trim()),
            "printed {:?}, made {made:?}",
            out.stdout
        );
    }

    #[test]
    fn dead_agent_is_an_error_naming_the_address() {
        let port = berth_testkit::free_port();
        for agent in [
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}"),
        ] {
            let out = Cmd::berth(&agent).arg("ps").run().fail();
            assert_contains(&out, "stderr", "cannot reach agent at");
            assert_contains(&out, "stderr", &format!("127.0.0.1:{port}"));
            assert_contains(&out, "stderr", "berthd");
            assert!(
                !out.stderr.contains("embedded agent for node"),
                "{}",
                out.report("no fallback")
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn wrong_token_is_refused_and_the_right_one_accepted() {
        let token = "s3cret-token-0123";
        let s = setup(AgentOptions {
            token: Some(token.into()),
            ..Default::default()
        })
        .await;
        // No token: the console speaks plaintext, which an agent with a secret never answers.
        let none = s.berth().arg("ps").run().fail();
        assert_contains(&none, "stderr", "speaks only TLS");
        assert_contains(&none, "stderr", "BERTH_TOKEN");
        // Another cluster's secret: the agent's certificate is refused before the token is sent.
        let wrong = s
            .berth()
            .args(["--token", "wrong-wrong-wrong-wrong", "nodes"])
            .run()
            .fail();
        assert_contains(&wrong, "stderr", "refusing agent at");
        assert_contains(
            &wrong,
            "stderr",
            "not signed by the cluster CA this token pins",
        );
        assert!(
            !wrong.stderr.contains(token),
            "{}",
            wrong.report("token echoed")
        );

        s.berth().args(["--token", token, "nodes"]).run().ok();
        s.berth().arg("nodes").env("BERTH_TOKEN", token).run().ok();
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{token}\n")).expect("token file");
        s.berth()
            .arg("--token-file")
            .arg(&file)
            .arg("ps")
            .run()
            .ok();
    }

    /// Bad flags are refused before anything is sent, naming the field; nothing is created.
    #[tokio::test(flavor = "multi_thread")]
    async fn bad_input_creates_nothing() {
        let s = setup(AgentOptions::default()).await;
        let long = "a".repeat(300);
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--memory", "-5", &s.image], "invalid memory"),
            (vec!["--memory", "12qq", &s.image], "invalid memory"),
            (vec!["--cpus", "0", &s.image], "invalid cpus"),
            (vec!["--cpus", "abc", &s.image], "invalid cpus"),
            (vec!["-p", "99999:80", &s.image], "invalid port"),
            (vec!["-p", "80:80/xyz", &s.image], "invalid port"),
            (vec!["-e", "=x", &s.image], "invalid env"),
            (
                vec!["-e", "BERTH_TEST_SURELY_UNSET", &s.image],
                "BERTH_TEST_SURELY_UNSET",
            ),
            (vec!["--restart", "sometimes", &s.image], "invalid restart"),
            (vec!["--name", "no spaces", &s.image], "invalid name"),
            (vec!["--label", "berth.node=x", &s.image], "label"),
            (vec!["UPPER/case"], "invalid image"),
            (vec!["a::b"], "invalid image"),
            (vec![""], "invalid image"),
            (vec![&long], "invalid image"),
        ];
        for (args, needle) in cases {
            let out = s.berth().arg("run").args(&args).run().fail();
            assert_contains(&out, "stderr", needle);
            assert!(out.stdout.is_empty(), "{}", out.report("nothing on stdout"));
        }
        assert_eq!(s.ps_json(), Vec::<serde_json::Value>::new());

        // The agent's own refusals come through as it words them.
        let missing = s.berth().args(["stop", "no-such-container"]).run().fail();
        assert_contains(&missing, "stderr", "no-such-container");
        let both = s.berth().args(["rm", "nope-1", "nope-2"]).run().fail();
        assert_contains(&both, "stderr", "nope-1");
        assert_contains(&both, "stderr", "nope-2");

        let name = berth_testkit::unique("dup");
        s.berth()
            .args(["run", "--name", &name, &s.image])
            .run()
            .ok();
        let dup = s
            .berth()
            .args(["run", "--name", &name, &s.image])
            .run()
            .fail();
        assert_contains(&dup, "stderr", &name);
        eventually("ps -a to list just the first one", || {
            (s.ps_json().len() == 1).then_some(())
        });
    }

    /// Several containers: all are tried, and the failures are listed at the end.
    #[tokio::test(flavor = "multi_thread")]
    async fn stop_and_rm_do_all_then_fail() {
        let s = setup(AgentOptions::default()).await;
        let a = berth_testkit::unique("many");
        let b = berth_testkit::unique("many");
        for name in [&a, &b] {
            s.berth().args(["run", "--name", name, &s.image]).run().ok();
        }
        let stop = s
            .berth()
            .args(["stop", "-t", "1", &a, "missing-one", &b])
            .run()
            .fail();
        assert_eq!(
            lines(&stop.stdout),
            [a.as_str(), b.as_str()],
            "{}",
            stop.report("")
        );
        assert_contains(&stop, "stderr", "missing-one");
        let rm = s.berth().args(["rm", &a, &b]).run().ok();
        assert_eq!(lines(&rm.stdout), [a.as_str(), b.as_str()]);
        eventually("ps -a to forget both", || {
            s.ps_json().is_empty().then_some(())
        });
    }

    /// No --agent and nothing on 127.0.0.1:7070: an embedded agent serves the command, says so
    /// once, and is gone afterwards. (Skipped when something does listen there, or BERTH_AGENT
    /// is set.) It only reads: the embedded node is this machine's, shared with other tests.
    #[test]
    fn embedded_agent_when_nothing_answers() {
        let taken = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], 7070)),
            Duration::from_millis(300),
        )
        .is_ok();
        if taken || std::env::var_os("BERTH_AGENT").is_some() {
            eprintln!("skipped: an agent answers on 127.0.0.1:7070 or BERTH_AGENT is set");
            return;
        }
        let home = tempfile::tempdir().expect("temp dir");
        let berth = berth_testkit::bin_path("berth").expect("berth is built");
        let out = Cmd::new(berth)
            .args(["-o", "json", "nodes"])
            .env("XDG_DATA_HOME", home.path())
            .run()
            .ok();
        assert_eq!(
            out.stderr
                .matches("started an embedded agent for node")
                .count(),
            1,
            "{}",
            out.report("says so once")
        );
        let nodes: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.report("")));
        assert_eq!(nodes.len(), 1, "{}", out.report("one node"));
        assert_eq!(
            nodes[0]["runtime_available"],
            true,
            "{}",
            out.report("docker reached")
        );
        assert!(
            home.path().join("berth").is_dir(),
            "data dir under XDG_DATA_HOME"
        );

        // Its name and data dir are the user's to set; a second console while the first runs
        // talks to the first's embedded agent (the data dir is one agent's).
        let name = berth_testkit::unique("emb");
        let data = home.path().join("mine");
        let berth = berth_testkit::bin_path("berth").expect("berth is built");
        let mut first = std::process::Command::new(&berth)
            .args(["--embedded-name", &name, "stats"])
            .env("BERTH_EMBEDDED_DATA_DIR", &data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the first console");
        let _guard = ContainerGuard::node(&name);
        eventually("the first console's embedded agent", || {
            data.join("embedded-agent").is_file().then_some(())
        });
        let out = Cmd::new(&berth)
            .args(["-o", "json", "nodes"])
            .env("BERTH_EMBEDDED_DATA_DIR", &data)
            .run()
            .ok();
        let _ = first.kill();
        let _ = first.wait();
        assert!(
            !out.stderr.contains("started an embedded agent"),
            "{}",
            out.report("joined the first one's")
        );
        let nodes: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.report("")));
        assert_eq!(
            nodes[0]["name"],
            name.as_str(),
            "{}",
            out.report("--embedded-name")
        );
    }

    /// `berth logs … | head -1`: a closed stdout is not an error.
    #[tokio::test(flavor = "multi_thread")]
    async fn closed_stdout_pipe_is_quiet() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("pipe");
        s.berth()
            .args([
                "run", "--name", &name, &s.image, "--lines", "20000", "--sleep", "600",
            ])
            .run()
            .ok();
        eventually("the lines to be logged", || {
            let out = s.berth().args(["logs", "--tail", "1", &name]).run().ok();
            (out.stdout.trim() == "line 20000").then_some(())
        });
        let berth = berth_testkit::bin_path("berth").expect("berth is built");
        let script = format!(
            "set -o pipefail; '{}' --agent '{}' logs '{}' | head -n 1",
            berth.display(),
            s.agent.url(),
            name
        );
        let out = Cmd::new("bash").args(["-c", &script]).run().ok();
        assert_eq!(out.stdout, "line 1\n");
        assert!(!out.stderr.contains("Error"), "{}", out.report("quiet"));
    }
}

mod cluster {
    use super::*;
    use std::net::Ipv4Addr;

    /// Two agents in a cluster: the console on either one lists both nodes, places on the other
    /// one, and follows, stops and removes it there.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_console_on_any_agent_drives_every_node() {
        let image = berth_testkit::workload_image()
            .await
            .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
        let a = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, 21)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let b = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, 22)),
            extra_args: vec!["--join".into(), a.addr.to_string()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let _guards = (ContainerGuard::node(&a.name), ContainerGuard::node(&b.name));
        let via_a = || Cmd::berth(&a.url());

        eventually("both nodes listed alive through A", || {
            let out = via_a().args(["nodes"]).run().ok();
            let alive = out.stdout.lines().filter(|l| l.contains(" alive ")).count();
            (alive == 2 && out.stdout.contains(&b.name)).then_some(())
        });

        let name = berth_testkit::unique("far");
        let run = via_a()
            .args(["run", "--name", &name, "--node", &b.name, &image])
            .args([
                "--lines",
                "5",
                "--interval-ms",
                "100",
                "--sleep",
                "1",
                "--exit",
                "0",
            ])
            .run()
            .ok();
        assert_contains(&run, "stderr", &format!("placed on {}", b.name));

        // Follow through A a container that runs on B: every line, then the end.
        let logs = via_a().args(["logs", "-f", &name]).run().ok();
        assert_eq!(
            lines(&logs.stdout),
            ["line 1", "line 2", "line 3", "line 4", "line 5"],
            "{}",
            logs.report("logs -f through the other agent")
        );

        // ps through B shows it exited, on B.
        eventually("B to show it exited", || {
            let out = Cmd::berth(&b.url()).args(["ps", "-a"]).run().ok();
            out.stdout
                .lines()
                .any(|l| l.contains(&name) && l.contains(&b.name) && l.contains("Exited (0)"))
                .then_some(())
        });
        let rm = via_a().args(["rm", &name]).run().ok();
        assert_eq!(rm.stdout.trim(), name);
        let docker_ps = Cmd::new("docker")
            .args(["ps", "-a", "--filter", &format!("name={name}"), "-q"])
            .run()
            .ok();
        assert!(docker_ps.stdout.trim().is_empty(), "removed on B");
    }
}

mod services {
    use super::*;

    /// service create (waits for its replicas) → ls and ps, table and JSON → scale → rm.
    #[tokio::test(flavor = "multi_thread")]
    async fn create_ls_ps_scale_rm() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("svc");
        let create = s
            .berth()
            .args([
                "service",
                "create",
                "--name",
                &name,
                "--replicas",
                "2",
                &s.image,
            ])
            .args(["--", "--interval-ms", "500", "--forever"])
            .run()
            .ok();
        let id = create.stdout.trim().to_owned();
        assert_eq!(id.len(), 24, "{}", create.report("create prints the id"));
        assert_contains(&create, "stderr", &format!("{name}: 2/2 replicas running"));

        let ls = s.berth().args(["-o", "json", "service", "ls"]).run().ok();
        let all: serde_json::Value = serde_json::from_str(&ls.stdout).expect("json");
        let mine = all
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name.as_str()))
            .unwrap_or_else(|| panic!("{}", ls.report("lists the service")))
            .clone();
        assert_eq!(
            keys(&mine),
            [
                "created",
                "id",
                "image",
                "mode",
                "name",
                "replicas_desired",
                "replicas_running",
                "state",
                "updated",
                "version"
            ]
        );
        assert_eq!(mine["replicas_running"], 2);
        assert_eq!(mine["state"], "converged");

        let ps = s
            .berth()
            .args(["-o", "json", "service", "ps", &name])
            .run()
            .ok();
        let rows: serde_json::Value = serde_json::from_str(&ps.stdout).expect("json");
        let rows = rows.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2, "{}", ps.report("one row per slot"));
        assert_eq!(
            keys(&rows[0]),
            [
                "error", "id", "name", "node", "service", "slot", "state", "version"
            ]
        );
        assert_eq!(rows[0]["slot"], "1");
        assert!(
            rows[0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}.1."))),
            "NAME.SLOT.SUFFIX: {}",
            rows[0]
        );
        let table = s.berth().args(["service", "ls"]).run().ok();
        assert_contains(&table, "stdout", "REPLICAS");
        assert_contains(&table, "stdout", "2/2");

        s.berth()
            .args(["service", "scale", &format!("{name}=3")])
            .run()
            .ok();
        eventually("3 replicas after scale", || {
            let ps = s.berth().args(["-o", "json", "service", "ps", &name]).run();
            let v: serde_json::Value = serde_json::from_str(&ps.stdout).ok()?;
            let rows = v.as_array()?.clone();
            (rows.len() == 3 && rows.iter().all(|r| r["state"] == "running")).then_some(())
        });
        // Service replicas are ordinary containers: `ps` lists them.
        eventually("ps to list the replicas", || {
            let n = s
                .ps_json()
                .iter()
                .filter(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{name}.")))
                })
                .count();
            (n == 3).then_some(())
        });

        // A stop of a replica says it will be undone, and is.
        let first = rows[0]["name"].as_str().unwrap_or_default().to_owned();
        let stop = s.berth().args(["stop", "-t", "1", &first]).run().ok();
        assert_contains(&stop, "stderr", &format!("is replica 1 of service {name}"));
        eventually("slot 1 filled again by another container", || {
            let ps = s.berth().args(["-o", "json", "service", "ps", &name]).run();
            let v: serde_json::Value = serde_json::from_str(&ps.stdout).ok()?;
            let slot1 = v.as_array()?.iter().find(|r| r["slot"] == "1")?.clone();
            (slot1["state"] == "running" && slot1["name"] != first.as_str()).then_some(())
        });

        s.berth().args(["service", "rm", &name]).run().ok();
        eventually("every replica removed", || {
            let n = s
                .ps_json()
                .iter()
                .filter(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{name}.")))
                })
                .count();
            (n == 0).then_some(())
        });
        let gone = s.berth().args(["service", "ps", &name]).run().fail();
        assert_contains(&gone, "stderr", "no service named");
    }

    /// Bad input is refused by the console, naming the field, before anything is sent.
    #[test]
    fn bad_input_is_refused_before_sending() {
        // Nothing listens here: a refusal cannot come from an agent.
        let berth = || Cmd::berth("http://127.0.0.1:9");
        for (args, needle) in [
            (vec!["--replicas", "-1"], "replicas"),
            (vec!["--replicas", "abc"], "replicas"),
            (vec!["--replicas", "100000"], "replicas"),
            (vec!["--mode", "global", "--replicas", "2"], "replicas"),
        ] {
            let out = berth()
                .args(["service", "create", "--name", "web"])
                .args(&args)
                .arg("handmade/app:1")
                .run()
                .fail();
            assert_contains(&out, "stderr", needle);
            assert!(
                !out.stderr.contains("cannot reach"),
                "{}",
                out.report("refused before connecting")
            );
        }
        let bad_name = berth()
            .args(["service", "create", "--name", "web.1", "handmade/app:1"])
            .run()
            .fail();
        assert_contains(&bad_name, "stderr", "name");
        let no_change = berth().args(["service", "update", "web"]).run().fail();
        assert_contains(&no_change, "stderr", "names no change");
        let scale = berth().args(["service", "scale", "web"]).run().fail();
        assert_contains(&scale, "stderr", "NAME=REPLICAS");
        let health = berth()
            .args(["service", "update", "--update-order", "sideways", "web"])
            .run()
            .fail();
        assert_contains(&health, "stderr", "update-order");
    }
}

mod health {
    use super::*;

    /// A health check reaches Docker and its verdict comes back in `ps`: the check runs `false`
    /// (busybox's, through Docker's `CMD-SHELL`), so the container turns unhealthy, which is what
    /// this test waits for.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_check_shows_unhealthy_in_ps() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("health");
        s.berth()
            .args(["run", "--name", &name, "--health-cmd", "false"])
            .args([
                "--health-interval",
                "300ms",
                "--health-retries",
                "1",
                &s.image,
            ])
            .args(["--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        let c = eventually("ps to show it unhealthy", || {
            s.ps_find(&name).filter(|c| c["health"] == "unhealthy")
        });
        assert!(
            c["status"]
                .as_str()
                .is_some_and(|t| t.ends_with("(unhealthy)")),
            "{c}"
        );
        let table = s.berth().args(["ps"]).run().ok();
        assert_contains(&table, "stdout", "(unhealthy)");
        // A check's timing without a check is refused before anything is sent.
        let out = s
            .berth()
            .args(["run", "--health-interval", "1s", &s.image])
            .run()
            .fail();
        assert_contains(&out, "stderr", "health-cmd");
    }

    /// `service update` adds a check to a service that had none, changing only what it names,
    /// and the new replicas carry it: the check (`false`) fails, so the update
    /// fails and pauses. A timing flag on a service with no check is refused and writes nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn service_update_gives_replicas_a_health_check() {
        let s = setup(AgentOptions::default()).await;
        let name = berth_testkit::unique("svchealth");
        s.berth()
            .args(["service", "create", "--name", &name, &s.image])
            .args(["--", "--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        let inspect = |s: &Setup| -> serde_json::Value {
            let out = s.berth().args(["service", "inspect", &name]).run().ok();
            serde_json::from_str(&out.stdout).expect("json")
        };
        let before = inspect(&s);
        let out = s
            .berth()
            .args(["service", "update", "--health-retries", "2", &name])
            .run()
            .fail();
        assert_contains(&out, "stderr", "--health-cmd");
        assert_eq!(
            inspect(&s)["version"],
            before["version"],
            "a refused update writes nothing"
        );
        s.berth()
            .args(["service", "update", "--health-cmd", "false"])
            .args(["--health-interval", "300ms", "--health-retries", "1"])
            .args(["--update-monitor", "1s", &name])
            .run()
            .ok();
        let after = inspect(&s);
        assert_ne!(after["version"], before["version"]);
        let check = &after["spec"]["container"]["healthcheck"];
        assert_eq!(check["cmd"], "false", "{after}");
        assert_eq!(check["interval_ms"], 300);
        assert_eq!(check["retries"], 1);
        assert_eq!(check["timeout_ms"], 0, "not named: Docker's default");
        eventually("the new replica unhealthy, the update paused", || {
            let ls = s.berth().args(["-o", "json", "service", "ls"]).run();
            let v: serde_json::Value = serde_json::from_str(&ls.stdout).ok()?;
            let mine = v
                .as_array()?
                .iter()
                .find(|x| x["name"] == name.as_str())?
                .clone();
            let unhealthy = s.ps_json().iter().any(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{name}.")))
                    && c["health"] == "unhealthy"
            });
            (mine["state"] == "paused" && unhealthy).then_some(())
        });
        s.berth().args(["service", "rm", &name]).run().ok();
    }
}

mod exec {
    use super::*;
    use std::net::Ipv4Addr;

    /// Two agents; the container runs on B and every exec goes through A.
    pub(super) async fn two_agents(
        ips: (u8, u8),
    ) -> (AgentProcess, AgentProcess, String, [ContainerGuard; 2]) {
        let image = berth_testkit::workload_image()
            .await
            .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
        let a = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, ips.0)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let b = AgentProcess::spawn(AgentOptions {
            ip: Some(Ipv4Addr::new(127, 0, 0, ips.1)),
            extra_args: vec!["--join".into(), a.addr.to_string()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let guards = [ContainerGuard::node(&a.name), ContainerGuard::node(&b.name)];
        eventually("both nodes alive through A", || {
            let out = Cmd::berth(&a.url()).args(["nodes"]).run().ok();
            let alive = out.stdout.lines().filter(|l| l.contains(" alive ")).count();
            (alive == 2).then_some(())
        });
        (a, b, image, guards)
    }

    fn sha256(bytes: &[u8]) -> String {
        first_word(&Cmd::new("sha256sum").stdin(bytes.to_vec()).run().ok())
    }

    /// stdin piped, stdout and stderr apart, binary bytes intact, the command's exit status
    /// (0, 3, 127) as ours, user/workdir/env applied; a stopped container refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn through_another_agent_with_stdin_and_exit_codes() {
        // Declared before the agents, so dropped after their containers' guards.
        let volume = berth_testkit::unique("exec-vol");
        let _objects = super::parity::DockerObjects {
            volumes: vec![volume.clone()],
            networks: vec![],
        };
        let (a, b, image, _guards) = two_agents((61, 62)).await;
        let via_a = || Cmd::berth(&a.url());
        let mount = format!("{volume}:/v");
        let name = berth_testkit::unique("exec");
        via_a()
            .args([
                "run", "--name", &name, "--node", &b.name, "-v", &mount, &image,
            ])
            .run()
            .ok();

        let out = via_a()
            .args(["exec", "-i", &name, "--", "sh", "-c", "cat; echo oops >&2"])
            .stdin("hello from stdin\n")
            .run()
            .ok();
        assert_eq!(out.stdout, "hello from stdin\n", "{}", out.report("stdout"));
        assert_eq!(out.stderr, "oops\n", "{}", out.report("stderr apart"));

        let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let out = via_a()
            .args([
                "exec",
                "-i",
                &name,
                "sh",
                "-c",
                "cat > /blob; sha256sum /blob",
            ])
            .stdin(bytes.clone())
            .run()
            .ok();
        assert!(
            out.stdout.starts_with(&sha256(&bytes)),
            "{}",
            out.report("300 kB of every byte value arrive intact")
        );

        let out = via_a().args(["exec", &name, "sh", "-c", "exit 3"]).run();
        assert_eq!(out.code(), Some(3), "{}", out.report("exit 3"));
        assert!(
            out.stderr.is_empty(),
            "{}",
            out.report("no message of ours")
        );

        let out = via_a().args(["exec", &name, "no-such-program"]).run();
        assert_eq!(out.code(), Some(127), "{}", out.report("not found is 127"));
        assert_contains(&out, "stderr", "no-such-program");
        assert!(
            out.stdout.is_empty(),
            "{}",
            out.report("Docker's message is not the output")
        );

        let out = via_a()
            .args([
                "exec",
                "-u",
                "1234:5678",
                "-w",
                "/bin",
                "-e",
                "GREETING=hi there",
            ])
            .args([&name, "sh", "-c", "echo $(id -u):$(id -g) $(pwd) $GREETING"])
            .run()
            .ok();
        assert_eq!(
            out.stdout,
            "1234:5678 /bin hi there\n",
            "{}",
            out.report("-u -w -e")
        );

        // Without -i the command's stdin is empty, whatever ours holds.
        let out = via_a()
            .args(["exec", &name, "cat"])
            .stdin("not sent")
            .run()
            .ok();
        assert_eq!(out.stdout, "", "{}", out.report("no stdin without -i"));

        let stopped = berth_testkit::unique("exec-stopped");
        via_a()
            .args([
                "run", "--name", &stopped, "--node", &b.name, &image, "--exit", "0",
            ])
            .run()
            .ok();
        eventually("the short one to exit", || {
            let out = via_a().args(["ps", "-a"]).run().ok();
            out.stdout
                .lines()
                .any(|l| l.contains(&stopped) && l.contains("Exited"))
                .then_some(())
        });
        let out = via_a().args(["exec", &stopped, "sh"]).run().fail();
        assert_contains(&out, "stderr", "is not running");
        assert_eq!(out.code(), Some(1), "{}", out.report("a berth error is 1"));

        // Volumes are listed and removed through any agent: B's, seen through A.
        let ls = via_a().args(["volume", "ls"]).run().ok();
        assert!(
            ls.stdout
                .lines()
                .any(|l| l.contains(&b.name) && l.contains(&volume) && l.contains(&name)),
            "{}",
            ls.report("B's volume through A")
        );
        via_a().args(["rm", "-f", &name]).run().ok();
        let rm = via_a().args(["volume", "rm", &volume]).run().ok();
        assert_eq!(rm.stdout.trim(), format!("{volume} ({})", b.name));

        // Bad input is refused before anything is sent.
        let out = via_a()
            .args(["exec", "-w", "tmp", &name, "pwd"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "invalid workdir");
        let out = via_a().args(["exec", &name]).run().fail();
        assert_contains(&out, "stderr", "CMD");
        let out = via_a()
            .args(["exec", "nothing-by-this-name", "sh"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "nothing-by-this-name");
    }

    /// A session whose agent dies, or whose owner dies behind the agent, ends at once with a
    /// message saying so: never a hang.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_dropped_connection_ends_the_session_with_a_clear_message() {
        let (mut a, mut b, image, _guards) = two_agents((67, 68)).await;
        let name = berth_testkit::unique("exec-drop");
        Cmd::berth(&a.url())
            .args(["run", "--name", &name, "--node", &b.name, &image])
            .run()
            .ok();
        let session = |a: &AgentProcess| {
            let exec = Cmd::berth(&a.url())
                .args(["exec", &name, "sh", "-c", "echo started; sleep 600"])
                .timeout(Duration::from_secs(30));
            tokio::spawn(exec.run_async())
        };
        let wait_started = || std::thread::sleep(Duration::from_millis(1500));

        // The agent the console talks to dies.
        let running = session(&a);
        wait_started();
        a.kill9();
        let out = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("the session ends, not hangs")
            .expect("joined");
        assert_eq!(
            out.code(),
            Some(1),
            "{}",
            out.report("ended by the lost agent")
        );
        assert_eq!(
            out.stdout,
            "started\n",
            "{}",
            out.report("output until then")
        );
        assert_contains(
            &out,
            "stderr",
            "the exec session ended before the command did",
        );

        // The owner dies behind the agent.
        a.restart().await.expect("A starts again");
        eventually("B alive through A again", || {
            let out = Cmd::berth(&a.url()).args(["nodes"]).run().ok();
            (out.stdout.lines().filter(|l| l.contains(" alive ")).count() == 2).then_some(())
        });
        let running = session(&a);
        wait_started();
        b.kill9();
        let out = tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("the session ends, not hangs")
            .expect("joined");
        assert_eq!(
            out.code(),
            Some(1),
            "{}",
            out.report("ended by the lost owner")
        );
        assert_contains(&out, "stderr", &b.name);
    }
}

mod parity {
    use super::*;

    /// Removes Docker volumes and networks a test made, even when it fails.
    pub(super) struct DockerObjects {
        pub(super) volumes: Vec<String>,
        pub(super) networks: Vec<String>,
    }

    impl Drop for DockerObjects {
        fn drop(&mut self) {
            for v in &self.volumes {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", "-f", v])
                    .output();
            }
            for n in &self.networks {
                let _ = std::process::Command::new("docker")
                    .args(["network", "rm", n])
                    .output();
            }
        }
    }

    fn docker_names(kind: &str, name: &str) -> String {
        Cmd::new("docker")
            .args([kind, "ls", "-q", "--filter", &format!("name={name}")])
            .run()
            .ok()
            .stdout
    }

    /// A named volume is made on the node (labelled as its own) and keeps its data across `rm`
    /// and a new container; tmpfs, -u, -w, --hostname, --add-host, --read-only apply.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_named_volume_keeps_data_and_the_process_flags_apply() {
        // Declared before the agent, so dropped after its containers' guard: a volume in use
        // cannot be removed.
        let volume = berth_testkit::unique("vol");
        let _objects = DockerObjects {
            volumes: vec![volume.clone()],
            networks: vec![],
        };
        let s = setup(AgentOptions::default()).await;
        let first = berth_testkit::unique("vol-a");
        let mount = format!("{volume}:/data");
        s.berth()
            .args(["run", "--name", &first, "-v", &mount, &s.image])
            .run()
            .ok();
        let labels = Cmd::new("docker")
            .args(["volume", "inspect", "-f", "{{json .Labels}}", &volume])
            .run()
            .ok();
        assert_contains(
            &labels,
            "stdout",
            &format!("\"berth.node\":\"{}\"", s.agent.name),
        );
        s.berth()
            .args(["exec", &first, "sh", "-c", "echo kept > /data/file"])
            .run()
            .ok();
        s.berth().args(["rm", "-f", &first]).run().ok();

        let second = berth_testkit::unique("vol-b");
        s.berth()
            .args([
                "run",
                "--name",
                &second,
                "-v",
                &mount,
                "--tmpfs",
                "/scratch:size=8m",
            ])
            .args(["-u", "4321", "-w", "/data", "--hostname", "db-1"])
            .args(["--add-host", "upstream:10.1.2.3", "--read-only", &s.image])
            .run()
            .ok();
        let out = s
            .berth()
            .args(["exec", &second, "sh", "-c"])
            .arg(
                "cat file; id -u; pwd; hostname; grep upstream /etc/hosts; \
                 touch /scratch/ok && echo tmpfs-writable; touch /rootfs 2>/dev/null || echo rootfs-read-only",
            )
            .run()
            .ok();
        let got: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        assert_eq!(
            got.first(),
            Some(&"kept"),
            "{}",
            out.report("the volume kept its data")
        );
        assert_eq!(got.get(1), Some(&"4321"), "{}", out.report("-u"));
        assert_eq!(got.get(2), Some(&"/data"), "{}", out.report("-w"));
        assert_eq!(got.get(3), Some(&"db-1"), "{}", out.report("--hostname"));
        assert!(
            got.get(4)
                .is_some_and(|l| l.starts_with("10.1.2.3") && l.ends_with("upstream")),
            "{}",
            out.report("--add-host")
        );
        assert_eq!(
            &got[5..],
            ["tmpfs-writable", "rootfs-read-only"],
            "{}",
            out.report("")
        );

        // volume ls shows it, on its node, used by the second; rm waits for it to be free.
        let ls = s.berth().args(["volume", "ls"]).run().ok();
        assert!(
            ls.stdout.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w == [
                    s.agent.name.as_str(),
                    volume.as_str(),
                    "local",
                    second.as_str(),
                ]
            }),
            "{}",
            ls.report("volume ls")
        );
        let busy = s.berth().args(["volume", "rm", &volume]).run().fail();
        assert_contains(&busy, "stderr", "is in use");
        s.berth().args(["rm", "-f", &second]).run().ok();
        let rm = s.berth().args(["volume", "rm", &volume]).run().ok();
        assert_eq!(rm.stdout.trim(), format!("{volume} ({})", s.agent.name));
        assert!(
            docker_names("volume", &volume).trim().is_empty(),
            "removed from Docker"
        );
        let again = s.berth().args(["volume", "rm", &volume]).run().fail();
        assert_contains(&again, "stderr", "no volume named");
    }

    /// Bind mounts only under --allow-bind (a link out of it is judged by where it leads),
    /// --privileged and --cap-add beyond Docker's set refused: each before anything exists.
    #[tokio::test(flavor = "multi_thread")]
    async fn what_the_node_does_not_allow_is_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("dir");
        std::fs::write(shared.join("hello"), "from the host\n").expect("file");
        std::os::unix::fs::symlink("/etc", shared.join("escape")).expect("link");
        let s = setup(AgentOptions {
            extra_args: vec!["--allow-bind".into(), shared.display().to_string()],
            ..Default::default()
        })
        .await;

        let refused = |args: &[&str], why: &str| {
            let name = berth_testkit::unique("refused");
            let out = s
                .berth()
                .args(["run", "--name", &name])
                .args(args)
                .arg(&s.image)
                .run()
                .fail();
            assert_contains(&out, "stderr", why);
            assert!(
                docker_names("container", &name).trim().is_empty(),
                "{name} was created"
            );
            assert!(s.ps_find(&name).is_none());
        };
        refused(
            &["-v", "/etc:/host-etc"],
            "does not allow bind mounts of /etc",
        );
        let escape = format!("{}:/x", shared.join("escape").display());
        refused(&["-v", &escape], "does not allow bind mounts of /etc");
        refused(&["--privileged"], "--allow-privileged");
        refused(&["--network", "host"], "--allow-privileged");
        refused(&["--cap-add", "SYS_ADMIN"], "--allow-cap SYS_ADMIN");
        // Refused by the console itself, naming the flag.
        for (flag, value, field) in [
            ("-v", "relative:path", "invalid volume"),
            ("--mount", "type=nfs,target=/x", "invalid mount"),
            ("--cap-add", "ROOT", "invalid cap-add"),
            ("--stop-timeout", "4000", "invalid stop-timeout"),
            ("--add-host", "nohost", "invalid add-host"),
            ("--network", "bad name", "invalid network"),
        ] {
            let out = s.berth().args(["run", flag, value, &s.image]).run().fail();
            assert_contains(&out, "stderr", field);
        }

        let name = berth_testkit::unique("bind");
        let bind = format!("{}:/host:ro", shared.display());
        s.berth()
            .args(["run", "--name", &name, "-v", &bind, "--cap-drop", "ALL"])
            .args(["--cap-add", "NET_BIND_SERVICE", &s.image])
            .run()
            .ok();
        let out = s
            .berth()
            .args(["exec", &name, "cat", "/host/hello"])
            .run()
            .ok();
        assert_eq!(out.stdout, "from the host\n");
        let out = s
            .berth()
            .args([
                "exec",
                &name,
                "sh",
                "-c",
                "touch /host/x 2>/dev/null || echo ro",
            ])
            .run()
            .ok();
        assert_eq!(out.stdout.trim(), "ro", "{}", out.report(":ro"));
    }

    /// Two containers on one --network (made as a bridge when missing) reach each other by
    /// name; -P publishes an --expose'd port and ps shows where.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_network_by_name_and_publish_all() {
        // Declared before the agent, so dropped after its containers' guard.
        let network = berth_testkit::unique("net");
        let _objects = DockerObjects {
            volumes: vec![],
            networks: vec![network.clone()],
        };
        let s = setup(AgentOptions::default()).await;
        let server = berth_testkit::unique("srv");
        s.berth()
            .args([
                "run",
                "--name",
                &server,
                "--network",
                &network,
                "--expose",
                "8080",
            ])
            .args(["-P", &s.image, "--listen", "8080"])
            .run()
            .ok();
        let client = berth_testkit::unique("cli");
        s.berth()
            .args(["run", "--name", &client, "--network", &network, &s.image])
            .run()
            .ok();
        assert!(
            !docker_names("network", &network).trim().is_empty(),
            "the network was made"
        );
        let out = eventually("the server to answer by name", || {
            let out = s
                .berth()
                .args(["exec", &client, "sh", "-c"])
                .arg(format!("nc {server} 8080 </dev/null"))
                .run();
            out.stdout.contains("berth-workload").then_some(out)
        });
        assert!(out.status.success(), "{}", out.report(""));

        let ps = eventually("ps to show the published port", || {
            let out = s.berth().args(["ps", "-o", "wide"]).run().ok();
            out.stdout
                .lines()
                .find(|l| l.contains(&server) && l.contains("->8080/tcp"))
                .map(str::to_owned)
        });
        // The IPv4 mapping: Docker may give the IPv6 one another port, and list it first.
        let host_port: u16 = ps
            .split_whitespace()
            .filter(|w| w.starts_with("0.0.0.0:") || w.starts_with("127.0.0.1:"))
            .find_map(|w| {
                w.split("->8080/tcp")
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no host port in {ps:?}"));
        // Docker's proxy for the published port may take a moment after ps shows it.
        eventually("the published port to answer", || {
            let mut answer = String::new();
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", host_port)).ok()?;
            std::io::Read::read_to_string(&mut conn, &mut answer).ok()?;
            answer.contains("berth-workload").then_some(())
        });
        let ls = s.berth().args(["-o", "json", "network", "ls"]).run().ok();
        let listed: serde_json::Value = serde_json::from_str(&ls.stdout).expect("json");
        let ours = listed
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == network.as_str()))
            .unwrap_or_else(|| panic!("{}", ls.report("network ls")));
        assert_eq!(ours["driver"], "bridge");
        let mut users: Vec<&str> = ours["used_by"]
            .as_array()
            .map(|u| u.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        users.sort();
        let mut expected = [client.as_str(), server.as_str()];
        expected.sort();
        assert_eq!(users, expected);
        for c in [&server, &client] {
            s.berth().args(["rm", "-f", c]).run().ok();
        }
        s.berth().args(["network", "rm", &network]).run().ok();
        assert!(
            docker_names("network", &network).trim().is_empty(),
            "removed from Docker"
        );
    }
}

mod stats {
    use super::*;

    /// One sample as JSON; `None` (to be tried again) when the call fails, as it may while
    /// a container has just started or a loaded peer answers late.
    fn sample(a: &AgentProcess, names: &[&str]) -> Option<Vec<serde_json::Value>> {
        let out = Cmd::berth(&a.url())
            .args(["-o", "json", "stats", "--no-stream"])
            .args(names)
            .run();
        if out.code() != Some(0) {
            return None;
        }
        Some(serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout)))
    }

    /// A container burning a core on B, seen through A: its CPU a good part of a core, an idle
    /// one beside it near zero, memory against the node's, network bytes once it talks; a
    /// name that matches nothing is an error naming it.
    #[tokio::test(flavor = "multi_thread")]
    async fn no_stream_shows_a_burning_workload_s_cpu_through_another_agent() {
        let (a, b, image, _guards) = super::exec::two_agents((71, 72)).await;
        let via_a = || Cmd::berth(&a.url());
        let hot = berth_testkit::unique("burn");
        let idle = berth_testkit::unique("idle");
        for (name, burn) in [(&hot, true), (&idle, false)] {
            let mut cmd = via_a();
            cmd = cmd.args([
                "run",
                "--name",
                name,
                "--node",
                &b.name,
                &image,
                "--forever",
            ]);
            cmd = cmd.args(if burn {
                ["--burn-cpu"].as_slice()
            } else {
                ["--interval-ms", "1000"].as_slice()
            });
            cmd.run().ok();
        }
        let rows = eventually("the burning container's CPU through A", || {
            let rows = sample(&a, &[&hot, &idle])?;
            let cpu = |n: &str| {
                rows.iter()
                    .find(|r| r["name"] == n)
                    .and_then(|r| r["cpu_percent"].as_f64())
            };
            // A spinning thread is 100 % of a core; the suite shares two cores, so less.
            (cpu(&hot)? > 25.0 && cpu(&idle)? < 5.0).then_some(rows)
        });
        let find = |n: &str| rows.iter().find(|r| r["name"] == n).expect("row");
        let h = find(&hot);
        assert_eq!(h["node"], b.name.as_str(), "{h}");
        assert!(h["memory_bytes"].as_u64() > Some(0), "{h}");
        assert!(
            h["memory_limit_bytes"].as_u64() > h["memory_bytes"].as_u64(),
            "no limit: the node's memory: {h}"
        );

        // The idle container reads the same through its owner and through a peer (gossip once
        // rounded a few hundred KiB to 0 B).
        let mem = |agent: &AgentProcess| -> Option<u64> {
            let out = Cmd::berth(&agent.url())
                .args(["-o", "json", "ps"])
                .run()
                .ok();
            let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).ok()?;
            rows.iter().find(|r| r["name"] == idle.as_str())?["memory_bytes"].as_u64()
        };
        eventually("the same memory figure through A and B", || {
            let (through_a, through_b) = (mem(&a)?, mem(&b)?);
            (through_a > 0 && through_a == through_b).then_some(())
        });

        // One sample as a table.
        let out = via_a().args(["stats", "--no-stream"]).run().ok();
        assert_contains(&out, "stdout", "NET I/O");
        assert_contains(&out, "stdout", &hot);
        // Streaming into a pipe: table after table, with no escape codes (those are for a
        // terminal, where the tui test sees the redraw).
        let bin = berth_testkit::bin_path("berth").expect("the berth binary");
        let out = Cmd::new("timeout")
            .args(["5".as_ref(), bin.as_os_str()])
            .args(["--agent", &a.url(), "stats"])
            .run();
        let tables = out.stdout.matches("CONTAINER ID").count();
        assert!(tables >= 2, "{}", out.report("refreshed while streaming"));
        assert!(
            !out.stdout.contains('\x1b'),
            "{}",
            out.report("no escape codes in a pipe")
        );

        // Traffic to the bridge's gateway (ARP at least) shows in the owner's figures.
        via_a()
            .args(["exec", &idle, "sh", "-c"])
            .args(["nc -w 1 $(ip route | awk '/default/ {print $3}') 9 </dev/null; true"])
            .run()
            .ok();
        eventually("network bytes through A", || {
            let rows = sample(&a, &[&idle])?;
            let r = rows.first()?;
            (r["net_tx_bytes"].as_u64()? > 0 && r["net_rx_bytes"].as_u64()? > 0).then_some(())
        });

        let out = via_a()
            .args(["stats", "--no-stream", &hot, "no-such-container"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "no-such-container");
        assert!(
            !out.stderr.contains(&hot),
            "{}",
            out.report("only the missing one")
        );
    }

    /// A node gossip has stopped hearing from is not asked, and the answer says so instead of
    /// its containers (and volumes) vanishing without a word; once it is down, `ps` shows its
    /// container's last state as unknown, never as running.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_node_not_heard_from_is_named_and_its_containers_not_shown_running() {
        let (a, mut b, image, _guards) = super::exec::two_agents((83, 84)).await;
        let via_a = || Cmd::berth(&a.url());
        let name = berth_testkit::unique("quiet");
        via_a()
            .args(["run", "--name", &name, "--node", &b.name, &image])
            .args(["--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        eventually("A to see it running", || {
            let out = via_a().args(["ps"]).run().ok();
            out.stdout.contains(&name).then_some(())
        });
        b.kill9();
        eventually("B suspect or down through A", || {
            let out = via_a().args(["-o", "json", "nodes"]).run().ok();
            let nodes: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            let row = nodes
                .as_array()?
                .iter()
                .find(|n| n["name"] == b.name.as_str())?;
            matches!(row["status"].as_str(), Some("suspect" | "down")).then_some(())
        });
        let out = via_a().args(["stats", "--no-stream"]).run().ok();
        assert_contains(&out, "stderr", &format!("node {}: not asked", b.name));
        let out = via_a().args(["volume", "ls"]).run().ok();
        assert_contains(&out, "stderr", &b.name);
        assert_contains(&out, "stderr", "not asked");

        let row = eventually("B down, its container's state unknown through A", || {
            let out = via_a().args(["-o", "json", "ps", "-a"]).run().ok();
            let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).ok()?;
            let row = rows.into_iter().find(|r| r["name"] == name.as_str())?;
            (row["node_status"] == "down").then_some(row)
        });
        assert_eq!(row["state"], "running", "the last state known: {row}");
        assert_eq!(row["status"], "node down?", "{row}");
        let out = via_a().args(["ps"]).run().ok();
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{}", out.report("listed")));
        assert!(
            line.contains("running?") && line.contains("node down?"),
            "{}",
            out.report("not shown as running")
        );
    }
}

mod cp {
    use super::*;
    use std::path::Path;

    fn sha256_of(path: &Path) -> String {
        first_word(&Cmd::new("sha256sum").arg(path).run().ok())
    }

    /// `sha256sum PATH` run in the container, through A.
    fn sha256_in(a: &AgentProcess, name: &str, path: &str) -> String {
        first_word(
            &Cmd::berth(&a.url())
                .args(["exec", name, "sha256sum", path])
                .run()
                .ok(),
        )
    }

    /// Both ways through another agent: a binary file (every byte value) into a directory, out
    /// under a new name and into a local directory; a directory tree with a symlink in and back
    /// out; a tar archive on stdout; a stopped container still copied from; a missing path and a
    /// missing destination directory refused, creating nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn both_ways_with_a_binary_file_through_another_agent() {
        let (a, b, image, _guards) = super::exec::two_agents((75, 76)).await;
        let via_a = || Cmd::berth(&a.url());
        let name = berth_testkit::unique("cp");
        via_a()
            .args(["run", "--name", &name, "--node", &b.name, &image])
            .args(["--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        via_a().args(["exec", &name, "mkdir", "/data"]).run().ok();

        let local = tempfile::tempdir().expect("tmp");
        let blob = local.path().join("blob.bin");
        // Every byte value, in an order that is not a short cycle: 1 MiB.
        let mut x: u32 = 1;
        let bytes: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        std::fs::write(&blob, &bytes).expect("write");
        let want = sha256_of(&blob);

        // In: into an existing directory, under its own name.
        via_a()
            .arg("cp")
            .arg(&blob)
            .arg(format!("{name}:/data"))
            .run()
            .ok();
        assert_eq!(sha256_in(&a, &name, "/data/blob.bin"), want, "in, intact");

        // Out: to a new name, and into an existing directory.
        let renamed = local.path().join("back.bin");
        via_a()
            .args(["cp", &format!("{name}:/data/blob.bin")])
            .arg(&renamed)
            .run()
            .ok();
        assert_eq!(
            std::fs::read(&renamed).expect("back.bin"),
            bytes,
            "out, intact"
        );
        let into = local.path().join("into");
        std::fs::create_dir(&into).expect("dir");
        via_a()
            .args(["cp", &format!("{name}:data/blob.bin")])
            .arg(&into)
            .run()
            .ok();
        assert_eq!(
            sha256_of(&into.join("blob.bin")),
            want,
            "a relative path is from /"
        );

        // A tree with a symlink: to a new path it takes that name; back out the same.
        let tree = local.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).expect("tree");
        std::fs::write(tree.join("sub/note.txt"), "hello\n").expect("note");
        std::os::unix::fs::symlink("sub/note.txt", tree.join("link")).expect("symlink");
        via_a()
            .arg("cp")
            .arg(&tree)
            .arg(format!("{name}:/srv"))
            .run()
            .ok();
        let out = via_a()
            .args([
                "exec",
                &name,
                "sh",
                "-c",
                "cat /srv/sub/note.txt; readlink /srv/link",
            ])
            .run()
            .ok();
        assert_eq!(
            out.stdout,
            "hello\nsub/note.txt\n",
            "{}",
            out.report("the tree in")
        );
        let back = local.path().join("tree-back");
        via_a()
            .args(["cp", &format!("{name}:/srv")])
            .arg(&back)
            .run()
            .ok();
        assert_eq!(
            std::fs::read_to_string(back.join("sub/note.txt")).expect("note back"),
            "hello\n"
        );
        assert_eq!(
            std::fs::read_link(back.join("link")).expect("the symlink stays one"),
            Path::new("sub/note.txt")
        );

        // `DIR/.`: the contents, to a new name; `-L`: what a link points to, under its name; a
        // local destination that is a symlink is written through.
        let contents = local.path().join("contents");
        via_a()
            .args(["cp", &format!("{name}:/srv/.")])
            .arg(&contents)
            .run()
            .ok();
        assert!(
            contents.join("sub/note.txt").is_file(),
            "the contents, not srv/"
        );
        via_a()
            .args(["exec", &name, "ln", "-s", "/data/blob.bin", "/blob-link"])
            .run()
            .ok();
        let followed = local.path().join("followed");
        std::fs::create_dir(&followed).expect("dir");
        via_a()
            .args(["cp", "-L", &format!("{name}:/blob-link")])
            .arg(&followed)
            .run()
            .ok();
        assert_eq!(
            sha256_of(&followed.join("blob-link")),
            want,
            "-L keeps the link's name"
        );
        let through = local.path().join("through");
        std::os::unix::fs::symlink(&renamed, &through).expect("symlink");
        via_a()
            .args(["cp", &format!("{name}:/srv/sub/note.txt")])
            .arg(&through)
            .run()
            .ok();
        assert_eq!(
            std::fs::read_to_string(&renamed).expect("target"),
            "hello\n"
        );
        assert!(
            std::fs::symlink_metadata(&through)
                .expect("link")
                .file_type()
                .is_symlink()
        );

        // `-`: the archive itself on stdout.
        let out = via_a()
            .args(["cp", &format!("{name}:/srv/sub"), "-"])
            .run()
            .ok();
        assert!(
            out.stdout.contains("sub/note.txt") && out.stdout.contains("ustar"),
            "{}",
            out.report("a tar archive")
        );

        // Refusals name what is missing and create nothing.
        let out = via_a()
            .args(["cp", &format!("{name}:/no/such/file")])
            .arg(local.path())
            .run()
            .fail();
        assert_contains(&out, "stderr", "no such file or directory");
        assert_contains(&out, "stderr", "/no/such/file");
        let out = via_a()
            .arg("cp")
            .arg(&blob)
            .arg(format!("{name}:/missing/"))
            .run()
            .fail();
        assert_contains(&out, "stderr", "/missing/ does not exist");
        via_a().args(["exec", &name, "ls", "/missing"]).run().fail();
        let out = via_a()
            .args(["cp", "nope-container:/x"])
            .arg(local.path())
            .run()
            .fail();
        assert_contains(&out, "stderr", "nope-container");

        // A stopped container's files are still there to copy.
        via_a().args(["stop", "-t", "0", &name]).run().ok();
        let after = local.path().join("after-stop.bin");
        via_a()
            .args(["cp", &format!("{name}:/data/blob.bin")])
            .arg(&after)
            .run()
            .ok();
        assert_eq!(sha256_of(&after), want, "copied from a stopped container");
    }
}

mod volume_placement {
    use super::*;

    /// Where the containers named `prefix…` run, through `agent`, once its view shows any
    /// (gossip brings another node's a moment after the run).
    fn nodes_of(agent: &AgentProcess, prefix: &str) -> Vec<String> {
        eventually(&format!("{prefix} in the view"), || {
            let out = Cmd::berth(&agent.url())
                .args(["-o", "json", "ps", "-a"])
                .run()
                .ok();
            let all: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
            let nodes: Vec<String> = all
                .iter()
                .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
                .filter_map(|c| c["node"].as_str().map(str::to_owned))
                .collect();
            (!nodes.is_empty()).then_some(nodes)
        })
    }

    /// A named volume made on B pins what mounts it to B — a later `run` through A, and a
    /// service's replica — with its data, though spreading alone would pick the idle A; a
    /// `--node` says otherwise.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_named_volume_pins_runs_and_replicas_to_the_node_that_holds_it() {
        // Declared first, so it is dropped last: the volume can go only once the containers
        // that mount it are gone.
        let volume = berth_testkit::unique("pin-vol");
        let _objects = super::parity::DockerObjects {
            volumes: vec![volume.clone()],
            networks: vec![],
        };
        let (a, b, image, _guards) = super::exec::two_agents((77, 78)).await;
        let via_a = || Cmd::berth(&a.url());
        let mount = format!("{volume}:/data");
        let forever = ["--forever", "--interval-ms", "1000"];
        let first = berth_testkit::unique("pin-first");
        via_a()
            .args([
                "run", "--name", &first, "--node", &b.name, "-v", &mount, &image,
            ])
            .args(forever)
            .run()
            .ok();
        via_a()
            .args(["exec", &first, "sh", "-c", "echo kept > /data/f"])
            .run()
            .ok();
        via_a().args(["rm", "-f", &first]).run().ok();
        // B busier than A: spreading alone would pick A.
        let busy = berth_testkit::unique("pin-busy");
        via_a()
            .args(["run", "--name", &busy, "--node", &b.name, &image])
            .args(forever)
            .run()
            .ok();
        eventually("B's row, through A, lists the volume", || {
            let out = via_a().args(["-o", "json", "nodes"]).run().ok();
            let nodes: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            let row = nodes
                .as_array()?
                .iter()
                .find(|n| n["name"] == b.name.as_str())?;
            row["volumes"]
                .as_array()?
                .iter()
                .any(|v| v == volume.as_str())
                .then_some(())
        });

        let second = berth_testkit::unique("pin-second");
        via_a()
            .args(["run", "--name", &second, "-v", &mount, &image])
            .args(forever)
            .run()
            .ok();
        assert_eq!(
            nodes_of(&a, &second),
            std::slice::from_ref(&b.name),
            "followed its volume"
        );
        let out = via_a().args(["exec", &second, "cat", "/data/f"]).run().ok();
        assert_eq!(out.stdout, "kept\n", "{}", out.report("the data is there"));
        via_a().args(["rm", "-f", &second]).run().ok();

        let service = berth_testkit::unique("pinsvc");
        via_a()
            .args([
                "service", "create", "--name", &service, "-v", &mount, &image, "--",
            ])
            .args(forever)
            .run()
            .ok();
        assert_eq!(
            nodes_of(&a, &format!("{service}.")),
            std::slice::from_ref(&b.name),
            "the replica went to its volume"
        );
        via_a().args(["service", "rm", &service]).run().ok();

        let elsewhere = berth_testkit::unique("pin-told");
        via_a()
            .args([
                "run", "--name", &elsewhere, "--node", &a.name, "-v", &mount, &image,
            ])
            .args(forever)
            .run()
            .ok();
        assert_eq!(
            nodes_of(&a, &elsewhere),
            std::slice::from_ref(&a.name),
            "--node wins"
        );
    }
}

mod tool {
    use super::*;

    /// `ps` for scripts: `-q` ids only, `-f` filters that all hold, `--format` fields.
    #[tokio::test(flavor = "multi_thread")]
    async fn ps_quiet_filter_and_format() {
        let s = setup(AgentOptions::default()).await;
        let up = berth_testkit::unique("up");
        let done = berth_testkit::unique("done");
        s.berth()
            .args(["run", "--name", &up, "--label", "tier=web", &s.image])
            .args(["--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        s.berth()
            .args(["run", "--name", &done, &s.image, "--exit", "0"])
            .run()
            .ok();
        eventually("the short one to exit", || {
            (s.ps_find(&done)?["state"] == "exited").then_some(())
        });

        // nodes speaks the same: -q for names, --format for fields.
        let names = s.berth().args(["nodes", "-q"]).run().ok();
        assert_eq!(names.stdout, format!("{}\n", s.agent.name));
        let fmt = s
            .berth()
            .args([
                "nodes",
                "--format",
                "{{.Name}}\\t{{.Status}} {{.Containers}}",
            ])
            .run()
            .ok();
        assert_eq!(
            fmt.stdout,
            format!("{}\talive 1/2\n", s.agent.name),
            "{}",
            fmt.report("one running of two")
        );
        let bad = s
            .berth()
            .args(["nodes", "--format", "{{.Nope}}"])
            .run()
            .fail();
        assert_contains(&bad, "stderr", "format");
        let mine = ["-f", &format!("node={}", s.agent.name)];
        let out = s.berth().args(["ps", "-q"]).args(mine).run().ok();
        let id = s.ps_find(&up).expect("listed")["id"]
            .as_str()
            .unwrap_or_default()[..12]
            .to_owned();
        assert_eq!(
            out.stdout,
            format!("{id}\n"),
            "{}",
            out.report("the running one's id")
        );
        let out = s
            .berth()
            .args(["ps", "-a", "-f", "state=exited"])
            .args(mine)
            .args(["--format", "{{.Name}}\\t{{.State}}"])
            .run()
            .ok();
        assert_eq!(
            out.stdout,
            format!("{done}\texited\n"),
            "{}",
            out.report("filtered")
        );
        let out = s
            .berth()
            .args([
                "ps",
                "-a",
                "-f",
                "label=tier=web",
                "--format",
                "{{.Name}} {{.Label \"tier\"}}",
            ])
            .run()
            .ok();
        assert_eq!(
            out.stdout,
            format!("{up} web\n"),
            "{}",
            out.report("by label")
        );
        let out = s.berth().args(["ps", "-f", "colour=red"]).run().fail();
        assert_contains(&out, "stderr", "invalid filter");
        let out = s.berth().args(["ps", "--format", "{{.Nope}}"]).run().fail();
        assert_contains(&out, "stderr", "invalid format");
    }

    /// `berth version` names both sides; completions load in bash and know the commands; man
    /// pages come out of the same definitions, one a command.
    #[tokio::test(flavor = "multi_thread")]
    async fn version_completions_and_man_pages() {
        let s = setup(AgentOptions::default()).await;
        let version = env!("CARGO_PKG_VERSION");
        let out = s.berth().arg("version").run().ok();
        assert_contains(&out, "stdout", &format!("console: berth {version}"));
        assert_contains(
            &out,
            "stdout",
            &format!("agent:   berthd {version} (node {}", s.agent.name),
        );
        let out = s.berth().args(["-o", "json", "version"]).run().ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(v["node"], s.agent.name.as_str(), "{v}");
        assert_eq!(v["agent"], version, "{v}");

        let bin = berth_testkit::bin_path("berth").expect("the berth binary");
        let script = format!(
            "source <('{}' completion bash) && complete -p berth",
            bin.display()
        );
        let out = Cmd::new("bash").args(["-c", &script]).run().ok();
        assert_contains(&out, "stdout", "-F _berth berth");
        let out = s.berth().args(["completion", "bash"]).run().ok();
        for word in ["cp", "exec", "stats", "--follow-link"] {
            assert_contains(&out, "stdout", word);
        }
        let out = s.berth().args(["completion", "zsh"]).run().ok();
        assert_contains(&out, "stdout", "#compdef berth");
        let out = s.berth().args(["completion", "fish"]).run().ok();
        assert_contains(&out, "stdout", "complete -c berth");

        let dir = tempfile::tempdir().expect("tmp");
        s.berth().args(["man", "--dir"]).arg(dir.path()).run().ok();
        let page = std::fs::read_to_string(dir.path().join("berth-cp.1")).expect("berth-cp.1");
        assert!(page.contains("follow\\-link"), "{page}");
        assert!(dir.path().join("berth.1").is_file());
        let out = s.berth().arg("man").run().ok();
        assert_contains(&out, "stdout", ".TH berth 1");
    }
}

mod contexts {
    use super::*;

    /// The node that answered `berth nodes`: the one heard from 0 ms ago (itself).
    fn answered(out: &Output) -> String {
        let nodes: Vec<serde_json::Value> = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}", out.report("nodes -o json")));
        nodes
            .iter()
            .find(|n| n["age_ms"] == 0)
            .and_then(|n| n["name"].as_str())
            .unwrap_or_else(|| panic!("{}", out.report("no node answered")))
            .to_owned()
    }

    /// Contexts chosen by `context use`, BERTH_CONTEXT and --context, with the documented
    /// precedence against --agent, BERTH_AGENT and BERTH_TOKEN; a context's token file opens
    /// a cluster with a secret; bad uses are refused naming what is wrong and change nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn contexts_choose_the_agent_and_its_token() {
        let token = "context-secret-0123456789";
        let a = AgentProcess::spawn(AgentOptions {
            token: Some(token.into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let b = AgentProcess::spawn(AgentOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let home = tempfile::tempdir().expect("temp dir");
        let config_dir = home.path().join("conf");
        let token_file = home.path().join("a.token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token file");
        let berth = || {
            Cmd::berth_without_agent()
                .env("XDG_CONFIG_HOME", &config_dir)
                .env("HOME", home.path())
        };
        let nodes = |cmd: Cmd| answered(&cmd.args(["-o", "json", "nodes"]).run().ok());

        berth()
            .args(["context", "add", "a", "--agent", &a.url(), "--token-file"])
            .arg(&token_file)
            .args(["--description", "has a secret"])
            .run()
            .ok();
        berth()
            .args(["context", "add", "b", "--agent", &b.url(), "--use"])
            .run()
            .ok();
        let file = config_dir.join("berth/config.toml");
        let text = std::fs::read_to_string(&file).expect("config written");
        assert!(
            text.contains("[contexts.a]") && text.contains("a.token"),
            "{text}"
        );
        assert!(
            !text.contains(token),
            "the token itself is never written: {text}"
        );

        // The context in use, then BERTH_CONTEXT, then --context over BERTH_CONTEXT.
        assert_eq!(nodes(berth()), b.name);
        assert_eq!(nodes(berth().env("BERTH_CONTEXT", "a")), a.name);
        assert_eq!(
            nodes(berth().env("BERTH_CONTEXT", "a").args(["--context", "b"])),
            b.name
        );
        // BERTH_AGENT (with BERTH_TOKEN) beats the context in use...
        assert_eq!(
            nodes(
                berth()
                    .env("BERTH_AGENT", a.url())
                    .env("BERTH_TOKEN", token)
            ),
            a.name
        );
        // ...but not a --context typed on the command line.
        assert_eq!(
            nodes(
                berth()
                    .env("BERTH_AGENT", b.url())
                    .env("BERTH_TOKEN", "meant-for-something-else")
                    .args(["--context", "a"])
            ),
            a.name
        );
        // --agent beats everything, and the context's token does not go with it: A refuses a
        // console without a token.
        let out = berth()
            .env("BERTH_CONTEXT", "a")
            .args(["--agent", &a.url(), "nodes"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "speaks only TLS");
        let out = berth()
            .args(["--agent", &a.url(), "--context", "a", "nodes"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "give one of them");

        // ls marks the one in use; show names it, and what chose it in JSON.
        let out = berth().args(["context", "ls"]).run().ok();
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("b *") && l.contains(&b.url())),
            "{}",
            out.report("b in use")
        );
        assert_contains(&out, "stdout", "has a secret");
        let out = berth().args(["-o", "json", "context", "ls"]).run().ok();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
        let current: Vec<&str> = rows
            .iter()
            .filter(|r| r["current"] == true)
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(current, ["b"], "{}", out.report("one current"));
        let out = berth().args(["context", "show"]).run().ok();
        assert_eq!(out.stdout, "b\n");
        let out = berth()
            .env("BERTH_CONTEXT", "a")
            .args(["-o", "json", "context", "show"])
            .run()
            .ok();
        let shown: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(shown["name"], "a");
        assert_eq!(shown["from"], "BERTH_CONTEXT");

        // Refusals that change nothing.
        let before = std::fs::read_to_string(&file).expect("config");
        let out = berth().args(["context", "rm", "b"]).run().fail();
        assert_contains(&out, "stderr", "context b is in use");
        let out = berth()
            .args(["context", "add", "a", "--agent", &b.url()])
            .run()
            .fail();
        assert_contains(&out, "stderr", "already a context named a");
        let out = berth().args(["context", "add", "c"]).run().fail();
        assert_contains(&out, "stderr", "give --agent");
        let out = berth()
            .args(["context", "add", "c", "--agent", &b.url(), "--token", "t"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "--token-file");
        let out = berth()
            .args(["context", "add", "c", "--agent", "no-port"])
            .run()
            .fail();
        assert_contains(&out, "stderr", "missing port");
        let out = berth()
            .args(["context", "add", "bad/name", "--agent", &b.url()])
            .run()
            .fail();
        assert_contains(&out, "stderr", "invalid context name");
        let out = berth().args(["context", "use", "nope"]).run().fail();
        assert_contains(&out, "stderr", "no context named \"nope\"");
        assert_contains(&out, "stderr", "a, b");
        assert_eq!(std::fs::read_to_string(&file).expect("config"), before);

        // A context whose token file went away is named.
        let moved = home.path().join("moved.token");
        std::fs::rename(&token_file, &moved).expect("moved");
        let out = berth().args(["--context", "a", "nodes"]).run().fail();
        assert_contains(&out, "stderr", "context a");
        assert_contains(&out, "stderr", "a.token");

        // Back to default: no context, so the default address (or an embedded agent) would
        // be used; rm then forgets b, and naming it is an error.
        berth().args(["context", "use", "default"]).run().ok();
        berth().args(["context", "rm", "b"]).run().ok();
        let out = berth().args(["context", "show"]).run().ok();
        assert_eq!(out.stdout, "default\n");
        let out = berth().args(["--context", "b", "nodes"]).run().fail();
        assert_contains(&out, "stderr", "no context named \"b\"");
        // An agent that does not answer is named with its context, and the hint is about
        // contexts (not --agent, which was not given).
        berth()
            .args(["context", "add", "gone", "--agent", "127.0.0.1:1"])
            .run()
            .ok();
        let out = berth().args(["--context", "gone", "nodes"]).run().fail();
        assert_contains(&out, "stderr", "(context gone)");
        assert_contains(&out, "stderr", "berth context use default");
    }
}

mod metrics {
    use super::*;
    use std::io::{Read, Write};

    /// A whole HTTP/1.1 exchange over a plain socket: the status line's code and the body.
    fn http(addr: &str, request_line: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("cannot connect to metrics at {addr}: {e}"));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        write!(
            stream,
            "{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap_or_else(|e| panic!("cannot send: {e}"));
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("cannot read the answer: {e}"));
        let code = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (code, body)
    }

    /// The value of the sample whose line starts with `series` (name and labels), if any.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// `--metrics-listen`: a Prometheus scrape names the node's and its containers' figures,
    /// gRPC calls by method and code with latency, gossip, Docker and watch subscribers.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_agent_serves_prometheus_metrics() {
        use futures::StreamExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
            .port();
        let addr = format!("127.0.0.1:{port}");
        let s = setup(AgentOptions {
            extra_args: vec!["--metrics-listen".into(), addr.clone()],
            ..Default::default()
        })
        .await;
        let name = berth_testkit::unique("metered");
        s.berth()
            .args(["run", "--name", &name, &s.image, "--forever"])
            .run()
            .ok();
        let missing = s.berth().args(["stop", "no-such-container"]).run().fail();
        assert!(missing.stderr.contains("no-such-container"));
        let mut client = s
            .agent
            .client()
            .await
            .unwrap_or_else(|e| panic!("cannot connect: {e}"));
        let mut watch = client
            .watch(berth_proto::v1::WatchRequest::default())
            .await
            .unwrap_or_else(|e| panic!("cannot watch: {e}"))
            .into_inner();
        let _snapshot = watch.next().await;

        let text = eventually("the container's memory in the metrics", || {
            let (code, body) = http(&addr, "GET /metrics");
            assert_eq!(code, 200, "{body}");
            let series = "berth_container_memory_bytes{id=\"";
            body.lines()
                .any(|l| l.starts_with(series) && l.contains(&format!("name=\"{name}\"")))
                .then_some(body)
        });
        assert!(
            text.trim_end().ends_with("# EOF"),
            "OpenMetrics text: {text}"
        );
        for (series, at_least) in [
            ("berth_containers{state=\"running\"}", 1.0),
            ("berth_docker_up", 1.0),
            ("berth_watch_subscribers", 1.0),
            ("berth_cluster_nodes{status=\"alive\"}", 1.0),
            ("berth_node_memory_total_bytes", 1.0),
            ("berth_grpc_requests_total{method=\"Run\",code=\"OK\"}", 1.0),
            (
                "berth_grpc_requests_total{method=\"Stop\",code=\"NOT_FOUND\"}",
                1.0,
            ),
            (
                "berth_grpc_request_duration_seconds_count{method=\"Run\"}",
                1.0,
            ),
            ("berth_gossip_sent_bytes_total", 0.0),
            ("berth_gossip_exchanges_total", 0.0),
            (
                "berth_gossip_rejected_datagrams_total{reason=\"forged\"}",
                0.0,
            ),
            ("berth_docker_reconnects_total", 0.0),
            ("berth_node_cpu_percent", 0.0),
        ] {
            let value = sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
            assert!(
                value >= at_least,
                "{series} is {value}, want ≥ {at_least}:\n{text}"
            );
        }
        let running = sample(&text, "berth_containers{state=\"running\"}");
        assert_eq!(running, Some(1.0), "only this agent's container:\n{text}");

        drop(watch);
        eventually("the watch stream to be counted closed", || {
            let (_, body) = http(&addr, "GET /metrics");
            (sample(&body, "berth_watch_subscribers") == Some(0.0)).then_some(())
        });
        let (code, _) = http(&addr, "POST /metrics");
        assert_eq!(code, 405);
        let (code, body) = http(&addr, "GET /");
        assert_eq!(code, 404);
        assert!(body.contains("/metrics"), "{body}");
    }
}

mod events {
    use super::*;
    use std::io::BufRead;

    /// `berth events`: a container's life (created, started, died with its code, removed) and
    /// the placement, read back with --since/--until, filtered, as JSON, and followed live.
    #[tokio::test(flavor = "multi_thread")]
    async fn events_tell_a_containers_life_and_follow_new_ones() {
        let s = setup(AgentOptions::default()).await;
        // Followed from before anything happens: the live stream must see it too.
        let berth = berth_testkit::bin_path("berth").unwrap_or_else(|e| panic!("{e}"));
        let mut follower = std::process::Command::new(berth)
            .args(["--agent", &s.agent.url(), "events", "-f", "event=died"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start berth events: {e}"));
        let stdout = follower
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        // Let the follower's stream open before the container exits.
        std::thread::sleep(Duration::from_millis(500));

        let name = berth_testkit::unique("evented");
        s.berth()
            .args([
                "run", "--name", &name, &s.image, "--sleep", "2", "--exit", "3",
            ])
            .run()
            .ok();
        eventually("the container to exit", || {
            let ps = s.ps_json();
            ps.iter()
                .any(|c| c["name"] == name.as_str() && c["state"] == "exited")
                .then_some(())
        });
        s.berth().args(["rm", &name]).run().ok();

        let all = eventually("the removal among the events", || {
            let out = s
                .berth()
                .args(["events", "--since", "5m", "--until", "0s"])
                .run()
                .ok();
            out.stdout
                .lines()
                .any(|l| l.contains("container removed") && l.contains(&name))
                .then_some(out)
        });
        let ours: Vec<&str> = all.stdout.lines().filter(|l| l.contains(&name)).collect();
        let actions: Vec<&str> = ours
            .iter()
            .filter(|l| l.split_whitespace().nth(1) == Some("container"))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(
            actions,
            ["created", "started", "died", "removed"],
            "{}",
            all.report("one event per change, in order")
        );
        assert!(
            ours.iter()
                .any(|l| l.contains("container died") && l.contains("exit=3")),
            "{}",
            all.report("the exit code")
        );
        assert!(
            ours.iter().any(|l| l.starts_with(char::is_numeric)
                && l.contains("placement placed")
                && l.contains(&format!("node={}", s.agent.name))),
            "{}",
            all.report("the placement names the node")
        );

        let json = s
            .berth()
            .args(["-o", "json", "events", "--since", "5m", "--until", "0s"])
            .args(["-f", &format!("name={name}"), "-f", "type=container"])
            .args(["-f", "event=died"])
            .run()
            .ok();
        let lines: Vec<serde_json::Value> = json
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 1, "{}", json.report("one died event"));
        assert_eq!(lines[0]["exit_code"], 3);
        assert_eq!(lines[0]["node"], s.agent.name.as_str());

        let live = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("the follower saw nothing: {e}"));
        assert!(live.contains(&name) && live.contains("died"), "{live}");
        let _ = follower.kill();
        let _ = follower.wait();

        let bad = s.berth().args(["events", "-f", "colour=red"]).run().fail();
        assert_contains(&bad, "stderr", "filter");
    }
}

mod node_admin {
    use super::*;
    use std::net::Ipv4Addr;

    /// `berth node drain|activate|rm` through one agent holds on every agent: a drained node
    /// gets nothing new, an active one does again, an alive one cannot be forgotten, and a
    /// down one that is forgotten leaves every view with its containers.
    #[tokio::test(flavor = "multi_thread")]
    async fn drain_activate_and_forget_a_node_cluster_wide() {
        let image = berth_testkit::workload_image()
            .await
            .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
        // The guards first, so they drop after the agents: a service's reconciler could
        // otherwise place a replica again between a guard's sweep and its agent's end.
        let names: Vec<String> = (0..4).map(|_| berth_testkit::unique("node")).collect();
        let _guards: Vec<ContainerGuard> = names.iter().map(|n| ContainerGuard::node(n)).collect();
        let spawn = |i: usize, join: Option<String>| {
            AgentProcess::spawn(AgentOptions {
                name: Some(names[i].clone()),
                ip: Some(Ipv4Addr::new(127, 0, 0, 101 + i as u8)),
                extra_args: join
                    .map(|j| vec!["--join".to_owned(), j])
                    .unwrap_or_default(),
                ..Default::default()
            })
        };
        let a = spawn(0, None)
            .await
            .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let b = spawn(1, Some(a.addr.to_string()))
            .await
            .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let c = spawn(2, Some(a.addr.to_string()))
            .await
            .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        let (a_url, c_url, b_name) = (a.url(), c.url(), b.name.clone());
        let via_a = || Cmd::berth(&a_url);
        let via_c = || Cmd::berth(&c_url);
        // A node's JSON row as C shows it.
        let on_c = |name: &str| -> Option<serde_json::Value> {
            let out = Cmd::berth(&c_url).args(["-o", "json", "nodes"]).run().ok();
            let nodes: Vec<serde_json::Value> =
                serde_json::from_str(&out.stdout).unwrap_or_default();
            nodes.into_iter().find(|n| n["name"] == name)
        };
        eventually("three nodes alive through C", || {
            let out = via_c().args(["nodes"]).run().ok();
            (out.stdout.lines().filter(|l| l.contains(" alive ")).count() == 3).then_some(())
        });

        // A service with a replica on each node: the drain moves B's away, as Swarm's does.
        let svc = berth_testkit::unique("drainsvc");
        via_a()
            .args([
                "service",
                "create",
                "--name",
                &svc,
                "--replicas",
                "3",
                &image,
            ])
            .args(["--", "--forever", "--interval-ms", "1000"])
            .run()
            .ok();
        // Running replicas of the service, by node, as C sees them.
        let replicas_on = |node: &str| -> usize {
            let out = Cmd::berth(&c_url).args(["-o", "json", "ps"]).run().ok();
            let all: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
            all.iter()
                .filter(|c| {
                    c["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{svc}.")))
                })
                .filter(|c| c["state"] == "running" && c["node"] == node)
                .count()
        };
        eventually("a replica on B", || {
            (replicas_on(&b_name) == 1).then_some(())
        });

        let drained = via_a().args(["node", "drain", &b_name]).run().ok();
        assert_eq!(drained.stdout.trim(), b_name);
        eventually("B's replica to move to A or C", || {
            let elsewhere = replicas_on(&a.name) + replicas_on(&c.name);
            (replicas_on(&b_name) == 0 && elsewhere == 3).then_some(())
        });
        via_a().args(["service", "rm", &svc]).run().ok();
        eventually("C to see B drained", || {
            on_c(&b_name).filter(|n| n["drained"] == true).map(|_| ())
        });
        let table = via_c().args(["nodes"]).run().ok();
        assert!(
            table
                .stdout
                .lines()
                .any(|l| l.starts_with(&b_name) && l.contains("alive (drained)")),
            "{}",
            table.report("the table says drained")
        );
        for i in 0..3 {
            let name = berth_testkit::unique(&format!("spread{i}"));
            let run = via_c()
                .args(["run", "--name", &name, &image, "--forever"])
                .run()
                .ok();
            assert!(
                !run.stderr.contains(&format!("placed on {b_name}")),
                "{}",
                run.report("nothing new on a drained node")
            );
        }
        let pinned = via_c()
            .args(["run", "--node", &b_name, &image, "--forever"])
            .run()
            .fail();
        assert_contains(&pinned, "stderr", "drained");
        assert_contains(&pinned, "stderr", "berth node activate");

        via_c().args(["node", "activate", &b_name]).run().ok();
        eventually("A to see B active", || {
            let out = via_a().args(["-o", "json", "nodes"]).run().ok();
            let nodes: Vec<serde_json::Value> =
                serde_json::from_str(&out.stdout).unwrap_or_default();
            nodes
                .iter()
                .any(|n| n["name"] == b_name.as_str() && n["drained"] == false)
                .then_some(())
        });
        let on_b = berth_testkit::unique("onb");
        let run = via_a()
            .args([
                "run",
                "--name",
                &on_b,
                "--node",
                &b_name,
                &image,
                "--forever",
            ])
            .run()
            .ok();
        assert_contains(&run, "stderr", &format!("placed on {b_name}"));

        let refused = via_a().args(["node", "rm", &b_name]).run().fail();
        assert_contains(&refused, "stderr", "only a node that is down or has left");
        let missing = via_a().args(["node", "rm", "no-such-node"]).run().fail();
        assert_contains(&missing, "stderr", "no node named");

        drop(b);
        eventually("A to see B down", || {
            let out = via_a().args(["nodes"]).run().ok();
            out.stdout
                .lines()
                .any(|l| l.starts_with(&b_name) && l.contains(" down "))
                .then_some(())
        });
        via_a().args(["node", "rm", &b_name]).run().ok();
        for (who, url) in [("A", &a_url), ("C", &c_url)] {
            eventually(&format!("{who} to forget B and its container"), || {
                let nodes = Cmd::berth(url).args(["nodes"]).run().ok();
                let ps = Cmd::berth(url).args(["ps", "-a"]).run().ok();
                (!nodes.stdout.contains(&b_name) && !ps.stdout.contains(&on_b)).then_some(())
            });
        }
        // An agent that joins afterwards hears of B from gossip, and of its record from the
        // store: it does not show it either, whatever its clock.
        let d = spawn(3, Some(c.addr.to_string()))
            .await
            .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
        eventually("D to see A and C", || {
            let out = Cmd::berth(&d.url()).args(["nodes"]).run().ok();
            (out.stdout.contains(&a.name) && out.stdout.contains(&c.name)).then_some(())
        });
        // Long enough for the store's sync and a few gossip rounds.
        std::thread::sleep(Duration::from_secs(3));
        let nodes = Cmd::berth(&d.url()).args(["nodes"]).run().ok();
        assert!(
            !nodes.stdout.contains(&b_name),
            "{}",
            nodes.report("a forgotten node stays forgotten for a newcomer")
        );
    }
}
