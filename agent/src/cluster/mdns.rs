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
    let fingerprint = fingerprint.to_owned();
    std::thread::Builder::new()
        .name("berth-mdns".into())
        .spawn(move || {
            while let Ok(event) = events.recv() {
                let mdns_sd::ServiceEvent::ServiceResolved(peer) = event else {
                    continue;
                };
                if peer.get_fullname() == mine {
                    continue;
                }
                if peer.get_property_val_str(CLUSTER_KEY) != Some(fingerprint.as_str()) {
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
    Ok(Mdns { daemon })
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
