//! The in-process mode (root, no agent) never leaves the network changed
//! (issue 10): a refused banner, SIGHUP mid-session, a closed stderr and
//! Ctrl-C during the login each end with DELETE at the gateway and the
//! client namespace exactly as before; while a prompt waits on the terminal
//! the tunnel keeps carrying traffic (prompts run off the runtime thread).
//!
//! Each test makes its own namespaces and state directory and kills what it
//! started by PID.

mod common;

use common::*;
use std::time::Duration;

/// `acclient connect` on a pseudo-terminal (`script`), fed `input` (a shell
/// snippet printing what the user types, with sleeps), in the client
/// namespace with this lab's state directory. Returns the transcript.
fn on_terminal(lab: &Lab, args: &str, input: &str) -> String {
    let cmd = format!(
        "ACCLIENT_STATE_DIR={} {} connect {args}",
        lab.state_dir().display(),
        env!("CARGO_BIN_EXE_acclient")
    );
    let o = lab.on_pty(&cmd, input, 40);
    format!(
        "{}\nEXIT={}\n",
        String::from_utf8_lossy(&o.stdout),
        o.status.code().unwrap_or(-1)
    )
}

/// A banner refused at the prompt: DELETE, everything put back, exit 2. While
/// the banner waits 10 s on the terminal, pings through the tunnel flow and
/// the gateway's DPD requests are answered: nothing blocks the runtime.
#[test]
fn banner_waits_without_stalling_then_refused_cleanly() {
    let mut lab = lab_or_skip!("ipbanner");
    if !have_script() {
        return;
    }
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--banner",
        "Authorized use only.",
        "--dpd",
        "2",
    ]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let args = format!("--server {GW} --anyconnect --user alice --cafile {ca}");
    // Password at 2 s, then the banner waits; pings meanwhile; "n" at 8 s.
    let ping = std::thread::spawn({
        let cl = lab.cl.clone();
        move || {
            std::thread::sleep(Duration::from_secs(4));
            let o = sh(&format!(
                "ip netns exec {cl} ping -c 5 -i 0.3 -W 2 203.0.113.1"
            ));
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    });
    let out = on_terminal(
        &lab,
        &args,
        "sleep 2; printf 'pw\\r'; sleep 10; printf 'n\\r'; sleep 3",
    );
    let pings = ping.join().unwrap();
    assert!(out.contains("Banner from the gateway"), "{out}");
    assert!(out.contains("banner not accepted"), "{out}");
    assert!(out.contains("EXIT=2"), "{out}");
    assert!(
        pings.contains("5 received"),
        "pings while the banner waited: {pings}\n{out}"
    );
    // The gateway's DPD requests (every 2 s) were answered while it waited.
    assert!(
        lab.acgw_log().matches("DPD response").count() >= 3,
        "{}",
        lab.acgw_log()
    );
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 5),
        "{}",
        lab.acgw_log()
    );
    assert_eq!(
        lab.client_net_state(),
        before,
        "the network exactly as before"
    );
}

/// SIGHUP (terminal closed, ssh dropped) mid-session is SIGTERM: DELETE and
/// everything put back.
#[test]
fn sighup_mid_session_puts_everything_back() {
    let mut lab = lab_or_skip!("iphup");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient(
        "c",
        &[
            "connect",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "pw\n",
    );
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    assert_ne!(lab.client_net_state(), before);
    assert_eq!(lab.signal(pid, "-HUP"), Some(0), "{}", lab.log_of("c"));
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 5),
        "{}",
        lab.acgw_log()
    );
    assert_eq!(lab.client_net_state(), before);
}

/// stderr closed mid-session (`acclient … 2>&1 | head -c 1`): the next
/// message (on SIGTERM) must not panic past the teardown.
#[test]
fn closed_stderr_mid_session_still_tears_down() {
    let mut lab = lab_or_skip!("ipepipe");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pidfile = lab.dir.join("acclient.pid");
    let script = format!(
        "(printf 'pw\\n' | ACCLIENT_STATE_DIR={state} ip netns exec {cl} {bin} connect --server {GW} --anyconnect --user alice --passwd-on-stdin --cafile {ca} -v 2>&1 & echo $! > {pid}; wait) | head -c 1 > /dev/null",
        state = lab.state_dir().display(),
        cl = lab.cl,
        bin = env!("CARGO_BIN_EXE_acclient"),
        pid = pidfile.display(),
    );
    let mut bg = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    // Up when the routes are in (the device exists before the login);
    // head has long gone by then.
    let mut up = false;
    for _ in 0..150 {
        if lab.client_net_state().contains("0.0.0.0/1 dev acvpn0") {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "tunnel up: {}\n{}",
        lab.acgw_log(),
        String::from_utf8_lossy(
            &sh("ps -eo pid,stat,wchan:20,cmd | grep -E 'acclient|head' | grep -v grep").stdout
        )
    );
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    // `ip netns exec` runs the binary in place of itself: the PID is acclient's.
    must(&format!("kill -TERM {pid}"));
    let _ = bg.wait();
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 5),
        "{}",
        lab.acgw_log()
    );
    for _ in 0..50 {
        if lab.client_net_state() == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.client_net_state(), before);
}

/// Ctrl-C while logging in (the gateway slow to answer IKE_AUTH): the IKE
/// SA exists, so DELETE goes out; nothing was changed, nothing is left.
#[test]
fn ctrl_c_during_connect_sends_delete() {
    let mut lab = lab_or_skip!("ipint");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0", "--delay-ms", "4000"]);
    let before = lab.client_net_state();
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient(
        "c",
        &[
            "connect",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
            "-v",
        ],
        "pw\n",
    );
    assert!(
        lab.wait_for("c", "IKE SA negotiated", 20),
        "{}",
        lab.log_of("c")
    );
    let code = lab.signal(pid, "-INT");
    assert!(code.is_some(), "it exits: {}", lab.log_of("c"));
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 10),
        "{}\n{}",
        lab.acgw_log(),
        lab.log_of("c")
    );
    assert_eq!(lab.client_net_state(), before);
}

/// ICMP port unreachable (nothing listens on the gateway's port) ends the
/// attempt at once with "refused", not after ~27 s of retransmissions.
#[test]
fn icmp_port_unreachable_fails_fast() {
    let lab = lab_or_skip!("ipicmp");
    let (code, _, err, _) = lab.acclient(
        &[
            "probe",
            "--server",
            &format!("{GW}:501"),
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
        ],
        "pw\n",
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("refused the connection"), "{err}");
}

/// Ctrl-C at the hidden password prompt leaves the terminal as it was: echo
/// back on (the prompt turned it off), so the user's shell is not left blind.
#[test]
fn ctrl_c_at_password_prompt_restores_echo() {
    let mut lab = lab_or_skip!("iptty");
    if !have_script() {
        return;
    }
    lab.start_acgateway(&["--user", "alice:pw"]);
    let ca = lab.ca("ca.crt");
    lab.ctrl_c_at_password_prompt(
        env!("CARGO_BIN_EXE_acclient"),
        &format!("connect --server {GW} --anyconnect --user alice --cafile {ca}"),
    );
}

/// An ordinary user asking `status` while a root `connect` runs is told
/// that one runs and who can read it, not "not connected".
#[test]
fn status_as_user_names_the_root_session() {
    let mut lab = lab_or_skip!("ipstuser");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient(
        "c",
        &[
            "connect",
            "--server",
            GW,
            "--anyconnect",
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            &ca,
        ],
        "pw\n",
    );
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    let o = sh(&format!(
        "runuser -u nobody -- env ACCLIENT_STATE_DIR={} {} status",
        lab.state_dir().display(),
        env!("CARGO_BIN_EXE_acclient")
    ));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("belongs to a root `acclient connect`")
            && err.contains("sudo acclient status"),
        "{err}"
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0));
}
