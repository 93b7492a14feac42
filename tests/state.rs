//! Hostile state (issue 10): a group-writable state directory, a planted
//! symlink for the journal and for the DNS backup, a journal entry for a
//! route acclient did not add, a restore from another network namespace, a
//! default domain with a newline, a 100 MB profile — each refused with a
//! clear message, nothing changed.
//!
//! Each test makes its own namespaces and state directory.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

fn ac_connect_args(ca: &str) -> Vec<&str> {
    vec![
        "connect",
        "--server",
        GW,
        "--anyconnect",
        "--user",
        "alice",
        "--passwd-on-stdin",
        "--cafile",
        ca,
    ]
}

/// A state directory others may write to is refused before anything changes.
#[test]
fn group_writable_state_dir_is_refused() {
    let lab = lab_or_skip!("stgw");
    let before = lab.client_net_state();
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    let (code, _, err, _) = lab.acclient(&["restore"], "");
    assert_ne!(code, 0);
    assert!(err.contains("writable by group or others"), "{err}");
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(&ac_connect_args(&ca), "pw\n");
    assert_ne!(code, 0);
    assert!(err.contains("writable by group or others"), "{err}");
    assert_eq!(lab.client_net_state(), before);
}

/// A journal that is a symlink is refused (not read, not followed), and
/// its target is untouched.
#[test]
fn symlinked_journal_is_refused() {
    let lab = lab_or_skip!("stlink");
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let target = lab.dir.join("precious");
    std::fs::write(&target, "resolv /etc/shadow\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("journal")).unwrap();
    let (code, _, err, _) = lab.acclient(&["restore"], "");
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("is a symlink: refusing it"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "resolv /etc/shadow\n"
    );
}

/// The DNS backup planted as a symlink is removed, not followed: the
/// target keeps its content through connect and disconnect.
#[test]
fn symlinked_dns_backup_is_not_followed() {
    let mut lab = lab_or_skip!("stbak");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--dns",
        "203.0.113.53",
    ]);
    let before = lab.client_net_state();
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let target = lab.dir.join("precious");
    std::fs::write(&target, "do not overwrite\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("resolv.conf.orig")).unwrap();
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient("c", &ac_connect_args(&ca), "pw\n");
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    assert!(lab.client_net_state().contains("nameserver 203.0.113.53"));
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "do not overwrite\n"
    );
    assert_eq!(lab.client_net_state(), before);
}

/// A journal naming a route acclient never recorded a reason for (no
/// gateway or exclusion line) is not undone: the route stays.
#[test]
fn journal_route_acclient_did_not_add_is_kept() {
    let lab = lab_or_skip!("stroute");
    let o =
        lab.in_cl("ip route add 192.0.2.77/32 dev veth-cl && cat /sys/class/net/veth-cl/ifindex");
    assert!(o.status.success());
    let idx = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let netns = String::from_utf8_lossy(&lab.in_cl("stat -L -c %i /proc/self/ns/net").stdout)
        .trim()
        .to_string();
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("journal"),
        format!("netns {netns}\nroute 192.0.2.77/32 - {idx}\nresolv /etc/hostname\n"),
    )
    .unwrap();
    let (code, out, err, _) = lab.acclient(&["restore"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 changes put back"), "{out}{err}");
    assert!(err.contains("could not have made, ignored"), "{err}");
    let routes = String::from_utf8_lossy(&lab.in_cl("ip route").stdout).into_owned();
    assert!(routes.contains("192.0.2.77 dev veth-cl"), "{routes}");
}

/// A journal written in another network namespace is refused whole.
#[test]
fn restore_from_another_namespace_is_refused() {
    let lab = lab_or_skip!("stns");
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // The gateway namespace's inode: not the client's.
    let other = String::from_utf8_lossy(&lab.in_gw("stat -L -c %i /proc/self/ns/net").stdout)
        .trim()
        .to_string();
    std::fs::write(
        dir.join("journal"),
        format!("netns {other}\ngateway 198.51.100.1\n"),
    )
    .unwrap();
    let before = lab.client_net_state();
    let (code, _, err, _) = lab.acclient(&["restore"], "");
    assert_ne!(code, 0);
    assert!(err.contains("another network namespace"), "{err}");
    assert_eq!(lab.client_net_state(), before);
}

/// A default domain with a newline cannot add a resolver line.
#[test]
fn default_domain_with_newline_is_dropped() {
    let mut lab = lab_or_skip!("stdom");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--dns",
        "203.0.113.53",
        "--domain",
        "corp.example\nnameserver 192.0.2.66",
    ]);
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient("c", &ac_connect_args(&ca), "pw\n");
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    let resolv = String::from_utf8_lossy(&lab.in_cl("cat /etc/resolv.conf").stdout).into_owned();
    assert!(resolv.contains("nameserver 203.0.113.53"), "{resolv}");
    assert!(!resolv.contains("192.0.2.66"), "{resolv}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// A 100 MB profile is refused at its size limit, quickly, without
/// reading it all.
#[test]
fn huge_profile_is_refused() {
    let lab = lab_or_skip!("stbig");
    let big = lab.dir.join("big.xml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 << 20).unwrap();
    let t = std::time::Instant::now();
    let (code, _, err, _) = lab.acclient(&["profiles", big.to_str().unwrap()], "");
    assert_ne!(code, 0);
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    let (code, _, err, _) = lab.acclient(&["connect", "--profile", "/dev/zero"], "");
    assert_ne!(code, 0);
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    assert!(t.elapsed().as_secs() < 10);
}
