//! The TUI end to end: the real `berth` binary in a detached tmux session of fixed size,
//! against a real `berthd` and real Docker, driven with `tmux send-keys` and read with
//! `tmux capture-pane`. Each test has its own tmux server (a private socket), killed on drop,
//! and its own agent, whose containers a guard removes.
//!
//! Needs tmux: without it the tests fail under CI (`CI` set) and are skipped otherwise.

use berth_testkit::{AgentOptions, AgentProcess, ContainerGuard};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long to wait for something to show on screen.
const EVENTUALLY: Duration = Duration::from_secs(40);
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// The shell's prompt in the tmux pane.
const PROMPT: &str = "tui-e2e$ ";

/// A tmux server of our own with one session running a plain bash.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// `None` (after saying so) when tmux is missing and we are not under CI.
    fn start() -> Option<Tmux> {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is not installed, and CI needs this test (apt-get install tmux)"
            );
            eprintln!("skipping: tmux is not installed (apt-get install tmux)");
            return None;
        }
        let tmux = Tmux {
            socket: berth_testkit::unique("berth-tui"),
            session: berth_testkit::unique("tui"),
        };
        let width = WIDTH.to_string();
        let height = HEIGHT.to_string();
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            &width,
            "-y",
            &height,
            // A shell that does not depend on the developer's: no BERTH_* settings, no colour
            // choice, and short panic reports (a backtrace would push the message off screen).
            "env",
            "-u",
            "BERTH_AGENT",
            "-u",
            "BERTH_TOKEN",
            "-u",
            "NO_COLOR",
            "RUST_BACKTRACE=0",
            "RUST_LIB_BACKTRACE=0",
            &format!("PS1={PROMPT}"),
            "TERM=tmux-256color",
            "bash",
            "--norc",
            "--noprofile",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux.wait_for("the shell prompt", |s| s.contains(PROMPT.trim_end()));
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux {args:?}: {e}"))
    }

    /// Keys by tmux's names (`Enter`, `Escape`, `C-d`, `Tab`) or single characters.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "send-keys {keys:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Text typed as is.
    fn text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, "-l", "--", text]);
        assert!(
            out.status.success(),
            "send-keys -l: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` says yes; fails with the last screen after [`EVENTUALLY`].
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {}s waiting for {what}; the screen:\n{screen}",
                EVENTUALLY.as_secs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `berth` in the shell, with a line after it saying how it exited.
    fn start_berth(&self, berth: &Path, agent_url: &str, env: &str) {
        self.text(&format!(
            "{env} '{}' --agent {agent_url}; echo \"berth-exit=$?\"",
            berth.display()
        ));
        self.keys(&["Enter"]);
    }

    /// Waits for berth to exit; returns its exit code and the screen.
    fn wait_for_exit(&self) -> (u32, String) {
        let code = |s: &str| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("berth-exit="))
                .and_then(|c| c.parse::<u32>().ok())
        };
        let screen = self.wait_for("berth to exit", |s| code(s).is_some());
        (code(&screen).unwrap_or(u32::MAX), screen)
    }

    /// The shell's terminal settings are as a shell wants them: canonical mode and echo.
    fn assert_terminal_restored(&self) {
        // The marker is computed, so the typed line (which may wrap) never shows it.
        self.text("clear; stty -a | tr ';' '\\n' | grep -E -- '-?(icanon|echo)( |$)' | tr '\\n' ' '; echo; echo stty-$((40+2))-done");
        self.keys(&["Enter"]);
        let screen = self.wait_for("stty's answer", |s| {
            s.lines().any(|l| l.trim() == "stty-42-done")
        });
        // The line before the marker is stty's answer (the command line has the words too).
        let lines: Vec<&str> = screen.lines().collect();
        let answer = lines
            .iter()
            .position(|l| l.trim() == "stty-42-done")
            .and_then(|i| i.checked_sub(1))
            .map_or("", |i| lines[i]);
        let words: Vec<&str> = answer.split_whitespace().collect();
        assert!(
            words.contains(&"icanon"),
            "canonical mode is off:\n{screen}"
        );
        assert!(words.contains(&"echo"), "echo is off:\n{screen}");
        assert!(
            !words.contains(&"-icanon") && !words.contains(&"-echo"),
            "{screen}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Removes a Docker volume a test made, even when it fails.
struct RemoveVolume(String);

impl Drop for RemoveVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.0])
            .output();
    }
}

fn berth_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Writes the screen to `target/tui-e2e/<name>.txt`, for the README's screen capture.
fn keep(name: &str, screen: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tui-e2e");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}.txt")), screen);
    }
}

/// Start, see the node, run a workload from the form, see it, read its logs, stop it, remove
/// it after a confirmation (whose default is cancel), quit: and the shell is usable after.
#[tokio::test(flavor = "multi_thread")]
async fn run_logs_stop_remove_and_quit() {
    let Some(tmux) = Tmux::start() else { return };
    let image = berth_testkit::workload_image()
        .await
        .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
    let agent = AgentProcess::spawn(AgentOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
    let _guard = ContainerGuard::node(&agent.name);
    let name = berth_testkit::unique("tui");

    tmux.start_berth(berth_bin(), &agent.url(), "");
    let screen = tmux.wait_for("the node, connected", |s| {
        s.contains("● connected") && s.contains(&agent.name) && s.contains("alive")
    });
    keep("nodes", &screen);

    tmux.keys(&["r"]);
    tmux.wait_for("the run form", |s| s.contains("run a container"));
    tmux.text(&image);
    tmux.keys(&["Tab"]);
    tmux.text(&name);
    // Past `replicas`: empty, so a plain container.
    tmux.keys(&["Tab", "Tab"]);
    tmux.text("--forever --interval-ms 100 --stderr-every 4");
    // Past env and ports: a named volume; then, past the eight fields after it, more flags.
    let volume = berth_testkit::unique("tui-vol");
    let _volume = RemoveVolume(volume.clone());
    tmux.keys(&["Tab", "Tab", "Tab"]);
    tmux.text(&format!("{volume}:/data"));
    tmux.keys(&["Tab", "Tab", "Tab", "Tab", "Tab", "Tab", "Tab", "Tab"]);
    tmux.text("--label made-by=tui -w /data --init");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the new container, running and selected", |s| {
        s.contains(&format!("started {name} on {}", agent.name))
            && s.lines()
                .any(|l| l.contains(&name) && l.contains("running"))
    });
    keep("containers", &screen);
    // What the form's volume and flags made, as Docker has it.
    let inspect = Command::new(berth_bin())
        .args(["--agent", &agent.url(), "inspect", &name])
        .output()
        .expect("berth inspect");
    let detail: serde_json::Value =
        serde_json::from_slice(&inspect.stdout).expect("inspect is JSON");
    let raw = &detail["runtime"];
    assert_eq!(raw["Config"]["Labels"]["made-by"], "tui", "{detail}");
    assert_eq!(raw["Config"]["WorkingDir"], "/data", "{detail}");
    assert_eq!(raw["HostConfig"]["Init"], true, "{detail}");
    assert!(
        raw["Mounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["Name"] == volume.as_str())),
        "{detail}"
    );

    tmux.keys(&["l"]);
    let screen = tmux.wait_for("its log lines, stderr marked", |s| {
        s.contains(&format!("logs {name}")) && s.contains("line 3") && s.contains("▌ err 4")
    });
    keep("logs", &screen);
    tmux.keys(&["k"]);
    tmux.wait_for("the logs paused", |s| s.contains("paused"));
    tmux.keys(&["G"]);
    tmux.wait_for("the logs following again", |s| s.contains("following"));

    tmux.keys(&["Escape"]);
    tmux.wait_for("the containers view", |s| {
        s.contains("containers [") && s.contains(&name)
    });
    tmux.keys(&["s"]);
    tmux.wait_for("it stopped", |s| {
        s.contains(&format!("stopped {name}"))
            && s.lines().any(|l| l.contains(&name) && l.contains("exited"))
    });

    tmux.keys(&["C-d"]);
    tmux.wait_for("the confirmation", |s| s.contains("Remove this container?"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("cancel, the default", |s| {
        s.contains("remove cancelled") && s.contains(&name)
    });
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("the confirmation again", |s| {
        s.contains("Remove this container?")
    });
    keep("confirm", &screen);
    tmux.keys(&["Tab", "Enter"]);
    tmux.wait_for("it is gone", |s| {
        s.contains(&format!("removed {name}"))
            && !s.lines().any(|l| l.contains(&name) && l.contains("exited"))
    });

    tmux.keys(&["?"]);
    let screen = tmux.wait_for("the help", |s| s.contains("keys: containers"));
    keep("help", &screen);
    // Apart: an escape right before a key reads as alt+key.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help to close", |s| !s.contains("keys: containers"));
    tmux.keys(&["q"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 0, "{screen}");
    // The alternate screen is gone: the command line typed before is back.
    assert!(screen.contains("--agent"), "{screen}");
    tmux.assert_terminal_restored();
}

/// The services view on a real agent: create a service of 2 replicas from the run form, see it
/// converge, read the replicas' merged logs, open its slots, scale it to 1, remove it after the
/// confirmation, and see its containers gone from Docker.
#[tokio::test(flavor = "multi_thread")]
async fn services_view_creates_scales_follows_and_removes_a_service() {
    let Some(tmux) = Tmux::start() else { return };
    let image = berth_testkit::workload_image()
        .await
        .unwrap_or_else(|e| panic!("cannot build the workload image: {e}"));
    // A lone agent: no peer to wait for before it reconciles.
    let agent = AgentProcess::spawn(AgentOptions {
        extra_args: vec!["--reschedule-after".into(), "0s".into()],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
    let _guard = ContainerGuard::node(&agent.name);
    let name = berth_testkit::unique("tuisvc");
    let row = |s: &str, want: &[&str]| {
        s.lines()
            .any(|l| l.contains(&format!("│{name} ")) && want.iter().all(|w| l.contains(w)))
    };

    tmux.start_berth(berth_bin(), &agent.url(), "");
    tmux.wait_for("connected", |s| s.contains("● connected"));
    tmux.keys(&["v"]);
    tmux.wait_for("the empty services view", |s| {
        s.contains("services [0]") && s.contains("no services yet")
    });

    tmux.keys(&["r"]);
    tmux.wait_for("the form, making a service", |s| {
        s.contains("create a service")
    });
    tmux.text(&image);
    tmux.keys(&["Tab"]);
    tmux.text(&name);
    tmux.keys(&["Tab", "C-u"]);
    tmux.text("2");
    tmux.keys(&["Tab"]);
    tmux.text("--forever --interval-ms 100");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the service created and converged at 2/2", |s| {
        row(s, &["2/2", "converged", "replicated"])
    });
    keep("services", &screen);

    tmux.keys(&["l"]);
    tmux.wait_for("both replicas' lines, prefixed with slot and node", |s| {
        s.contains(&format!("logs of service {name}"))
            && s.contains(&format!("{name}.1@{} | line", agent.name))
            && s.contains(&format!("{name}.2@{} | line", agent.name))
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("back in the services view", |s| s.contains("services [1]"));

    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the two slots, running", |s| {
        s.contains(&format!("slots of {name} · 2/2 running"))
            && s.lines()
                .filter(|l| l.contains(&format!("{name}.")) && l.contains("running"))
                .count()
                == 2
    });
    keep("slots", &screen);
    tmux.keys(&["Escape"]);
    tmux.wait_for("the services view", |s| s.contains("services [1]"));

    tmux.keys(&["s"]);
    tmux.wait_for("the scale prompt, at the current count", |s| {
        s.contains(&format!("scale {name} to: 2"))
    });
    tmux.keys(&["C-u"]);
    tmux.text("abc");
    tmux.keys(&["Enter"]);
    tmux.wait_for("a bad count refused", |s| {
        s.contains(&format!("cannot scale {name}")) && row(s, &["2/2"])
    });
    tmux.keys(&["s", "C-u"]);
    tmux.text("1");
    tmux.keys(&["Enter"]);
    tmux.wait_for("scaled to 1/1", |s| row(s, &["1/1", "converged"]));

    tmux.keys(&["C-d"]);
    tmux.wait_for("the confirmation", |s| {
        s.contains(&format!("Remove service {name} and its replica?"))
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("cancel, the default", |s| {
        s.contains("remove cancelled") && row(s, &["1/1"])
    });
    tmux.keys(&["C-d"]);
    tmux.wait_for("the confirmation again", |s| s.contains("Remove service"));
    tmux.keys(&["y"]);
    tmux.wait_for("the service gone", |s| {
        s.contains(&format!("removed service {name}")) && s.contains("services [0]")
    });
    // Its replicas, by the service label (the guard removes any that are left).
    let replicas = ContainerGuard::label("berth.service.name", name.as_str());
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let left = replicas
            .containers()
            .await
            .unwrap_or_else(|e| panic!("cannot list containers: {e}"));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} replicas of {name} still in Docker after the removal",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tmux.keys(&["q"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 0, "{screen}");
}

/// A panic inside the TUI restores the terminal before the message is printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_restores_the_terminal() {
    let Some(tmux) = Tmux::start() else { return };
    let agent = AgentProcess::spawn(AgentOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
    tmux.start_berth(berth_bin(), &agent.url(), "BERTH_TUI_TEST_PANIC=1");
    let (code, screen) = tmux.wait_for_exit();
    assert!(
        screen.contains("panicking on purpose"),
        "the panic message is readable:\n{screen}"
    );
    assert_ne!(code, 0, "{screen}");
    tmux.assert_terminal_restored();
}

/// `NO_COLOR` and a narrow terminal: still readable, columns dropped, nothing wrapped.
#[tokio::test(flavor = "multi_thread")]
async fn monochrome_and_narrow() {
    let Some(tmux) = Tmux::start() else { return };
    let agent = AgentProcess::spawn(AgentOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot start berthd: {e}"));
    let _ = tmux.run(&["resize-window", "-t", &tmux.session, "-x", "80", "-y", "24"]);
    tmux.start_berth(berth_bin(), &agent.url(), "NO_COLOR=1");
    tmux.wait_for("the node", |s| {
        s.contains(&agent.name) && s.contains("alive")
    });
    let out = tmux.run(&["capture-pane", "-p", "-e", "-t", &tmux.session]);
    let styled = String::from_utf8_lossy(&out.stdout).into_owned();
    // SGR colour codes 30-37, 90-97 (fg), 40-47, 100-107 (bg) and 38;/48; (256 and rgb).
    let coloured = styled.split("\u{1b}[").skip(1).any(|seq| {
        let params = seq.split('m').next().unwrap_or("");
        params.split(';').any(|p| {
            matches!(
                p.parse::<u32>(),
                Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
            )
        })
    });
    assert!(!coloured, "NO_COLOR still coloured the screen:\n{styled:?}");
    let screen = tmux.screen();
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
    tmux.keys(&["q"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 0, "{screen}");
}

/// Two agents, the container on B. `berth exec -it` through A: a shell prompt, a command, a
/// resize seen by `stty size`, ctrl-c delivered to the command (not to berth), the shell's exit
/// status as berth's, and the terminal restored.
#[tokio::test(flavor = "multi_thread")]
async fn exec_it_a_shell_on_another_node() {
    let Some(tmux) = Tmux::start() else { return };
    let (a, b, image, _guards) = two_agents((63, 64)).await;
    let name = berth_testkit::unique("shell");
    berth_testkit::Cmd::berth(&a.url())
        .args(["run", "--name", &name, "--node", &b.name, &image])
        .run()
        .ok();

    tmux.text(&format!(
        "'{}' --agent {} exec -it {name} sh; echo \"berth-exit=$?\"",
        berth_bin().display(),
        a.url()
    ));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the container's shell prompt", |s| {
        s.lines().any(|l| l.trim_end() == "/ #")
    });
    tmux.text("echo inside-$((40+2))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the command's output", |s| {
        s.lines().any(|l| l.trim() == "inside-42")
    });
    tmux.text("stty size");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the size at start", |s| {
        s.lines().any(|l| l.trim() == format!("{HEIGHT} {WIDTH}"))
    });
    let out = tmux.run(&[
        "resize-window",
        "-t",
        &tmux.session,
        "-x",
        "100",
        "-y",
        "30",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux.text("clear; stty size");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the new size", |s| s.lines().any(|l| l.trim() == "30 100"));

    // ctrl-c reaches the command in the container; berth and the shell go on.
    // (A shell drops the rest of a line on ctrl-c, so the proof is the next command running.)
    tmux.text("clear; sleep 600");
    tmux.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["C-c"]);
    tmux.text("echo alive-after-ctrl-c");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the sleep interrupted in the container", |s| {
        s.lines().any(|l| l.trim() == "alive-after-ctrl-c")
    });

    tmux.text("exit 7");
    tmux.keys(&["Enter"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 7, "berth exits with the shell's status:\n{screen}");
    tmux.assert_terminal_restored();
}

/// Two agents on their own loopback addresses, B joined to A, both seen alive through A; and
/// the guards of their containers.
async fn two_agents(ips: (u8, u8)) -> (AgentProcess, AgentProcess, String, [ContainerGuard; 2]) {
    use std::net::Ipv4Addr;
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
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let out = berth_testkit::Cmd::berth(&a.url())
            .args(["nodes"])
            .run()
            .ok();
        if out.stdout.lines().filter(|l| l.contains(" alive ")).count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never alive through A:\n{}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (a, b, image, guards)
}

/// From the TUI on A, `x` on a container that runs on B: the prompt offers `sh`, the shell
/// runs full-screen, and the TUI comes back as it was when the shell exits.
#[tokio::test(flavor = "multi_thread")]
async fn x_opens_a_shell_in_a_container_on_another_node() {
    let Some(tmux) = Tmux::start() else { return };
    let (a, b, image, _guards) = two_agents((65, 66)).await;
    let name = berth_testkit::unique("tui-shell");
    berth_testkit::Cmd::berth(&a.url())
        .args(["run", "--name", &name, "--node", &b.name, &image])
        .run()
        .ok();

    tmux.start_berth(berth_bin(), &a.url(), "");
    tmux.wait_for("connected", |s| s.contains("● connected"));
    tmux.keys(&[":"]);
    tmux.text("containers");
    tmux.keys(&["Enter"]);
    // (Names are cut to fit the columns: the one row is the container, on B.)
    tmux.wait_for("the container, running", |s| {
        s.contains("containers [1/1]") && s.lines().any(|l| l.contains(" running "))
    });
    tmux.keys(&["x"]);
    tmux.wait_for("the exec prompt with sh", |s| {
        s.contains(&format!("exec in {name}: sh"))
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the container's shell prompt", |s| {
        s.lines().any(|l| l.trim_end() == "/ #")
    });
    tmux.text("echo tui-shell-$((20+3))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the command's output", |s| {
        s.lines().any(|l| l.trim() == "tui-shell-23")
    });
    tmux.text("exit");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the TUI back, as it was", |s| {
        s.contains("containers [1/1]") && s.contains(&format!("the session in {name} ended"))
    });
    keep("exec", &screen);
    // Its keys are the TUI's again.
    tmux.keys(&["q"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 0, "{screen}");
    tmux.assert_terminal_restored();
}

/// `berth stats` on a terminal redraws in place: one header however many refreshes, and a
/// container started meanwhile appears without starting again; ctrl-c ends it.
#[tokio::test(flavor = "multi_thread")]
async fn stats_refreshes_in_place() {
    let Some(tmux) = Tmux::start() else { return };
    let (a, _b, image, _guards) = two_agents((73, 74)).await;
    let first = berth_testkit::unique("stats-a");
    let second = berth_testkit::unique("stats-b");
    let run = |name: &str| {
        berth_testkit::Cmd::berth(&a.url())
            .args([
                "run",
                "--name",
                name,
                &image,
                "--forever",
                "--interval-ms",
                "1000",
            ])
            .run()
            .ok();
    };
    run(&first);
    tmux.text(&format!(
        "'{}' --agent {} stats",
        berth_bin().display(),
        a.url()
    ));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the first container", |s| s.contains(&first));
    run(&second);
    let screen = tmux.wait_for("the second container, in the same table", |s| {
        s.contains(&second)
    });
    let headers = screen
        .lines()
        .filter(|l| l.starts_with("CONTAINER ID"))
        .count();
    assert_eq!(headers, 1, "redrawn in place, not appended:\n{screen}");
    // (bash drops the rest of a command line on ctrl-c, so the status is asked for after.)
    tmux.keys(&["C-c"]);
    tmux.wait_for("the shell prompt back", |s| {
        s.lines().any(|l| l.trim_end() == PROMPT.trim_end())
    });
    tmux.text("echo \"berth-exit=$?\"");
    tmux.keys(&["Enter"]);
    let (code, screen) = tmux.wait_for_exit();
    assert_eq!(code, 130, "ended by ctrl-c:\n{screen}");
}
