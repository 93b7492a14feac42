//! acclientd, the agent (issue 10): an ordinary user in the agent's group
//! connects through it with `--background`, sees `state`, pings through the
//! tunnel and disconnects; a user outside the group is refused by name; a
//! front end that goes away while its password prompt is pending cancels the
//! attempt and leaves nothing changed.
//!
//! Each test makes its own namespaces, state directory, users and group
//! (removed at the end, by name it created) and kills what it started by PID.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn exe(name: &str) -> String {
    let p = std::env::current_exe().unwrap();
    p.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .unwrap()
        .display()
        .to_string()
}

/// Starts acclientd in the client namespace for `group`; waits for its socket.
fn start_agent(lab: &mut Lab, group: &str) -> u32 {
    start_agent_bin(lab, group, &exe("acclientd"))
}

fn start_agent_bin(lab: &mut Lab, group: &str, acclientd: &str) -> u32 {
    let state = lab.state_dir();
    // A killed agent's socket stays behind: wait for the new one.
    let _ = std::fs::remove_file(state.join("acclientd.sock"));
    let pid = lab.spawn_bg(
        "agent",
        Command::new("ip")
            .args(["netns", "exec", &lab.cl, acclientd, "-v", "--group", group])
            .env("ACCLIENT_STATE_DIR", &state),
    );
    let sock = state.join("acclientd.sock");
    let t = Instant::now();
    while !sock.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sock.exists(), "agent socket: {}", lab.log_of("agent"));
    pid
}

/// `acclient ARGS` as `user` in the client namespace; (exit, stdout+stderr).
fn as_user_bin(lab: &Lab, user: &str, args: &[&str], stdin: &str, acclient: &str) -> (i32, String) {
    let mut c = Command::new("ip")
        .args(["netns", "exec", &lab.cl, "runuser", "-u", user, "--", "env"])
        .arg(format!("ACCLIENT_STATE_DIR={}", lab.state_dir().display()))
        .arg(acclient)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runuser acclient");
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "--- {user}: acclient {args:?} exit {:?}\n{text}",
        o.status.code()
    );
    (o.status.code().unwrap_or(-1), text)
}

fn pki_readable() {
    // The test PKI lives under /tmp as root; the user reads the CA as itself.
    must(&format!(
        "chmod 0755 {0}; chmod 0644 {0}/ca.crt",
        pki().dir.display()
    ));
}

/// The whole journey of a user in the group, and a refusal for one outside it.
#[test]
fn user_in_group_connects_in_background_and_disconnects() {
    let lab = lab_or_skip!("agent");
    journey(lab, &exe("acclient"), &exe("acclientd"));
}

/// The journey with the given binaries (the build's, or the package's).
fn journey(mut lab: Lab, acclient: &str, acclientd: &str) {
    let as_user = |lab: &Lab, u: &str, a: &[&str], i: &str| as_user_bin(lab, u, a, i, acclient);
    // Unique per test (the package test runs the same journey in parallel).
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let tag = format!(
        "{}{}",
        std::process::id() % 100000,
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let group = format!("aclt{tag}");
    let member = Account::new(&format!("aclu{tag}"), Some(&group));
    let outsider = Account::new(&format!("aclo{tag}"), None);
    pki_readable();
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    start_agent_bin(&mut lab, &group, acclientd);
    let ca = lab.ca("ca.crt");
    let connect = anyconnect_args("connect", &ca, &["--background"]);
    let (code, out) = as_user(&lab, &member.user, &connect, "pw\n");
    assert_eq!(code, 0, "{out}\nagent: {}", lab.log_of("agent"));
    assert!(out.contains("in the background"), "{out}");
    let ping = lab.in_cl("ping -c 3 -i 0.2 -W 2 203.0.113.1");
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("3 received"),
        "ping through the tunnel: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let (code, out) = as_user(&lab, &member.user, &["state"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("state: Established"), "{out}");
    let (code, out) = as_user(&lab, &member.user, &["status", "--json"], "");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "\"version\":{}",
            acclient_core::driver::STATUS_VERSION
        )),
        "{out}"
    );
    // A second connect is refused while one runs.
    let (code, out) = as_user(&lab, &member.user, &connect, "pw\n");
    assert_ne!(code, 0);
    assert!(out.contains("already connected to"), "{out}");
    // Someone outside the group is refused, with the group named.
    let (code, out) = as_user(&lab, &outsider.user, &["state"], "");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("group"), "{out}");
    let (code, out) = as_user(&lab, &member.user, &["disconnect"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Disconnected."), "{out}");
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
    let (_, out) = as_user(&lab, &member.user, &["state"], "");
    assert!(out.contains("state: Idle"), "{out}");
}

/// A front end that goes away while the agent waits for its password:
/// the attempt is cancelled (DELETE to the gateway, nothing changed) and the
/// next connect works.
#[test]
fn front_end_gone_during_prompt_cancels_the_attempt() {
    let mut lab = lab_or_skip!("agentgone");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    start_agent(&mut lab, "root");
    let ca = std::fs::read_to_string(lab.ca("ca.crt")).unwrap();
    // A raw front end on the socket: hello, connect, then it dies at the prompt.
    let sock = lab.state_dir().join("acclientd.sock");
    let s = std::os::unix::net::UnixStream::connect(&sock).expect("agent socket");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut w = s.try_clone().unwrap();
    let connect = serde_json::json!({
        "type": "connect", "host": "ASA", "server": format!("{GW}:500"), "anyconnect": true,
        "user": "alice", "ca_pem": ca, "reconnect": false,
    });
    writeln!(w, "{}", serde_json::json!({"type": "hello", "version": 1})).unwrap();
    writeln!(w, "{connect}").unwrap();
    let mut got_prompt = false;
    for line in BufReader::new(s).lines() {
        let line =
            line.unwrap_or_else(|e| panic!("agent line: {e}; agent log:\n{}", lab.log_of("agent")));
        if line.contains("\"prompt\"") && line.contains("password") {
            got_prompt = true;
            break; // the front end dies here: its socket closes
        }
        assert!(
            !line.contains("\"disconnected\"") && !line.contains("\"error\""),
            "{line}"
        );
    }
    drop(w);
    assert!(got_prompt, "a password prompt reached the front end");
    assert!(
        lab.wait_for("agent", "went away while logging in: cancelled", 5),
        "{}",
        lab.log_of("agent")
    );
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 5),
        "{}",
        lab.acgw_log()
    );
    assert!(
        lab.wait_for("agent", "session ended", 10),
        "{}",
        lab.log_of("agent")
    );
    assert_eq!(lab.client_net_state(), before, "nothing left changed");
    // The next connect (the CLI as root, through the agent) works.
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(
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
            "--background",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}\nagent: {}", lab.log_of("agent"));
    let (code, out, _, _) = lab.acclient(&["disconnect"], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(lab.client_net_state(), before);
}

/// `systemd-analyze verify` accepts the unit (with ExecStart pointed at
/// the binary just built).
#[test]
fn unit_file_verifies() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return eprintln!("SKIPPED: systemd-analyze missing");
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/acclientd.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ProtectSystem=strict"));
    let dir = std::env::temp_dir().join(format!("acl-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("acclientd.service");
    std::fs::write(
        &path,
        unit.replace(
            "ExecStart=/usr/bin/acclientd",
            &format!("ExecStart={}", exe("acclientd")),
        ),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The agent killed with SIGKILL mid-session: started again, it puts the
/// routes, addresses and DNS back exactly (its journal), and serves again.
#[test]
fn agent_killed_then_restarted_restores() {
    let mut lab = lab_or_skip!("agentkill");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--dns",
        "203.0.113.53",
    ]);
    let before = lab.client_net_state();
    let pid = start_agent(&mut lab, "root");
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(
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
            "--background",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    let during = lab.client_net_state();
    assert!(during.contains("nameserver 203.0.113.53"), "{during}");
    assert!(during.contains("198.51.100.1 dev veth-cl"), "{during}");
    lab.signal(pid, "-KILL");
    let left = lab.client_net_state();
    assert_ne!(
        left, before,
        "a crash leaves the host route and DNS: {left}"
    );
    start_agent(&mut lab, "root");
    assert!(
        lab.wait_for("agent", "put back", 10),
        "{}",
        lab.log_of("agent")
    );
    assert_eq!(lab.client_net_state(), before, "restored exactly");
    let (code, out, _, _) = lab.acclient(&["state"], "");
    assert_eq!(code, 0);
    assert!(out.contains("state: Idle"), "{out}");
}

/// The Debian package (packaging/build-deb, run by scripts/test as root):
/// `dpkg -i` installs it, `systemd-analyze verify` accepts the installed
/// unit, the installed binaries do the whole journey; then it is removed.
#[test]
fn deb_installs_and_its_binaries_work() {
    let lab = lab_or_skip!("agentdeb");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .unwrap()
                .ancestors()
                .nth(3)
                .unwrap()
                .to_path_buf()
        })
        .join("debian");
    let deb = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
    });
    let Some(deb) = deb else {
        return eprintln!(
            "SKIPPED: no .deb in {} (scripts/test builds it with packaging/build-deb as root)",
            dir.display()
        );
    };
    must(&format!("dpkg -i {}", deb.display()));
    struct Remove;
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = sh("dpkg -r acclient");
        }
    }
    let _remove = Remove;
    for f in [
        "/usr/bin/acclient",
        "/usr/bin/acclientd",
        "/lib/systemd/system/acclientd.service",
        "/usr/lib/sysusers.d/acclient.conf",
        "/usr/share/man/man1/acclient.1",
        "/usr/share/bash-completion/completions/acclient",
        "/usr/bin/acclient-gui",
        "/usr/share/applications/org.acclient.acclient.desktop",
        "/usr/share/icons/hicolor/scalable/apps/org.acclient.acclient.svg",
        "/usr/share/metainfo/org.acclient.acclient.metainfo.xml",
    ] {
        assert!(std::path::Path::new(f).exists(), "{f} installed");
    }
    // The desktop entry and the AppStream metainfo are valid (the tools
    // come from scripts/setup); the app runs as a user, never as root.
    for (tool, file) in [
        (
            "desktop-file-validate",
            "/usr/share/applications/org.acclient.acclient.desktop",
        ),
        (
            "appstreamcli validate --no-net",
            "/usr/share/metainfo/org.acclient.acclient.metainfo.xml",
        ),
    ] {
        let o = sh(&format!("{tool} {file}"));
        assert!(
            o.status.success(),
            "{tool} {file}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = sh("/usr/bin/acclient-gui --version");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("acclient-gui "),
        "{o:?}"
    );
    let o = sh("/usr/bin/acclient-gui");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not root"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sh("getent group acclient");
    assert!(o.status.success(), "the package made group acclient");
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let o = sh("systemd-analyze verify /lib/systemd/system/acclientd.service");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let size = std::fs::metadata("/usr/bin/acclient").unwrap().len();
    assert!(size < 40 << 20, "stripped: {size} bytes");
    journey(lab, "/usr/bin/acclient", "/usr/bin/acclientd");
}

/// SIGTERM to the agent (systemctl stop) with a session up: DELETE to the
/// gateway and everything put back before it exits; a watcher sees stats.
#[test]
fn agent_sigterm_disconnects_cleanly() {
    let mut lab = lab_or_skip!("agentterm");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--tun",
        "acgw0",
        "--dns",
        "203.0.113.53",
    ]);
    let before = lab.client_net_state();
    let pid = start_agent(&mut lab, "root");
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(
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
            "--background",
        ],
        "pw\n",
    );
    assert_eq!(code, 0, "{err}");
    // A watcher gets the stats events (about once a second).
    let s =
        std::os::unix::net::UnixStream::connect(lab.state_dir().join("acclientd.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    writeln!(w, "{}", serde_json::json!({"type": "hello", "version": 1})).unwrap();
    writeln!(w, "{}", serde_json::json!({"type": "watch"})).unwrap();
    let stats = BufReader::new(s)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("\"stats\""));
    assert!(
        stats.is_some_and(|l| l.contains(&format!(
            "\"version\":{}",
            acclient_core::driver::STATUS_VERSION
        ))),
        "a stats event"
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("agent"));
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 5),
        "{}",
        lab.acgw_log()
    );
    assert_eq!(lab.client_net_state(), before);
}

/// `connect --background` through the agent to a gateway with a banner: the
/// agent asks for the banner just before it reports connected; a
/// non-interactive CLI accepts it and returns (it used to wait for a second
/// banner prompt forever).
#[test]
fn background_connect_with_a_banner_returns() {
    let mut lab = lab_or_skip!("agentbanner");
    lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--banner",
        "Authorized use only",
        "--tun",
        "acgw0",
    ]);
    let before = lab.client_net_state();
    start_agent(&mut lab, "root");
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient(
        "bg",
        &anyconnect_args("connect", &ca, &["--background"]),
        "pw\n",
    );
    assert!(
        lab.wait_for("bg", "in the background", 20),
        "{}\nagent: {}",
        lab.log_of("bg"),
        lab.log_of("agent")
    );
    assert_eq!(lab.wait_exit(pid, 5), Some(0), "{}", lab.log_of("bg"));
    assert!(lab.log_of("bg").contains("Authorized use only"));
    let (code, out, _, _) = lab.acclient(&["disconnect"], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(lab.client_net_state(), before);
}

/// Ctrl-C at the password prompt of a connect through the agent: the CLI
/// exits (it used to wait for Enter), the agent cancels the attempt with
/// DELETE, and the terminal has echo back on.
#[test]
fn ctrl_c_at_prompt_through_the_agent() {
    let mut lab = lab_or_skip!("agentint");
    if !have_script() {
        return;
    }
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    start_agent(&mut lab, "root");
    let ca = lab.ca("ca.crt");
    lab.ctrl_c_at_password_prompt(
        &exe("acclient"),
        &format!("connect --server {GW} --anyconnect --user alice --cafile {ca}"),
    );
    assert!(
        lab.wait_acgw("received DELETE for IKE_SA", 10),
        "{}\nagent: {}",
        lab.acgw_log(),
        lab.log_of("agent")
    );
    assert!(
        lab.wait_for("agent", "session ended", 10),
        "{}",
        lab.log_of("agent")
    );
    assert_eq!(lab.client_net_state(), before, "nothing left changed");
}

/// SIGUSR1 and SIGUSR2 to a foreground `connect` through the agent, as with
/// openconnect: the status is printed (the agent's), and the agent closes
/// the session and logs in again (resumed with the token), the tunnel
/// staying up; SIGTERM then ends it cleanly.
#[test]
fn user_signals_through_the_agent() {
    let mut lab = lab_or_skip!("agentusr");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = lab.client_net_state();
    start_agent(&mut lab, "root");
    let ca = lab.ca("ca.crt");
    let pid = lab.spawn_acclient("c", &anyconnect_args("connect", &ca, &[]), "pw\n");
    assert!(lab.wait_for("c", "Press Ctrl-C", 15), "{}", lab.log_of("c"));
    must(&format!("kill -USR1 {pid}"));
    assert!(
        lab.wait_for("c", "Connected to 198.51.100.1, up 00:00:", 5),
        "SIGUSR1: {}",
        lab.log_of("c")
    );
    must(&format!("kill -USR2 {pid}"));
    assert!(
        lab.wait_for(
            "c",
            "Reconnected: the gateway resumed the session (no login).",
            20
        ),
        "SIGUSR2: {}\nagent: {}",
        lab.log_of("c"),
        lab.log_of("agent")
    );
    let out = lab.in_cl("ping -c 2 -i 0.2 -W 2 203.0.113.1");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 received"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(lab.signal(pid, "-TERM"), Some(0), "{}", lab.log_of("c"));
    assert!(
        lab.wait_for("agent", "session ended", 10),
        "{}",
        lab.log_of("agent")
    );
    assert_eq!(lab.client_net_state(), before);
}

/// A host scan through the agent: the agent asks the front end, which runs
/// its --csd-wrapper (root's CLI: as nobody, a clean environment) and
/// answers; the agent never runs a program a front end names.
#[test]
fn host_scan_runs_in_the_front_end() {
    let mut lab = lab_or_skip!("agenths");
    lab.start_acgateway(&["--user", "alice:pw", "--tun", "acgw0", "--host-scan"]);
    let before = lab.client_net_state();
    start_agent(&mut lab, "root");
    let (w, record) = lab.csd_wrapper("echo \"$@ uid=$(id -u)\" > $OUT");
    let ca = lab.ca("ca.crt");
    let (code, _, err, _) = lab.acclient(
        &anyconnect_args("connect", &ca, &["--csd-wrapper", &w, "--background"]),
        "pw\n",
    );
    assert_eq!(code, 0, "{err}\nagent: {}", lab.log_of("agent"));
    let rec = std::fs::read_to_string(&record).unwrap_or_default();
    let nobody = must("id -u nobody").trim().to_string();
    assert!(
        rec.contains("-ticket TICKET42") && rec.contains(&format!("uid={nobody}")),
        "{rec}"
    );
    assert!(lab.acgw_log().contains("host scan token received"));
    let (code, _, err, _) = lab.acclient(&["disconnect"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.client_net_state(), before);
}
