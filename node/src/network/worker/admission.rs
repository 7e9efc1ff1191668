//! Which new connections the node keeps.
//!
//! Connection counts are bounded by the `limits` behaviour (total, inbound,
//! per peer, pending), and banned peers are refused by the `blocked`
//! behaviour on every dial and every accept. What those cannot see is where
//! a peer connects from: one host can present many peer ids. An inbound
//! connection from an address that already has [`MAX_INBOUND_PER_IP`]
//! inbound peers is closed, so one machine cannot take the inbound slots.
//! Loopback is exempt: tests, the load harness and single-host deployments
//! run every node there. Outbound connections are the node's own choice
//! and are not limited by address.

use super::*;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use std::net::IpAddr;

/// Most inbound peers from one IP address (loopback exempt).
pub(super) const MAX_INBOUND_PER_IP: usize = 4;

/// The IP address a multiaddress starts with, if any.
pub(super) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Whether a new inbound peer from `ip` is refused, given the addresses of
/// the inbound peers already connected.
pub(super) fn over_ip_limit<'a>(ip: IpAddr, inbound: impl Iterator<Item = &'a Multiaddr>) -> bool {
    if ip.is_loopback() {
        return false;
    }
    inbound.filter(|a| ip_of(a) == Some(ip)).count() >= MAX_INBOUND_PER_IP
}

impl Worker {
    /// Keeps or closes a peer's first connection (see the module docs).
    pub(super) fn admit(&mut self, peer: PeerId, endpoint: &ConnectedPoint) -> bool {
        if !endpoint.is_listener() {
            return true;
        }
        let Some(ip) = ip_of(endpoint.get_remote_address()) else {
            return true;
        };
        let inbound = self
            .peers
            .values()
            .filter(|p| p.inbound)
            .map(|p| &p.address);
        if !over_ip_limit(ip, inbound) {
            return true;
        }
        tracing::debug!(target: "cachecash::network", %peer, %ip, "closing an inbound connection: {MAX_INBOUND_PER_IP} inbound peers from this address already");
        self.metrics
            .peers_refused
            .get_or_create(&vec![("reason", "per_ip_limit")])
            .inc();
        let _ = self.swarm.disconnect_peer_id(peer);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_fifth_inbound_peer_from_one_address_is_refused_but_loopback_is_exempt() {
        let four: Vec<Multiaddr> = (0..4)
            .map(|i| addr(&format!("/ip4/203.0.113.7/tcp/{}", 4000 + i)))
            .collect();
        let other = addr("/ip4/198.51.100.1/tcp/1");
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(over_ip_limit(ip, four.iter()));
        assert!(!over_ip_limit(ip, four.iter().take(3).chain([&other])));
        assert!(!over_ip_limit(
            "198.51.100.1".parse().unwrap(),
            four.iter().chain([&other])
        ));
        let local: Vec<Multiaddr> = (0..50)
            .map(|i| addr(&format!("/ip4/127.0.0.1/tcp/{}", 4000 + i)))
            .collect();
        assert!(!over_ip_limit("127.0.0.1".parse().unwrap(), local.iter()));
        assert_eq!(ip_of(&addr("/ip6/::1/tcp/1")), Some("::1".parse().unwrap()));
        assert_eq!(ip_of(&addr("/dns4/example.org/tcp/1")), None);
    }
}
