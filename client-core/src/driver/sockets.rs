//! The two UDP sockets of a session (RFC 7296 §2.23, RFC 3948): IKE on
//! port 500 and NAT-T on 4500, both connected to the gateway, the NAT-T one
//! with UDP GRO for ESP bursts.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;
use tracing::debug;

use super::udp;

/// Our two UDP sockets: IKE (500) and NAT-T (4500).
#[derive(Debug)]
pub struct Sockets {
    pub(crate) ike: UdpSocket,
    pub(crate) nat: UdpSocket,
    pub(crate) remote: SocketAddr,
}

impl Sockets {
    /// Binds both sockets, connected to `gateway`'s IKE and NAT-T ports.
    /// `source` picks the local address; ports are `ike_port` and `nat_port`
    /// (0 = any, which works but makes the gateway see a NAT).
    pub async fn bind(
        gateway: SocketAddr,
        nat_port: u16,
        source: Option<IpAddr>,
        ike_port: u16,
        local_nat_port: u16,
    ) -> io::Result<Sockets> {
        let any = match gateway.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let ip = source.unwrap_or(any);
        let ike = UdpSocket::bind(SocketAddr::new(ip, ike_port)).await?;
        ike.connect(gateway).await?;
        let nat = UdpSocket::bind(SocketAddr::new(ip, local_nat_port)).await?;
        nat.connect(SocketAddr::new(gateway.ip(), nat_port)).await?;
        if !udp::enable_gro(&nat) {
            debug!("UDP GRO unavailable: one datagram per receive");
        }
        Ok(Sockets {
            ike,
            nat,
            remote: gateway,
        })
    }

    /// Local address of the IKE socket (after `connect`, the real source IP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ike.local_addr()
    }

    /// Asks the kernel for a large receive buffer on the ESP socket, past
    /// the global default (`SO_RCVBUFFORCE` as root, else `SO_RCVBUF`):
    /// bursts at line rate otherwise overflow it and cost retransmissions.
    pub fn grow_buffers(&self, bytes: usize) {
        use nix::sys::socket::{setsockopt, sockopt};
        let s = &self.nat;
        if setsockopt(s, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = setsockopt(s, sockopt::RcvBuf, &bytes);
        }
        if setsockopt(s, sockopt::SndBufForce, &bytes).is_err() {
            let _ = setsockopt(s, sockopt::SndBuf, &bytes);
        }
    }

    pub(crate) fn locals(&self) -> (SocketAddr, SocketAddr) {
        let z = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        (
            self.ike.local_addr().unwrap_or(z),
            self.nat.local_addr().unwrap_or(z),
        )
    }

    /// The gateway's NAT-T address as connected.
    pub(crate) fn nat_peer(&self) -> SocketAddr {
        let port = self.nat.peer_addr().map(|a| a.port()).unwrap_or(4500);
        SocketAddr::new(self.remote.ip(), port)
    }
}
