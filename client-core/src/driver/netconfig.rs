//! Linux network setup for a tunnel, over rtnetlink (no `ip` subprocess):
//! link up + MTU, the assigned addresses, the routes of
//! [`crate::routes::plan`], and DNS in `/etc/resolv.conf`.
//!
//! Everything we change that outlives our process is written to a journal
//! *before* the change (the undo operation, fsynced). A clean teardown
//! replays it in reverse and deletes it; after a crash or `kill -9` the next
//! start replays it ([`replay_journal`]). Addresses and routes on the TUN
//! device need no journal: the kernel removes them with the device when our
//! file descriptor closes, however we die.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use tracing::{debug, info, warn};

use crate::routes::{Prefix, Route, Via};

const JOURNAL: &str = "journal";
const RESOLV: &str = "/etc/resolv.conf";
const RESOLV_BACKUP: &str = "resolv.conf.orig";

/// The directory for the journal and backups: `$ACCLIENT_STATE_DIR`, else
/// `/run/acclient` (tmpfs: a reboot forgets it, as it forgets the routes).
pub fn state_dir() -> PathBuf {
    std::env::var_os("ACCLIENT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/acclient"))
}

/// Checks (or makes, 0755) the state directory: a real directory, owned by
/// us (root), not writable by group or others. Everything in it is trusted
/// at the next start, so anything else is refused with why.
pub fn check_state_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => {
            return Err(io::Error::other(format!(
                "state directory {} is not a directory (a symlink?): refusing it",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let m = std::fs::symlink_metadata(dir)?;
    if m.uid() != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::other(format!(
            "state directory {} is owned by uid {}, not by us: refusing it",
            dir.display(),
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "state directory {} is writable by group or others (mode {:o}): refusing it",
            dir.display(),
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Opens a file of the state directory, owner-only (0600), never through a
/// symlink (O_NOFOLLOW): a planted link fails with a clear error.
fn open_state(path: &Path, o: &mut std::fs::OpenOptions) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    o.mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                io::Error::other(format!("{} is a symlink: refusing it", path.display()))
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
        })
}

/// The inode of our network namespace (`/proc/self/ns/net`), recorded in
/// the journal so a replay in another namespace refuses it.
fn netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino())
}

/// The journal's size limit when it is read back.
const MAX_JOURNAL: u64 = 1 << 20;

/// Held while a tunnel is up: one acclient per state directory, so a
/// second `connect` cannot mistake the first one's journal for a crash's.
#[derive(Debug)]
pub struct StateLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Takes the state directory's lock, or says who holds it. The kernel drops
/// the lock when its holder dies however it dies, so a crash never blocks
/// the next start.
pub fn lock_state(dir: &Path) -> io::Result<StateLock> {
    check_state_dir(dir)?;
    let path = dir.join("lock");
    let f = open_state(
        &path,
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut l) => {
            use std::io::{Seek, Write};
            let _ = l.set_len(0);
            let _ = l.seek(std::io::SeekFrom::Start(0));
            let _ = write!(l, "{}", std::process::id());
            Ok(StateLock { _lock: l })
        }
        Err((_, nix::Error::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            Err(io::Error::other(format!(
                "another acclient connect is running (pid {}); state in {}",
                pid.trim(),
                dir.display()
            )))
        }
        Err((_, e)) => Err(e.into()),
    }
}

pub use crate::journal::Undo;

/// The append-only undo log.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    ops: Vec<Undo>,
}

impl Journal {
    /// Starts a fresh journal in `dir` (after any old one was replayed).
    pub fn create(dir: &Path) -> io::Result<Journal> {
        check_state_dir(dir)?;
        let path = dir.join(JOURNAL);
        // A fresh file (O_EXCL after removing whatever is there, a planted
        // link included: remove_file does not follow it).
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = open_state(
            &path,
            std::fs::OpenOptions::new().write(true).create_new(true),
        )?;
        writeln!(
            f,
            "# acclient: undo operations, replayed in reverse at the next start\n{}",
            Undo::Netns(netns_inode()).line()
        )?;
        f.sync_all()?;
        Ok(Journal {
            path,
            ops: Vec::new(),
        })
    }

    /// Writes `op` durably before the change it undoes is made.
    pub fn record(&mut self, op: Undo) -> io::Result<()> {
        let mut f = open_state(&self.path, std::fs::OpenOptions::new().append(true))?;
        writeln!(f, "{}", op.line())?;
        f.sync_all()?;
        self.ops.push(op);
        Ok(())
    }

    /// Reads the journal back as untrusted input: bounded, never through a
    /// symlink, and only what acclient could have recorded (see
    /// [`crate::journal::Journal::check`]).
    fn read(dir: &Path) -> io::Result<Vec<Undo>> {
        use std::io::Read;
        let path = dir.join(JOURNAL);
        let f = open_state(&path, std::fs::OpenOptions::new().read(true))?;
        let mut text = String::new();
        f.take(MAX_JOURNAL + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_JOURNAL {
            return Err(io::Error::other(format!(
                "{} is larger than {MAX_JOURNAL} bytes: refusing it",
                path.display()
            )));
        }
        let j =
            crate::journal::Journal::check(&text, dir, netns_inode()).map_err(io::Error::other)?;
        for r in &j.refused {
            warn!("journal entry acclient could not have made, ignored: {r}");
        }
        Ok(j.ops)
    }
}

fn errno(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    }
}

fn nl(e: rtnetlink::Error, what: &str) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// A netlink connection (its task runs on the current tokio runtime).
pub fn connect() -> io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Undoes what a previous run left behind (after a crash); returns how many
/// operations were replayed. A missing journal is not an error.
pub async fn replay_journal(dir: &Path) -> io::Result<usize> {
    check_state_dir(dir)?;
    let ops = match Journal::read(dir) {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let handle = connect()?;
    // Changes to the machine; the gateway / netns / tun lines only inform.
    let n = ops
        .iter()
        .filter(|o| matches!(o, Undo::Route { .. } | Undo::Resolv(_)))
        .count();
    if n > 0 {
        info!("restoring the network settings a previous acclient run left ({n} changes)");
    }
    undo_all(&handle, &ops).await;
    std::fs::remove_file(dir.join(JOURNAL))?;
    Ok(n)
}

async fn undo_all(handle: &Handle, ops: &[Undo]) {
    for op in ops.iter().rev() {
        match op {
            Undo::Route { dst, via, oif } => {
                let r = del_route(handle, *dst, *via, *oif).await;
                match r {
                    Ok(()) => debug!("route {dst} removed"),
                    // ESRCH: already gone (its device went away), fine.
                    Err(e) if e.raw_os_error() == Some(ESRCH) => debug!("route {dst} already gone"),
                    Err(e) => warn!("cannot remove route {dst}: {e}"),
                }
            }
            Undo::Resolv(backup) => match std::fs::read(backup) {
                Ok(orig) => {
                    if let Err(e) = write_in_place(Path::new(RESOLV), &orig) {
                        warn!("cannot restore {RESOLV}: {e}");
                    } else {
                        let _ = std::fs::remove_file(backup);
                        debug!("{RESOLV} restored");
                    }
                }
                Err(e) => warn!("DNS backup {} unreadable: {e}", backup.display()),
            },
            Undo::Tun(_) | Undo::Gateway(_) | Undo::Exclude(_) | Undo::Netns(_) => {}
        }
    }
}

const ESRCH: i32 = 3;
const EEXIST: i32 = 17;

fn route_msg(
    dst: Prefix,
    via: Option<IpAddr>,
    oif: u32,
) -> io::Result<rtnetlink::packet_route::route::RouteMessage> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr, dst.len)
        .map_err(|e| io::Error::other(e.to_string()))?;
    if let Some(v) = via {
        b = b.gateway(v).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(b.output_interface(oif)
        .protocol(RouteProtocol::Static)
        .build())
}

async fn del_route(handle: &Handle, dst: Prefix, via: Option<IpAddr>, oif: u32) -> io::Result<()> {
    let m = route_msg(dst, via, oif)?;
    handle.route().del(m).execute().await.map_err(|e| match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        e => io::Error::other(e.to_string()),
    })
}

/// How the gateway is reached without the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    /// Next hop (None: on-link).
    pub via: Option<IpAddr>,
    /// Output interface.
    pub oif: u32,
    /// Prefixes of that interface (the local LAN).
    pub lan: Vec<Prefix>,
}

/// `ip route get GATEWAY` and the prefixes of its interface.
pub async fn underlay(handle: &Handle, gateway: IpAddr) -> io::Result<Underlay> {
    let len = if gateway.is_ipv4() { 32 } else { 128 };
    let q = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(gateway, len)
        .map_err(|e| io::Error::other(e.to_string()))?
        .build();
    let mut s = handle.route().get(q).execute();
    let r = s
        .try_next()
        .await
        .map_err(|e| nl(e, "route lookup for the gateway"))?
        .ok_or_else(|| io::Error::other("no route to the gateway"))?;
    let mut u = Underlay {
        via: None,
        oif: 0,
        lan: Vec::new(),
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(v)) => u.via = Some(IpAddr::V4(*v)),
            RouteAttribute::Gateway(RouteAddress::Inet6(v)) => u.via = Some(IpAddr::V6(*v)),
            RouteAttribute::Oif(i) => u.oif = *i,
            _ => {}
        }
    }
    let mut addrs = handle
        .address()
        .get()
        .set_link_index_filter(u.oif)
        .execute();
    while let Some(m) = addrs.try_next().await.map_err(|e| nl(e, "address dump"))? {
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                let link_local = match ip {
                    IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
                    IpAddr::V4(v) => v.is_link_local(),
                };
                let full = if ip.is_ipv4() { 32 } else { 128 };
                if !link_local && m.header.prefix_len < full {
                    if let Some(p) = Prefix::new(*ip, m.header.prefix_len) {
                        u.lan.push(p);
                    }
                }
            }
        }
    }
    u.lan.sort();
    u.lan.dedup();
    Ok(u)
}

/// Interface index of `name`.
pub async fn link_index(handle: &Handle, name: &str) -> io::Result<u32> {
    let mut s = handle.link().get().match_name(name.to_string()).execute();
    let m = s
        .try_next()
        .await
        .map_err(|e| nl(e, &format!("link {name}")))?
        .ok_or_else(|| io::Error::other(format!("no link {name}")))?;
    Ok(m.header.index)
}

/// MTU of interface `index`.
pub async fn link_mtu(handle: &Handle, index: u32) -> io::Result<u32> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut s = handle.link().get().match_index(index).execute();
    let m = s
        .try_next()
        .await
        .map_err(|e| nl(e, "link dump"))?
        .ok_or_else(|| io::Error::other(format!("no link {index}")))?;
    m.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .ok_or_else(|| io::Error::other("link without MTU"))
}

/// The changes one tunnel made, to be undone at the end.
#[derive(Debug)]
pub struct NetConfig {
    handle: Handle,
    journal: Journal,
    dir: PathBuf,
    /// DNS set on our link through systemd-resolved.
    resolved: Option<(zbus::Connection, u32)>,
}

/// What to configure.
#[derive(Clone, Debug, Default)]
pub struct NetSetup {
    /// Addresses for the TUN device.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Its MTU.
    pub mtu: u32,
    /// Routes from [`crate::routes::plan`].
    pub routes: Vec<Route>,
    /// Resolver servers (empty: leave DNS alone).
    pub dns: Vec<IpAddr>,
    /// Search domains.
    pub search: Vec<String>,
    /// Split-DNS domains (Cisco's list): only these names go to the
    /// tunnel's servers when the tunnel is split.
    pub split_dns: Vec<String>,
    /// Everything goes through the tunnel (DNS too).
    pub full_tunnel: bool,
    /// Who configured it (a comment in resolv.conf).
    pub gateway: String,
}

impl NetConfig {
    /// Replays any old journal, then starts a new one.
    pub async fn start(dir: &Path) -> io::Result<NetConfig> {
        replay_journal(dir).await?;
        Ok(NetConfig {
            handle: connect()?,
            journal: Journal::create(dir)?,
            dir: dir.to_path_buf(),
            resolved: None,
        })
    }

    /// The netlink handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Brings the TUN device `name` (index `index`) up with addresses,
    /// routes and DNS.
    pub async fn apply(
        &mut self,
        name: &str,
        index: u32,
        s: &NetSetup,
        under: &Underlay,
    ) -> io::Result<()> {
        self.journal.record(Undo::Tun(name.to_string()))?;
        if let Ok(g) = s.gateway.parse::<IpAddr>() {
            self.journal.record(Undo::Gateway(g))?;
        }
        for r in s.routes.iter().filter(|r| r.via == Via::Underlay) {
            if r.dst != Prefix::host(s.gateway.parse().unwrap_or(r.dst.addr)) {
                self.journal.record(Undo::Exclude(r.dst))?;
            }
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(s.mtu).up().build())
            .execute()
            .await
            .map_err(|e| nl(e, &format!("set {name} up, MTU {}", s.mtu)))?;
        for (ip, len) in &s.addresses {
            let mut req = self.handle.address().add(index, *ip, *len);
            if ip.is_ipv6() {
                // No duplicate address detection: the address is ours by
                // assignment, and DAD would hold it "tentative" for a second.
                req.message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            match req.execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == EEXIST => {}
                Err(e) => return Err(nl(e, &format!("add address {ip}/{len} to {name}"))),
            }
        }
        // IPv6 into a tunnel device that has no IPv6 address is the leak
        // block (routes.rs): make sure the device takes IPv6 at all.
        let v6_block = !s.addresses.iter().any(|(a, _)| a.is_ipv6());
        let ipv6_kernel = std::path::Path::new("/proc/sys/net/ipv6").exists();
        if v6_block && ipv6_kernel {
            let knob = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
            if std::fs::read_to_string(&knob).is_ok_and(|v| v.trim() != "0") {
                std::fs::write(&knob, "0")
                    .map_err(|e| io::Error::new(e.kind(), format!("{knob}: {e}")))?;
            }
        }
        for r in &s.routes {
            if v6_block && r.via == Via::Tunnel && r.dst.addr.is_ipv6() && !ipv6_kernel {
                info!("no IPv6 in this kernel: nothing to block around the tunnel");
                continue;
            }
            let (via, oif) = match r.via {
                Via::Tunnel => (None, index),
                Via::Underlay => {
                    if under
                        .via
                        .is_some_and(|v| v.is_ipv4() != r.dst.addr.is_ipv4())
                    {
                        warn!(
                            "no {} underlay for exclude {}: skipped",
                            if r.dst.addr.is_ipv4() { "IPv4" } else { "IPv6" },
                            r.dst
                        );
                        continue;
                    }
                    (under.via, under.oif)
                }
            };
            if r.via == Via::Underlay {
                self.journal.record(Undo::Route {
                    dst: r.dst,
                    via,
                    oif,
                })?;
            }
            let m = route_msg(r.dst, via, oif)?;
            match self.handle.route().add(m).execute().await {
                Ok(()) => debug!("route {} via {:?} added", r.dst, r.via),
                Err(e) if errno(&e) == EEXIST => {
                    // Someone's route, not ours: leave it and do not undo it.
                    info!("route {} exists already; kept as it is", r.dst);
                    if r.via == Via::Underlay {
                        self.journal.ops.pop();
                        self.rewrite()?;
                    }
                }
                Err(e) if v6_block && r.via == Via::Tunnel && r.dst.addr.is_ipv6() => {
                    // Fail closed: a full tunnel that cannot hold IPv6 back
                    // would let it leak.
                    return Err(nl(
                        e,
                        &format!(
                            "block IPv6 outside the tunnel (route {} into {name}; \
                             --allow-ipv6-bypass lets IPv6 go around it)",
                            r.dst
                        ),
                    ));
                }
                Err(e) => return Err(nl(e, &format!("add route {}", r.dst))),
            }
        }
        if !s.dns.is_empty() {
            match super::resolved::connect().await {
                Some(conn) => {
                    let dns = super::resolved::LinkDns {
                        servers: s.dns.clone(),
                        search: s.search.clone(),
                        routing: s.split_dns.clone(),
                        default_route: s.full_tunnel,
                    };
                    super::resolved::set_link(&conn, index, &dns).await?;
                    self.resolved = Some((conn, index));
                }
                None => self.set_dns(s)?,
            }
        }
        Ok(())
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let ops = std::mem::take(&mut self.journal.ops);
        self.journal = Journal::create(&self.dir)?;
        for o in ops {
            self.journal.record(o)?;
        }
        Ok(())
    }

    fn set_dns(&mut self, s: &NetSetup) -> io::Result<()> {
        let path = Path::new(RESOLV);
        if std::fs::read_link(path).is_ok_and(|t| t.to_string_lossy().contains("systemd/resolve")) {
            // TODO(resolved): per-link DNS over D-Bus. Until then do not
            // rewrite a file systemd-resolved owns.
            warn!(
                "{RESOLV} belongs to systemd-resolved; DNS left unchanged (use --script for now)"
            );
            return Ok(());
        }
        let orig = std::fs::read(path).unwrap_or_default();
        let backup = self.dir.join(RESOLV_BACKUP);
        match std::fs::remove_file(&backup) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut b = open_state(
            &backup,
            std::fs::OpenOptions::new().write(true).create_new(true),
        )?;
        b.write_all(&orig)?;
        b.sync_all()?;
        self.journal.record(Undo::Resolv(backup))?;
        let text = resolv_conf(&String::from_utf8_lossy(&orig), s);
        write_in_place(path, text.as_bytes())?;
        info!("DNS: {} via {RESOLV}", join(&s.dns));
        Ok(())
    }

    /// Undoes everything, newest first, and removes the journal.
    pub async fn teardown(self) {
        if let Some((conn, index)) = &self.resolved {
            super::resolved::revert_link(conn, *index).await;
        }
        undo_all(&self.handle, &self.journal.ops).await;
        let _ = std::fs::remove_file(&self.journal.path);
    }
}

fn join(v: &[IpAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Truncate-and-write rather than rename: `/etc/resolv.conf` is often a
/// bind mount (`ip netns exec`, containers), which a rename would fail on.
fn write_in_place(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The resolver file while connected: the tunnel's servers and domains
/// first, the original servers after them (glibc reads three).
pub fn resolv_conf(orig: &str, s: &NetSetup) -> String {
    let mut out = format!(
        "# Generated by acclient for {}; restored when it disconnects\n",
        s.gateway
    );
    for d in &s.dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    // resolv.conf cannot route by domain: split-DNS names become search domains.
    let mut search: Vec<String> = s.search.clone();
    search.extend(s.split_dns.iter().cloned());
    for l in orig.lines() {
        let t = l.trim_start();
        if let Some(rest) = t
            .strip_prefix("search")
            .or_else(|| t.strip_prefix("domain"))
        {
            search.extend(rest.split_whitespace().map(str::to_string));
        }
    }
    let mut seen = std::collections::HashSet::new();
    search.retain(|d| seen.insert(d.clone()));
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for l in orig.lines() {
        let t = l.trim_start();
        if t.starts_with("search")
            || t.starts_with("domain")
            || t.starts_with("# Generated by acclient")
        {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_roundtrip() {
        for u in [
            Undo::Route {
                dst: Prefix::parse("198.51.100.1/32").unwrap(),
                via: Some("198.51.100.254".parse().unwrap()),
                oif: 7,
            },
            Undo::Route {
                dst: Prefix::parse("2001:db8::/48").unwrap(),
                via: None,
                oif: 2,
            },
            Undo::Resolv(PathBuf::from("/run/acclient dir/resolv.conf.orig")),
            Undo::Tun("acvpn0".into()),
        ] {
            assert_eq!(Undo::parse(&u.line()), Some(u.clone()), "{}", u.line());
        }
        assert_eq!(Undo::parse("route nonsense"), None);
    }

    #[test]
    fn resolv_conf_puts_the_tunnel_first() {
        let s = NetSetup {
            dns: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["corp.example".into()],
            gateway: "vpn.example.com".into(),
            ..Default::default()
        };
        let r = resolv_conf(
            "nameserver 198.51.100.53\nsearch home.example\noptions edns0\n",
            &s,
        );
        assert_eq!(
            r,
            "# Generated by acclient for vpn.example.com; restored when it disconnects\n\
             nameserver 192.0.2.53\nsearch corp.example home.example\n\
             nameserver 198.51.100.53\noptions edns0\n"
        );
    }
}
