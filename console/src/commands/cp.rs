//! `berth cp`: files between this machine and a container on any node, as `docker cp`.
//!
//! The agent relays tar archives; the naming is done here, as the Docker CLI does it: where a
//! file lands and what a copied directory is called follow from whether the destination exists
//! and is a directory (asked of the container with `StatPath`, or of this machine). An archive
//! from a container is unpacked here by [`unpack`], which treats it as hostile: an entry that
//! would land outside the destination (`..`, an absolute name, a path through a symlink) stops
//! the copy with an error naming it.

use crate::cli::CpArgs;
use crate::errors::status_report;
use crate::session::Session;
use berth_proto::v1 as pb;
use berth_shared::copy::{Direction, Endpoint};
use berth_shared::quantity::format_bytes;
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::io::{IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The most of an archive one message carries.
const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct CpPlan {
    pub direction: Direction,
    /// `-L`: copy what a symlink source points to, not the link.
    pub follow_link: bool,
    /// `-a`: keep owners (uid and gid) in the container.
    pub archive: bool,
}

pub fn prepare(args: CpArgs) -> Result<CpPlan> {
    let direction =
        berth_shared::copy::direction(&args.source, &args.destination).map_err(|e| eyre!("{e}"))?;
    Ok(CpPlan {
        direction,
        follow_link: args.follow_link,
        archive: args.archive,
    })
}

pub async fn execute(session: &mut Session, plan: CpPlan) -> Result<()> {
    match plan.direction {
        Direction::From {
            container,
            path,
            to,
        } => copy_from(session, &container, &path, &to, plan.follow_link).await,
        Direction::To {
            from,
            container,
            path,
        } => {
            copy_to(
                session,
                &from,
                &container,
                &path,
                plan.follow_link,
                plan.archive,
            )
            .await
        }
    }
}

/// What a path is, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Missing,
    Dir,
    File,
}

/// Where an archive is unpacked and how its root entry is renamed, as `docker cp` decides
/// (moby's `PrepareArchiveCopy`): into an existing directory as it is; otherwise into the
/// destination's parent, the root taking the destination's name.
#[derive(Debug, PartialEq, Eq)]
struct Placement {
    dir: String,
    rename: Option<String>,
}

fn place(src_is_dir: bool, dest: &str, dest_kind: Kind) -> Result<Placement> {
    let (parent, base) = split(dest);
    match dest_kind {
        Kind::Dir => Ok(Placement {
            dir: dest.to_owned(),
            rename: None,
        }),
        Kind::File if src_is_dir => Err(eyre!("cannot copy a directory onto the file {dest}")),
        Kind::Missing if !src_is_dir && dest.ends_with('/') => {
            Err(eyre!("the destination directory {dest} does not exist"))
                .suggestion("drop the trailing / to copy the file under that name")
        }
        Kind::File | Kind::Missing => Ok(Placement {
            dir: parent,
            rename: Some(base),
        }),
    }
}

/// A path's parent and base name, `/` separated, trailing separators ignored (`/a/b/` is in
/// `/a` and named `b`; a bare name is in `.`).
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", base)) => ("/".to_owned(), base.to_owned()),
        Some((parent, base)) => (parent.to_owned(), base.to_owned()),
        None if path.starts_with('/') => ("/".to_owned(), String::new()),
        None => (".".to_owned(), trimmed.to_owned()),
    }
}

async fn stat(session: &mut Session, container: &str, path: &str) -> Result<Option<pb::PathStat>> {
    let req = pb::StatPathRequest {
        container: container.to_owned(),
        path: path.to_owned(),
    };
    let stat = session
        .client
        .stat_path(req)
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    Ok(stat.exists.then_some(stat))
}

fn kind_of(stat: Option<&pb::PathStat>) -> Kind {
    match stat {
        None => Kind::Missing,
        Some(s) if s.dir => Kind::Dir,
        Some(_) => Kind::File,
    }
}

async fn copy_from(
    session: &mut Session,
    container: &str,
    path: &str,
    to: &Endpoint,
    follow_link: bool,
) -> Result<()> {
    let (mut stat, mut chunks) = open_archive(session, container, path).await?;
    // `-L`: the archive of what the link points to, under the link's name.
    let mut link_name = None;
    if follow_link && stat.symlink && !stat.link_target.is_empty() {
        link_name = Some(stat.name.clone());
        let target = stat.link_target.clone();
        (stat, chunks) = open_archive(session, container, &target).await?;
    }
    let address = session.address.clone();
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(16);
    let to_stdout = matches!(to, Endpoint::Stdio);
    let to = to.clone();
    let root = stat.name.clone();
    let src_is_dir = stat.dir;
    let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
        let reader = ChannelReader::new(rx);
        match to {
            Endpoint::Stdio => {
                let mut reader = reader;
                let mut out = std::io::stdout().lock();
                let n =
                    std::io::copy(&mut reader, &mut out).wrap_err("cannot write the archive")?;
                out.flush().wrap_err("cannot write the archive")?;
                Ok(n)
            }
            Endpoint::Local(dest) => {
                unpack_local(reader, &dest, &root, src_is_dir, link_name.as_deref())
            }
            Endpoint::Container { .. } => Err(eyre!("copying between containers is not supported")),
        }
    });
    let mut failure = None;
    loop {
        match chunks.message().await {
            Ok(Some(pb::CopyFromChunk {
                chunk: Some(pb::copy_from_chunk::Chunk::Data(b)),
            })) => {
                if tx.send(Ok(b)).await.is_err() {
                    break; // The writer stopped: its error says why.
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(s) => {
                let _ = tx
                    .send(Err(std::io::Error::other("the archive was cut short")))
                    .await;
                failure = Some(s);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.wrap_err("the copy's writer failed")?;
    if let Some(s) = failure {
        return Err(status_report(s, &address)).wrap_err("the copy stopped before its end");
    }
    let written = written?;
    if std::io::stderr().is_terminal() && !to_stdout {
        eprintln!("copied {} from {container}:{path}", format_bytes(written));
    }
    Ok(())
}

/// Asks for the archive of `path`; returns its stat (the first message) and the rest.
async fn open_archive(
    session: &mut Session,
    container: &str,
    path: &str,
) -> Result<(pb::PathStat, tonic::Streaming<pb::CopyFromChunk>)> {
    let req = pb::CopyFromRequest {
        container: container.to_owned(),
        path: path.to_owned(),
    };
    let mut chunks = session
        .client
        .copy_from(req)
        .await
        .map_err(|s| status_report(s, &session.address))?
        .into_inner();
    match chunks.message().await {
        Ok(Some(pb::CopyFromChunk {
            chunk: Some(pb::copy_from_chunk::Chunk::Stat(stat)),
        })) => Ok((stat, chunks)),
        Ok(_) => Err(eyre!(
            "the agent sent an archive without the path's stat first"
        )),
        Err(s) => Err(status_report(s, &session.address)),
    }
}

/// Unpacks an archive of `root` (a directory when `src_is_dir`) to `dest` on this machine;
/// `link_name` is the name to give it in an existing directory when a symlink was followed
/// (`-L` keeps the link's name, as `docker cp`). A destination that is a symlink is written
/// through, as `docker cp` does.
fn unpack_local(
    reader: impl Read,
    dest: &Path,
    root: &str,
    src_is_dir: bool,
    link_name: Option<&str>,
) -> Result<u64> {
    let is_link = std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
    let dest = match is_link {
        true => dest.canonicalize().unwrap_or_else(|_| dest.to_path_buf()),
        false => dest.to_path_buf(),
    };
    let dest_text = dest.to_string_lossy();
    let kind = match std::fs::metadata(&dest) {
        Ok(m) if m.is_dir() => Kind::Dir,
        Ok(_) => Kind::File,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kind::Missing,
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot look at {dest_text}")),
    };
    let placement = place(src_is_dir, &dest_text, kind)?;
    let dir = PathBuf::from(&placement.dir);
    if !dir.is_dir() {
        return Err(eyre!("the directory {} does not exist", dir.display()));
    }
    let to = placement.rename.as_deref().or(link_name);
    unpack(reader, &dir, &Rebase { root, to })
}

/// How an archive's entries map onto the destination directory: every entry is `root` (the
/// copied path's base name) or under it, or, with `root` `.`, a directory's contents; the
/// root is renamed `to` when given.
#[derive(Debug, Clone, Copy)]
pub struct Rebase<'a> {
    pub root: &'a str,
    pub to: Option<&'a str>,
}

/// Unpacks a tar archive into the existing directory `dir`, as [`Rebase`] maps its entries.
/// Every entry must land inside `dir` and under the copied root: a name with `..` or a root,
/// one outside the root, one whose way passes a symlink (made by the archive or already
/// there), and a hard link to anything but a file the copy wrote, are refused and stop the
/// copy. A directory is never replaced by a file nor a file by a directory; an existing file
/// or symlink in an entry's place is replaced (the link itself, never what it points to).
/// Permissions keep only their 0o777 bits (no setuid, setgid or sticky from an archive);
/// owners are not kept. Device files and fifos are skipped. Returns the bytes of file content
/// written.
pub fn unpack(reader: impl Read, dir: &Path, rebase: &Rebase) -> Result<u64> {
    let one_name = rebase.root == "."
        || matches!(
            Path::new(rebase.root).components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        );
    if !one_name || rebase.to.is_some_and(|t| t.is_empty() || t.contains('/')) {
        return Err(eyre!(
            "the agent named the copied path {:?}, which is not one name",
            rebase.root
        ));
    }
    let root = dir
        .canonicalize()
        .wrap_err_with(|| format!("cannot resolve {}", dir.display()))?;
    let mut archive = tar::Archive::new(reader);
    // Not preserved: the mode is kept to its 0o777 bits.
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut written = 0u64;
    for entry in archive.entries().wrap_err("cannot read the archive")? {
        let mut entry = entry.wrap_err("cannot read the archive")?;
        let name = entry
            .path()
            .wrap_err("an entry's name is unreadable")?
            .into_owned();
        let relative = inside(&name, rebase)?;
        if relative.as_os_str().is_empty() {
            // The destination itself (`.`): it exists already.
            continue;
        }
        let target = parents_of(&root, &relative, &name)?;
        let kind = entry.header().entry_type();
        let here = std::fs::symlink_metadata(&target)
            .ok()
            .map(|m| m.file_type());
        match kind {
            tar::EntryType::Directory => match here {
                Some(t) if t.is_dir() => {
                    // Merge into it, as `docker cp` does; its mode is the archive's.
                    if let Ok(mode) = entry.header().mode() {
                        set_mode(&target, mode);
                    }
                    continue;
                }
                Some(t) if t.is_symlink() => return Err(escape(&name)),
                Some(_) => {
                    return Err(eyre!(
                        "cannot replace the file {} with a directory",
                        target.display()
                    ));
                }
                None => {}
            },
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Symlink
            | tar::EntryType::Link => match here {
                Some(t) if t.is_dir() => {
                    return Err(eyre!(
                        "cannot replace the directory {} with a file",
                        target.display()
                    ));
                }
                Some(_) => std::fs::remove_file(&target)
                    .wrap_err_with(|| format!("cannot replace {}", target.display()))?,
                None => {}
            },
            // pax and GNU long-name headers are read by `entries`; devices and fifos are not
            // made by an unprivileged copy.
            _ => continue,
        }
        if kind == tar::EntryType::Link {
            let link = entry
                .link_name()
                .wrap_err("a hard link's target is unreadable")?
                .ok_or_else(|| eyre!("the hard link {} has no target", name.display()))?
                .into_owned();
            let source = root.join(inside(&link, rebase)?);
            // Only to a file of the copy: its way checked, the file itself not a link.
            check_parents(&root, &source, &link)?;
            if !std::fs::symlink_metadata(&source).is_ok_and(|m| m.file_type().is_file()) {
                return Err(escape(&link));
            }
            std::fs::hard_link(&source, &target)
                .wrap_err_with(|| format!("cannot link {}", target.display()))?;
            continue;
        }
        entry
            .unpack(&target)
            .wrap_err_with(|| format!("cannot write {}", target.display()))?;
        if kind != tar::EntryType::Directory && kind != tar::EntryType::Symlink {
            written += entry.size();
        }
    }
    Ok(written)
}

/// The path of `relative` under `root`, after making every directory on the way (one at a
/// time): a symlink on the way is refused before anything is made through it, a file on the
/// way is an error.
fn parents_of(root: &Path, relative: &Path, name: &Path) -> Result<PathBuf> {
    let parts: Vec<Component> = relative.components().collect();
    let mut at = root.to_path_buf();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Err(escape(name)),
            Ok(_) => {
                return Err(eyre!(
                    "{} is a file: {} cannot be written under it",
                    at.display(),
                    name.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)
                .wrap_err_with(|| format!("cannot create {}", at.display()))?,
            Err(e) => return Err(e).wrap_err_with(|| format!("cannot look at {}", at.display())),
        }
    }
    Ok(root.join(relative))
}

/// Every directory between `root` and `path` exists and is not a symlink.
fn check_parents(root: &Path, path: &Path, name: &Path) -> Result<()> {
    let relative = path.strip_prefix(root).map_err(|_| escape(name))?;
    let mut at = root.to_path_buf();
    let parts: Vec<Component> = relative.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_dir()) {
            return Err(escape(name));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777));
}

fn escape(name: &Path) -> color_eyre::Report {
    eyre!(
        "the archive has an entry outside the destination: {}",
        name.display()
    )
    .note("the copy stopped there; an agent sent a hostile or broken archive")
}

/// An entry's name as a relative path under the destination, as `rebase` maps it: only plain
/// components (and `.`), and only the root or what is under it.
fn inside(name: &Path, rebase: &Rebase) -> Result<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape(name));
            }
        }
    }
    if rebase.root == "." {
        if let Some(to) = rebase.to {
            parts.insert(0, to.into());
        }
    } else {
        match parts.first_mut() {
            Some(first) if first == rebase.root => {
                if let Some(to) = rebase.to {
                    *first = to.into();
                }
            }
            _ => return Err(escape(name)),
        }
    }
    Ok(parts.iter().collect())
}

/// Archive bytes sent by the async side, read by the blocking side.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    self.buf = b;
                    self.at = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Archive bytes written by the blocking side (the tar builder), sent in chunks of [`CHUNK`].
struct ChannelWriter {
    tx: mpsc::Sender<pb::CopyToInput>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(pb::CopyToInput {
                input: Some(pb::copy_to_input::Input::Data(data)),
            })
            .map_err(|_| std::io::Error::other("the copy's connection closed"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// What is sent: a local file or directory under its archive name, or stdin's archive.
enum Source {
    Path { path: PathBuf, name: String },
    Stdin,
}

async fn copy_to(
    session: &mut Session,
    from: &Endpoint,
    container: &str,
    dest: &str,
    follow_link: bool,
    archive: bool,
) -> Result<()> {
    let mut dest_stat = stat(session, container, dest).await?;
    // A destination that is a symlink is written through, as `docker cp` does.
    let mut dest = dest.to_owned();
    if let Some(s) = &dest_stat
        && s.symlink
        && !s.link_target.is_empty()
    {
        dest = s.link_target.clone();
        dest_stat = stat(session, container, &dest).await?;
    }
    let dest = dest.as_str();
    let dest_kind = kind_of(dest_stat.as_ref());
    let (source, dir) = match from {
        Endpoint::Stdio => {
            if dest_kind != Kind::Dir {
                return Err(eyre!(
                    "{container}:{dest} is not a directory: an archive from stdin is unpacked into one"
                ));
            }
            (Source::Stdin, dest.to_owned())
        }
        Endpoint::Local(path) => {
            // `-L` follows SRC itself (the copy keeps its name), never the links inside it.
            let read = if follow_link {
                path.canonicalize()
                    .wrap_err_with(|| format!("cannot read {}", path.display()))?
            } else {
                path.clone()
            };
            let meta = std::fs::symlink_metadata(&read)
                .wrap_err_with(|| format!("cannot read {}", path.display()))?;
            let text = path.to_string_lossy();
            let contents = meta.is_dir() && (text.ends_with("/.") || text == ".");
            let (_, base) = split(&text);
            let placement = place(meta.is_dir(), dest, dest_kind)?;
            let name = match (contents, placement.rename) {
                // `dir/.` into a directory: its contents, not itself.
                (true, None) => ".".to_owned(),
                (_, Some(to)) => to,
                (false, None) => base,
            };
            (Source::Path { path: read, name }, placement.dir)
        }
        Endpoint::Container { .. } => {
            return Err(eyre!("copying between containers is not supported"));
        }
    };

    let (tx, rx) = mpsc::channel::<pb::CopyToInput>(16);
    tx.send(pb::CopyToInput {
        input: Some(pb::copy_to_input::Input::Start(pb::CopyToStart {
            container: container.to_owned(),
            path: dir.clone(),
            copy_uid_gid: archive,
        })),
    })
    .await
    .map_err(|_| eyre!("the copy closed before it started"))?;
    let writer_tx = tx.clone();
    let builder = tokio::task::spawn_blocking(move || build(source, writer_tx));
    let mut client = session.client.clone();
    let call = client.copy_to(ReceiverStream::new(rx));
    tokio::pin!(call);
    // The request stream ends only when the archive is whole: until then this task holds a
    // sender, and a failed archive drops the call instead, so the agent never sees an
    // archive cut short as a complete one.
    let mut keep = Some(tx);
    let mut builder = builder;
    let answer = loop {
        tokio::select! {
            answer = &mut call => break answer,
            built = &mut builder, if keep.is_some() => {
                match built.wrap_err("the archive's builder failed")? {
                    Ok(()) => keep = None,
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let sent = answer
        .map_err(|s| status_report(s, &session.address))?
        .into_inner()
        .bytes;
    if std::io::stderr().is_terminal() {
        eprintln!("copied {} to {container}:{dest}", format_bytes(sent));
    }
    Ok(())
}

/// Writes the archive of `source` to `tx`, then flushes it. Symlinks inside are archived as
/// links.
fn build(source: Source, tx: mpsc::Sender<pb::CopyToInput>) -> Result<()> {
    let mut out = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    match source {
        Source::Stdin => {
            std::io::copy(&mut std::io::stdin().lock(), &mut out)
                .wrap_err("cannot read the archive from stdin")?;
        }
        Source::Path { path, name } => {
            let mut tar = tar::Builder::new(&mut out);
            tar.follow_symlinks(false);
            let meta = std::fs::symlink_metadata(&path)
                .wrap_err_with(|| format!("cannot read {}", path.display()))?;
            if meta.is_dir() {
                tar.append_dir_all(&name, &path)
            } else {
                tar.append_path_with_name(&path, &name)
            }
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
            tar.finish()
                .wrap_err_with(|| format!("cannot read {}", path.display()))?;
        }
    }
    out.flush().wrap_err("cannot send the archive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_follows_docker_cp() {
        let p = |dir: &str, rename: Option<&str>| Placement {
            dir: dir.into(),
            rename: rename.map(Into::into),
        };
        // Into an existing directory, as it is.
        assert_eq!(
            place(false, "/tmp", Kind::Dir).expect("ok"),
            p("/tmp", None)
        );
        assert_eq!(
            place(true, "/tmp/", Kind::Dir).expect("ok"),
            p("/tmp/", None)
        );
        // Over a file, or to a new name: in the parent, under the destination's name.
        assert_eq!(
            place(false, "/tmp/a.bin", Kind::File).expect("ok"),
            p("/tmp", Some("a.bin"))
        );
        assert_eq!(
            place(true, "/srv/new", Kind::Missing).expect("ok"),
            p("/srv", Some("new"))
        );
        assert_eq!(
            place(false, "x", Kind::Missing).expect("ok"),
            p(".", Some("x"))
        );
        assert_eq!(
            place(false, "/x", Kind::Missing).expect("ok"),
            p("/", Some("x"))
        );
        // A directory cannot replace a file; a file cannot make a directory.
        assert!(place(true, "/etc/hosts", Kind::File).is_err());
        assert!(place(false, "/nope/", Kind::Missing).is_err());
    }

    fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            if let Some(l) = link {
                h.set_link_name(l).expect("link");
            }
            // `append_data` would refuse `..`; a hostile archive is written raw.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn an_archive_is_unpacked_with_its_root_renamed() {
        let dir = tempfile::tempdir().expect("tmp");
        let tar = archive(&[
            ("data", tar::EntryType::Directory, b"", None),
            ("data/a.bin", tar::EntryType::Regular, &[0, 1, 2, 255], None),
            ("data/same", tar::EntryType::Link, b"", Some("data/a.bin")),
            ("data/ln", tar::EntryType::Symlink, b"", Some("a.bin")),
        ]);
        let rebase = Rebase {
            root: "data",
            to: Some("copy"),
        };
        let n = unpack(&tar[..], dir.path(), &rebase).expect("unpacks");
        assert_eq!(n, 4);
        let got = std::fs::read(dir.path().join("copy/a.bin")).expect("file");
        assert_eq!(got, [0, 1, 2, 255]);
        assert_eq!(
            std::fs::read(dir.path().join("copy/same")).expect("link"),
            got
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("copy/ln")).expect("symlink"),
            Path::new("a.bin")
        );
        // A directory's contents (`dir/.`) into a new name.
        let tar = archive(&[
            (".", tar::EntryType::Directory, b"", None),
            ("./f", tar::EntryType::Regular, b"x", None),
        ]);
        let contents = Rebase {
            root: ".",
            to: Some("out"),
        };
        unpack(&tar[..], dir.path(), &contents).expect("unpacks");
        assert_eq!(
            std::fs::read(dir.path().join("out/f")).expect("out/f"),
            b"x"
        );
    }

    #[test]
    fn setuid_and_setgid_bits_are_not_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o6755);
        h.set_path("s").expect("path");
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        let tar = b.into_inner().expect("tar");
        let rebase = Rebase {
            root: "s",
            to: None,
        };
        unpack(&tar[..], dir.path(), &rebase).expect("unpacks");
        let mode = std::fs::metadata(dir.path().join("s"))
            .expect("s")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn entries_outside_the_destination_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let outer = tempfile::tempdir().expect("tmp");
        let out = outer.path().display().to_string();
        let secret = format!("{out}/secret");
        let through = format!("{out}/secret");
        std::fs::write(&secret, "s").expect("secret");
        std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o700))
            .expect("mode");
        let r = |n: &str| format!("r/{n}");
        type Entries = Vec<(String, tar::EntryType, &'static [u8], Option<String>)>;
        let cases: Vec<(&str, Entries)> = vec![
            (
                "dot-dot",
                vec![(r("../../evil"), tar::EntryType::Regular, b"x", None)],
            ),
            (
                "absolute",
                vec![("/tmp/evil".into(), tar::EntryType::Regular, b"x", None)],
            ),
            (
                "outside the root",
                vec![("other/evil".into(), tar::EntryType::Regular, b"x", None)],
            ),
            (
                "a file through a symlink",
                vec![
                    (r("ln"), tar::EntryType::Symlink, b"", Some(out.clone())),
                    (r("ln/sub/evil"), tar::EntryType::Regular, b"x", None),
                ],
            ),
            (
                "a directory over a symlink",
                vec![
                    (r("ln"), tar::EntryType::Symlink, b"", Some(out.clone())),
                    (r("ln"), tar::EntryType::Directory, b"", None),
                ],
            ),
            (
                "a hard link out",
                vec![(
                    r("h"),
                    tar::EntryType::Link,
                    b"",
                    Some("../../etc/passwd".into()),
                )],
            ),
            (
                "a hard link through a symlink",
                vec![
                    (r("ln"), tar::EntryType::Symlink, b"", Some(out.clone())),
                    (r("h"), tar::EntryType::Link, b"", Some(r("ln/secret"))),
                ],
            ),
            (
                "a hard link to a symlink",
                vec![
                    (r("ln"), tar::EntryType::Symlink, b"", Some(through.clone())),
                    (r("h"), tar::EntryType::Link, b"", Some(r("ln"))),
                ],
            ),
        ];
        for (what, entries) in cases {
            let dest = outer.path().join("dest");
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::create_dir(&dest).expect("dest");
            let entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> = entries
                .iter()
                .map(|(n, k, d, l)| (n.as_str(), *k, *d, l.as_deref()))
                .collect();
            let tar = archive(&entries);
            let e = unpack(
                &tar[..],
                &dest,
                &Rebase {
                    root: "r",
                    to: None,
                },
            )
            .expect_err(what);
            assert!(
                format!("{e:?}").contains("outside the destination"),
                "{what}: {e:?}"
            );
            let left: Vec<_> = std::fs::read_dir(outer.path())
                .expect("outer")
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            assert_eq!(left.len(), 2, "{what} made something outside: {left:?}");
            assert!(!Path::new("/tmp/evil").exists(), "{what} wrote to /tmp");
            let mode = std::fs::metadata(outer.path())
                .expect("outer")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{what} changed a mode outside");
            assert_eq!(std::fs::read_to_string(&secret).expect("secret"), "s");
        }
    }

    #[test]
    fn the_arguments_parse() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let cli = Cli::try_parse_from(["berth", "cp", "-a", "web:/data", "./out"]).expect("ok");
        let Some(Command::Cp(a)) = cli.command else {
            panic!("not cp");
        };
        let plan = prepare(a).expect("ok");
        assert!(plan.archive && !plan.follow_link);
        assert!(matches!(plan.direction, Direction::From { .. }));
        let cli = Cli::try_parse_from(["berth", "cp", "a", "b"]).expect("parses");
        let Some(Command::Cp(a)) = cli.command else {
            panic!("not cp");
        };
        let e = prepare(a).expect_err("neither is a container");
        assert!(e.to_string().contains("destination"), "{e}");
    }
}
