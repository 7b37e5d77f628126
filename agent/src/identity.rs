//! This node's own identity. Its data dir is locked while an agent uses it, so two agents can
//! never share one (and with it the keyring, the service store and the certificate); a node id
//! kept there tells this node from another agent that was given the same name; and before an
//! agent joins, it asks its seeds whether its name is already alive elsewhere, and refuses to
//! start if it is — two agents of one name would own, and remove, each other's containers.

use berth_proto::v1 as pb;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file in the data dir.
const LOCK_FILE: &str = "lock";
/// The node id file in the data dir.
pub const ID_FILE: &str = "node-id";
/// Linux's "no locks available" and "operation not supported".
const ENOLCK: i32 = 37;
const EOPNOTSUPP: i32 = 95;

/// How long a seed may take to say who is in the cluster.
const SEED_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "data dir {0} is in use by another agent: each agent needs a data dir of its own \
         (--data-dir)"
    )]
    DataDirInUse(PathBuf),
    #[error("cannot use {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "node name {name} is already taken: the agent at {address} is alive with it (says the \
         seed {seed}); give this one another --name (or stop that one first)"
    )]
    NameTaken {
        name: String,
        address: String,
        seed: String,
    },
    #[error(
        "node name {name} is still alive in the cluster at this node's own address {address} \
         with another node id (says the seed {seed}): an earlier run of this node whose data \
         dir was replaced? Wait until the cluster marks it down (about ten seconds), or put \
         its <data dir>/node-id back"
    )]
    PastRunAlive {
        name: String,
        address: String,
        seed: String,
    },
}

/// Held for as long as the agent runs: the data dir's lock (released when the process ends,
/// however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Locks `dir` for this agent, or says that another one has it.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, IdentityError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(IdentityError::DataDirInUse(dir.to_path_buf()))
        }
        // A file system without locks (NFS mounted nolock): go on, and say the guard is off.
        Err(std::fs::TryLockError::Error(e))
            if matches!(e.raw_os_error(), Some(ENOLCK | EOPNOTSUPP)) =>
        {
            tracing::warn!(dir = %dir.display(), error = %e, "the data dir cannot be locked: nothing stops a second agent from using it");
            Ok(DataDirLock { _file: file })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// This node's id: made once (128 random bits, hex) and kept in the data dir.
pub fn node_id(dir: &Path) -> Result<String, IdentityError> {
    let path = dir.join(ID_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if is_id(s.trim()) => return Ok(s.trim().to_owned()),
        // Not one of ours (a torn file cannot be: it is written whole): a new one, said aloud,
        // since the cluster will take this node for another.
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the node id file holds no node id: making a new one")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::files::write_private(&path, format!("{id}\n").as_bytes()).map_err(io)?;
    Ok(id)
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `nodes` (a seed's view) has `name` alive or suspect as another node than us: one
/// with another id, or, for an agent too old to say its id, at another address.
pub fn taken_by<'a>(
    nodes: &'a [pb::Node],
    name: &str,
    id: &str,
    advertise: SocketAddr,
) -> Option<&'a pb::Node> {
    nodes.iter().find(|n| {
        let live =
            n.status == pb::NodeStatus::Alive as i32 || n.status == pb::NodeStatus::Suspect as i32;
        let other = if n.node_id.is_empty() {
            n.address != advertise.to_string()
        } else {
            n.node_id != id
        };
        n.name == name && live && other
    })
}

/// Asks each seed (at once, [`SEED_WAIT`] each) who is in the cluster; the first that has our
/// name alive as another node refuses the start. A seed that does not answer is passed over
/// (it may not be up yet): the check is for the mistake, not a guarantee.
pub async fn check_name(
    seeds: &[String],
    token: Option<&str>,
    name: &str,
    id: &str,
    own: &[SocketAddr],
) -> Result<(), IdentityError> {
    let advertise = own[0];
    // Ourselves (a shared --join list names every node): not serving yet, so not a seed.
    let seeds: Vec<&String> = seeds
        .iter()
        .filter(|s| {
            !own.iter().any(|a| {
                s.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    == a.to_string()
            })
        })
        .collect();
    if seeds.is_empty() {
        return Ok(());
    }
    let asks = seeds.iter().map(|seed| async move {
        let ask = async {
            let mut client = berth_shared::client::connect(seed, token).await.ok()?;
            client
                .cluster(pb::ClusterRequest {})
                .await
                .ok()
                .map(|r| r.into_inner().nodes)
        };
        let answer = tokio::time::timeout(SEED_WAIT, ask).await.ok().flatten();
        answer.map(|nodes| (seed.to_string(), nodes))
    });
    let answers: Vec<(String, Vec<pb::Node>)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if answers.is_empty() {
        tracing::warn!(seeds = ?seeds, "no seed answered: cannot tell whether this node's name is already taken in the cluster");
    }
    for (seed, nodes) in answers {
        if let Some(n) = taken_by(&nodes, name, id, advertise) {
            let (name, address) = (name.to_owned(), n.address.clone());
            return Err(if own.iter().any(|a| a.to_string() == n.address) {
                IdentityError::PastRunAlive {
                    name,
                    address,
                    seed,
                }
            } else {
                IdentityError::NameTaken {
                    name,
                    address,
                    seed,
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_is_one_agent_s() {
        let dir = tempfile::tempdir().expect("tmp");
        let held = lock_data_dir(dir.path()).expect("first");
        assert!(matches!(
            lock_data_dir(dir.path()),
            Err(IdentityError::DataDirInUse(_))
        ));
        drop(held);
        lock_data_dir(dir.path()).expect("free again once the first is gone");
    }

    #[test]
    fn the_node_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let id = node_id(dir.path()).expect("made");
        assert!(is_id(&id), "{id}");
        assert_eq!(node_id(dir.path()).expect("kept"), id);
        std::fs::write(dir.path().join(ID_FILE), "garbage").expect("write");
        assert_ne!(node_id(dir.path()).expect("remade"), id);
    }

    #[test]
    fn a_name_is_taken_only_by_another_live_node() {
        let me: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        let node = |name: &str, id: &str, addr: &str, status: pb::NodeStatus| pb::Node {
            name: name.into(),
            node_id: id.into(),
            address: addr.into(),
            status: status as i32,
            ..Default::default()
        };
        let alive = pb::NodeStatus::Alive;
        // Our own past life (same id), at any address: not another node.
        assert!(taken_by(&[node("a", "1", "10.0.0.9:7000", alive)], "a", "1", me).is_none());
        // Another id with our name, alive or suspect: taken.
        assert!(taken_by(&[node("a", "2", "10.0.0.9:7000", alive)], "a", "1", me).is_some());
        let suspect = pb::NodeStatus::Suspect;
        assert!(taken_by(&[node("a", "2", "10.0.0.9:7000", suspect)], "a", "1", me).is_some());
        // Down or left: the name is free to take over.
        let down = pb::NodeStatus::Down;
        assert!(taken_by(&[node("a", "2", "10.0.0.9:7000", down)], "a", "1", me).is_none());
        // An agent that does not say its id: told apart by its address.
        assert!(taken_by(&[node("a", "", "127.0.0.1:7000", alive)], "a", "1", me).is_none());
        assert!(taken_by(&[node("a", "", "10.0.0.9:7000", alive)], "a", "1", me).is_some());
        // Another name: nothing to do with us.
        assert!(taken_by(&[node("b", "2", "10.0.0.9:7000", alive)], "a", "1", me).is_none());
    }
}
