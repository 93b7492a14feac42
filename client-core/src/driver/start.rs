//! Starting a session: the one place the driver side reads the clock for
//! it — the engine's start `Instant` and the Unix time the gateway's
//! certificate is checked against — and binds its sockets. The first
//! session and every reconnect come from here, for the CLI's in-process
//! tunnel and for the agent alike; the engine only ever receives `now`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use super::{Reconnect, Sockets};
use crate::crypto::SystemRng;
use crate::settings::AuthMethod;
use crate::{DisconnectReason, Session, Settings};

/// Where a session's sockets go: the gateway, our source address and our
/// local IKE / NAT-T ports (0: any).
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// The gateway's IKE address.
    pub gateway: SocketAddr,
    /// Bind to this local address.
    pub source: Option<IpAddr>,
    /// Our IKE port (500 as root).
    pub ike_port: u16,
    /// Our NAT-T port (4500 as root).
    pub nat_port: u16,
}

impl Endpoint {
    /// Binds the IKE and NAT-T sockets (the gateway's NAT-T port is 4500).
    pub async fn bind(&self) -> io::Result<Sockets> {
        Sockets::bind(
            self.gateway,
            4500,
            self.source,
            self.ike_port,
            self.nat_port,
        )
        .await
    }
}

/// A session for `settings`, started now: the certificate check's Unix
/// time and the engine's start instant are read here, once per session
/// (a reconnect days later checks the certificate against its own day).
pub fn new_session(mut settings: Settings) -> Result<Session, DisconnectReason> {
    settings.trust.unix_time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Session::new(settings, Box::new(SystemRng), Instant::now())
}

/// What the driver calls to log in again after the gateway was lost: fresh
/// sockets at `ep` (with large buffers, as a tunnel's), `base` with the
/// AnyConnect resume token if the last session left one, a new session.
pub fn reconnector(base: Settings, ep: Endpoint) -> Reconnect {
    Box::new(move |resume| {
        let mut st = base.clone();
        if let AuthMethod::AnyConnect(ac) = &mut st.auth {
            ac.resume = resume;
        }
        Box::pin(async move {
            let socks = ep.bind().await?;
            socks.grow_buffers(4 << 20);
            st.local = socks.local_addr()?;
            let sess = new_session(st).map_err(|e| io::Error::other(e.to_string()))?;
            Ok((sess, socks))
        })
    })
}
