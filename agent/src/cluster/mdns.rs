//! `--join mdns`: zero-config joining on a LAN. The agent announces itself by mDNS/DNS-SD
//! (`_berth._udp.local.`, with its gossip address and the cluster's CA fingerprint, which is
//! not secret) and browses for others; each one found with the same fingerprint is introduced
//! to gossip (a sealed SYN, see `SealedSocket`). Discovery proves nothing: a peer found this
//! way is gossiped with only if its datagrams open with the cluster's key, and called only as
//! the node its certificate names, as every other peer. Needs a cluster secret.

use std::net::{IpAddr, SocketAddr};
use tokio::sync::mpsc;

/// The DNS-SD service type.
pub const SERVICE: &str = "_berth._udp.local.";
/// The TXT key holding the cluster's CA fingerprint.
const CLUSTER_KEY: &str = "cluster";

/// The announcement and the browser; both stop when this is dropped.
pub struct Mdns {
    daemon: mdns_sd::ServiceDaemon,
    /// What is announced, to announce it again with another fingerprint.
    name: String,
    advertise: SocketAddr,
    fullname: String,
    /// The fingerprints of the CAs trusted now: peers announcing any of them are introduced.
    accepted: std::sync::Arc<std::sync::RwLock<Vec<String>>>,
}

impl Mdns {
    /// Follows a keyring change: announces the CA in use, and accepts peers of any CA trusted
    /// (so agents on either side of a rotation still find each other).
    pub fn set_fingerprints(&mut self, fingerprints: &[String]) {
        let Some(primary) = fingerprints.first() else {
            return;
        };
        *self.accepted.write().unwrap_or_else(|p| p.into_inner()) = fingerprints.to_vec();
        let host = format!("{}.local.", self.name);
        match mdns_sd::ServiceInfo::new(
            SERVICE,
            &self.name,
            &host,
            self.advertise.ip(),
            self.advertise.port(),
            &[(CLUSTER_KEY, primary.as_str())][..],
        ) {
            Ok(info) => {
                let _ = self.daemon.unregister(&self.fullname);
                self.fullname = info.get_fullname().to_owned();
                if let Err(e) = self.daemon.register(info) {
                    tracing::warn!(error = %e, "mDNS: cannot announce this node again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "mDNS: cannot announce this node again"),
        }
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// Instance names are DNS labels: the node name, with anything else replaced.
fn instance(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect()
}

/// Announces this node (gossip at `advertise`, cluster `fingerprint`) and sends the gossip
/// address of every other node of the same cluster found to `found`, as often as it is seen.
pub fn start(
    node: &str,
    advertise: SocketAddr,
    fingerprint: &str,
    found: mpsc::Sender<SocketAddr>,
) -> Result<Mdns, mdns_sd::Error> {
    let daemon = mdns_sd::ServiceDaemon::new()?;
    let name = instance(node);
    let host = format!("{name}.local.");
    let info = mdns_sd::ServiceInfo::new(
        SERVICE,
        &name,
        &host,
        advertise.ip(),
        advertise.port(),
        &[(CLUSTER_KEY, fingerprint)][..],
    )?;
    let mine = info.get_fullname().to_owned();
    daemon.register(info)?;
    let events = daemon.browse(SERVICE)?;
    let accepted = std::sync::Arc::new(std::sync::RwLock::new(vec![fingerprint.to_owned()]));
    let theirs_ok = accepted.clone();
    let me = mine.clone();
    std::thread::Builder::new()
        .name("berth-mdns".into())
        .spawn(move || {
            while let Ok(event) = events.recv() {
                let mdns_sd::ServiceEvent::ServiceResolved(peer) = event else {
                    continue;
                };
                if peer.get_fullname() == me {
                    continue;
                }
                let ours = peer.get_property_val_str(CLUSTER_KEY).is_some_and(|fp| {
                    theirs_ok
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .any(|a| a == fp)
                });
                if !ours {
                    tracing::debug!(peer = %peer.get_fullname(), "mDNS: a Berth agent of another cluster");
                    continue;
                }
                // A few addresses a peer: an announcement listing many cannot aim us at them.
                for ip in peer.get_addresses_v4().into_iter().take(4) {
                    let addr = SocketAddr::new(IpAddr::V4(ip), peer.get_port());
                    tracing::debug!(peer = %peer.get_fullname(), %addr, "mDNS: found a peer");
                    if found.blocking_send(addr).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| mdns_sd::Error::Msg(format!("cannot start the mDNS thread: {e}")))?;
    tracing::info!(service = SERVICE, %advertise, "mDNS: announcing this node and looking for peers");
    Ok(Mdns {
        daemon,
        name,
        advertise,
        fullname: mine,
        accepted,
    })
}

/// A chitchat SYN with an empty digest: the peer answers with everything it knows, which
/// introduces us to the cluster. Encoded by hand (chitchat keeps its encoder private), in its
/// 0.13 wire format: magic, protocol 1, SYN, an empty digest stream, the cluster id.
pub fn introduction(cluster_id: &str) -> Vec<u8> {
    let mut d = 45_139u16.to_le_bytes().to_vec();
    d.extend_from_slice(&[1, 0, 0]);
    d.extend_from_slice(&(cluster_id.len() as u16).to_le_bytes());
    d.extend_from_slice(cluster_id.as_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_introduction_is_a_syn_our_checks_accept() {
        let own = super::super::wire::Own {
            node_id: "me".into(),
            generation: 1,
        };
        let syn = introduction("berth-sealed");
        assert_eq!(
            super::super::wire::check(&syn, &own).expect("a valid SYN"),
            syn
        );
        assert_eq!(instance("node_1.lan"), "node-1-lan");
    }
}
