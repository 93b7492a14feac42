//! acclient against a real strongSwan gateway (Debian's charon-systemd with
//! its user-space kernel-libipsec) in a network namespace: issue "IKEv2
//! engine", tests (a)–(i). Each test builds its own lab and tears it down.

mod common;

use common::*;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn assert_vip_and_dns(v: &serde_json::Value) {
    let addr = v["addresses"][0].as_str().unwrap();
    assert!(
        addr.starts_with("192.0.2."),
        "virtual IP from pool4: {addr}"
    );
    assert_eq!(v["dns"][0], "203.0.113.53");
    assert_eq!(v["ts_remote"][0], "203.0.113.0/24");
    assert!(v["child"]["spi_in"].as_str().unwrap().len() == 8);
}

/// (a) PSK both ways.
#[test]
fn a_psk() {
    let mut lab = lab_or_skip!("psk");
    lab.start_strongswan(&gw_conf("auth = psk", "auth = psk\n id = %any", "", ""), "");
    std::fs::write(lab.dir.join("psk"), "test-psk-0123456789\n").unwrap();
    let psk = lab.dir.join("psk").display().to_string();
    let (code, out, _, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice@example.com",
            "--psk-file",
            &psk,
            "--json",
        ],
        "",
    );
    assert_eq!(code, 0);
    let v = json(&out);
    assert_vip_and_dns(&v);
    assert_eq!(v["ike"]["nat_t"], true);
    let log = lab.gw_log();
    assert!(
        log.contains("authentication of 'alice@example.com' with pre-shared key successful"),
        "{log}"
    );
    assert!(log.contains("CHILD_SA net{1} established"), "{log}");
    // We sent DELETE on exit: the gateway closed the SA.
    assert!(lab.wait_log("received DELETE for IKE_SA", 3), "{log}");
}

/// (b) RSA gateway certificate + EAP-MSCHAPv2: virtual IP and DNS received.
#[test]
fn b_eap_mschapv2() {
    let mut lab = lab_or_skip!("mschap");
    lab.start_eap_gateway("gw.crt");
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.eap_probe(&ca, &["--remote-id", "vpn.example.com", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
    let log = lab.gw_log();
    assert!(
        log.contains("EAP method EAP_MSCHAPV2 succeeded, MSK established"),
        "{log}"
    );
    assert!(
        log.contains("authentication of 'alice' with EAP successful")
            || log.contains("with EAP successful"),
        "{log}"
    );
    assert!(!err.contains("alice-password"), "password leaked to stderr");
}

fn eap_case(tag: &str, method: &str, certs: &str, ca: &str) -> (Lab, i32, String, String) {
    let mut lab = Lab::new(tag);
    lab.start_strongswan(
        &gw_conf(
            &format!("auth = pubkey\n certs = {certs}"),
            &format!("auth = eap-{method}\n eap_id = %any"),
            "",
            "",
        ),
        "",
    );
    let ca = lab.ca(ca);
    let (code, out, err, _) = lab.eap_probe(&ca, &["--eap", method, "--json"]);
    (lab, code, out, err)
}

/// (c) EAP-MD5 (no MSK: AUTH keyed from SK_pi / SK_pr, RFC 7296 §2.16).
#[test]
fn c_eap_md5() {
    if let Some(w) = skip_reason() {
        return eprintln!("SKIPPED: {w}");
    }
    let (lab, code, out, err) = eap_case("md5", "md5", "gw.crt", "ca.crt");
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
    assert!(lab
        .gw_log()
        .contains("EAP method EAP_MD5 succeeded, no MSK established"));
}

/// (c') EAP-GTC, same shape as MD5.
#[test]
fn c_eap_gtc() {
    if let Some(w) = skip_reason() {
        return eprintln!("SKIPPED: {w}");
    }
    let (lab, code, out, err) = eap_case("gtc", "gtc", "gw.crt", "ca.crt");
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
    assert!(lab.gw_log().contains("EAP method EAP_GTC succeeded"));
}

/// (d) ECDSA P-256 gateway certificate.
#[test]
fn d_ecdsa_certificate() {
    if let Some(w) = skip_reason() {
        return eprintln!("SKIPPED: {w}");
    }
    let (_lab, code, out, err) = eap_case("ecdsa", "mschapv2", "gwec.crt", "ca.crt");
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
}

/// (e) A 3-certificate RSA-4096 chain makes the gateway fragment IKE_AUTH
/// (RFC 7383) towards us; a small --fragment-size makes us fragment towards it.
#[test]
fn e_fragmentation_both_ways() {
    let mut lab = lab_or_skip!("frag");
    lab.start_strongswan(
        &gw_conf(
            "auth = pubkey\n certs = biggw.crt",
            "auth = eap-mschapv2\n eap_id = %any",
            "fragmentation = force",
            "",
        ),
        "",
    );
    let ca = lab.ca("bigca.crt");
    let (code, out, err, _) = lab.eap_probe(&ca, &["--fragment-size", "300", "--json", "-vv"]);
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
    assert!(
        err.contains("reassembled fragmented IKE message"),
        "we reassembled the gateway's fragments"
    );
    assert!(
        err.contains("splitting IKE message"),
        "we fragmented our own message"
    );
    let log = lab.gw_log();
    assert!(
        log.contains("splitting IKE message"),
        "gateway fragmented: {log}"
    );
    assert!(
        log.contains("reassembled fragmented IKE message"),
        "gateway reassembled ours: {log}"
    );
}

/// (f) Wrong password: the typed error, a non-zero exit, no retry storm.
#[test]
fn f_wrong_password() {
    let mut lab = lab_or_skip!("wrongpw");
    lab.start_eap_gateway("gw.crt");
    let ca = lab.ca("ca.crt");
    let (code, _, err, took) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "wrong\n",
    );
    assert_eq!(code, 2, "exit code 2 = authentication failed");
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(
        !err.contains("wrong\n") && !err.contains("password: wrong"),
        "password echoed"
    );
    let log = lab.gw_log();
    // One IKE SA reaches IKE_AUTH (the INVALID_KE round trip before it is by design),
    // and the password is tried exactly once.
    assert_eq!(
        log.matches("parsed IKE_AUTH request 1 ").count(),
        1,
        "exactly one attempt, no retry storm: {log}"
    );
    assert_eq!(
        log.matches("EAP-MS-CHAPv2 verification failed").count(),
        1,
        "{log}"
    );
    // We told the gateway we gave up instead of leaving a half-open SA behind.
    assert!(lab.wait_log("INFORMATIONAL request 4 [ D ]", 3), "{log}");
    assert!(took.as_secs() < 15, "failed fast: {took:?}");
}

/// (g) Untrusted certificate: refused under --non-inter with the pin shown;
/// accepted with that pin.
#[test]
fn g_untrusted_then_pinned() {
    let mut lab = lab_or_skip!("pin");
    lab.start_eap_gateway("gw.crt");
    let other = lab.ca("other.crt");
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &other,
            "--non-inter",
        ],
        "alice-password\n",
    );
    assert_eq!(code, 3, "exit code 3 = certificate refused");
    let pin = err
        .split_whitespace()
        .find(|w| w.starts_with("pin-sha256:"))
        .expect("pin printed")
        .trim_end_matches([')', ','])
        .to_string();
    assert!(err.contains("CN=vpn.example.com"), "subject shown: {err}");
    let (code, out, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &other,
            "--servercert",
            &pin,
            "--json",
        ],
        "alice-password\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
    let (code, _, _, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &other,
            "--servercert",
            "pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "--non-inter",
        ],
        "alice-password\n",
    );
    assert_eq!(code, 3, "a wrong pin does not help");
}

/// (h) The gateway rekeys the IKE SA and the CHILD SA (short lifetimes) and
/// runs DPD while we stay up.
#[test]
fn h_gateway_rekeys_and_dpd() {
    let mut lab = lab_or_skip!("rekey");
    lab.start_strongswan(
        &gw_conf(
            "auth = pubkey\n certs = gw.crt",
            "auth = eap-mschapv2\n eap_id = %any",
            "rekey_time = 6s\n over_time = 30s\n rand_time = 0s\n dpd_delay = 2s",
            "rekey_time = 4s\n life_time = 30s\n rand_time = 0s",
        ),
        "",
    );
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.eap_probe(&ca, &["--hold", "14", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let st = &v["stats"];
    assert!(st["ike_rekeys"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["child_rekeys"].as_u64().unwrap() >= 2, "{st}");
    let log = lab.gw_log();
    assert!(
        log.contains("rekeyed between"),
        "IKE rekey completed on the gateway: {log}"
    );
    assert!(
        log.contains("sending DPD request") || st["dpd_answered"].as_u64().unwrap() >= 1,
        "{log}"
    );
    assert!(!log.contains("giving up after"), "nothing timed out: {log}");
    assert!(
        lab.wait_log("received DELETE for IKE_SA", 3),
        "clean DELETE on the rekeyed SA"
    );
}

/// (h') We rekey the CHILD SA and the IKE SA ourselves before our lifetimes
/// run out (the gateway's are long), make-before-break.
#[test]
fn h_client_rekeys() {
    let mut lab = lab_or_skip!("ownrekey");
    lab.start_eap_gateway("gw.crt");
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.eap_probe(
        &ca,
        &[
            "--child-lifetime",
            "5",
            "--ike-lifetime",
            "10",
            "--hold",
            "13",
            "--json",
            "-v",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let st = &json(&out)["stats"];
    assert!(st["child_rekeys"].as_u64().unwrap() >= 2, "{st}");
    assert!(st["ike_rekeys"].as_u64().unwrap() >= 1, "{st}");
    let log = lab.gw_log();
    assert!(
        log.contains("[ N(REKEY_SA) SA No TSi TSr ]"),
        "CHILD rekey from us: {log}"
    );
    assert!(
        log.contains("received DELETE for ESP CHILD_SA"),
        "old CHILD SA deleted after the new one: {log}"
    );
    assert!(log.contains("rekeyed between"), "IKE rekey from us: {log}");
    assert!(!log.contains("giving up after"), "{log}");
}

/// (i) 30 % random loss on the link still connects through retransmits.
/// As `tc netem loss 30%` on the client's veth would (this kernel has no
/// sch_netem), iptables' statistic match drops 30 % of what the client sends;
/// the gateway's answers to lost requests are then re-sent only when we retransmit.
#[test]
fn i_lossy_link() {
    let mut lab = lab_or_skip!("loss");
    lab.start_eap_gateway("gw.crt");
    let cl = lab.cl.clone();
    must(&format!("ip netns exec {cl} iptables -A OUTPUT -p udp -m statistic --mode random --probability 0.3 -j DROP"));
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.eap_probe(&ca, &["--json", "--timeout", "90", "-v"]);
    let drops = must(&format!(
        "ip netns exec {cl} iptables -L -v -n -x | awk '/statistic/ {{s += $1}} END {{print s+0}}'"
    ));
    eprintln!("iptables dropped {drops} packets");
    assert_eq!(code, 0, "{err}");
    assert_vip_and_dns(&json(&out));
}

/// Independent decode: tshark (Wireshark's IKEv2 dissector) decrypts our
/// IKE_AUTH exchange with the keys from `--ike-keylog`, and reports no
/// malformed packet and no expert error.
#[test]
fn wireshark_decrypts_ike_auth() {
    let mut lab = lab_or_skip!("tshark");
    if !std::path::Path::new("/usr/bin/tshark").exists() {
        return eprintln!("SKIPPED: tshark missing (scripts/setup installs it)");
    }
    lab.start_eap_gateway("gw.crt");
    let cap = lab.dir.join("ike.pcapng").display().to_string();
    let keylog = lab.dir.join("keylog").display().to_string();
    let mut tshark = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.cl,
            "tshark",
            "-q",
            "-i",
            "veth-cl",
            "-f",
            "udp port 500 or udp port 4500",
            "-w",
            &cap,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until dumpcap has opened the file.
    let t = std::time::Instant::now();
    while std::fs::metadata(&cap).map(|m| m.len()).unwrap_or(0) == 0 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.eap_probe(&ca, &["--ike-keylog", &keylog]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &tshark.id().to_string()])
        .status();
    let _ = tshark.wait();
    let lines = std::fs::read_to_string(&keylog).unwrap();
    assert_eq!(
        lines.lines().count(),
        1,
        "one IKE SA, one key line: {lines}"
    );
    let uat: Vec<String> = lines
        .lines()
        .map(|l| format!("uat:ikev2_decryption_table:{l}"))
        .collect();
    let args = vec!["-r".to_string(), cap.clone(), "-o".into(), uat[0].clone()];
    let decode = |extra: &[&str]| {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        let o = std::process::Command::new("tshark")
            .args(&a)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let verbose = decode(&["-V", "-Y", "isakmp.exchangetype == 35"]);
    assert!(
        verbose.contains("Decrypted Data"),
        "IKE_AUTH decrypted: {verbose}"
    );
    assert!(
        verbose.contains("Identification - Initiator"),
        "IDi visible after decryption"
    );
    assert!(
        verbose.contains("Extensible Authentication"),
        "EAP visible after decryption"
    );
    // Wireshark recomputes every ICV with our SK_ai / SK_ar.
    let correct = verbose
        .matches("Integrity Checksum Data")
        .filter(|_| true)
        .count();
    assert!(
        correct >= 8,
        "all IKE_AUTH messages (request/response, EAP rounds) decoded: {correct}"
    );
    assert_eq!(
        verbose.matches("[correct]").count(),
        correct,
        "every ICV verifies: {verbose}"
    );
    let bad = decode(&["-Y", "_ws.malformed || _ws.expert.severity >= \"error\""]);
    assert!(
        bad.trim().is_empty() || bad.lines().all(|l| l.contains("Running as user")),
        "malformed or expert errors: {bad}"
    );
}

/// A gateway that only accepts legacy algorithms: a clear NO_PROPOSAL_CHOSEN
/// error by default, a connection with --legacy.
#[test]
fn no_proposal_chosen_then_legacy() {
    let mut lab = lab_or_skip!("noprop");
    lab.start_strongswan(
        &gw_conf(
            "auth = psk",
            "auth = psk\n id = %any",
            "proposals = aes128-sha1-modp1024",
            "",
        ),
        "",
    );
    std::fs::write(lab.dir.join("psk"), "test-psk-0123456789\n").unwrap();
    let psk = lab.dir.join("psk").display().to_string();
    let args = [
        "probe",
        "--server",
        GW,
        "--user",
        "alice@example.com",
        "--psk-file",
        &psk,
    ];
    let (code, _, err, _) = lab.acclient(&args, "");
    assert_eq!(code, 5, "protocol refusal exit code");
    assert!(
        err.contains("accepts none of our proposals (NO_PROPOSAL_CHOSEN)"),
        "{err}"
    );
    let mut legacy = args.to_vec();
    legacy.push("--legacy");
    let (code, _, err, _) = lab.acclient(&legacy, "");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"),
        "{err}"
    );
}

/// The gateway demands a COOKIE (RFC 7296 §2.6): we retry with it.
#[test]
fn cookie_challenge() {
    let mut lab = lab_or_skip!("cookie");
    lab.start_strongswan(
        &gw_conf("auth = psk", "auth = psk\n id = %any", "", ""),
        "    cookie_threshold = 1\n",
    );
    std::fs::write(lab.dir.join("psk"), "test-psk-0123456789\n").unwrap();
    let psk = lab.dir.join("psk").display().to_string();
    // strongSwan asks for cookies once `cookie_threshold` IKE SAs are half
    // open: leave one behind by blocking NAT-T during a first attempt.
    let cl = lab.cl.clone();
    must(&format!(
        "ip netns exec {cl} iptables -A OUTPUT -p udp --dport 4500 -j DROP"
    ));
    let (code, _, _, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice@example.com",
            "--psk-file",
            &psk,
            "--timeout",
            "2",
        ],
        "",
    );
    assert_eq!(code, 4, "--timeout expired: exit code 4 (no answer)");
    must(&format!("ip netns exec {cl} iptables -F OUTPUT"));
    let (code, _, err, _) = lab.acclient(
        &[
            "-v",
            "probe",
            "--server",
            GW,
            "--user",
            "alice@example.com",
            "--psk-file",
            &psk,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("gateway requested a COOKIE"), "{err}");
    assert!(lab.gw_log().contains("N(COOKIE)"));
}

/// -vv decodes every payload but never prints the password, the PSK or keys.
#[test]
fn verbose_output_has_no_secrets() {
    let mut lab = lab_or_skip!("secrets");
    lab.start_strongswan(
        &gw_conf(
            "auth = pubkey\n certs = gw.crt",
            "auth = eap-gtc\n eap_id = %any",
            "",
            "",
        ),
        "",
    );
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.eap_probe(&ca, &["--eap", "gtc", "-vv"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("IDi type") && err.contains("CP CFG_REPLY"),
        "payload-level decode present: {err}"
    );
    assert!(
        !err.contains("alice-password"),
        "EAP-GTC carries the password in clear inside SK: never log it"
    );
    assert!(
        !err.to_lowercase().contains(
            &"alice-password"
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        "nor as hex"
    );
}

/// Classic AUTH methods: with RFC 7427 off on the gateway it signs with
/// method 1 (RSA, SHA-1) or method 9 (ECDSA P-256, SHA-256, r|s), which we
/// verify as well as method 14.
#[test]
fn classic_signature_methods() {
    if let Some(w) = skip_reason() {
        return eprintln!("SKIPPED: {w}");
    }
    for (certs, want_gw, want_us) in [
        (
            "gw.crt",
            "with RSA signature successful",
            "RSA_EMSA_PKCS1_SHA1",
        ),
        (
            "gwec.crt",
            "with ECDSA-256 signature successful",
            "ECDSA_WITH_SHA256",
        ),
    ] {
        let mut lab = Lab::new("classic");
        lab.start_strongswan(
            &gw_conf(
                &format!("auth = pubkey\n certs = {certs}"),
                "auth = eap-mschapv2\n eap_id = %any",
                "",
                "",
            ),
            "    signature_authentication = no\n",
        );
        let ca = lab.ca("ca.crt");
        let (code, _, err, _) = lab.eap_probe(&ca, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(want_us), "{certs}: {err}");
        assert!(lab.gw_log().contains(want_gw), "{certs}: {}", lab.gw_log());
    }
}

/// The data path: ICMP echo requests sealed by our ESP (AES-GCM-256 and
/// AES-CBC-256/HMAC-SHA1) reach the host behind strongSwan's user-space ESP,
/// and its replies come back and open.
#[test]
fn esp_ping_through_the_gateway() {
    if let Some(w) = skip_reason() {
        return eprintln!("SKIPPED: {w}");
    }
    for (esp, want) in [
        ("aes256gcm16", "AES_GCM_16_256"),
        ("aes256-sha1", "AES_CBC_256/HMAC_SHA1_96"),
    ] {
        let mut lab = Lab::new("esp");
        lab.start_strongswan(
            &gw_conf(
                "auth = pubkey\n certs = gw.crt",
                "auth = eap-mschapv2\n eap_id = %any",
                "",
                &format!("esp_proposals = {esp}"),
            ),
            "",
        );
        let ca = lab.ca("ca.crt");
        let (code, out, err, _) = lab.eap_probe(
            &ca,
            &["--ping", "203.0.113.1", "--ping-count", "5", "--json"],
        );
        assert_eq!(code, 0, "{err}");
        let v = json(&out);
        assert_eq!(v["child"]["algorithms"], want);
        assert_eq!(v["esp"]["sent"], 5, "{}", v["esp"]);
        assert_eq!(
            v["esp"]["echo_replies"], 5,
            "all echo replies came back through ESP: {}",
            v["esp"]
        );
        assert_eq!(v["esp"]["dropped"], 0);
    }
}

/// Config mode with IPv6: --ipv6 asks for INTERNAL_IP6_ADDRESS / _DNS and
/// IPv6 selectors; a dual-stack strongSwan pool hands out both families.
#[test]
fn config_mode_dual_stack() {
    let mut lab = lab_or_skip!("dual");
    // The protected IPv6 network needs an address on the gateway (its route
    // through ipsec0 is installed from it).
    must(&format!(
        "ip -n {} addr add 2001:db8:ffff::1/128 dev lo",
        lab.gw
    ));
    let conf = gw_conf("auth = psk", "auth = psk\n id = %any", "", "")
        .replace("pools = pool4", "pools = pool4, pool6")
        .replace("local_ts = 203.0.113.0/24", "local_ts = 203.0.113.0/24, 2001:db8:ffff::/64")
        .replace("pools {", "pools {\n    pool6 {\n        addrs = 2001:db8:1::/120\n        dns = 2001:db8:ffff::53\n    }");
    lab.start_strongswan(&conf, "");
    std::fs::write(lab.dir.join("psk"), "test-psk-0123456789\n").unwrap();
    let psk = lab.dir.join("psk").display().to_string();
    let (code, out, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice@example.com",
            "--psk-file",
            &psk,
            "--ipv6",
            "--json",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let addrs: Vec<&str> = v["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(addrs.iter().any(|a| a.starts_with("192.0.2.")), "{addrs:?}");
    assert!(
        addrs.iter().any(|a| a.starts_with("2001:db8:1::")),
        "{addrs:?}"
    );
    let dns: Vec<&str> = v["dns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        dns.contains(&"203.0.113.53") && dns.contains(&"2001:db8:ffff::53"),
        "{dns:?}"
    );
    assert!(
        v["ts_remote"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap_or("").starts_with("2001:db8:ffff::")),
        "{}",
        v["ts_remote"]
    );
}
