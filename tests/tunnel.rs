//! The tunnel (issue 4): `acclient connect` with a real TUN device, routes
//! and DNS in the client namespace, carrying ping and TCP to our test
//! gateway (its own ESP + TUN) and to strongSwan (user-space libipsec);
//! drops counted; rekeys under load; DPD and reconnect; crash recovery;
//! the routing table for split include / exclude / LocalLanAccess.
//!
//! Every test makes its own namespaces (tests/common), bounds every wait,
//! and kills what it started by PID.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn connect_args<'a>(ca: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = anyconnect_args("connect", ca, &["-v"]);
    v.extend_from_slice(extra);
    v
}

/// `connect` to strongSwan as alice (certificate + EAP-MSCHAPv2).
fn ss_connect_args<'a>(ca: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "connect",
        "--server",
        GW,
        "--user",
        "alice",
        "--passwd-on-stdin",
        "--cafile",
        ca,
    ];
    v.extend_from_slice(extra);
    v
}

fn ok(o: &std::process::Output) -> String {
    let s = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "command failed: {s}");
    s
}

/// Spawns `acclient connect` as `name` and waits until the tunnel is up.
fn connected(lab: &mut Lab, name: &str, args: &[&str], stdin: &str) -> u32 {
    let pid = lab.spawn_acclient(name, args, stdin);
    assert!(
        lab.wait_for(name, "Press Ctrl-C", 15),
        "{}",
        lab.log_of(name)
    );
    pid
}

/// A bounded TCP transfer with iperf3 from the client namespace to `dst`
/// (server in the gateway namespace, one test, then it exits).
fn tcp_transfer(lab: &Lab, dst: &str, secs: u32, extra: &str) -> serde_json::Value {
    let mut srv = std::process::Command::new("ip")
        .args([
            "netns", "exec", &lab.gw, "timeout", "60", "iperf3", "-s", "-1", "-B", dst,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let o = lab.in_cl(&format!("timeout 60 iperf3 -c {dst} -t {secs} -J {extra}"));
    let _ = srv.kill();
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("iperf3 output: {}", String::from_utf8_lossy(&o.stdout)));
    assert!(v.get("error").is_none(), "iperf3 failed: {}", v["error"]);
    v
}

fn iperf_or_skip() -> bool {
    if std::process::Command::new("iperf3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: iperf3 missing (scripts/setup installs it)");
        return false;
    }
    true
}

/// Ping and TCP through the tunnel to our test gateway; the gateway's fault
/// knob sends replayed, corrupted and unknown-SPI copies, which are dropped
/// and counted by reason; SIGTERM puts the namespace back exactly.
#[test]
fn acgateway_traffic_drops_and_clean_teardown() {
    let mut lab = lab_or_skip!("tunac");
    if !iperf_or_skip() {
        return;
    }
    let before = lab.client_net_state();
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--esp-faults",
        "--dns",
        "203.0.113.53",
    ]);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    let during = lab.client_net_state();
    assert!(during.contains("acvpn0"), "{during}");
    // Seed 004's ASA tunnels everything: TSr 0.0.0.0/0.
    assert!(during.contains("0.0.0.0/1 dev acvpn0"), "{during}");
    assert!(
        during.contains("198.51.100.1 dev veth-cl"),
        "gateway kept: {during}"
    );
    assert!(during.contains("nameserver 203.0.113.53"), "{during}");
    let out = ok(&lab.in_cl("ping -c 20 -i 0.05 -W 2 203.0.113.1"));
    assert!(out.contains("20 received"), "{out}");
    let v = tcp_transfer(&lab, "203.0.113.1", 2, "");
    let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(bytes > 1e6, "TCP moved {bytes} bytes");
    // Downloads are coalesced on the way into the TUN device (GRO: one
    // write per burst of a flow, not per packet): the device counts far
    // fewer packets than ESP delivered. Once, MTU-sized send buffers made
    // tun-rs refuse every merge and halved throughput; this catches that.
    let tun_rx = |lab: &Lab| -> u64 {
        ok(&lab.in_cl("cat /sys/class/net/acvpn0/statistics/rx_packets"))
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let esp_rx = |lab: &Lab| lab.status()["esp"]["rx_packets"].as_u64().unwrap_or(0);
    let (t0, e0) = (tun_rx(&lab), esp_rx(&lab));
    let v = tcp_transfer(&lab, "203.0.113.1", 2, "-R");
    let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(bytes > 1e6, "TCP moved {bytes} bytes down");
    let (writes, packets) = (tun_rx(&lab) - t0, esp_rx(&lab) - e0);
    eprintln!("download: {packets} ESP packets into {writes} TUN writes");
    assert!(
        writes * 2 < packets,
        "no GRO: {packets} ESP packets became {writes} TUN writes"
    );
    // A second connect on the same state directory refuses to start (it
    // would take the first one's journal for a crash's).
    let (code, _, err, _) = lab.acclient(&connect_args(&ca, &[]), "pw\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another acclient connect is running"), "{err}");
    // ...and `restore` leaves a running tunnel's changes alone.
    let (code, _, err, _) = lab.acclient(&["restore"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another acclient connect is running"), "{err}");
    let st = lab.status();
    eprintln!("status: {st}");
    let e = &st["esp"];
    assert!(e["rx_packets"].as_u64().unwrap() > 20);
    for k in ["drop_replay", "drop_integrity", "drop_unknown_spi"] {
        assert!(e[k].as_u64().unwrap() >= 1, "{k} counted: {e}");
    }
    assert_eq!(st["interface"], "acvpn0");
    assert_eq!(st["mtu"], 1406, "the gateway's MTU attribute");
    // Human status: as much as `swanctl --list-sas` and Cisco's `vpn stats`,
    // in words.
    let (code, human, _, _) = lab.acclient(&["status"], "");
    assert_eq!(code, 0);
    eprintln!("acclient status:\n{human}");
    for want in [
        "Connected to 198.51.100.1, up 00:00:",
        "  remote 198.51.100.1:4500  local 198.51.100.2:4500",
        "UDP encapsulation: forced (no NAT seen",
        "  gateway: C=XX, O=VPN Test, CN=vpn.example.com (authenticated: RSA_EMSA_PKCS1_SHA2_384)",
        "  we: ID_GROUP *$AnyConnectClient$*, user alice",
        "  tunnel: full (all traffic): 0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1 via acvpn0",
        "outside it: 198.51.100.1/32",
        "  device: acvpn0, MTU 1406, addresses 192.0.2.10/32",
        "  DNS: 203.0.113.53",
        "  lifetime 04:00:00, rekey in 0",
        "  local  192.0.2.10/32",
        "  remote 0.0.0.0/0",
        "  lifetime 01:00:00, rekey in 00:",
        " replayed, ",
    ] {
        assert!(human.contains(want), "{want:?} missing:\n{human}");
    }
    assert!(!human.contains("NAT detected"), "{human}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("c"));
    assert_eq!(
        lab.client_net_state(),
        before,
        "routes, addresses, DNS put back"
    );
}

/// IPv6 around a full tunnel without an IPv6 address (the gateway assigns
/// IPv4 only, over an IPv6-capable LAN): blocked by default — ping to an
/// IPv6 host that the LAN reaches fails and `status` counts the drops —
/// and reaching it again once the session ends; `--allow-ipv6-bypass` lets
/// it through as before.
#[test]
fn ipv6_does_not_leak_around_a_full_tunnel() {
    let mut lab = lab_or_skip!("tunv6");
    must(&format!(
        "set -e
         ip -n {gw} addr add 2001:db8:100::1/64 dev veth-gw nodad
         ip -n {cl} addr add 2001:db8:100::2/64 dev veth-cl nodad
         ip -n {gw} addr add 2001:db8:ffff::1/128 dev lo
         ip -n {cl} -6 route add default via 2001:db8:100::1",
        gw = lab.gw,
        cl = lab.cl
    ));
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let ping6 = "ping -6 -c 3 -i 0.2 -W 1 2001:db8:ffff::1";
    let out = ok(&lab.in_cl(ping6));
    assert!(out.contains("3 received"), "the LAN reaches it: {out}");
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    let during = lab.client_net_state();
    assert!(during.contains("::/1 dev acvpn0"), "{during}");
    assert!(during.contains("8000::/1 dev acvpn0"), "{during}");
    let o = lab.in_cl(ping6);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && out.contains("0 received"),
        "IPv6 leaked around the tunnel: {out}"
    );
    let st = lab.status();
    assert!(
        st["esp"]["drop_ipv6"].as_u64().unwrap_or(0) >= 3,
        "blocked IPv6 counted: {st}"
    );
    let (code, human, _, _) = lab.acclient(&["status"], "");
    assert_eq!(code, 0);
    assert!(
        human.contains("3 IPv6 blocked") || human.contains(" IPv6 blocked (no IPv6"),
        "{human}"
    );
    // IPv4 still flows.
    let out = ok(&lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("3 received"), "{out}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("c"));
    assert_eq!(lab.client_net_state(), before);
    let out = ok(&lab.in_cl(ping6));
    assert!(out.contains("3 received"), "IPv6 back after: {out}");
    // The user's choice: IPv6 keeps the LAN's routes.
    let pid = connected(
        &mut lab,
        "c2",
        &connect_args(&ca, &["--allow-ipv6-bypass"]),
        "pw\n",
    );
    assert!(!lab.client_net_state().contains("::/1 dev acvpn0"));
    let out = ok(&lab.in_cl(ping6));
    assert!(out.contains("3 received"), "bypass allowed: {out}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("c2"));
    assert_eq!(lab.client_net_state(), before);
}

/// openconnect's process options: `--pid-file` holds the PID while
/// connected (gone after); SIGUSR1 prints the status; SIGUSR2 closes the
/// session and logs in again (the gateway resumes it with its token), the
/// tunnel staying up; `--timestamp` stamps progress lines. Then `-q
/// --syslog`: nothing on stderr, the progress lines in syslog (a socket of
/// the test's own, through $ACCLIENT_SYSLOG).
#[test]
fn pid_file_user_signals_and_output_options() {
    let mut lab = lab_or_skip!("tunsig");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pidfile = lab.dir.join("acclient.pid");
    let pf = pidfile.display().to_string();
    let args = connect_args(&ca, &["--pid-file", &pf, "--timestamp"]);
    let pid = connected(&mut lab, "c", &args, "pw\n");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap_or_default(),
        format!("{pid}\n")
    );
    let log = lab.log_of("c");
    assert!(
        log.lines()
            .any(|l| l.starts_with("[20") && l.contains(" UTC] Contacting 198.51.100.1")),
        "{log}"
    );
    must(&format!("kill -USR1 {pid}"));
    assert!(
        lab.wait_for("c", "Connected to 198.51.100.1, up 00:00:", 5),
        "SIGUSR1 status: {}",
        lab.log_of("c")
    );
    must(&format!("kill -USR2 {pid}"));
    assert!(
        lab.wait_for(
            "c",
            "Reconnected: the gateway resumed the session (no login).",
            20
        ),
        "SIGUSR2: {}",
        lab.log_of("c")
    );
    assert!(
        lab.acgw_log().contains("received DELETE for IKE_SA"),
        "{}",
        lab.acgw_log()
    );
    let out = ok(&lab.in_cl("ping -c 2 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("2 received"), "{out}");
    assert_eq!(lab.status()["reconnects"], 1);
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("c"));
    assert!(!pidfile.exists(), "pid file removed");
    assert_eq!(lab.client_net_state(), before);

    let sock = lab.dir.join("syslog.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let s = sock.display().to_string();
    let args = connect_args(&ca, &["-q", "--syslog"]);
    let args: Vec<&str> = args.into_iter().filter(|a| *a != "-v").collect();
    let pid = lab.spawn_acclient_env("q", &args, "pw\n", &[("ACCLIENT_SYSLOG", &s)]);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        match rx.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m.contains("Press Ctrl-C");
                got.push(m);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let all = got.join("\n");
    assert!(
        all.contains(&format!("<14>acclient[{pid}]: Contacting 198.51.100.1")),
        "{all}"
    );
    assert!(all.contains("Press Ctrl-C"), "{all}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("q"));
    let err = lab.log_of("q");
    assert!(
        !err.contains("Contacting") && !err.contains("Connected to"),
        "-q and --syslog keep stderr quiet: {err}"
    );
    assert_eq!(lab.client_net_state(), before);
}

/// strongSwan as the gateway (kernel-libipsec ESP), dual-stack: IPv6 is asked
/// for by default; ping over IPv4 and IPv6 and a TCP transfer; full tunnel
/// keeps the gateway reachable; DNS goes to the netns resolv.conf and back;
/// `--disable-ipv6` asks for none.
#[test]
fn strongswan_traffic_dual_stack() {
    let mut lab = lab_or_skip!("tunss");
    if !iperf_or_skip() {
        return;
    }
    must(&format!(
        "ip -n {} addr add 2001:db8:ffff::1/128 dev lo",
        lab.gw
    ));
    let conf = gw_conf(
        "auth = pubkey\n certs = gw.crt",
        "auth = eap-mschapv2\n eap_id = %any",
        "",
        "",
    )
    .replace("pools = pool4", "pools = pool4, pool6")
    .replace(
        "local_ts = 203.0.113.0/24",
        "local_ts = 0.0.0.0/0, 2001:db8:ffff::/64",
    )
    .replace(
        "pools {",
        "pools {\n    pool6 {\n        addrs = 2001:db8:1::/120\n        dns = 2001:db8:ffff::53\n    }",
    );
    lab.start_strongswan(&conf, "");
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let args = ss_connect_args(&ca, &["-v"]);
    let pid = connected(&mut lab, "c", &args, "alice-password\n");
    let during = lab.client_net_state();
    assert!(during.contains("0.0.0.0/1 dev acvpn0"), "{during}");
    assert!(
        during.contains("198.51.100.1 dev veth-cl"),
        "gateway kept: {during}"
    );
    assert!(during.contains("nameserver 203.0.113.53"), "{during}");
    assert!(
        during.contains("nameserver 198.51.100.53"),
        "original kept after ours: {during}"
    );
    let out = ok(&lab.in_cl("ping -c 5 -i 0.1 -W 2 203.0.113.1"));
    assert!(out.contains("5 received"), "{out}");
    let out = ok(&lab.in_cl("ping -6 -c 5 -i 0.1 -W 2 2001:db8:ffff::1"));
    assert!(out.contains("5 received"), "IPv6 inside: {out}");
    // strongSwan sends no MTU attribute: the path's (veth 1500) minus the
    // ESP overhead of the negotiated suite (AES-GCM-16 first in our offer).
    let st = lab.status();
    let want = 1500
        - acclient_core::esp::overhead(acclient_core::crypto::cipher::Encr::AesGcm16(32), None);
    assert_eq!(st["child"]["algorithms"], "AES_GCM_16_256", "{st}");
    assert_eq!(st["mtu"], want as u64, "MTU from the path: {st}");
    let v = tcp_transfer(&lab, "203.0.113.1", 2, "");
    assert!(v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0) > 1e5);
    // TCP over IPv6 inside: TUN segmentation offload for TCPv6 too.
    let v = tcp_transfer(&lab, "2001:db8:ffff::1", 2, "");
    assert!(v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0) > 1e5);
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    assert_eq!(lab.client_net_state(), before);
    // --disable-ipv6 (openconnect's): no IPv6 asked for, none assigned, and
    // IPv6 is then held back from going around the full tunnel.
    let mut args = ss_connect_args(&ca, &["--disable-ipv6"]);
    args.retain(|a| *a != "-v");
    let pid = connected(&mut lab, "c6", &args, "alice-password\n");
    let during = lab.client_net_state();
    assert!(
        !during.contains("2001:db8:1::"),
        "no IPv6 address: {during}"
    );
    assert!(during.contains("::/1 dev acvpn0"), "blocked: {during}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    assert_eq!(lab.client_net_state(), before);
}

/// strongSwan rekeys the CHILD SA every 3 s and the IKE SA every 5 s while
/// a TCP transfer runs: it completes, and both kinds of rekey happened.
#[test]
fn rekeys_during_a_transfer() {
    let mut lab = lab_or_skip!("tunrk");
    if !iperf_or_skip() {
        return;
    }
    let conf = gw_conf(
        "auth = pubkey\n certs = gw.crt",
        "auth = eap-mschapv2\n eap_id = %any",
        "rekey_time = 5s\n over_time = 60s\n rand_time = 0s\n reauth_time = 0",
        "rekey_time = 3s\n rand_time = 0s\n life_time = 60s",
    );
    lab.start_strongswan(&conf, "");
    let ca = lab.ca("ca.crt");
    let args = ss_connect_args(&ca, &["-v"]);
    let pid = connected(&mut lab, "c", &args, "alice-password\n");
    let v = tcp_transfer(&lab, "203.0.113.1", 12, "");
    let sent = v["end"]["sum_sent"]["bytes"].as_f64().unwrap_or(0.0);
    let recv = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    eprintln!(
        "transfer: {sent} bytes sent, {recv} received, retransmits {}",
        v["end"]["sum_sent"]["retransmits"]
    );
    assert!(recv > 1e6, "the transfer went through the rekeys");
    let st = lab.status();
    eprintln!("status: {st}");
    assert!(st["child"]["rekeys"].as_u64().unwrap() >= 2, "{st}");
    assert!(st["ike"]["rekeys"].as_u64().unwrap() >= 1, "{st}");
    // Make-before-break: packets sealed under an old SA still open.
    assert_eq!(st["esp"]["drop_unknown_spi"], 0, "{st}");
    assert_eq!(st["esp"]["drop_integrity"], 0, "{st}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// The gateway dies: DPD (the gateway's 4 s, Cisco attribute 28709) notices
/// within that interval of silence; when it is back, the client logs in
/// again with the remembered answer and traffic flows, same device.
#[test]
fn dpd_then_reconnect() {
    let mut lab = lab_or_skip!("tundpd");
    let gw_args = ["--user", "alice:pw", "--tun", "acgw0", "--dpd-attr", "4"];
    lab.start_acgateway(&gw_args);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    ok(&lab.in_cl("ping -c 2 -i 0.2 -W 2 203.0.113.1"));
    lab.kill_acgateway();
    let t = Instant::now();
    assert!(
        lab.wait_for("c", "reconnecting", 12),
        "DPD did not notice: {}",
        lab.log_of("c")
    );
    let noticed = t.elapsed();
    eprintln!("dead gateway noticed after {noticed:?}");
    assert!(
        noticed < Duration::from_secs(6),
        "within the interval (+ scheduling)"
    );
    std::thread::sleep(Duration::from_secs(2));
    lab.start_acgateway(&gw_args);
    assert!(
        lab.wait_for("c", "Reconnected (logged in again).", 30),
        "{}",
        lab.log_of("c")
    );
    // The restarted gateway has forgotten the session: the client offered
    // its token, was refused, and logged in with the remembered password.
    let gw = lab.acgw_log();
    assert!(
        gw.contains("not resumed (token unknown or expired): full login")
            && gw.contains("user 'alice' authenticated"),
        "{gw}"
    );
    let out = ok(&lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("3 received"), "{out}");
    let st = lab.status();
    assert_eq!(st["reconnects"], 1, "{st}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// A gateway coming back may refuse at first (here: a malformed
/// configuration reply, a protocol error). During a reconnect that is not
/// the end: acclient backs off and tries again until the gateway is well.
#[test]
fn reconnect_retries_through_a_protocol_error() {
    let mut lab = lab_or_skip!("tunretry");
    let gw_args = ["--user", "alice:pw", "--tun", "acgw0", "--dpd-attr", "4"];
    lab.start_acgateway(&gw_args);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    lab.kill_acgateway();
    let mut broken = gw_args.to_vec();
    broken.extend(["--malformed", "cp"]);
    lab.start_acgateway(&broken);
    assert!(
        lab.wait_for("c", "protocol error from the gateway", 30),
        "the broken gateway's reply: {}",
        lab.log_of("c")
    );
    assert!(
        lab.wait_for("c", "reconnecting (attempt 2)", 10),
        "{}",
        lab.log_of("c")
    );
    // `status` mid-outage says what is going on, not "SaInit" with zero SPIs.
    let (code, human, err, _) = lab.acclient(&["status"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        human.starts_with("Reconnecting to 198.51.100.1 (198.51.100.1): attempt "),
        "{human}"
    );
    assert!(human.contains("connection lost 00:00:"), "{human}");
    assert!(human.contains("tunnel: full (all traffic)"), "{human}");
    assert!(!human.contains("0000000000000000"), "{human}");
    assert!(lab.status()["reconnecting"]["attempt"].as_u64() >= Some(2));
    lab.kill_acgateway();
    lab.start_acgateway(&gw_args);
    assert!(
        lab.wait_for("c", "Reconnected (logged in again).", 40),
        "{}",
        lab.log_of("c")
    );
    let out = ok(&lab.in_cl("ping -c 2 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("2 received"), "{out}");
    let st = lab.status();
    assert_eq!(st["reconnects"], 1);
    assert!(st["reconnecting"].is_null(), "{st}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// ICMP port unreachable during a session is a hint, not a verdict (RFC 7296
/// §2.21.4: unauthenticated): the gateway's process gone, the next ESP
/// packet draws ICMP, and acclient probes the gateway at once instead of
/// waiting for the DPD interval (120 s here), its probes paced a second
/// apart, and the reconnect starts within seconds.
#[test]
fn icmp_mid_session_starts_a_dpd_probe() {
    let mut lab = lab_or_skip!("tunicmp");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0", "--dpd-attr", "120"]);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    lab.kill_acgateway();
    let t = Instant::now();
    // One packet into the tunnel: its ESP datagram meets the closed port.
    let _ = lab.in_cl("ping -c 1 -W 1 203.0.113.1");
    assert!(
        lab.wait_for("c", "reconnecting (attempt 1)", 20),
        "no probe after ICMP: {}",
        lab.log_of("c")
    );
    eprintln!(
        "lost session noticed {:.1} s after the gateway went (DPD interval 120 s)",
        t.elapsed().as_secs_f64()
    );
    assert!(
        lab.log_of("c").contains("checking the gateway"),
        "{}",
        lab.log_of("c")
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// `--reconnect-timeout S` bounds the retries: with the gateway gone for
/// good, acclient gives up after S seconds (not the default 600), puts the
/// network back and exits 4.
#[test]
fn reconnect_timeout_gives_up() {
    let mut lab = lab_or_skip!("tungiveup");
    let gw_args = ["--user", "alice:pw", "--tun", "acgw0", "--dpd-attr", "3"];
    lab.start_acgateway(&gw_args);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pid = connected(
        &mut lab,
        "c",
        &connect_args(&ca, &["--reconnect-timeout", "5"]),
        "pw\n",
    );
    lab.kill_acgateway();
    assert!(
        lab.wait_for("c", "reconnecting (attempt 1)", 15),
        "{}",
        lab.log_of("c")
    );
    let code = lab.wait_exit(pid, 30);
    assert_eq!(code, Some(4), "gave up with exit 4: {}", lab.log_of("c"));
    assert_eq!(lab.client_net_state(), before, "the network put back");
}

/// An outage (the gateway's host drops everything) long enough for DPD:
/// the reconnect offers the AnyConnect session token and the gateway, which
/// still holds the session, takes it back without a login. The OTP is good
/// once, so a replayed login would be refused: only the token can succeed.
/// The tunnel keeps its address, and traffic flows again.
#[test]
fn outage_resumes_session_without_login() {
    let mut lab = lab_or_skip!("tunres");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--otp",
        "424242",
        "--otp-once",
        "--tun",
        "acgw0",
        "--dpd-attr",
        "4",
    ]);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n424242\n");
    ok(&lab.in_cl("ping -c 2 -i 0.2 -W 2 203.0.113.1"));
    let addr = |lab: &Lab| ok(&lab.in_cl("ip -br -4 addr show dev acvpn0"));
    let before = addr(&lab);
    ok(&lab.in_gw("iptables -I INPUT -p udp -j DROP"));
    assert!(
        lab.wait_for("c", "reconnecting", 12),
        "DPD did not notice: {}",
        lab.log_of("c")
    );
    ok(&lab.in_gw("iptables -D INPUT -p udp -j DROP"));
    assert!(
        lab.wait_for("c", "the gateway resumed the session (no login)", 30),
        "{}\n{}",
        lab.log_of("c"),
        lab.acgw_log()
    );
    let gw = lab.acgw_log();
    assert!(
        gw.contains("session 32768 of user 'alice' resumed from its token: no login"),
        "{gw}"
    );
    assert_eq!(
        gw.matches("second round OTP: accepted").count(),
        1,
        "one OTP login only: {gw}"
    );
    let out = ok(&lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("3 received"), "{out}");
    assert_eq!(addr(&lab), before, "same address after the resume");
    let st = lab.status();
    assert_eq!(st["reconnects"], 1, "{st}");
    assert_eq!(st["session_resumed"], true, "{st}");
    assert_eq!(st["session_id"], "32768", "{st}");
    assert!(
        !lab.log_of("c").contains("Wrong code"),
        "{}",
        lab.log_of("c")
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// `kill -9` mid-session leaves the gateway route and resolv.conf changed;
/// the next start puts them back from the journal before connecting, and
/// its own clean exit leaves the namespace exactly as it was.
#[test]
fn kill_9_then_next_start_restores() {
    let mut lab = lab_or_skip!("tunk9");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--protected",
        "0.0.0.0/0",
        "--dns",
        "203.0.113.53",
    ]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pid = connected(
        &mut lab,
        "c",
        &connect_args(&ca, &["--no-local-lan"]),
        "pw\n",
    );
    let during = lab.client_net_state();
    assert!(during.contains("nameserver 203.0.113.53"), "{during}");
    lab.signal(pid, "-KILL");
    let after_kill = lab.client_net_state();
    assert_ne!(after_kill, before, "a crash leaves changes behind");
    assert!(after_kill.contains("203.0.113.53"), "{after_kill}");
    let pid = connected(&mut lab, "c2", &connect_args(&ca, &[]), "pw\n");
    assert!(
        lab.log_of("c2").contains("Restored"),
        "{}",
        lab.log_of("c2")
    );
    // Ctrl-C (SIGINT) puts everything back as SIGTERM does.
    assert_eq!(lab.signal(pid, "-INT"), Some(0), "{}", lab.log_of("c2"));
    assert_eq!(lab.client_net_state(), before);
}

/// The routing table for a split include (two pushed subnets) with a split
/// exclude, and for a full tunnel with and without LocalLanAccess.
#[test]
fn split_routes_and_local_lan() {
    let mut lab = lab_or_skip!("tunrt");
    let ca = lab.ca("ca.crt");
    let routes = |lab: &Lab| -> Vec<String> {
        let o = lab.in_cl("ip -4 route show table main");
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        v.sort();
        v
    };
    let base = routes(&lab);
    let cases: [(&[&str], &[&str], &[&str]); 3] = [
        (
            &["--split", "203.0.113.0/25", "--split", "192.0.2.128/25"],
            &["--split-exclude", "203.0.113.64/26"],
            &[
                "192.0.2.128/25 dev acvpn0 proto static",
                "203.0.113.0/25 dev acvpn0 proto static",
                "203.0.113.64/26 dev veth-cl proto static",
            ],
        ),
        (
            &["--protected", "0.0.0.0/0"],
            &["--no-local-lan"],
            &[
                "0.0.0.0/1 dev acvpn0 proto static",
                "128.0.0.0/1 dev acvpn0 proto static",
                "198.51.100.0/25 dev acvpn0 proto static",
                "198.51.100.1 dev veth-cl proto static",
                "198.51.100.128/25 dev acvpn0 proto static",
            ],
        ),
        (
            &["--protected", "0.0.0.0/0"],
            &["--local-lan"],
            &[
                "0.0.0.0/1 dev acvpn0 proto static",
                "128.0.0.0/1 dev acvpn0 proto static",
                "198.51.100.1 dev veth-cl proto static",
            ],
        ),
    ];
    for (i, (gw_extra, cl_extra, want)) in cases.iter().enumerate() {
        let mut gw_args = vec!["--user", "alice:pw"];
        gw_args.extend_from_slice(gw_extra);
        lab.start_acgateway(&gw_args);
        let name = format!("c{i}");
        let pid = connected(&mut lab, &name, &connect_args(&ca, cl_extra), "pw\n");
        let got: Vec<String> = routes(&lab)
            .into_iter()
            .filter(|r| !base.contains(r))
            .filter(|r| !r.contains("proto kernel"))
            .collect();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "case {i}: {gw_extra:?} {cl_extra:?}");
        assert_eq!(lab.signal(pid, "-TERM"), Some(0));
        assert_eq!(routes(&lab), base, "case {i}: put back");
        lab.kill_acgateway();
    }
}

/// `--script`: a vpnc-script gets the standard environment on connect and
/// on disconnect, and acclient itself leaves routes and DNS alone.
#[test]
fn vpnc_script_environment() {
    let mut lab = lab_or_skip!("tunvs");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--split",
        "203.0.113.0/24",
        "--dns",
        "203.0.113.53",
    ]);
    let script = lab.dir.join("vpnc-script");
    let out = lab.dir.join("script.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"== $reason\"; env | grep -E '^(reason|TUNDEV|VPNGATEWAY|INTERNAL_IP4|CISCO_SPLIT_INC)' | sort; }} >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    must(&format!("chmod +x {}", script.display()));
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let s = script.display().to_string();
    let pid = connected(&mut lab, "c", &connect_args(&ca, &["--script", &s]), "pw\n");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    let env = std::fs::read_to_string(&out).unwrap();
    for want in [
        "== pre-init",
        "== connect",
        "TUNDEV=acvpn0",
        "INTERNAL_IP4_NETADDR=192.0.2.",
        "VPNGATEWAY=198.51.100.1",
        "INTERNAL_IP4_ADDRESS=192.0.2.",
        "INTERNAL_IP4_NETMASK=255.255.255.255",
        "INTERNAL_IP4_DNS=203.0.113.53",
        "CISCO_SPLIT_INC=1",
        "CISCO_SPLIT_INC_0_ADDR=203.0.113.0",
        "CISCO_SPLIT_INC_0_MASKLEN=24",
        "== disconnect",
    ] {
        assert!(env.contains(want), "{want} in:\n{env}");
    }
    assert_eq!(lab.client_net_state(), before);
}

/// Debian's own vpnc-script (package vpnc-scripts), against strongSwan that
/// narrows TSr and pushes no subnets, with --split-include/--split-exclude:
/// the routes and the resolver it sets are the ones acclient sets itself
/// (each probe address leaves by the same device, the same first
/// nameserver), and both put everything back. The script runs in a mount
/// namespace with a private /run (it keeps state in /var/run/vpnc and would
/// ask a running systemd-resolved over the system bus): nothing of the
/// machine's is touched.
#[test]
fn real_vpnc_script_routes_like_acclient() {
    let script = "/usr/share/vpnc-scripts/vpnc-script";
    if !std::path::Path::new(script).exists() {
        eprintln!("SKIPPED: {script} missing (scripts/setup installs vpnc-scripts)");
        return;
    }
    let mut lab = lab_or_skip!("tunreal");
    // A default route, as real machines have: it is what a split-exclude
    // keeps and what a wrongly full tunnel would take over.
    must(&format!(
        "ip -n {} route add default via 198.51.100.1",
        lab.cl
    ));
    let conf = gw_conf(
        "auth = pubkey\n certs = gw.crt",
        "auth = eap-mschapv2\n eap_id = %any",
        "",
        "",
    );
    lab.start_strongswan(&conf, "");
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let split = [
        "--split-include",
        "192.0.2.128/25",
        "--split-exclude",
        "203.0.113.128/25",
    ];
    // Where each address would leave (no traffic: route lookups only), and
    // the first nameserver.
    let view = |lab: &Lab| -> String {
        let mut v = String::new();
        for a in [
            "203.0.113.1",
            "203.0.113.200",
            "192.0.2.200",
            "192.0.2.30",
            "198.51.100.77",
            "198.51.100.1",
        ] {
            let o = lab.in_cl(&format!("ip route get {a} 2>&1"));
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            let dev = out
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("unreachable")
                .to_string();
            v += &format!("{a} {dev}\n");
        }
        let o = lab.in_cl("grep -m1 '^nameserver' /etc/resolv.conf");
        v + &String::from_utf8_lossy(&o.stdout)
    };
    let pid = connected(
        &mut lab,
        "own",
        &ss_connect_args(&ca, &split),
        "alice-password\n",
    );
    let own = view(&lab);
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("own"));
    assert_eq!(lab.client_net_state(), before);
    assert!(own.contains("203.0.113.1 acvpn0\n"), "{own}");
    assert!(
        own.contains("192.0.2.30 veth-cl\n"),
        "split, not full: {own}"
    );
    assert!(own.contains("203.0.113.200 veth-cl\n"), "excluded: {own}");
    assert!(own.contains("nameserver 203.0.113.53"), "{own}");

    let pw = lab.dir.join("pw");
    std::fs::write(&pw, "alice-password\n").unwrap();
    let mut args = ss_connect_args(&ca, &split);
    args.extend(["--script", script, "-v"]);
    let line = format!(
        "mount -t tmpfs tmpfs /run && exec env ACCLIENT_STATE_DIR={} {} {} < {}",
        lab.state_dir().display(),
        env!("CARGO_BIN_EXE_acclient"),
        args.join(" "),
        pw.display()
    );
    let cl = lab.cl.clone();
    let pid = lab.spawn_bg(
        "script",
        std::process::Command::new("ip")
            .args(["netns", "exec", &cl, "unshare", "-m", "sh", "-c", &line]),
    );
    assert!(
        lab.wait_for("script", "Press Ctrl-C", 20),
        "{}",
        lab.log_of("script")
    );
    let scripted = view(&lab);
    assert_eq!(
        lab.signal(pid, "-TERM"),
        Some(0),
        "{}",
        lab.log_of("script")
    );
    assert_eq!(scripted, own, "the vpnc-script routes as acclient does");
    assert_eq!(lab.client_net_state(), before, "the script put it all back");
}

/// Behind a real NAT (SNAT in the client namespace rewrites source ports):
/// NAT-D tells the client, which then sends NAT-T keepalives at the
/// gateway's interval (Cisco attribute 28710, here 1 s); ESP still flows.
#[test]
fn nat_keepalives() {
    let mut lab = lab_or_skip!("tunnat");
    ok(&lab.in_cl(
        "iptables -t nat -A POSTROUTING -o veth-cl -p udp -j SNAT --to-source 198.51.100.2:40000-40100",
    ));
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--keepalive-attr",
        "1",
    ]);
    let ca = lab.ca("ca.crt");
    let pid = connected(&mut lab, "c", &connect_args(&ca, &[]), "pw\n");
    assert!(
        lab.log_of("c").contains("we are behind NAT"),
        "{}",
        lab.log_of("c")
    );
    std::thread::sleep(Duration::from_millis(3500));
    let st = lab.status();
    assert_eq!(st["behind_nat"], true, "{st}");
    let k = st["esp"]["keepalives"].as_u64().unwrap();
    assert!((2..=5).contains(&k), "about one a second: {k}");
    assert!(
        lab.acgw_log()
            .contains("NAT-T keepalive from 198.51.100.2:400"),
        "{}",
        lab.acgw_log()
    );
    let out = ok(&lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1"));
    assert!(out.contains("3 received"), "{out}");
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}

/// The gateway ends the session (strongSwan's `swanctl --terminate`): the
/// client says so, exits with code 6, and puts the network back.
#[test]
fn gateway_delete_tears_down() {
    let mut lab = lab_or_skip!("tundel");
    lab.start_eap_gateway("gw.crt");
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let args = ss_connect_args(&ca, &[]);
    let pid = connected(&mut lab, "c", &args, "alice-password\n");
    let d = lab.dir.join("gw");
    must(&format!(
        "STRONGSWAN_CONF={0}/strongswan.conf swanctl --terminate --ike vpn --timeout 5 --uri unix://{0}/charon.vici",
        d.display()
    ));
    let code = lab.wait_exit(pid, 10).expect("still running");
    assert_eq!(code, 6, "{}", lab.log_of("c"));
    assert!(
        lab.log_of("c").contains("the gateway closed the session"),
        "{}",
        lab.log_of("c")
    );
    assert_eq!(lab.client_net_state(), before);
}

/// Extended sequence numbers (RFC 4303 §2.2.1) when the gateway picks them
/// from our offer: the high half enters the ICV on both sides, so traffic
/// only flows if both agree.
#[test]
fn esn_when_negotiated() {
    let mut lab = lab_or_skip!("tunesn");
    for suite in ["gcm256", "cbc256-sha1"] {
        lab.start_acgateway(&[
            "--user",
            "alice:pw",
            "--tun",
            "acgw0",
            "--esn",
            "--esp-suite",
            suite,
        ]);
        let ca = lab.ca("ca.crt");
        let pid = connected(&mut lab, suite, &connect_args(&ca, &[]), "pw\n");
        assert!(lab.acgw_log().contains("with ESN"), "{}", lab.acgw_log());
        let out = ok(&lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1"));
        assert!(out.contains("3 received"), "{suite}: {out}");
        assert_eq!(lab.signal(pid, "-TERM"), Some(0));
        lab.kill_acgateway();
    }
}

/// Where scripts/setup unpacked systemd-resolved (not installed: installing
/// it would take over the machine's /etc/resolv.conf).
const RESOLVED: &str = "/var/cache/acclient-test/systemd-resolved";

/// With systemd-resolved running (on a private system bus, in the client
/// namespace): DNS goes on the tunnel link over D-Bus — split DNS as routing
/// domains, no default route for a split tunnel — /etc/resolv.conf is not
/// touched, and the link's settings are gone after disconnect.
#[test]
fn dns_through_systemd_resolved() {
    let mut lab = lab_or_skip!("tunrsv");
    let bin = format!("{RESOLVED}/lib/systemd/systemd-resolved");
    if !std::path::Path::new(&bin).exists() {
        eprintln!("SKIPPED: {bin} missing (scripts/setup unpacks it)");
        return;
    }
    let bus = lab.dir.join("bus");
    let conf = lab.dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
</busconfig>"#,
            bus.display()
        ),
    )
    .unwrap();
    let addr = format!("unix:path={}", bus.display());
    lab.spawn_bg(
        "dbus",
        std::process::Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork"),
    );
    let t = Instant::now();
    while !bus.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "dbus-daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // resolved in the client namespace, with its own /run/systemd.
    lab.spawn_bg(
        "resolved",
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.cl, "unshare", "-m", "sh", "-c"])
            .arg(format!("mount -t tmpfs none /run/systemd && exec {bin}"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &addr),
    );
    let resolvectl = |lab: &Lab, args: &str| -> String {
        let o = lab.in_cl(&format!(
            "DBUS_SYSTEM_BUS_ADDRESS={addr} {RESOLVED}/usr/bin/resolvectl --no-pager {args} 2>&1"
        ));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let t = Instant::now();
    while !resolvectl(&lab, "status").contains("Global") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "systemd-resolved did not start: {}",
            lab.log_of("resolved")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--split",
        "203.0.113.0/24",
        "--dns",
        "203.0.113.53",
        "--domain",
        "corp.example",
        "--split-dns",
        "intranet.example,lab.example",
    ]);
    let resolv_before =
        std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.cl)).unwrap();
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient_env(
        "c",
        &connect_args(&ca, &[]),
        "pw\n",
        &[("DBUS_SYSTEM_BUS_ADDRESS", &addr)],
    );
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    let link = resolvectl(&lab, "status acvpn0");
    eprintln!("{link}");
    assert!(link.contains("203.0.113.53"), "{link}");
    assert!(
        link.contains("corp.example")
            && link.contains("~intranet.example")
            && link.contains("~lab.example"),
        "{link}"
    );
    assert!(
        link.contains("-DefaultRoute"),
        "split tunnel: only its domains: {link}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.cl)).unwrap(),
        resolv_before,
        "resolv.conf untouched"
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    assert!(
        !resolvectl(&lab, "status").contains("acvpn0"),
        "link settings gone"
    );
    // A full tunnel takes every query: `~.` and the default route.
    lab.kill_acgateway();
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--dns",
        "203.0.113.53",
    ]);
    let pid = lab.spawn_acclient_env(
        "c2",
        &connect_args(&ca, &[]),
        "pw\n",
        &[("DBUS_SYSTEM_BUS_ADDRESS", &addr)],
    );
    assert!(
        lab.wait_for("c2", "Press Ctrl-C", 15),
        "{}",
        lab.log_of("c2")
    );
    let link = resolvectl(&lab, "status acvpn0");
    assert!(
        link.contains("+DefaultRoute") && link.contains("~."),
        "{link}"
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
    assert_eq!(
        std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.cl)).unwrap(),
        resolv_before
    );
}
