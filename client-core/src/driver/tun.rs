//! The TUN device, with the kernel's TCP offloads (`IFF_VNET_HDR` +
//! `TUNSETOFFLOAD`, through the `tun-rs` crate): one `read` returns a whole
//! TCP burst of up to 64 KB, which is cut into MTU-sized packets here, and a
//! batch of received packets of one flow is coalesced back into one `write`.
//!
//! Why not the `tun` crate any more: it has no offload support, and the
//! throughput benchmark (tests/bench/throughput.sh) showed one `read` and one
//! `write` per packet as the largest cost left once ESP went out in UDP GSO
//! batches (see the README for the numbers before and after).

use std::io;

use tun_rs::{
    AsyncDevice, DeviceBuilder, GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN,
};

/// Headroom in front of each outgoing packet for the virtio-net header.
const OFFSET: usize = VIRTIO_NET_HDR_LEN + 6;
/// What tun-rs asks of a buffer before it coalesces into it: twice the
/// offset plus the largest IP packet.
const COALESCE_CAP: usize = 2 * OFFSET + 65535;

/// An open TUN device.
pub struct Tun {
    dev: AsyncDevice,
    name: String,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tun({})", self.name)
    }
}

/// Buffers for reading: one raw frame, then its packets.
pub struct RecvBatch {
    raw: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    n: usize,
}

impl RecvBatch {
    /// Room for packets up to `mtu` bytes.
    pub fn new(mtu: usize) -> Self {
        RecvBatch {
            raw: vec![0u8; VIRTIO_NET_HDR_LEN + 65535],
            bufs: vec![vec![0u8; mtu.max(1280) + 64]; IDEAL_BATCH_SIZE],
            sizes: vec![0; IDEAL_BATCH_SIZE],
            n: 0,
        }
    }

    /// The packets of the last read.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs[..self.n]
            .iter()
            .zip(&self.sizes[..self.n])
            .map(|(b, &s)| &b[..s])
    }
}

/// Packets waiting to be written (coalesced where they can be).
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    n: usize,
    gro: GROTable,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            // tun-rs coalesces a flow into the buffer of its first packet
            // only if that buffer's *capacity* already holds the result (it
            // never grows one): each must have room for a 64 KB super-packet.
            // With MTU-sized buffers nothing coalesced, one write per packet
            // (bench: 2.5 instead of 5+ Gbit/s). Reserved, not touched: pages
            // count towards RSS only once a coalesced write has used them.
            bufs: (0..IDEAL_BATCH_SIZE)
                .map(|_| Vec::with_capacity(COALESCE_CAP))
                .collect(),
            n: 0,
            gro: GROTable::default(),
        }
    }
}

impl RecvBatch {
    /// One frame from a blocking device (the test gateway's threads).
    pub fn recv_sync(&mut self, dev: &SyncDevice) -> io::Result<usize> {
        self.n = dev.recv_multiple(&mut self.raw, &mut self.bufs, &mut self.sizes, 0)?;
        Ok(self.n)
    }
}

impl SendBatch {
    /// Writes everything queued to a blocking device.
    pub fn send_sync(&mut self, dev: &SyncDevice) -> io::Result<usize> {
        if self.n == 0 {
            return Ok(0);
        }
        let n = std::mem::take(&mut self.n);
        dev.send_multiple(&mut self.gro, &mut self.bufs[..n], OFFSET)
    }

    /// Whether it is full.
    pub fn is_full(&self) -> bool {
        self.n == self.bufs.len()
    }

    /// Queues a copy of `ip`.
    pub fn push(&mut self, ip: &[u8]) {
        if let Some(b) = self.bufs.get_mut(self.n) {
            b.clear();
            b.resize(OFFSET, 0);
            b.extend_from_slice(ip);
            self.n += 1;
        }
    }
}

impl Tun {
    /// Creates `name`, down and without addresses ([`super::netconfig`]
    /// brings it up with what the gateway assigned).
    pub fn create(name: &str) -> io::Result<Tun> {
        let dev = DeviceBuilder::new()
            .name(name)
            .offload(true)
            .enable(false)
            .build_async()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot create TUN device {name}: {e} (needs root or CAP_NET_ADMIN, and /dev/net/tun)"
                ))
            })?;
        let name = dev.name().unwrap_or_else(|_| name.to_string());
        Ok(Tun { dev, name })
    }

    /// The kernel's name for it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until a frame can be read.
    pub async fn readable(&self) -> io::Result<()> {
        self.dev.readable().await
    }

    /// Reads one frame without waiting (`WouldBlock` when none).
    pub fn try_recv(&self, rb: &mut RecvBatch) -> io::Result<usize> {
        let RecvBatch {
            raw,
            bufs,
            sizes,
            n,
        } = rb;
        *n = self.dev.try_recv_multiple(raw, bufs, sizes, 0)?;
        Ok(*n)
    }

    /// Writes everything queued in `sb` (coalescing TCP/UDP flows).
    pub async fn send(&self, sb: &mut SendBatch) -> io::Result<usize> {
        if sb.n == 0 {
            return Ok(0);
        }
        let n = sb.n;
        sb.n = 0;
        self.dev
            .send_multiple(&mut sb.gro, &mut sb.bufs[..n], OFFSET)
            .await
    }
}
