//! The ESP SAs of one session, owned by the session (one owner for each
//! SA): the outbound half of the current CHILD SA and the inbound halves by
//! SPI. A rekey is make-before-break (RFC 7296 §2.8): the new SA takes over
//! at once, the replaced inbound halves keep opening what the gateway sealed
//! before it switched for [`OLD_SA_GRACE`], then go.

use std::time::{Duration, Instant};

use tracing::warn;

use super::{spi_of, ChildSaInfo, DropReason, EspCounters, EspIn, EspOut, EspSa};

/// How long a replaced inbound SA keeps working after a rekey.
pub const OLD_SA_GRACE: Duration = Duration::from_secs(20);

struct Inbound {
    sa: EspIn,
    /// When it stops working (set once it was replaced).
    retire_at: Option<Instant>,
}

/// The data plane's SAs and counters.
#[derive(Default)]
pub(crate) struct SaTable {
    out: Option<EspOut>,
    inbound: Vec<Inbound>,
    pub(crate) counters: EspCounters,
    /// A rekey was asked for the current outbound SA's sequence numbers.
    rekey_asked: bool,
    /// The tunnel has an IPv6 address: IPv6 may be sealed.
    pub(crate) ipv6: bool,
}

impl SaTable {
    /// Installs a CHILD SA's halves; the earlier inbound ones retire after
    /// the grace period. Returns false for a suite the data plane lacks.
    pub(crate) fn install(&mut self, info: &ChildSaInfo, now: Instant) -> bool {
        let Some(EspSa { out, inp }) = EspSa::new(info) else {
            warn!("CHILD SA with an unsupported ESP suite: no data plane");
            return false;
        };
        let retire = now.checked_add(OLD_SA_GRACE);
        for i in &mut self.inbound {
            if i.retire_at.is_none() {
                i.retire_at = retire;
            }
        }
        self.retire(now);
        self.inbound.push(Inbound {
            sa: inp,
            retire_at: None,
        });
        self.out = Some(out);
        self.rekey_asked = false;
        true
    }

    /// Stops sending on the current SA and lets its inbound half retire
    /// (the gateway deleted it).
    pub(crate) fn remove_current(&mut self, now: Instant) {
        self.out = None;
        let retire = now.checked_add(OLD_SA_GRACE);
        for i in &mut self.inbound {
            i.retire_at.get_or_insert_with(|| retire.unwrap_or(now));
        }
    }

    /// Drops the inbound halves whose grace is over.
    pub(crate) fn retire(&mut self, now: Instant) {
        self.inbound.retain(|i| i.retire_at.is_none_or(|t| t > now));
    }

    /// When the next replaced half retires.
    pub(crate) fn next_retirement(&self) -> Option<Instant> {
        self.inbound.iter().filter_map(|i| i.retire_at).min()
    }

    /// Whether there is an outbound SA.
    pub(crate) fn can_send(&self) -> bool {
        self.out.is_some()
    }

    /// The size `ip_len` bytes take sealed, if there is an outbound SA.
    pub(crate) fn sealed_len(&self, ip_len: usize) -> Option<usize> {
        self.out.as_ref().map(|o| o.sealed_len(ip_len))
    }

    /// Seals an IP packet into `out`. Counts what it sealed or dropped.
    pub(crate) fn seal(&mut self, ip: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        if !self.ipv6 && ip.first().is_some_and(|b| b >> 4 == 6) {
            // The kernel's own link-local and multicast IPv6 on the device
            // (router solicitations, MLD) is no leak: dropped, not counted.
            let own = match ip.get(24..26) {
                Some(&[0xff, _]) => true,
                Some(&[0xfe, b]) => b & 0xc0 == 0x80,
                _ => false,
            };
            if !own {
                self.counters.drop_ipv6 += 1;
            }
            return Err(DropReason::Ipv6Blocked);
        }
        let Some(sa) = self.out.as_mut() else {
            self.counters.drop_tx += 1;
            return Err(DropReason::UnknownSpi);
        };
        match sa.encapsulate(ip, out) {
            Ok(n) => {
                self.counters.tx_bytes += ip.len() as u64;
                Ok(n)
            }
            Err(e) => {
                self.counters.drop_tx += 1;
                Err(e)
            }
        }
    }

    /// Whether the outbound SA's sequence numbers near their end and no
    /// rekey was asked for them yet (true once).
    pub(crate) fn take_rekey_due(&mut self) -> bool {
        if !self.rekey_asked && self.out.as_ref().is_some_and(EspOut::rekey_due) {
            self.rekey_asked = true;
            return true;
        }
        false
    }

    /// Opens an ESP packet in place; counts it or the reason it was dropped.
    /// The SPI lookup and the replay window come before any cryptography.
    pub(crate) fn open<'a>(
        &mut self,
        pkt: &'a mut [u8],
        now: Instant,
    ) -> Result<&'a [u8], DropReason> {
        let r = self.open_inner(pkt, now);
        match &r {
            Ok(ip) => {
                let c = &mut self.counters;
                c.rx_packets += 1;
                c.rx_bytes += ip.len() as u64;
                // An ICMP echo reply (type 0) carrying our probe's identifier.
                if ip.len() >= 28
                    && ip[0] >> 4 == 4
                    && ip[9] == 1
                    && ip[20] == 0
                    && ip[24..26] == [0xac, 0xac]
                {
                    c.echo_replies += 1;
                }
            }
            Err(e) => self.counters.drop_in(*e),
        }
        r
    }

    fn open_inner<'a>(&mut self, pkt: &'a mut [u8], now: Instant) -> Result<&'a [u8], DropReason> {
        let spi = spi_of(pkt).ok_or(DropReason::Malformed)?;
        let Some(i) = self
            .inbound
            .iter_mut()
            .find(|i| i.sa.spi() == spi && i.retire_at.is_none_or(|t| t > now))
        else {
            return Err(DropReason::UnknownSpi);
        };
        i.sa.decapsulate(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cipher::Encr;
    use crate::crypto::Secret;

    fn info(spi_in: u32, spi_out: u32, key: u8) -> ChildSaInfo {
        let k = || Secret::new(vec![key; 36]);
        ChildSaInfo {
            spi_in,
            spi_out,
            encr: Encr::AesGcm16(32),
            integ: None,
            esn: false,
            encr_out: k(),
            integ_out: Secret::new(vec![]),
            encr_in: k(),
            integ_in: Secret::new(vec![]),
            ts_local: vec![],
            ts_remote: vec![],
        }
    }

    /// The gateway's view of `info`: its out is our in.
    fn peer(i: &ChildSaInfo) -> EspSa {
        let mut p = i.clone();
        std::mem::swap(&mut p.spi_in, &mut p.spi_out);
        EspSa::new(&p).unwrap()
    }

    /// Make-before-break: after a rekey the old inbound SA opens packets for
    /// the grace period, then they count as unknown SPI.
    #[test]
    fn replaced_inbound_sa_retires_after_grace() {
        let now = crate::test_now();
        let mut t = SaTable::default();
        let (a, b) = (info(0xc000_0001, 0x1, 1), info(0xc000_0002, 0x2, 2));
        assert!(t.install(&a, now));
        let mut gw_a = peer(&a);
        assert!(t.install(&b, now));
        assert_eq!(t.next_retirement(), Some(now + OLD_SA_GRACE));
        let ip = [0x45u8; 40];
        let mut pkt = vec![0u8; 200];
        let n = gw_a.encapsulate(&ip, &mut pkt).unwrap();
        let mut late = pkt[..n].to_vec();
        assert_eq!(
            t.open(&mut pkt[..n], now).unwrap(),
            &ip[..],
            "old SA still opens"
        );
        let n2 = gw_a.encapsulate(&ip, &mut late).unwrap();
        let after = now + OLD_SA_GRACE;
        t.retire(after);
        assert_eq!(t.open(&mut late[..n2], after), Err(DropReason::UnknownSpi));
        assert_eq!(t.counters.rx_packets, 1);
        assert_eq!(t.counters.drop_unknown_spi, 1);
        assert_eq!(t.next_retirement(), None);
    }

    #[test]
    fn sealing_needs_an_sa() {
        let now = crate::test_now();
        let mut t = SaTable::default();
        let mut out = [0u8; 100];
        assert!(t.seal(&[0x45; 20], &mut out).is_err());
        assert_eq!(t.counters.drop_tx, 1);
        t.install(&info(0xc000_0001, 0x1, 1), now);
        assert!(t.seal(&[0x45; 20], &mut out).is_ok());
        assert!(!t.take_rekey_due());
        t.remove_current(now);
        assert!(!t.can_send());
    }

    /// Without an IPv6 address in the tunnel, IPv6 is dropped and counted
    /// (the leak block), not sealed; with one, it is sealed like IPv4.
    #[test]
    fn ipv6_is_blocked_unless_the_tunnel_has_an_ipv6_address() {
        let now = crate::test_now();
        let mut t = SaTable::default();
        t.install(&info(0xc000_0001, 0x1, 1), now);
        let mut out = [0u8; 200];
        let v6 = [0x60u8; 60];
        assert_eq!(t.seal(&v6, &mut out), Err(DropReason::Ipv6Blocked));
        assert_eq!((t.counters.drop_ipv6, t.counters.drop_tx), (1, 0));
        let mut mld = [0x60u8; 60];
        mld[24..26].copy_from_slice(&[0xff, 0x02]);
        assert_eq!(t.seal(&mld, &mut out), Err(DropReason::Ipv6Blocked));
        assert_eq!(
            t.counters.drop_ipv6, 1,
            "the kernel's multicast is not counted"
        );
        assert!(t.seal(&[0x45; 40], &mut out).is_ok());
        t.ipv6 = true;
        assert!(t.seal(&v6, &mut out).is_ok());
        assert_eq!(t.counters.drop_ipv6, 1);
    }
}
