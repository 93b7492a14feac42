//! The ESP data plane behind the TUN device, and the UDP serve loops.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use acclient_core::driver::tun::{RecvBatch, SendBatch};

use super::*;

/// The ESP data plane: inbound halves by SPI, outbound halves by the
/// client's leased address, each behind its own lock so the two directions
/// do not wait for each other.
#[derive(Default)]
pub(crate) struct DataPlane {
    pub(crate) inbound: Mutex<HashMap<u32, acclient_core::esp::EspIn>>,
    pub(crate) outbound: Mutex<HashMap<Ipv4Addr, (acclient_core::esp::EspOut, SocketAddr)>>,
    pub(crate) tun: Mutex<Option<Arc<tun_rs::SyncDevice>>>,
    pub(crate) faults: bool,
}

impl DataPlane {
    pub(crate) fn add(&self, lease: Ipv4Addr, peer: SocketAddr, sa: acclient_core::esp::EspSa) {
        let acclient_core::esp::EspSa { out, inp } = sa;
        self.inbound.lock().expect("dp").insert(inp.spi(), inp);
        self.outbound.lock().expect("dp").insert(lease, (out, peer));
    }

    pub(crate) fn tun(&self) -> Option<Arc<tun_rs::SyncDevice>> {
        self.tun.lock().expect("dp").clone()
    }

    /// ESP packets from clients (a GRO batch of `seg`-byte datagrams):
    /// open each and hand it to the TUN device, one lock for the batch.
    pub(crate) fn inbound(&self, batch: &mut [u8], seg: usize, out: &mut SendBatch) {
        let tun = self.tun();
        let mut map = self.inbound.lock().expect("dp");
        for pkt in batch.chunks_mut(seg.max(1)) {
            let Some(spi) = acclient_core::esp::spi_of(pkt) else {
                continue;
            };
            let Some(sa) = map.get_mut(&spi) else {
                continue;
            };
            match sa.decapsulate(pkt) {
                Ok(ip) if !ip.is_empty() => {
                    out.push(ip);
                    if out.is_full() {
                        if let Some(t) = &tun {
                            let _ = out.send_sync(t);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => log(&format!("ESP from a client dropped: {e:?}")),
            }
        }
        // One coalesced write per flow where the kernel allows (TUN GRO).
        if let Some(t) = &tun {
            let _ = out.send_sync(t);
        }
    }

    /// Packets for the pool, read from the TUN device, sealed to their
    /// client, sent in GSO batches (one `sendmsg` per run of packets to the
    /// same client).
    pub(crate) fn outbound_loop(&self, dev: Arc<tun_rs::SyncDevice>, sock: Arc<UdpSocket>) {
        use acclient_core::driver::udp::GsoBatch;
        use std::os::fd::{AsRawFd, BorrowedFd};
        let mut rb = RecvBatch::new(1500);
        let mut batch = GsoBatch::default();
        let mut to: Option<SocketAddr> = None;
        let mut n_out: u64 = 0;
        let _ = dev.set_nonblocking(true);
        let flush = |batch: &mut GsoBatch, to: Option<SocketAddr>| {
            while !batch.is_empty() {
                match batch.flush_to(&*sock, to) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_micros(50))
                    }
                    _ => break,
                }
            }
        };
        loop {
            match rb.recv_sync(&dev) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    flush(&mut batch, to);
                    // SAFETY: `dev` owns the descriptor and outlives this borrow.
                    let fd = unsafe { BorrowedFd::borrow_raw(dev.as_raw_fd()) };
                    let mut p = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::NONE);
                    continue;
                }
                Err(_) => continue,
            };
            // One read may be a whole TCP burst, cut into packets (TUN TSO).
            for buf in rb.packets() {
                let n = buf.len();
                if n < 20 || buf[0] >> 4 != 4 {
                    continue;
                }
                let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
                let mut map = self.outbound.lock().expect("dp");
                let Some((sa, peer)) = map.get_mut(&dst) else {
                    continue;
                };
                let peer = *peer;
                let len = sa.sealed_len(n);
                if to != Some(peer) || batch.reserve(len).is_none() {
                    flush(&mut batch, to);
                    to = Some(peer);
                }
                let fault = self.faults && (n_out + 1).is_multiple_of(10);
                let mut last = Vec::new();
                match batch.reserve(len) {
                    Some(room) => match sa.encapsulate(&buf[..n], room) {
                        Ok(m) => {
                            if fault {
                                last = room[..m].to_vec();
                            }
                            batch.commit(m)
                        }
                        Err(_) => continue,
                    },
                    None => continue,
                }
                n_out += 1;
                if fault {
                    // Fault knob: a corrupted packet with a fresh sequence number
                    // (ICV, checked only after the replay window lets it through),
                    // the packet just sent again (replay), and one with a SPI
                    // nobody has.
                    let mut bad = vec![0u8; len + 64];
                    let k = sa.encapsulate(&buf[..n], &mut bad).unwrap_or(0);
                    bad.truncate(k);
                    if k > 0 {
                        bad[k / 2] ^= 0x55;
                    }
                    drop(map);
                    flush(&mut batch, to);
                    let mut spi = last.clone();
                    if spi.len() >= 4 {
                        spi[..4].copy_from_slice(&0x0bad_5b15u32.to_be_bytes());
                    }
                    for d in [&last, &bad, &spi] {
                        let _ = sock.send_to(d, peer);
                    }
                    log("fault knob: sent a replayed, a corrupted and an unknown-SPI ESP packet");
                }
            }
        }
    }
}

pub(crate) fn serve(gw: Arc<Mutex<Gw>>, sock: Arc<UdpSocket>, nat: bool) {
    let mut buf = vec![0u8; 65536];
    let dp = gw.lock().expect("gateway lock").dp.clone();
    if nat {
        acclient_core::driver::udp::enable_gro(&*sock);
    }
    let mut cmsg = acclient_core::driver::udp::gro_cmsg_space();
    let mut out = SendBatch::default();
    loop {
        let Ok((total, seg, from)) =
            acclient_core::driver::udp::recv_gro(&*sock, &mut buf, &mut cmsg)
        else {
            continue;
        };
        let Some(from) = from else { continue };
        // GRO hands over several datagrams of `seg` bytes back to back
        // (ESP, and equally sized IKE fragments too).
        // ESP (the common case): the whole batch at once.
        if nat
            && total >= 8
            && buf[..4] != [0, 0, 0, 0]
            && buf[..total]
                .chunks(seg)
                .all(|d| d.len() >= 8 && d[..4] != [0, 0, 0, 0])
        {
            dp.inbound(&mut buf[..total], seg, &mut out);
            continue;
        }
        for d in buf[..total].chunks_mut(seg) {
            if nat && d.len() >= 8 && d[..4] != [0, 0, 0, 0] {
                dp.inbound(d, d.len(), &mut out); // ESP
                continue;
            }
            let data = if nat {
                match &d[..] {
                    [0, 0, 0, 0, rest @ ..] => rest,
                    [0xff] => {
                        log(&format!("NAT-T keepalive from {from}"));
                        continue;
                    }
                    _ => continue,
                }
            } else {
                &d[..]
            };
            handle_ike(&gw, &sock, nat, from, data);
        }
    }
}

pub(crate) fn handle_ike(
    gw: &Mutex<Gw>,
    sock: &UdpSocket,
    nat: bool,
    from: SocketAddr,
    data: &[u8],
) {
    let mut g = gw.lock().expect("gateway lock");
    if g.lose() {
        log("fault knob: dropped a received datagram");
        return;
    }
    let answers = g.handle(from, data);
    let delay = g.a.knobs.delay_ms;
    if delay > 0 {
        drop(g);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        g = gw.lock().expect("gateway lock");
    }
    for d in answers {
        // Fault knobs on Cisco fragments (next payload 132, number at byte 34).
        if d.len() > 35 && d[16] == 132 {
            let n = d[34];
            if g.a.knobs.stall_fragment == Some(n) {
                log(&format!("fault knob: withholding fragment {n}"));
                continue;
            }
            if g.a.knobs.drop_fragment == Some(n) {
                log(&format!("fault knob: dropping fragment {n} once"));
                g.a.knobs.drop_fragment = None;
                continue;
            }
        }
        let mut out = Vec::with_capacity(d.len() + 4);
        if nat {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        out.extend_from_slice(&d);
        let _ = sock.send_to(&out, from);
        if g.a.knobs.dup {
            let _ = sock.send_to(&out, from);
        }
    }
}
