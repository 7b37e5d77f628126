//! The workload image: `berth-workload` built statically by a nested cargo and packed
//! `FROM scratch` through the Docker API, so tests never need a registry. Debian's static
//! busybox (`busybox-static`) goes in as `/bin/busybox` with a link per applet, so tests can
//! exec a shell, `stty` or `wget` in it as in a real image.

use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::{Context, Result};

/// The workload binary's name, and its path inside the image (`/berth-workload`).
pub const WORKLOAD_BINARY: &str = "berth-workload";

/// The only target installed; musl is not available, so the binary is static glibc.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The image's recipe. It is part of the tag's hash, so changing it makes a new tag.
const DOCKERFILE: &str = "FROM scratch
LABEL berth.testkit=workload
COPY bin /bin
COPY berth-workload /berth-workload
ENTRYPOINT [\"/berth-workload\"]
";

/// Where Debian's `busybox-static` puts its binary (`.ci/run` installs it).
const BUSYBOX: &str = "/bin/busybox";

static WORKLOAD_IMAGE: OnceCell<String> = OnceCell::const_new();

/// Builds (once per process) the workload image and returns its tag,
/// `berth-workload:<12 hex of a hash of the binary>`.
///
/// The binary is built by a nested `cargo build -p berth-workload --release --target
/// x86_64-unknown-linux-gnu` with `RUSTFLAGS=-C target-feature=+crt-static` into
/// `<workspace>/target/workload`, a target dir of its own so it never waits on the outer cargo.
/// Test processes running in parallel serialize on a file lock there, and the image is only built
/// when its tag is missing.
pub async fn workload_image() -> Result<String> {
    WORKLOAD_IMAGE
        .get_or_try_init(build_workload_image)
        .await
        .cloned()
}

fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

async fn build_workload_image() -> Result<String> {
    let workspace = workspace_dir();
    let target_dir = workspace.join("target").join("workload");
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("cannot create {}", target_dir.display()))?;

    let lock_path = target_dir.join("testkit.lock");
    let _lock = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        Ok(file)
    })
    .await
    .context("lock task failed")??;

    let binary = cargo_build_workload(&workspace, &target_dir).await?;
    let bytes = tokio::fs::read(&binary)
        .await
        .with_context(|| format!("cannot read the workload binary {}", binary.display()))?;
    let busybox = read_busybox().await?;
    let tag = format!(
        "{WORKLOAD_BINARY}:{}",
        image_hash(&[&bytes[..], &busybox.binary].concat())
    );

    let docker = crate::docker().await?;
    match docker.inspect_image(&tag).await {
        Ok(_) => return Ok(tag),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(error) => return Err(error).with_context(|| format!("cannot inspect image {tag}")),
    }

    let context =
        build_context(&bytes, &busybox).with_context(|| format!("cannot pack image {tag}"))?;
    let options = BuildImageOptionsBuilder::default()
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut output = String::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("cannot build image {tag}:\n{output}"))?;
        if let Some(line) = info.stream {
            output.push_str(&line);
        }
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_default();
            return Err(crate::error(format!(
                "cannot build image {tag}: {message}\n{output}"
            )));
        }
    }
    docker
        .inspect_image(&tag)
        .await
        .with_context(|| format!("image {tag} is missing after its build:\n{output}"))?;
    Ok(tag)
}

/// Runs the nested cargo and returns the binary's path; its output is in the error on failure.
async fn cargo_build_workload(workspace: &Path, target_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(&cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "-p",
            "berth-workload",
            "--release",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // The flags must reach the workload only: with `--target`, build scripts and proc
        // macros are built without them.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        // A smaller binary makes a smaller image; nobody debugs the workload in a container.
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .kill_on_drop(true);
    let shown = format!(
        "RUSTFLAGS='-C target-feature=+crt-static' {} build -p berth-workload --release --target {TARGET} --target-dir {}",
        Path::new(&cargo).display(),
        target_dir.display()
    );
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        return Err(crate::error(format!(
            "`{shown}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let binary = target_dir
        .join(TARGET)
        .join("release")
        .join(WORKLOAD_BINARY);
    if !binary.is_file() {
        return Err(crate::error(format!(
            "`{shown}` succeeded but {} is missing",
            binary.display()
        )));
    }
    Ok(binary)
}

/// Busybox and the names of its applets.
struct Busybox {
    binary: Vec<u8>,
    applets: Vec<String>,
}

async fn read_busybox() -> Result<Busybox> {
    let path = std::env::var("BERTH_TEST_BUSYBOX").unwrap_or_else(|_| BUSYBOX.to_owned());
    let binary = tokio::fs::read(&path).await.with_context(|| {
        format!(
            "cannot read {path}, the static busybox of the test image: \
             install it with `apt-get install busybox-static` (or set BERTH_TEST_BUSYBOX)"
        )
    })?;
    let listed = tokio::process::Command::new(&path)
        .arg("--list")
        .output()
        .await
        .with_context(|| format!("cannot run `{path} --list`"))?;
    let applets = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect();
    Ok(Busybox { binary, applets })
}

/// The build context: the Dockerfile, the binary and `bin/` (busybox and a link per applet),
/// as an uncompressed tar in memory.
fn build_context(binary: &[u8], busybox: &Busybox) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, mode, data) in [
        ("Dockerfile", 0o644, DOCKERFILE.as_bytes()),
        (WORKLOAD_BINARY, 0o755, binary),
        ("bin/busybox", 0o755, &busybox.binary[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, data)?;
    }
    for applet in &busybox.applets {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(0);
        archive.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    archive.into_inner()
}

/// The first 12 hex digits of a 64-bit FNV-1a hash of the Dockerfile and the binary. FNV is
/// stable across Rust releases (unlike std's `DefaultHasher`) and needs no dependency; the tag
/// only has to change when the content does.
fn image_hash(binary: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in DOCKERFILE.as_bytes().iter().chain(binary) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")[..12].to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_twelve_hex_and_depends_on_content() {
        let a = image_hash(b"one");
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, image_hash(b"one"));
        assert_ne!(a, image_hash(b"two"));
    }

    #[test]
    fn context_holds_dockerfile_and_executable_binary() {
        let busybox = Busybox {
            binary: b"\x7fELF".to_vec(),
            applets: vec!["sh".into()],
        };
        let tar = build_context(b"\x7fELF", &busybox).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("Dockerfile".to_string(), 0o644),
                (WORKLOAD_BINARY.to_string(), 0o755),
                ("bin/busybox".to_string(), 0o755),
                ("bin/sh".to_string(), 0o777),
            ]
        );
    }
}
