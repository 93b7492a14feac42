//! The desktop app (issue 12) against the real agent and the test gateway in
//! namespaces, as an ordinary user in the agent's group: each flow is driven
//! through egui_kittest and asserts on what the user sees, found by
//! accessible name. The window is rendered for real (wgpu on Mesa's
//! lavapipe, no GPU) and the main screens are written to `docs/screenshots/`.
//!
//! The test process is root (it makes namespaces, users and the agent); the
//! app must not be, so each flow re-runs this test binary as the test user
//! (`flow_child`, ignored in a normal run) inside its own D-Bus session with
//! a real Secret Service (gnome-keyring), its HOME in the lab directory;
//! the tray icon is driven over that session bus as a tray host would.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acclient_gui::egui;
use acclient_gui::{App, Options};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

const FLOW: &str = "ACCLIENT_GUI_FLOW";
const SHOTS: &str = "ACCLIENT_GUI_SHOTS";

// ---------------------------------------------------------------- the user's side

/// Run by the parent tests as the test user; does nothing useful alone.
#[test]
#[ignore = "run by the flows below, as the test user"]
fn flow_child() {
    let flow = std::env::var(FLOW).expect("ACCLIENT_GUI_FLOW");
    let mut h = Harness::builder()
        .with_size([560.0, 600.0])
        .with_render_cursor(false)
        .wgpu()
        .build_eframe(|cc| App::new(&cc.egui_ctx, Options::default()));
    match flow.as_str() {
        "password" => password_flow(&mut h),
        "group_otp" => group_otp_flow(&mut h),
        "new_password" => new_password_flow(&mut h),
        "standard_eap" => standard_eap_flow(&mut h),
        "banner" => banner_flow(&mut h),
        "certificate" => certificate_flow(&mut h),
        "save_password" => save_password_flow(&mut h),
        "tray" => tray_flow(&mut h),
        "no_agent" => {
            wait_for(&mut h, "The acclient service is not running", 10);
            wait_for(&mut h, "sudo systemctl enable --now acclientd", 1);
            shot(&mut h, "no-agent");
        }
        "not_in_group" => {
            wait_for(&mut h, "You are not in group acclient", 10);
            wait_for(&mut h, "sudo usermod -aG acclient $USER", 1);
            assert!(
                h.query_by_label("Connect").is_none(),
                "no Connect without the agent"
            );
        }
        other => panic!("no flow {other}"),
    }
    println!("FLOW {flow} OK");
}

type H<'a> = Harness<'a, App>;

/// Steps the window until a node whose name contains `text` is shown.
fn wait_for(h: &mut H, text: &str, secs: u64) {
    let t = Instant::now();
    loop {
        h.step();
        if h.query_all_by_label_contains(text).next().is_some() {
            // Let the layout settle (egui sizes new widgets on the next pass).
            h.step();
            h.step();
            return;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            panic!(
                "{text:?} not shown within {secs} s; the window shows:\n{}",
                shown(h)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every name in the window, for a failure message.
fn shown(h: &H) -> String {
    h.root()
        .children_recursive()
        .filter_map(|n| name(&n).map(|l| format!("  {:?}: {l}", n.accesskit_node().role())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A node's accessible name (AccessKit keeps a label's text in its value).
fn name(n: &egui_kittest::Node<'_>) -> Option<String> {
    let a = n.accesskit_node();
    if a.role() == egui::accesskit::Role::Label {
        a.value()
    } else {
        a.label()
    }
}

fn has(h: &H, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn click(h: &mut H, name: &str) {
    match h.query_by_label(name) {
        Some(n) => n.click(),
        None => panic!("no {name:?} to click; the window shows:\n{}", shown(h)),
    }
    h.step();
    h.step();
}

/// Connect from the main window; the gateway's login form comes up.
fn start_login(h: &mut H) {
    click(h, "Connect");
    wait_for(h, "Username:", 20);
}

/// The first form, filled in as alice and sent.
fn log_in(h: &mut H, password: &str) {
    type_into(h, "Username:", "alice");
    type_into(h, "Password:", password);
    click(h, "OK");
}

/// Cancel the login form; the attempt ends.
fn cancel(h: &mut H) {
    click(h, "Cancel");
    wait_for(h, "Ready to connect.", 20);
}

/// Disconnect, and wait until the agent says everything is put back.
fn disconnect(h: &mut H) {
    click(h, "Disconnect");
    wait_for(h, "Disconnected.", 20);
}

fn type_into(h: &mut H, field: &str, text: &str) {
    let n = h.get_by_label(field);
    n.focus();
    h.step();
    // Select what is there (a prefill) and type over it.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(field).type_text(text);
    h.step();
}

fn value_of(h: &H, field: &str) -> String {
    h.get_by_label(field).value().unwrap_or_default()
}

/// Renders the window and writes it for the parent; refuses an empty one.
fn shot(h: &mut H, name: &str) {
    h.step();
    // Every control on this screen has an accessible name.
    h.check_accessibility();
    let img = h.render().expect("render the window");
    let (w, ht) = img.dimensions();
    let mut counts = std::collections::HashMap::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_insert(0usize) += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    let drawn = (w * ht) as usize - background;
    assert!(
        counts.len() > 32 && drawn * 100 > (w * ht) as usize * 2,
        "{name}: the window rendered (nearly) empty: {} colours, {drawn} pixels off the background",
        counts.len()
    );
    let dir = PathBuf::from(std::env::var(SHOTS).expect("ACCLIENT_GUI_SHOTS"));
    img.save(dir.join(format!("{name}.png")))
        .expect("write the screenshot");
}

/// Connect with a password: a wrong one brings the dialog back with the
/// gateway's message; statistics; disconnect; the user name is remembered.
fn password_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    assert!(h.query_by_label("Server").is_some(), "the server list");
    shot(h, "main-window");
    start_login(h);
    shot(h, "login");
    log_in(h, "wrong");
    wait_for(h, "Login failed.", 20);
    assert_eq!(
        value_of(h, "Username:"),
        "alice",
        "the user name stays after a failed login"
    );
    type_into(h, "Password:", "pw");
    click(h, "OK");
    wait_for(h, "Connected to Lab HQ.", 30);
    // Traffic through the tunnel (this process is in the client namespace).
    let ping = Command::new("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "203.0.113.1"])
        .output()
        .expect("ping");
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("3 received"),
        "ping through the tunnel: {ping:?}"
    );
    click(h, "Statistics");
    wait_for(h, "Bytes received", 5);
    let t = Instant::now();
    while h
        .state()
        .model
        .status
        .as_ref()
        .map_or(0, |s| s.esp.rx_packets)
        < 3
        && t.elapsed() < Duration::from_secs(5)
    {
        h.step();
        std::thread::sleep(Duration::from_millis(100));
    }
    let rx = h
        .state()
        .model
        .status
        .as_ref()
        .map_or(0, |s| s.esp.rx_packets);
    assert!(rx >= 3, "the statistics count the pings: {rx}");
    assert!(has(h, &rx.to_string()), "shown:\n{}", shown(h));
    for row in [
        "Duration",
        "Client address",
        "Protocol",
        "ESP cipher",
        "Packets sent",
        "Dropped",
        "Dead peer detection",
        "Secured routes",
        "Bypassed routes",
    ] {
        assert!(
            h.query_by_label(row).is_some(),
            "statistics row {row}:\n{}",
            shown(h)
        );
    }
    assert!(has(h, "192.0.2."), "the client address:\n{}", shown(h));
    assert!(has(h, "AES_GCM"), "the ciphers:\n{}", shown(h));
    // Refreshed from the agent about once a second: the duration moves.
    let duration = |h: &H| -> Vec<String> {
        h.query_all_by_label_contains("00:00:")
            .filter_map(|n| name(&n))
            .collect()
    };
    let before = duration(h);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        h.step();
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = duration(h);
    assert_ne!(before, after, "the statistics refresh:\n{}", shown(h));
    shot(h, "statistics");
    click(h, "Connection");
    disconnect(h);
    wait_for(h, "Ready to connect.", 5);
    // The keyring remembered the user: the next login offers it.
    wait_for(h, "User: alice (remembered in your keyring)", 10);
    start_login(h);
    assert_eq!(
        value_of(h, "Username:"),
        "alice",
        "prefilled from the keyring"
    );
    cancel(h);
}

/// A group picked from the gateway's list, then a one-time code round.
fn group_otp_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    click(h, "Connect");
    wait_for(h, "GROUP:", 20);
    click(h, "GROUP:");
    click(h, "Sales");
    log_in(h, "pw");
    wait_for(h, "Enter the code from your token.", 20);
    type_into(h, "Code:", "123456");
    click(h, "OK");
    wait_for(h, "Connected to Lab HQ.", 30);
    disconnect(h);
}

/// "Password expired": a second round with a new password and its
/// confirmation, as the gateway's form asks.
fn new_password_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    start_login(h);
    log_in(h, "pw");
    wait_for(h, "Your password has expired. Choose a new one.", 20);
    type_into(h, "New Password:", "n3w-Pw");
    type_into(h, "Verify Password:", "n3w-Pw");
    // Enter in the last field submits the form, as in any login dialog.
    h.key_press(egui::Key::Enter);
    h.step();
    wait_for(h, "Connected to Lab HQ.", 30);
    disconnect(h);
}

/// A standard IKEv2 gateway (strongSwan, EAP-MSCHAPv2) from a profile with
/// StandardAuthenticationOnly: the user name on the main window, the
/// password prompt, connected, disconnected.
fn standard_eap_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    click(h, "Connect");
    wait_for(h, "Type your user name for Lab strongSwan.", 5);
    type_into(h, "User name", "alice");
    click(h, "Connect");
    wait_for(h, "Password for alice", 20);
    type_into(h, "Password for alice", "alice-password");
    click(h, "OK");
    wait_for(h, "Connected to Lab strongSwan.", 30);
    disconnect(h);
    // Remembered for the next time.
    wait_for(h, "Ready to connect.", 5);
    assert_eq!(value_of(h, "User name"), "alice");
}

/// The banner, accepted; then refused, which disconnects.
fn banner_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    for accept in [true, false] {
        start_login(h);
        log_in(h, "pw");
        wait_for(h, "Authorized use only", 30);
        if accept {
            shot(h, "banner");
            click(h, "Accept");
            wait_for(h, "Connected to Lab HQ.", 20);
            disconnect(h);
        } else {
            click(h, "Disconnect");
            wait_for(h, "Ready to connect.", 20);
        }
    }
}

/// An untrusted gateway: refused with "Keep me safe" while blocking is on;
/// with it off, "Connect anyway" is remembered and not asked again.
fn certificate_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    click(h, "Connect");
    wait_for(h, "Untrusted server certificate", 20);
    for row in ["Subject", "Issuer", "Valid from", "Valid until", "SHA-256"] {
        assert!(
            h.query_by_label(row).is_some(),
            "certificate row {row}:\n{}",
            shown(h)
        );
    }
    assert!(
        h.query_by_label("Connect anyway").is_none(),
        "blocked by default"
    );
    shot(h, "certificate-warning");
    click(h, "Keep me safe");
    wait_for(h, "Ready to connect.", 20);
    click(h, "Preferences");
    wait_for(h, "Block connections to untrusted servers", 5);
    // Only what the profile lets the user change can be changed: its
    // AutoReconnect is not UserControllable (the schema's default), its
    // LocalLanAccess is.
    let disabled = |h: &H, name: &str| h.get_by_label(name).accesskit_node().is_disabled();
    assert!(disabled(h, "Reconnect automatically"));
    assert!(!disabled(h, "Allow local (LAN) access when using VPN"));
    assert!(!disabled(h, "Block connections to untrusted servers"));
    shot(h, "preferences");
    click(h, "Block connections to untrusted servers");
    click(h, "Connection");
    click(h, "Connect");
    wait_for(h, "Connect anyway", 20);
    click(h, "Connect anyway");
    wait_for(h, "Username:", 20);
    log_in(h, "pw");
    wait_for(h, "Connected to Lab HQ.", 30);
    disconnect(h);
    // Remembered: straight to the login form.
    start_login(h);
    assert!(h.query_by_label("Untrusted server certificate").is_none());
    cancel(h);
}

/// A gateway that allows saving the password (SAVE_PASSWD): offered from the
/// second login on, saved only when ticked, filled in the next time.
fn save_password_flow(h: &mut H) {
    const PW: &str = "s3cret-Pw";
    wait_for(h, "Ready to connect.", 10);
    let login = |h: &mut H, tick: bool| {
        start_login(h);
        type_into(h, "Username:", "alice");
        type_into(h, "Password:", PW);
        if tick {
            click(h, "Save password in my keyring");
        }
        click(h, "OK");
        wait_for(h, "Connected to Lab HQ.", 30);
        disconnect(h);
    };
    // First login: the app does not know yet that the gateway allows it.
    start_login(h);
    assert!(h.query_by_label("Save password in my keyring").is_none());
    cancel(h);
    login(h, false);
    // Now it is offered; not ticked, nothing is saved.
    click(h, "Connect");
    wait_for(h, "Save password in my keyring", 20);
    assert_eq!(
        pending_value(h, "password"),
        "",
        "nothing saved without the tick"
    );
    cancel(h);
    login(h, true);
    wait_for(h, "Saved the password for Lab HQ in your keyring.", 10);
    // The next login has it filled in (from the keyring, read at start-up
    // of the next window too: a new window looks it up again).
    start_login(h);
    assert_eq!(pending_value(h, "password"), PW);
    cancel(h);
}

/// The tray icon over D-Bus, as a tray host sees it: its icon follows the
/// session and its menu's Connect / Disconnect drive the window.
fn tray_flow(h: &mut H) {
    wait_for(h, "Ready to connect.", 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt
        .block_on(zbus::Connection::session())
        .expect("the session bus");
    let name = rt.block_on(sni_name(&c));
    assert_eq!(
        rt.block_on(tray_icon(&c, &name)),
        "network-vpn-disconnected"
    );
    rt.block_on(click_menu(&c, &name, "Connect"));
    wait_for(h, "Username:", 20);
    h.step();
    let t = Instant::now();
    while rt.block_on(tray_icon(&c, &name)) != "network-vpn-acquiring" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the icon follows the session"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(click_menu(&c, &name, "Disconnect"));
    wait_for(h, "Ready to connect.", 20);
}

/// The app's StatusNotifierItem on the bus (ksni: `…-PID-N`).
async fn sni_name(c: &zbus::Connection) -> String {
    let dbus = zbus::fdo::DBusProxy::new(c).await.unwrap();
    let prefix = format!("org.kde.StatusNotifierItem-{}-", std::process::id());
    for _ in 0..100 {
        let names = dbus.list_names().await.unwrap();
        if let Some(n) = names.iter().find(|n| n.as_str().starts_with(&prefix)) {
            return n.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {prefix}* on the session bus");
}

async fn tray_icon(c: &zbus::Connection, name: &str) -> String {
    let m = c
        .call_method(
            Some(name),
            "/StatusNotifierItem",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.kde.StatusNotifierItem", "IconName"),
        )
        .await
        .expect("IconName");
    let v: zbus::zvariant::OwnedValue = m.body().deserialize().unwrap();
    String::try_from(v).unwrap_or_default()
}

/// Clicks the menu item labelled `label` (dbusmenu `Event … clicked`).
async fn click_menu(c: &zbus::Connection, name: &str, label: &str) {
    for id in 1..16i32 {
        let Ok(m) = c
            .call_method(
                Some(name),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "GetProperty",
                &(id, "label"),
            )
            .await
        else {
            continue;
        };
        let v: zbus::zvariant::OwnedValue = m.body().deserialize().unwrap();
        if String::try_from(v).ok().as_deref() == Some(label) {
            c.call_method(
                Some(name),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "Event",
                &(id, "clicked", zbus::zvariant::Value::from(0i32), 0u32),
            )
            .await
            .expect("click");
            return;
        }
    }
    panic!("no tray menu item {label:?}");
}

fn pending_value(h: &H, name: &str) -> String {
    h.state()
        .model
        .pending
        .as_ref()
        .and_then(|p| p.values.get(name).cloned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the lab's side

fn exe(name: &str) -> PathBuf {
    let p = std::env::current_exe().unwrap();
    p.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .unwrap()
}

/// A lab, a user in the agent's group, a HOME with a profile (and the CA
/// where Cisco's client keeps it, unless `trust` is false).
struct Gui {
    lab: Lab,
    user: Account,
    home: PathBuf,
    shots: PathBuf,
    group: String,
}

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Gui {
    fn new(lab: Lab, in_group: bool, trust: bool) -> Gui {
        let tag = format!(
            "{}{}",
            std::process::id() % 100000,
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let group = format!("acgg{tag}");
        must(&format!(
            "getent group {group} >/dev/null || groupadd --system {group}"
        ));
        let user = Account::new(&format!("acgu{tag}"), in_group.then_some(group.as_str()));
        let home = lab.dir.join("home");
        let shots = lab.dir.join("shots");
        let profiles = home.join(".config/acclient/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::create_dir_all(&shots).unwrap();
        std::fs::write(
            profiles.join("lab.xml"),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AnyConnectProfile xmlns=\"http://schemas.xmlsoap.org/encoding/\">\n<ServerList><HostEntry><HostName>Lab HQ</HostName><HostAddress>{GW}</HostAddress><PrimaryProtocol>IPsec</PrimaryProtocol></HostEntry></ServerList>\n</AnyConnectProfile>\n"
            ),
        )
        .unwrap();
        if trust {
            let ca = home.join(".cisco/certificates/ca");
            std::fs::create_dir_all(&ca).unwrap();
            std::fs::copy(pki().dir.join("ca.crt"), ca.join("lab-ca.pem")).unwrap();
        }
        must(&format!(
            "chmod 0755 {dir}; chown -R {u} {home} {shots}",
            dir = lab.dir.display(),
            u = user.user,
            home = home.display(),
            shots = shots.display()
        ));
        Gui {
            lab,
            user,
            home,
            shots,
            group,
        }
    }

    fn agent(&mut self) {
        let state = self.lab.state_dir();
        let _ = std::fs::remove_file(state.join("acclientd.sock"));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.lab.cl])
            .arg(exe("acclientd"))
            .args(["-v", "--group", &self.group])
            .env("ACCLIENT_STATE_DIR", &state);
        self.lab.spawn_bg("agent", &mut c);
        let sock = state.join("acclientd.sock");
        let t = Instant::now();
        while !sock.exists() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(sock.exists(), "agent socket: {}", self.lab.log_of("agent"));
    }

    /// Runs `flow` as the user, in a private D-Bus session with a real
    /// Secret Service; the child's output is returned, its success asserted.
    fn flow(&self, flow: &str) -> String {
        let run = self.lab.dir.join(format!("run-{flow}"));
        std::fs::create_dir_all(&run).unwrap();
        must(&format!(
            "chown {} {}; chmod 700 {}",
            self.user.user,
            run.display(),
            run.display()
        ));
        let script = format!(
            "printf 'keyring-pw' | gnome-keyring-daemon --unlock --components=secrets > /dev/null; exec {bin} --exact flow_child --ignored --nocapture --test-threads=1",
            bin = std::env::current_exe().unwrap().display()
        );
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lab.cl,
                "runuser",
                "-u",
                &self.user.user,
                "--",
                "env",
                "-i",
            ])
            .arg(format!(
                "PATH={}",
                std::env::var("PATH").unwrap_or_default()
            ))
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", run.display()))
            .arg(format!(
                "XDG_DATA_HOME={}/.local/share",
                self.home.display()
            ))
            .arg(format!(
                "ACCLIENT_STATE_DIR={}",
                self.lab.state_dir().display()
            ))
            .arg(format!("{FLOW}={flow}"))
            .arg(format!("{SHOTS}={}", self.shots.display()))
            .arg("RUST_BACKTRACE=1")
            .args(["dbus-run-session", "--", "sh", "-c", &script])
            .output()
            .expect("run the flow as the user");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("--- flow {flow} as {}:\n{out}", self.user.user);
        assert!(
            o.status.success() && out.contains(&format!("FLOW {flow} OK")),
            "flow {flow} failed:\n{out}\n--- agent:\n{}\n--- gateway:\n{}",
            self.lab.log_of("agent"),
            self.lab.acgw_log()
        );
        out
    }

    /// Copies the screenshots into the repository's docs/.
    fn publish(&self) {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for e in std::fs::read_dir(&self.shots).unwrap().flatten() {
            std::fs::copy(e.path(), docs.join(e.file_name())).unwrap();
        }
    }
}

/// A [`Gui`] lab, or a printed reason to skip (not root, no keyring, no lavapipe).
macro_rules! gui_or_skip {
    ($tag:expr, $in_group:expr, $trust:expr) => {{
        if !have_keyring() {
            return;
        }
        let lab = lab_or_skip!($tag);
        Gui::new(lab, $in_group, $trust)
    }};
}

fn have_keyring() -> bool {
    let ok = Path::new("/usr/bin/gnome-keyring-daemon").exists()
        && Path::new("/usr/bin/dbus-run-session").exists()
        && Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").exists();
    if !ok {
        eprintln!("SKIPPED: gnome-keyring, dbus-run-session or Mesa's lavapipe missing (scripts/setup installs them)");
    }
    ok
}

#[test]
fn connect_with_a_password_statistics_and_disconnect() {
    let mut g = gui_or_skip!("gui-pw", true, true);
    g.lab
        .start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("password");
    let log = g.lab.acgw_log();
    assert!(log.contains("user 'alice' authenticated"), "{log}");
    assert_eq!(
        g.lab.client_net_state(),
        before,
        "the network exactly as before"
    );
    // The user name is in the keyring only: no file of ours holds it.
    let clear = must(&format!(
        "grep -rl alice {} {}/.config || true",
        g.lab.state_dir().display(),
        g.home.display()
    ));
    assert!(clear.trim().is_empty(), "in clear: {clear}");
    g.flow("tray");
    assert_eq!(g.lab.client_net_state(), before);
    g.publish();
}

#[test]
fn group_selection_and_one_time_code() {
    let mut g = gui_or_skip!("gui-otp", true, true);
    g.lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--group",
        "Engineering",
        "--group",
        "Sales",
        "--otp",
        "123456",
        "--tun",
        "acgw0",
    ]);
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("group_otp");
    let log = g.lab.acgw_log();
    assert!(
        log.contains("user 'alice' authenticated (group Sales)"),
        "{log}"
    );
    assert_eq!(g.lab.client_net_state(), before);
}

#[test]
fn expired_password_changed_in_a_second_round() {
    let mut g = gui_or_skip!("gui-newpw", true, true);
    g.lab
        .start_acgateway(&["--user", "alice:pw", "--expire-password", "--tun", "acgw0"]);
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("new_password");
    let log = g.lab.acgw_log();
    assert!(log.contains("user 'alice' authenticated"), "{log}");
    assert_eq!(g.lab.client_net_state(), before);
}

#[test]
fn standard_ikev2_with_eap_mschapv2_against_strongswan() {
    let mut g = gui_or_skip!("gui-eap", true, true);
    std::fs::write(
        g.home.join(".config/acclient/profiles/lab.xml"),
        format!(
            "<AnyConnectProfile><ServerList><HostEntry><HostName>Lab strongSwan</HostName><HostAddress>{GW}</HostAddress>\
             <PrimaryProtocol>IPsec<StandardAuthenticationOnly>true<AuthMethodDuringIKENegotiation>EAP-MSCHAPv2</AuthMethodDuringIKENegotiation>\
             </StandardAuthenticationOnly></PrimaryProtocol></HostEntry></ServerList></AnyConnectProfile>"
        ),
    )
    .unwrap();
    g.lab.start_eap_gateway("gw.crt");
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("standard_eap");
    let log = g.lab.gw_log();
    assert!(log.contains("EAP method EAP_MSCHAPV2 succeeded"), "{log}");
    assert_eq!(g.lab.client_net_state(), before);
}

/// A stderr whose reader is gone (EPIPE: a launcher's pipe closed) never
/// panics the app: as root it refuses to start with exit code 1, not the
/// 101 of a panicking `eprintln!` (what it did before).
#[test]
fn closed_stderr_never_panics() {
    if !nix::unistd::geteuid().is_root() {
        return eprintln!("SKIPPED: the root refusal is the path tried, and needs root");
    }
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    let o = Command::new(env!("CARGO_BIN_EXE_acclient-gui"))
        .stderr(w)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(1), "{o:?}");
}

#[test]
fn banner_accepted_then_refused() {
    let mut g = gui_or_skip!("gui-banner", true, true);
    g.lab.start_acgateway(&[
        "--user",
        "alice:pw",
        "--banner",
        "Authorized use only. Activity is logged.",
        "--tun",
        "acgw0",
    ]);
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("banner");
    assert_eq!(g.lab.client_net_state(), before);
    g.publish();
}

#[test]
fn untrusted_certificate_refused_then_accepted_and_remembered() {
    let mut g = gui_or_skip!("gui-cert", true, false);
    g.lab
        .start_acgateway(&["--user", "alice:pw", "--tun", "acgw0"]);
    let before = g.lab.client_net_state();
    g.agent();
    g.flow("certificate");
    let pins = std::fs::read_to_string(g.home.join(".config/acclient/pins")).unwrap_or_default();
    assert!(
        pins.starts_with("lab hq pin-sha256:"),
        "remembered per host: {pins:?}"
    );
    assert_eq!(g.lab.client_net_state(), before);
    g.publish();
}

#[test]
fn password_saved_only_where_allowed_and_asked() {
    let mut g = gui_or_skip!("gui-savepw", true, true);
    g.lab.start_acgateway(&[
        "--user",
        "alice:s3cret-Pw",
        "--save-password",
        "--tun",
        "acgw0",
    ]);
    g.agent();
    g.flow("save_password");
    // In the keyring only (encrypted there): no file of ours, nor the
    // keyring's own, holds it in clear.
    let clear = must(&format!(
        "grep -rl s3cret-Pw {} {} || true",
        g.lab.state_dir().display(),
        g.home.display()
    ));
    assert!(clear.trim().is_empty(), "in clear: {clear}");
    assert!(
        g.home.join(".local/share/keyrings").exists(),
        "the keyring's files are the lab's"
    );
}

#[test]
fn no_agent_and_not_in_the_group_are_explained() {
    let mut g = gui_or_skip!("gui-noagent", false, true);
    g.flow("no_agent");
    g.agent();
    g.flow("not_in_group");
    g.publish();
}
