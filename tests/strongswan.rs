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
    assert_eq!(v["ts_remote"][0], "203.0.113.0-203.0.113.255");
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
    assert!(log.contains("received DELETE for IKE_SA"), "{log}");
}

/// (b) RSA gateway certificate + EAP-MSCHAPv2: virtual IP and DNS received.
#[test]
fn b_eap_mschapv2() {
    let mut lab = lab_or_skip!("mschap");
    lab.start_strongswan(
        &gw_conf(
            "auth = pubkey\n certs = gw.crt",
            "auth = eap-mschapv2\n eap_id = %any",
            "",
            "",
        ),
        "",
    );
    let ca = lab.ca("ca.crt");
    let (code, out, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
            "--remote-id",
            "vpn.example.com",
            "--json",
        ],
        "alice-password\n",
    );
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
