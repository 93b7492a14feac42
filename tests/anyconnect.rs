//! acclient's EAP-AnyConnect login against our own test gateway
//! (`tests/gateway`, binary `acgateway`), which behaves like the ASA of
//! seed 004, in network namespaces.

mod common;

use common::*;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn gateway_requests(log: &str, exchange: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(&format!("received {exchange} request ")))
        .map(|(_, r)| r.to_string())
        .collect()
}

/// The seed's flow end to end; the payloads of every IKE_AUTH request in the
/// order of seed 004, Cisco fragments at MTU 544, and nothing secret in -vv.
#[test]
fn seed_004_flow_end_to_end() {
    let mut lab = lab_or_skip!("acseed");
    lab.start_acgateway(&[
        "--user",
        "Anu:cisco123",
        "--group",
        "ASA-IKEV2",
        "--dns",
        "203.0.113.53",
        "--protected",
        "203.0.113.0/24",
    ]);
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.acclient(
        &[
            "-vv",
            "probe",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "Anu",
            "--group",
            "ASA-IKEV2",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
            "--json",
        ],
        "cisco123\n",
    );
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["addresses"][0], "192.0.2.10/32");
    assert_eq!(v["dns"][0], "203.0.113.53");
    assert_eq!(v["ts_remote"][0], "203.0.113.0/24");
    assert_eq!(
        v["session_id"], "32768",
        "session kept for reconnects (id shown, token never)"
    );
    let log = lab.acgw_log();
    let auth = gateway_requests(&log, "IKE_AUTH");
    assert_eq!(auth.len(), 5, "{log}");
    // Seed 004, message 3: VID, IDi, CERTREQ, CP, SA, TSi, TSr, N — and no AUTH.
    assert!(
        auth[0].starts_with("1 [ V IDi CERTREQ CP(CFG_REQUEST) SA TSi TSr N"),
        "{}",
        auth[0]
    );
    assert!(!auth[0].contains("AUTH"));
    for r in &auth[1..4] {
        assert!(r.contains("[ EAP/RES/AnyConnect ]"), "{r}");
    }
    assert!(
        auth[4].ends_with("[ AUTH ]"),
        "AUTH only in the last: {}",
        auth[4]
    );
    // IKE_SA_INIT carries the vendor IDs AnyConnect sends: FRAGMENTATION,
    // Copyright, ANYCONNECT-EAP, DELETE-REASON (anyconnect-ikev2.md §4).
    let init = log
        .lines()
        .find(|l| l.contains("received IKE_SA_INIT request 0"))
        .unwrap_or("");
    assert_eq!(init.matches(" V").count(), 4, "{init}");
    for doc in ["received init", "received auth-reply", "received ack"] {
        assert!(log.contains(doc), "{doc}: {log}");
    }
    assert!(
        log.contains("Fragment MTU: 544, fragments: 3"),
        "IKE_AUTH response 1 in 3 Cisco fragments"
    );
    assert!(
        err.contains("reassembled a Cisco-fragmented IKE message"),
        "{err}"
    );
    assert!(log.contains("received DELETE for IKE_SA"));
    // The password, the session token and the complete XML (28727) stay out of -vv.
    assert!(!err.contains("cisco123"));
    assert!(
        !err.contains("session-token") && !err.contains("config-auth"),
        "{err}"
    );
}

/// A wrong password brings the form back with the gateway's error; the
/// right one on the next line completes the same connection.
#[test]
fn wrong_then_right_password_in_one_connection() {
    let mut lab = lab_or_skip!("acretry");
    lab.start_acgateway(&["--user", "alice:right", "--group", "ENG"]);
    let (code, _, err, _) = ac_probe_as(&lab, "alice", &[], "wrong\nright\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("The gateway says: Login failed."), "{err}");
    let log = lab.acgw_log();
    assert!(
        log.contains("authentication of user 'alice' failed (attempt 1)")
            && log.contains("user 'alice' authenticated"),
        "{log}"
    );
    assert_eq!(
        log.matches("received IKE_SA_INIT").count(),
        1,
        "one connection"
    );
}

/// Wrong passwords only: non-interactive, stdin runs out → exit 2, a clear
/// message, and no loop.
#[test]
fn wrong_password_non_interactive_stops() {
    let mut lab = lab_or_skip!("acwrong");
    lab.start_acgateway(&["--user", "alice:right"]);
    let (code, _, err, took) = ac_probe_as(&lab, "alice", &["--non-inter"], "wrong\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rejected the credentials (Login failed.)"),
        "{err}"
    );
    assert!(took.as_secs() < 10);
    assert_eq!(lab.acgw_log().matches("failed (attempt").count(), 1);
}

/// Plain IKEv2 EAP (no --anyconnect) against an AnyConnect head-end: we
/// decline EAP-AnyConnect, the gateway gives up, and the error says what
/// happened and what to pass, not "the gateway rejected the credentials".
#[test]
fn anyconnect_head_end_without_anyconnect_says_so() {
    let mut lab = lab_or_skip!("acnak");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(
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
        "pw\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("asked for EAP-AnyConnect") && err.contains("--anyconnect"),
        "{err}"
    );
    assert!(!err.contains("rejected the credentials"), "{err}");
}

/// With several tunnel groups the form carries `group_list`; --group picks one.
#[test]
fn group_selection() {
    let mut lab = lab_or_skip!("acgroup");
    lab.start_acgateway(&["--user", "bob:pw", "--group", "ENG", "--group", "SALES"]);
    let (code, _, err, _) = ac_probe_as(&lab, "bob", &["--group", "SALES"], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        lab.acgw_log()
            .contains("user 'bob' authenticated (group SALES)"),
        "{}",
        lab.acgw_log()
    );
    let (code, _, err, _) = ac_probe_as(&lab, "bob", &["--group", "NOPE"], "pw\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("group \"NOPE\" is not offered (choices: ENG, SALES)"),
        "{err}"
    );
}

/// The gateway drops 25 % of what it receives: lost requests and lost
/// fragments are recovered by retransmission (cached responses re-sent).
#[test]
fn lossy_gateway_still_connects() {
    let mut lab = lab_or_skip!("acloss");
    lab.start_acgateway(&["--user", "alice:pw", "--loss", "25"]);
    let (code, _, err, _) = ac_probe_as(&lab, "alice", &["--timeout", "90"], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        lab.acgw_log().contains("fault knob: dropped"),
        "the knob worked"
    );
}

/// A profile without StandardAuthenticationOnly selects EAP-AnyConnect, its
/// UserGroup the tunnel group.
#[test]
fn profile_selects_anyconnect_and_group() {
    let mut lab = lab_or_skip!("acprof");
    lab.start_acgateway(&["--user", "carol:pw", "--group", "ENG", "--group", "OPS"]);
    let ca = lab.ca("ca.crt");
    let p = lab.write_file("corp.xml", &format!("<AnyConnectProfile><ServerList><HostEntry><HostName>Corp</HostName><HostAddress>{GW}</HostAddress><UserGroup>OPS</UserGroup><PrimaryProtocol>IPsec</PrimaryProtocol></HostEntry></ServerList></AnyConnectProfile>"));
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--profile",
            &p,
            "--host",
            "corp",
            "--user",
            "carol",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Establishing VPN session..."),
        "Cisco-like progress: {err}"
    );
    // Without --host: the first entry, like Cisco's client.
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--profile",
            &p,
            "--user",
            "carol",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(lab.acgw_log().contains("(group OPS)"), "{}", lab.acgw_log());
}

/// `acclient connect` stays up until SIGTERM (or Ctrl-C), then sends DELETE
/// and exits 0.
#[test]
fn connect_until_signal_then_clean_disconnect() {
    let mut lab = lab_or_skip!("acconnect");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let ca = lab.ca("ca.crt");
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.cl,
            env!("CARGO_BIN_EXE_acclient"),
            "connect",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ])
        // Its own state directory, never the machine's /run/acclient
        // (it failed once while another acclient ran on the machine).
        .env("ACCLIENT_STATE_DIR", lab.state_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    assert!(
        lab.wait_acgw("CHILD_SA established", 10),
        "{}",
        lab.acgw_log()
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "still connected");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Press Ctrl-C to disconnect") && err.contains("Disconnected."),
        "{err}"
    );
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 3),
        "{}",
        lab.acgw_log()
    );
}

/// `acclient probe --anyconnect` as `user` against the lab's gateway, trusting
/// the lab CA, passwords from `stdin`, plus `extra` arguments.
fn ac_probe_as(
    lab: &Lab,
    user: &str,
    extra: &[&str],
    stdin: &str,
) -> (i32, String, String, std::time::Duration) {
    let ca = lab.ca("ca.crt");
    let mut args = vec![
        "probe",
        "--server",
        GW,
        "--anyconnect",
        "--user",
        user,
        "--passwd-on-stdin",
        "--cafile",
        &ca,
    ];
    args.extend_from_slice(extra);
    lab.acclient(&args, stdin)
}

fn ac_probe(lab: &Lab, extra: &[&str], stdin: &str) -> (i32, String, String) {
    let (code, out, err, _) = ac_probe_as(lab, "alice", extra, stdin);
    (code, out, err)
}

/// A second round: the gateway asks for a one-time code (`answer`, sent as
/// `<password>`), read from the next line of stdin.
#[test]
fn otp_round() {
    let mut lab = lab_or_skip!("acotp");
    lab.start_acgateway(&["--user", "alice:pw", "--otp", "123456"]);
    let (code, _, err) = ac_probe(&lab, &[], "pw\n123456\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Enter the code from your token."), "{err}");
    assert!(lab.acgw_log().contains("second round OTP: accepted"));
    let (code, _, err) = ac_probe(&lab, &[], "pw\n000000\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Wrong code."), "{err}");
}

/// Password expired: new password + confirmation; only `<password>` goes
/// out, and a mismatch is caught before anything is sent.
#[test]
fn password_change_round() {
    let mut lab = lab_or_skip!("acnewpw");
    lab.start_acgateway(&["--user", "alice:old", "--expire-password"]);
    let (code, _, err) = ac_probe(&lab, &[], "old\nnew-pw\nnew-pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Your password has expired."), "{err}");
    assert!(lab
        .acgw_log()
        .contains("second round new password: accepted"));
    let (code, _, err) = ac_probe(&lab, &[], "old\nnew-pw\nother\n");
    assert_eq!(code, 2);
    assert!(err.contains("the new passwords do not match"), "{err}");
}

/// The banner (Cisco attribute 28672) and the session settings reach the user.
#[test]
fn banner_and_cisco_settings() {
    let mut lab = lab_or_skip!("acbanner");
    lab.start_acgateway(&["--user", "alice:pw", "--banner", "Authorized use only"]);
    let (code, out, err) = ac_probe(&lab, &["--json"], "pw\n");
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["banner"], "Authorized use only");
    assert_eq!(v["cisco"]["mtu"], 1406);
    assert_eq!(v["cisco"]["dpd_s"], 30);
    assert_eq!(v["cisco"]["keepalive_s"], 20);
    assert_eq!(v["cisco"]["gateway_version"], "ASA 100.7(6)116");
}

/// Fragments duplicated, one lost once (recovered by retransmission), and one
/// never sent (a clear error once our retransmissions run out).
#[test]
fn cisco_fragments_duplicated_lost_and_missing() {
    let mut lab = lab_or_skip!("acfrag");
    lab.start_acgateway(&["--user", "alice:pw", "--dup", "--drop-fragment", "2"]);
    let (code, _, err) = ac_probe(&lab, &[], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(lab
        .acgw_log()
        .contains("fault knob: dropping fragment 2 once"));
    assert!(
        lab.acgw_log().contains("retransmitting response 1"),
        "{}",
        lab.acgw_log()
    );
    drop(lab);
    let mut lab = lab_or_skip!("acstall");
    lab.start_acgateway(&["--user", "alice:pw", "--stall-fragment", "2"]);
    let (code, _, err) = ac_probe(&lab, &["--retries", "2"], "pw\n");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(
            "incomplete fragmented message from the gateway: Cisco fragments still missing"
        ),
        "{err}"
    );
}

/// Broken XML, a broken TLV and a broken CFG_REPLY from the gateway: a clear
/// protocol error (exit 5) naming the problem, no panic, DELETE sent.
#[test]
fn malformed_gateway_input() {
    for (knob, want) in [
        ("xml", "malformed XML from the gateway"),
        ("tlv", "TLV 0 runs past the end"),
        ("cp", "CP payload"),
    ] {
        let mut lab = lab_or_skip!("acbad");
        lab.start_acgateway(&["--user", "alice:pw", "--malformed", knob]);
        let (code, _, err) = ac_probe(&lab, &[], "pw\n");
        assert_eq!(code, 5, "{knob}: {err}");
        assert!(err.contains(want), "{knob}: {err}");
        assert!(!err.contains("panicked"));
        assert!(
            lab.wait_acgw("received DELETE for IKE_SA", 3) || knob == "cp",
            "{knob}: {}",
            lab.acgw_log()
        );
    }
}

/// Posture assessment: with --csd-wrapper the script runs with the ticket
/// and token (openconnect's interface) and the token is echoed; without it,
/// a clear message and exit 2.
#[test]
fn host_scan_with_and_without_wrapper() {
    let mut lab = lab_or_skip!("achs");
    lab.start_acgateway(&["--user", "alice:pw", "--host-scan"]);
    let (code, _, err) = ac_probe(&lab, &[], "pw\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("requires posture assessment (host scan); give --csd-wrapper SCRIPT"),
        "{err}"
    );
    // The wrapper records who it runs as and what it was given.
    let (w, record) = lab.csd_wrapper(
        "echo \"$@\" > $OUT\necho \"token=$CSD_TOKEN host=$CSD_HOSTNAME\" >> $OUT\necho \"uid=$(id -u)\" >> $OUT\nenv | grep -v '^OUT=' >> $OUT",
    );
    let (code, _, err) = ac_probe(&lab, &["--csd-wrapper", &w], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(as nobody)"), "{err}");
    let rec = std::fs::read_to_string(&record).unwrap();
    assert!(rec.contains("-ticket TICKET42 -stub 0"), "{rec}");
    assert!(rec.contains("token=TOKEN42 host=198.51.100.1"), "{rec}");
    // Root's acclient runs it as nobody, with a clean environment.
    let nobody = must("id -u nobody").trim().to_string();
    assert!(rec.contains(&format!("uid={nobody}\n")), "{rec}");
    for leaked in ["ACCLIENT_STATE_DIR", "CARGO", "RUST_"] {
        assert!(!rec.contains(leaked), "{leaked} reached the wrapper: {rec}");
    }
    assert!(lab.acgw_log().contains("host scan token received"));
    // --csd-user names another one; an unknown user is refused by name.
    std::fs::remove_file(&record).unwrap();
    let (code, _, err) = ac_probe(&lab, &["--csd-wrapper", &w, "--csd-user", "daemon"], "pw\n");
    assert_eq!(code, 0, "{err}");
    let daemon = must("id -u daemon").trim().to_string();
    let rec = std::fs::read_to_string(&record).unwrap();
    assert!(rec.contains(&format!("uid={daemon}\n")), "{rec}");
    let (code, _, err) = ac_probe(
        &lab,
        &["--csd-wrapper", &w, "--csd-user", "no-such-user-x"],
        "pw\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("--csd-user \"no-such-user-x\": no such user"),
        "{err}"
    );
}

/// Our gateway's certificate from an unknown CA: refused under --non-inter
/// with its pin shown; accepted with that pin.
#[test]
fn untrusted_gateway_certificate_then_pinned() {
    let mut lab = lab_or_skip!("acpin");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let other = lab.ca("other.crt");
    let base = [
        "probe",
        "--server",
        GW,
        "--anyconnect",
        "--user",
        "alice",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        &other,
    ];
    let (code, _, err, _) = lab.acclient(&base, "pw\n");
    assert_eq!(code, 3, "{err}");
    let pin = err
        .split_whitespace()
        .find(|w| w.starts_with("pin-sha256:"))
        .unwrap()
        .trim_end_matches([')', ','])
        .to_string();
    let mut pinned = base.to_vec();
    pinned.extend(["--servercert", &pin]);
    let (code, _, err, _) = lab.acclient(&pinned, "pw\n");
    assert_eq!(code, 0, "{err}");
}

/// "multiple-cert": the gateway sends <client-cert-request/>; we answer init
/// with the PKCS#7 chain and the signature over our signed octets, which the
/// gateway checks; a certificate from another CA is refused; no certificate
/// is a clear error, not a loop.
#[test]
fn client_certificate_round() {
    let mut lab = lab_or_skip!("accert");
    let ca = lab.ca("ca.crt");
    lab.start_acgateway(&["--user", "alice:pw", "--client-ca", &ca]);
    let (cert, key) = (lab.ca("client.crt"), lab.ca("client.key"));
    let (code, _, err) = ac_probe(&lab, &["--cert", &cert, "--key", &key], "pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        lab.acgw_log().contains(
            "client certificate C=XX, O=VPN Test, CN=alice accepted (chain and signature)"
        ),
        "{}",
        lab.acgw_log()
    );
    // The certificate answer is large: with a small fragment size we split it
    // Cisco-style (the gateway offered only Cisco's scheme), and it still works.
    let (code, _, err) = ac_probe(
        &lab,
        &[
            "--cert",
            &cert,
            "--key",
            &key,
            "--fragment-size",
            "500",
            "-v",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        lab.acgw_log()
            .contains("reassembled a Cisco-fragmented message from the client"),
        "{}",
        lab.acgw_log()
    );
    // The same certificate and key as a PKCS#12 file (openssl's modern AES default).
    let p12 = lab.dir.join("alice.p12").display().to_string();
    must(&format!(
        "openssl pkcs12 -export -in {cert} -inkey {key} -out {p12} -passout pass:p12secret"
    ));
    let (code, _, err) = ac_probe(
        &lab,
        &["--cert", &p12, "--key-password", "p12secret"],
        "pw\n",
    );
    assert_eq!(code, 0, "PKCS#12: {err}");
    let (code, _, err) = ac_probe(&lab, &["--cert", &p12, "--key-password", "wrong"], "pw\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot open the PKCS#12 file (wrong password?)"),
        "{err}"
    );
    let (rcert, rkey) = (lab.ca("rogue.crt"), lab.ca("rogue.key"));
    let (code, _, err) = ac_probe(&lab, &["--cert", &rcert, "--key", &rkey], "pw\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(
        lab.acgw_log().contains("client certificate refused"),
        "{}",
        lab.acgw_log()
    );
    let (code, _, err) = ac_probe(&lab, &[], "pw\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("asks for a client certificate; give --cert and --key"),
        "{err}"
    );
    drop(lab);
    // Only the certificate group asks for one.
    let mut lab = lab_or_skip!("accertgrp");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--group",
        "STAFF",
        "--group",
        "CERT",
        "--client-ca",
        &ca,
        "--cert-group",
        "CERT",
    ]);
    let (code, _, err) = ac_probe(&lab, &["--group", "STAFF"], "pw\n");
    assert_eq!(code, 0, "no certificate needed in STAFF: {err}");
    let (code, _, err) = ac_probe(&lab, &["--group", "CERT"], "pw\n");
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ac_probe(
        &lab,
        &["--group", "CERT", "--cert", &cert, "--key", &key],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
}

/// Client certificates as an ASA with one SHA-1 proposal (seed 004, so
/// `--legacy`) checks them: the RSA signature in TLV 1 uses the PRF's hash, SHA-1 (a SHA-256
/// one is refused); an ECDSA key; an encrypted PKCS#8 key with its
/// passphrase (none, or a wrong one, is named); a key that is not the
/// certificate's is caught before the login.
#[test]
fn client_certificate_signature_follows_the_prf() {
    let mut lab = lab_or_skip!("accertsha1");
    let ca = lab.ca("ca.crt");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--client-ca",
        &ca,
        "--ike-prf",
        "sha1",
    ]);
    let (cert, key) = (lab.ca("client.crt"), lab.ca("client.key"));
    let (code, _, err) = ac_probe(&lab, &["--legacy", "--cert", &cert, "--key", &key], "pw\n");
    assert_eq!(code, 0, "{err}\n{}", lab.acgw_log());
    assert!(err.contains("PRF_HMAC_SHA1"), "{err}");
    // The gateway's own AUTH: method 1 with SHA-1, as the ASA signs it.
    assert!(err.contains("(RSA_EMSA_PKCS1_SHA1)"), "{err}");
    assert!(
        lab.acgw_log()
            .contains("client certificate C=XX, O=VPN Test, CN=alice accepted"),
        "{}",
        lab.acgw_log()
    );
    let (eccert, eckey) = (lab.ca("clientec.crt"), lab.ca("clientec.key"));
    let (code, _, err) = ac_probe(
        &lab,
        &["--legacy", "--cert", &eccert, "--key", &eckey],
        "pw\n",
    );
    assert_eq!(code, 0, "ECDSA: {err}\n{}", lab.acgw_log());
    assert!(
        lab.acgw_log().contains("CN=alice-ec accepted"),
        "{}",
        lab.acgw_log()
    );
    let enc = lab.ca("client-enc.key");
    let (code, _, err) = ac_probe(
        &lab,
        &[
            "--legacy",
            "--cert",
            &cert,
            "--key",
            &enc,
            "--key-password",
            "key-pw",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "encrypted PKCS#8: {err}");
    let (code, _, err) = ac_probe(&lab, &["--legacy", "--cert", &cert, "--key", &enc], "pw\n");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{enc}: the private key is encrypted"))
            && err.contains("--key-password"),
        "{err}"
    );
    let (code, _, err) = ac_probe(
        &lab,
        &[
            "--legacy",
            "--cert",
            &cert,
            "--key",
            &enc,
            "--key-password",
            "nope",
        ],
        "pw\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
    let rogue = lab.ca("rogue.key");
    let (code, _, err) = ac_probe(
        &lab,
        &["--legacy", "--cert", &cert, "--key", &rogue],
        "pw\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not belong to the certificate C=XX, O=VPN Test, CN=alice"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("acclient:")).count(),
        1,
        "one line: {err}"
    );
}

/// What we report to the head-end (an ASA's DAP gates on it): by default
/// acclient's own version, `linux-64` and this host's name; openconnect's
/// `--useragent`, `--os`, `--version-string`, `--local-hostname` change
/// each; an unknown OS is a usage error.
#[test]
fn client_description_is_what_the_user_says() {
    let mut lab = lab_or_skip!("acdesc");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let (code, _, err) = ac_probe(&lab, &[], "pw\n");
    assert_eq!(code, 0, "{err}");
    let v = env!("CARGO_PKG_VERSION");
    let log = lab.acgw_log();
    assert!(
        log.contains(&format!("client device-id: linux-64, version: {v}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("client application version: AnyConnect Linux {v}")),
        "{log}"
    );
    let (code, _, err) = ac_probe(
        &lab,
        &[
            "--useragent",
            "AnyConnect Windows 4.10.07073",
            "--os",
            "win",
            "--version-string",
            "4.10.07073",
            "--local-hostname",
            "LAPTOP-7",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let log = lab.acgw_log();
    assert!(
        log.contains("client device-id: win, version: 4.10.07073"),
        "{log}"
    );
    assert!(
        log.contains("client application version: AnyConnect Windows 4.10.07073"),
        "{log}"
    );
    assert!(log.contains("client host name: LAPTOP-7"), "{log}");
    let (code, _, err) = ac_probe(&lab, &["--os", "beos"], "pw\n");
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("--os \"beos\": one of linux, linux-64, win"),
        "{err}"
    );
}

/// `-F/--form-entry FORM:OPT=VALUE` answers login forms by their `<auth id>`
/// for scripted logins (openconnect's): user name, password and group of
/// the main form, the one-time code of the challenge form, no terminal, no
/// stdin; a malformed entry is a usage error.
#[test]
fn form_entries_answer_the_login() {
    let mut lab = lab_or_skip!("acform");
    lab.start_acgateway(&[
        "--user", "alice:pw", "--group", "STAFF", "--group", "GUEST", "--otp", "123456",
    ]);
    let ca = lab.ca("ca.crt");
    let base = [
        "probe",
        "--server",
        GW,
        "--anyconnect",
        "--non-inter",
        "--cafile",
        &ca,
    ];
    let mut args = base.to_vec();
    args.extend([
        "-F",
        "main:username=alice",
        "--form-entry",
        "main:password=pw",
        "-F",
        "main:group_list=GUEST",
        "-F",
        "challenge:answer=123456",
    ]);
    let (code, _, err, _) = lab.acclient(&args, "");
    assert_eq!(code, 0, "{err}\n{}", lab.acgw_log());
    let log = lab.acgw_log();
    assert!(
        log.contains("user 'alice' authenticated (group GUEST)"),
        "{log}"
    );
    assert!(log.contains("second round OTP: accepted"), "{log}");
    // The entry names its form: a code for another form answers nothing here.
    let mut args = base.to_vec();
    args.extend([
        "-F",
        "main:username=alice",
        "-F",
        "main:password=pw",
        "-F",
        "other:answer=123456",
    ]);
    let (code, _, err, _) = lab.acclient(&args, "");
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("Code:"), "the challenge was asked for: {err}");
    let mut args = base.to_vec();
    args.extend(["-F", "password=pw"]);
    let (code, _, err, _) = lab.acclient(&args, "");
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("is not FORM:OPT=VALUE"), "{err}");
}

/// A profile host whose HostAddress gives no answer (packets dropped, as a
/// firewalled or dead head-end) fails over to its BackupServerList, as
/// Cisco's client does; the profile's AuthenticationTimeout (10 s) bounds
/// the wait for the primary (3 retransmissions instead of 7).
#[test]
fn backup_server_after_no_answer_within_the_authentication_timeout() {
    let mut lab = lab_or_skip!("acbackup");
    must(&format!(
        "ip -n {gw} addr add 198.51.100.3/24 dev veth-gw && ip netns exec {gw} iptables -A INPUT -d 198.51.100.3 -p udp -j DROP",
        gw = lab.gw
    ));
    lab.start_acgateway(&["--user", "alice:pw"]);
    let ca = lab.ca("ca.crt");
    let p = lab.write_file("backup.xml", &format!("<AnyConnectProfile><ClientInitialization><AuthenticationTimeout>10</AuthenticationTimeout></ClientInitialization><ServerList><HostEntry><HostName>Corp</HostName><HostAddress>198.51.100.3</HostAddress><PrimaryProtocol>IPsec</PrimaryProtocol><BackupServerList><HostAddress>{GW}</HostAddress></BackupServerList></HostEntry></ServerList></AnyConnectProfile>"));
    let (code, out, err, _) = lab.acclient(
        &[
            "probe",
            "--profile",
            &p,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("no answer from the gateway after 3 retransmissions"),
        "AuthenticationTimeout 10 s: {err}"
    );
    assert!(
        err.contains("No answer from 198.51.100.3; trying backup server 198.51.100.1 (1 of 1)."),
        "{err}"
    );
    assert!(
        out.contains("Connected to Corp (198.51.100.1:4500)"),
        "{out}"
    );
}

/// `--save-user` keeps the user name in a real Secret Service
/// (gnome-keyring in a private D-Bus session, its files in the lab's own
/// directory): the next probe without --user logs in as that user. The
/// password is never stored, and nothing is written outside the keyring.
#[test]
fn user_name_remembered_in_a_real_keyring() {
    if !std::path::Path::new("/usr/bin/gnome-keyring-daemon").exists()
        || !std::path::Path::new("/usr/bin/dbus-run-session").exists()
    {
        eprintln!(
            "SKIPPED: gnome-keyring or dbus-run-session missing (scripts/setup installs them)"
        );
        return;
    }
    let mut lab = lab_or_skip!("ackeyring");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let ca = lab.ca("ca.crt");
    let home = lab.dir.join("home");
    let run = lab.dir.join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    must(&format!("chmod 700 {}", run.display()));
    let bin = env!("CARGO_BIN_EXE_acclient");
    let probe = format!(
        "ACCLIENT_STATE_DIR={} {bin} probe --server {GW} --anyconnect --passwd-on-stdin --non-inter --cafile {ca}",
        lab.state_dir().display()
    );
    let script = format!(
        "set -e
         export HOME={home} XDG_RUNTIME_DIR={run} XDG_DATA_HOME={home}/.local/share
         printf 'keyring-pw' | gnome-keyring-daemon --unlock --components=secrets > /dev/null
         echo pw | {probe} --user alice --save-user
         echo '== second'
         echo pw | {probe}",
        home = home.display(),
        run = run.display(),
    );
    let o = lab.in_cl(&format!("dbus-run-session -- sh -c \"{script}\" 2>&1"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Remembered the user name for 198.51.100.1 in your keyring."),
        "{out}"
    );
    let second = out.split("== second").nth(1).unwrap_or("");
    assert!(
        second.contains("User name alice (remembered in your keyring)."),
        "{second}"
    );
    let log = lab.acgw_log();
    assert_eq!(
        log.matches("user 'alice' authenticated").count(),
        2,
        "{log}"
    );
    // The keyring's own file holds it, encrypted: no file there or in our
    // state directory has the user name (or anything else) in clear.
    let clear = must(&format!(
        "grep -rl alice {} {} || true",
        lab.state_dir().display(),
        home.display()
    ));
    assert!(clear.trim().is_empty(), "in clear: {clear}");
    assert!(
        home.join(".local/share/keyrings").exists(),
        "the keyring's files are the lab's"
    );
}

/// Pins from a profile's CertificatePinList (Cisco: SHA-512 of the public
/// key) and pins remembered for a host are honoured without --servercert.
#[test]
fn profile_and_remembered_pins() {
    let mut lab = lab_or_skip!("acpins");
    lab.start_acgateway(&["--user", "alice:pw"]);
    let other = lab.ca("other.crt");
    // Learn the key's hashes from a refused attempt.
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--non-inter",
            "--cafile",
            &other,
        ],
        "pw\n",
    );
    assert_eq!(code, 3);
    let pin256 = err
        .split_whitespace()
        .find(|w| w.starts_with("pin-sha256:"))
        .unwrap()
        .trim_end_matches([')', ','])
        .to_string();
    let spki = must(&format!("openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha512 -hex | awk '{{print $2}}'", lab.ca("gw.crt")));
    let p = lab.write_file("pinned.xml", &format!("<AnyConnectProfile><ServerList><HostEntry><HostName>Pinned</HostName><HostAddress>{GW}</HostAddress><PrimaryProtocol>IPsec</PrimaryProtocol><CertificatePinList><Pin Subject=\"vpn\">{}</Pin></CertificatePinList></HostEntry></ServerList></AnyConnectProfile>", spki.trim()));
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--profile",
            &p,
            "--host",
            "Pinned",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--non-inter",
            "--cafile",
            &other,
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "profile pin (SHA-512 hex): {err}");
    // A remembered pin for the host (what an interactive "yes" writes).
    let cfg = lab.dir.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("pins"), format!("{GW} {pin256}\n")).unwrap();
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--non-inter",
            "--cafile",
            &other,
        ],
        "pw\n",
    );
    assert_eq!(code, 3, "not without the config dir: {err}");
    let cfgs = cfg.display().to_string();
    let (code, _, err, _) = lab.acclient_env(
        &[
            "probe",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--non-inter",
            "--cafile",
            &other,
        ],
        "pw\n",
        &[("ACCLIENT_CONFIG_DIR", &cfgs)],
    );
    assert_eq!(code, 0, "remembered pin: {err}");
}

/// The gateway runs DPD while we stay connected, and answers slowly
/// (--delay-ms): DPDs are answered and the slow answers do not break the login.
#[test]
fn gateway_dpd_and_slow_answers() {
    let mut lab = lab_or_skip!("acdpd");
    lab.start_acgateway(&["--user", "alice:pw", "--dpd", "1", "--delay-ms", "300"]);
    let (code, out, err) = ac_probe(&lab, &["--hold", "4", "--json"], "pw\n");
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert!(
        v["stats"]["dpd_answered"].as_u64().unwrap() >= 2,
        "{}",
        v["stats"]
    );
    assert!(
        lab.acgw_log().matches("DPD response").count() >= 2,
        "{}",
        lab.acgw_log()
    );
}

/// On a terminal (a pseudo-terminal from `script`), each form field is asked:
/// the user name is echoed, the password is not.
#[test]
fn interactive_prompts_on_a_terminal() {
    let mut lab = lab_or_skip!("actty");
    if !have_script() {
        return;
    }
    lab.start_acgateway(&["--user", "alice:s3cret-pw"]);
    let ca = lab.ca("ca.crt");
    let cmd = format!(
        "{} probe --server {GW} --anyconnect --cafile {ca}",
        env!("CARGO_BIN_EXE_acclient")
    );
    let out = must(&format!(
        "(sleep 2; printf 'alice\\r'; sleep 1; printf 's3cret-pw\\r'; sleep 4) | timeout 20 ip netns exec {} script -qec '{cmd}' /dev/null",
        lab.cl
    ));
    assert!(out.contains("Username: alice"), "{out}");
    assert!(out.contains("Password: "), "{out}");
    assert!(!out.contains("s3cret-pw"), "password echoed: {out}");
    assert!(out.contains("Connected to"), "{out}");
}
