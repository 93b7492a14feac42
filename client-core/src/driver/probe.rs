//! Troubleshooting aids of the driver: a data-plane probe (ICMP echo
//! requests sealed straight into ESP, no TUN device needed) and the IKE key
//! log for Wireshark.

use std::net::Ipv4Addr;
use std::path::Path;

use tracing::warn;

/// An IPv4 ICMP echo request with correct checksums.
pub(crate) fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    fn sum(b: &[u8]) -> u16 {
        let mut s: u32 = b
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
    let mut icmp = vec![8, 0, 0, 0, 0xac, 0xac];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"acclient data-plane probe");
    let c = sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// Appends one `ikev2_decryption_table` line. The file holds keys: it is
/// created owner-only (0600) and never followed through a symlink.
pub(crate) fn write_keylog(path: &Path, line: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = r {
        warn!("cannot write IKE key log {}: {e}", path.display());
    }
}
