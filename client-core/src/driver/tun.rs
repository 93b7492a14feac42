//! The TUN device (the `tun` crate creates it; tokio's `AsyncFd` waits on
//! it). Layer 3, no packet-information header: each read is one IP packet.

use std::io;

use tokio::io::unix::AsyncFd;

/// An open TUN device, non-blocking.
pub struct Tun {
    fd: AsyncFd<tun::Device>,
    name: String,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tun({})", self.name)
    }
}

impl Tun {
    /// Creates `name` (down; [`super::netconfig`] brings it up with its
    /// addresses once the gateway assigned them).
    pub fn create(name: &str) -> io::Result<Tun> {
        let mut c = tun::Configuration::default();
        c.tun_name(name);
        c.platform_config(|p| {
            // Addresses, MTU and state come over rtnetlink, not ioctls.
            p.ensure_root_privileges(false);
        });
        let dev = tun::create(&c).map_err(|e| {
            io::Error::other(format!(
                "cannot create TUN device {name}: {e} (needs root or CAP_NET_ADMIN, and /dev/net/tun)"
            ))
        })?;
        dev.set_nonblock()?;
        let name = {
            use tun::AbstractDevice;
            dev.tun_name().unwrap_or_else(|_| name.to_string())
        };
        // `AsyncFd::new` is deprecated for I/O safety (an fd closed while
        // registered); here the AsyncFd owns the device and so its fd, which
        // is the safe case, and `register` would need `unsafe`.
        #[allow(deprecated)]
        let fd = AsyncFd::new(dev)?;
        Ok(Tun { fd, name })
    }

    /// The kernel's name for it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until a packet can be read.
    pub async fn readable(
        &self,
    ) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, tun::Device>> {
        self.fd.readable().await
    }

    /// Reads one packet without waiting (`WouldBlock` when there is none).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.get_ref().recv(buf)
    }

    /// Writes one packet; a full queue drops it (like any router would).
    pub fn try_send(&self, pkt: &[u8]) -> io::Result<usize> {
        self.fd.get_ref().send(pkt)
    }
}
