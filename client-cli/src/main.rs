//! `acclient`: command-line front end of the acclient VPN client.
//!
//! Exit codes (stable, documented in the README): 0 success, 1 usage or
//! local error, 2 authentication failed, 3 gateway certificate refused or
//! gateway not authenticated, 4 gateway unreachable / no answer, 5 protocol
//! error or other refusal by the gateway, 6 the gateway ended the session.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

// Writing to a closed stderr or stdout (`acclient … 2>&1 | head -1`, a
// closed terminal) must never panic and skip the teardown: these shadow
// std's macros for the whole crate and drop write errors.
macro_rules! eprintln {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr());
    }};
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)+);
    }};
}
macro_rules! println {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)+);
    }};
}

mod agent_client;

use acclient_core::crypto::{Secret, SystemRng};
use acclient_core::driver::{self, Command, DriverOptions, Sockets, Tunnel, TunnelOptions};
use acclient_core::eap::anyconnect::form::{Field, FieldKind, FormError};
use acclient_core::eap::EapType;
use acclient_core::routes::{Prefix, RouteOptions};
use acclient_core::settings::{limits, AnyConnectClient, ANYCONNECT_IDENTITY};
use acclient_core::{
    Answer, AuthMethod, DisconnectReason, Event, Identity, Progress, PromptKind, Session, Settings,
};
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "acclient",
    version,
    about = "AnyConnect-compatible IKEv2 VPN client"
)]
struct Cli {
    /// More logging: -v progress details, -vv payload-level decode of every IKE message.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect and stay connected until Ctrl-C (SIGINT) or SIGTERM, then disconnect cleanly.
    Connect(Box<ConnectArgs>),
    /// Connect, authenticate, set up the CHILD SA, print what the gateway gave, disconnect.
    Probe(Box<ConnectArgs>),
    /// List the hosts of an AnyConnect XML profile.
    Profiles {
        /// Profile file.
        file: PathBuf,
    },
    /// Show the running session: SAs, algorithms, counters, drops, lifetimes, DPD.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put back routes and DNS that a crashed acclient left (also done at every connect).
    Restore,
    /// End the session the agent (acclientd) runs; returns once the network is put back.
    Disconnect,
    /// What the agent is doing: Idle, Connecting, Established, Disconnecting.
    State,
    /// Write man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory (man/ and completions/ are made in it).
        dir: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ConnectArgs {
    /// AnyConnect XML profile.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Host entry (HostName or HostAddress) in the profile.
    #[arg(long)]
    host: Option<String>,
    /// Gateway address (host[:port]) when not using a profile.
    #[arg(long, conflicts_with = "profile")]
    server: Option<String>,
    /// User name (EAP identity; also our IKE identity unless the profile sets IKEIdentity).
    #[arg(long)]
    user: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    passwd_on_stdin: bool,
    /// Authenticate with the pre-shared key in this file (first line).
    #[arg(long)]
    psk_file: Option<PathBuf>,
    /// Log in with EAP-AnyConnect (Cisco ASA / IOS "aggregate auth") when not using a profile.
    #[arg(long, conflicts_with_all = ["eap", "psk_file"])]
    anyconnect: bool,
    /// Tunnel group to select (AnyConnect; default: the profile's UserGroup).
    #[arg(long)]
    group: Option<String>,
    /// EAP method when the profile does not say: mschapv2, md5 or gtc.
    #[arg(long, value_parser = ["mschapv2", "md5", "gtc"])]
    eap: Option<String>,
    /// Trust anchors (PEM) for the gateway's certificate; default: the system store.
    #[arg(long)]
    cafile: Option<PathBuf>,
    /// Accept the gateway certificate with this public key hash (pin-sha256:BASE64).
    #[arg(long)]
    servercert: Vec<String>,
    /// Identity the gateway must present (IDr), e.g. vpn.example.com.
    #[arg(long)]
    remote_id: Option<String>,
    /// Local address to send from.
    #[arg(long)]
    source: Option<IpAddr>,
    /// Local IKE port (default 500 as root, else any).
    #[arg(long)]
    source_port: Option<u16>,
    /// Also offer legacy algorithms (3DES, SHA-1, MODP 1024/1536).
    #[arg(long)]
    legacy: bool,
    /// Also offer MODP-768 (DH group 1), as very old Cisco head-ends need (seed 004). Weak.
    #[arg(long)]
    legacy_modp768: bool,
    /// Largest IKE datagram before fragmenting (RFC 7383).
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u16).range(256..))]
    fragment_size: u16,
    /// Ask for an IPv6 address too.
    #[arg(long)]
    ipv6: bool,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// Never prompt; fail instead.
    #[arg(long)]
    non_inter: bool,
    /// Write IKE SA keys in Wireshark's ikev2_decryption_table format (troubleshooting only!).
    #[arg(long)]
    ike_keylog: Option<PathBuf>,
    /// Give up after this many seconds (1..=86400).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Rekey the IKE SA ourselves after about this many seconds (default 14400; 10..=2592000).
    #[arg(long, default_value_t = 4 * 3600, value_parser = secs_in(&limits::IKE_LIFETIME_S))]
    ike_lifetime: u64,
    /// Rekey the CHILD SA ourselves after about this many seconds (default 3600; 5..=2592000).
    #[arg(long, default_value_t = 3600, value_parser = secs_in(&limits::CHILD_LIFETIME_S))]
    child_lifetime: u64,
    /// Client certificate for gateways that ask for one: PEM chain (end entity
    /// first, with --key) or a PKCS#12 file (.p12/.pfx, key included).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Password of a PKCS#12 --cert (asked on the terminal if missing). Visible
    /// to other local users in the process list, as openconnect's is.
    #[arg(long)]
    key_password: Option<String>,
    /// The client certificate's RSA private key (PEM, PKCS#1 or PKCS#8).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Host-scan (posture) wrapper, run like openconnect's --csd-wrapper when the
    /// gateway asks for posture assessment.
    #[arg(long)]
    csd_wrapper: Option<PathBuf>,
    /// Retransmissions of an unanswered request before giving up (default 7, ~27 s; 0..=30).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=30))]
    retries: u32,
    /// After connecting, ping this IPv4 address through ESP (data-plane check
    /// without a TUN device; the tunnel device comes with the tunnel issue).
    #[arg(long)]
    ping: Option<std::net::Ipv4Addr>,
    /// Echo requests for --ping.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    ping_count: u16,
    /// Set by `connect`: stay up until a signal.
    #[arg(skip)]
    until_signal: bool,
    /// Stay connected this many seconds before disconnecting (answers DPD and rekeys meanwhile; at most 30 days).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    hold: u64,
    /// Tunnel device name (connect).
    #[arg(long, short = 'i', default_value = "acvpn0")]
    interface: String,
    /// Configure the tunnel with this vpnc-script (openconnect/vpnc environment) instead of
    /// acclient's own routes and DNS.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Leave DNS alone.
    #[arg(long)]
    no_dns: bool,
    /// Keep the local LAN reachable in a full tunnel (default: the profile's LocalLanAccess,
    /// else allowed).
    #[arg(long, conflicts_with = "no_local_lan")]
    local_lan: bool,
    /// Send the local LAN through the tunnel too (Cisco's default without LocalLanAccess).
    #[arg(long)]
    no_local_lan: bool,
    /// Also route this prefix through the tunnel (repeatable).
    #[arg(long, value_name = "CIDR")]
    split_include: Vec<String>,
    /// Keep this prefix outside the tunnel (repeatable).
    #[arg(long, value_name = "CIDR")]
    split_exclude: Vec<String>,
    /// Dead peer detection interval in seconds when the gateway sends none (0: off; at most 86400).
    #[arg(long, default_value_t = 30, value_parser = secs_in(&limits::DPD_S))]
    dpd: u64,
    /// Do not reconnect when the gateway is lost (default: the profile's AutoReconnect, else on).
    #[arg(long)]
    no_reconnect: bool,
    /// Keep trying to reconnect a lost session for this many seconds (1-604800).
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = secs_in(&limits::RECONNECT_TIMEOUT_S))]
    reconnect_timeout: u64,
    /// After the machine slept: `disconnect` (end the session) or `reconnect`
    /// (check the gateway, reconnect if it is gone). Default: the profile's
    /// AutoReconnectBehavior (Cisco's default DisconnectOnSuspend when a
    /// profile does not say), else reconnect.
    #[arg(long, value_name = "disconnect|reconnect", value_parser = ["disconnect", "reconnect"])]
    on_suspend: Option<String>,
    /// Return once connected and leave the session to acclientd (openconnect's -b).
    #[arg(long, short = 'b')]
    background: bool,
    /// Run the tunnel in this process (needs root) even when acclientd runs.
    #[arg(long)]
    no_agent: bool,
    /// Tunnel MTU (default: the gateway's, or the path MTU minus ESP overhead; 576..=9000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(576..=9000))]
    mtu: Option<u32>,
}

/// A clap parser for a number of seconds within one of the engine's limits,
/// so the flag and `Settings::validate` can never disagree.
fn secs_in(r: &'static std::ops::RangeInclusive<u64>) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(*r.start()..=*r.end())
}

/// The numeric flags into the engine's settings (their ranges are the
/// engine's `limits`, checked again by `Session::new`).
fn apply_numeric_flags(s: &mut Settings, a: &ConnectArgs) {
    s.fragment_size = a.fragment_size.into();
    s.retransmit.tries = a.retries;
    s.ike_lifetime = Some(Duration::from_secs(a.ike_lifetime));
    s.child_lifetime = Some(Duration::from_secs(a.child_lifetime));
    s.dpd_interval = (a.dpd > 0).then(|| Duration::from_secs(a.dpd));
}

/// Exit code of a usage error (sysexits' EX_USAGE): never one of the real
/// outcomes 0..=7 (clap's own 2 is "authentication failed" here).
const EXIT_USAGE: i32 = 64;

/// A mistake in the command line found after parsing (a missing target,
/// options that do not go together): exits with [`EXIT_USAGE`].
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// Options of one subcommand given to the other are an error, not ignored.
fn check_mode(a: &ConnectArgs, connect: bool) -> Result<()> {
    if a.host.is_some() && a.profile.is_none() {
        return Err(usage(
            "--host names an entry of --profile; without a profile give the gateway with --server",
        ));
    }
    if connect {
        for (set, name) in [
            (a.json, "--json"),
            (a.hold > 0, "--hold"),
            (a.ping.is_some(), "--ping"),
        ] {
            if set {
                return Err(usage(format!(
                    "{name} is an option of `acclient probe`, not of `connect` (use `acclient status --json` for a running session)"
                )));
            }
        }
    } else {
        for (set, name) in [
            (a.background, "--background"),
            (a.no_agent, "--no-agent"),
            (a.script.is_some(), "--script"),
            (!a.split_include.is_empty(), "--split-include"),
            (!a.split_exclude.is_empty(), "--split-exclude"),
            (a.no_dns, "--no-dns"),
            (a.mtu.is_some(), "--mtu"),
            (a.reconnect_timeout != 600, "--reconnect-timeout"),
        ] {
            if set {
                return Err(usage(format!(
                    "{name} is an option of `acclient connect` (probe sets up no tunnel device)"
                )));
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.exit_code() == 0 { 0 } else { EXIT_USAGE };
            let _ = e.print();
            std::process::exit(code)
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACCLIENT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(|| acclient_core::driver::QuietStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let code = match cli.cmd {
        Cmd::Profiles { file } => profiles(&file).map(|_| 0),
        Cmd::Status { json } => rt().block_on(status_cmd(json)),
        Cmd::Restore => rt().block_on(async {
            let dir = driver::netconfig::state_dir();
            // A running tunnel's journal is not a crash's: leave it alone.
            let _lock = driver::netconfig::lock_state(&dir)?;
            let n = driver::netconfig::replay_journal(&dir).await?;
            println!("{n} changes put back");
            Ok(0)
        }),
        Cmd::Connect(a) => {
            let mut a = *a;
            a.until_signal = true;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let r = rt.block_on(connect_cmd(a));
            // A prompt abandoned by Ctrl-C still has a thread blocked on the
            // terminal; dropping the runtime would wait for it (for Enter).
            rt.shutdown_background();
            r
        }
        Cmd::Disconnect => rt().block_on(agent_client::disconnect()),
        Cmd::GenerateDocs { dir } => generate_docs(&dir).map(|_| 0),
        Cmd::State => rt().block_on(agent_client::state()),
        Cmd::Probe(a) => {
            let a = *a;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let r = check_mode(&a, false).and_then(|_| rt.block_on(probe(a)));
            rt.shutdown_background();
            r
        }
    };
    match code {
        Ok(c) => {
            restore_tty();
            std::process::exit(c)
        }
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("acclient: {e:#}");
            std::process::exit(EXIT_USAGE)
        }
        Err(e) => {
            restore_tty();
            eprintln!("acclient: {e:#}");
            std::process::exit(1)
        }
    }
}

fn profiles(file: &PathBuf) -> Result<()> {
    let text =
        read_limited(file, MAX_FILE).with_context(|| format!("cannot read {}", file.display()))?;
    let p = acclient_core::profile::parse(&text).with_context(|| format!("{}", file.display()))?;
    for h in &p.hosts {
        println!(
            "{}\t{}\t{}\t{}",
            h.name,
            h.connect_address(),
            h.user_group.as_deref().unwrap_or("-"),
            h.primary_protocol.as_deref().unwrap_or("SSL")
        );
    }
    Ok(())
}

/// Where accepted gateway pins are remembered: `$ACCLIENT_CONFIG_DIR/pins`
/// or `~/.config/acclient/pins`, one `HOST PIN` per line.
fn pins_file() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ACCLIENT_CONFIG_DIR") {
        return Some(PathBuf::from(d).join("pins"));
    }
    // Root's pins live in root's own home from the user database: never a
    // file under a user's $HOME (`sudo -E`), where that user could plant one.
    if nix::unistd::geteuid().is_root() {
        let home = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0))
            .ok()
            .flatten()
            .map_or_else(|| PathBuf::from("/root"), |u| u.dir);
        return Some(home.join(".config/acclient/pins"));
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(|x| PathBuf::from(x).join("acclient"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/acclient")))
        .map(|d| d.join("pins"))
}

fn host_keys(p: &Plan) -> [String; 2] {
    [p.label.to_ascii_lowercase(), p.gateway.ip().to_string()]
}

fn remembered_pins(p: &Plan) -> Vec<String> {
    let Some(text) = pins_file().and_then(|f| std::fs::read_to_string(f).ok()) else {
        return Vec::new();
    };
    let keys = host_keys(p);
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(h, _)| keys.iter().any(|k| k == h))
        .map(|(_, pin)| pin.trim().to_string())
        .collect()
}

fn remember_pin(p: &Plan, pin: &str) {
    let Some(f) = pins_file() else { return };
    let line = format!("{} {pin}\n", host_keys(p)[0]);
    let r = std::fs::create_dir_all(f.parent().unwrap_or(&f)).and_then(|_| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)?
            .write_all(line.as_bytes())
    });
    match r {
        Ok(()) => eprintln!("Remembered {pin} for {} in {}.", p.label, f.display()),
        Err(e) => eprintln!("acclient: cannot remember the pin in {}: {e}", f.display()),
    }
}

/// A client certificate chain and key from PEM files.
fn read_client_cert(
    cert: &PathBuf,
    key: Option<&PathBuf>,
    password: Option<&str>,
) -> Result<acclient_core::settings::ClientCert> {
    let raw = read_limited_bytes(cert, MAX_FILE)
        .with_context(|| format!("cannot read {}", cert.display()))?;
    if raw.first() == Some(&0x30) {
        // DER: PKCS#12 (RFC 7292), key and chain in one file.
        let pw = match password {
            Some(p) => p.to_string(),
            None if std::io::stdin().is_terminal() => {
                prompt_line(&format!("Password for {}: ", cert.display()), true)?
            }
            None => String::new(),
        };
        let ks = p12_keystore::KeyStore::from_pkcs12(
            &raw,
            &pw,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            anyhow!(
                "{}: cannot open the PKCS#12 file (wrong password?): {e}",
                cert.display()
            )
        })?;
        let (_, chain) = ks
            .private_key_chain()
            .ok_or_else(|| anyhow!("{}: no private key in the PKCS#12 file", cert.display()))?;
        let der = chain.key().as_der().to_vec();
        acclient_core::crypto::sig::RsaSigner::from_der(&der)
            .map_err(|e| anyhow!("{}: {e}", cert.display()))?;
        let certs = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
        return Ok(acclient_core::settings::ClientCert {
            chain: certs,
            key: Secret::new(der),
        });
    }
    let key = key.ok_or_else(|| anyhow!("{}: a PEM certificate needs --key", cert.display()))?;
    let chain = read_pem_certs(cert)?;
    let text =
        read_limited(key, MAX_FILE).with_context(|| format!("cannot read {}", key.display()))?;
    let der = ["RSA PRIVATE KEY", "PRIVATE KEY"].iter().find_map(|label| {
        let (b, e) = (
            format!("-----BEGIN {label}-----"),
            format!("-----END {label}-----"),
        );
        let s = text.find(&b)? + b.len();
        let t = text[s..].find(&e)? + s;
        let b64: String = text[s..t].chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    });
    let der = der.ok_or_else(|| anyhow!("{}: no RSA private key (PEM) found", key.display()))?;
    acclient_core::crypto::sig::RsaSigner::from_der(&der)
        .map_err(|e| anyhow!("{}: {e}", key.display()))?;
    Ok(acclient_core::settings::ClientCert {
        chain,
        key: Secret::new(der),
    })
}

/// Decodes every CERTIFICATE block of a PEM file.
fn read_pem_certs(path: &PathBuf) -> Result<Vec<Vec<u8>>> {
    let text =
        read_limited(path, MAX_FILE).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b = cur.take().unwrap_or_default();
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .with_context(|| format!("bad base64 in {}", path.display()))?,
            );
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    if out.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(out)
}

fn eap_methods(name: Option<&str>) -> Result<Vec<EapType>> {
    Ok(match name.map(|s| s.to_ascii_lowercase()) {
        None => vec![EapType::MsChapV2, EapType::Md5, EapType::Gtc],
        Some(s) => match s.trim_start_matches("eap-") {
            "mschapv2" => vec![EapType::MsChapV2],
            "md5" => vec![EapType::Md5],
            "gtc" => vec![EapType::Gtc],
            other => bail!("unsupported authentication method {other:?} (use EAP-MSCHAPv2, EAP-MD5, EAP-GTC or IKE-PSK)"),
        },
    })
}

fn resolve(host: &str) -> Result<SocketAddr> {
    let with_port = if host.parse::<IpAddr>().is_ok() || !host.contains(':') {
        format!("{host}:500")
    } else {
        host.to_string()
    };
    let with_port = if let Ok(IpAddr::V6(a)) = host.parse::<IpAddr>() {
        format!("[{a}]:500")
    } else {
        with_port
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .ok_or_else(|| anyhow!("no address for {host}"))
}

#[derive(Clone)]
struct Plan {
    /// The profile's AutoReconnect and LocalLanAccess.
    auto_reconnect: Option<bool>,
    local_lan: Option<bool>,
    /// End the session after the machine slept (AutoReconnectBehavior).
    disconnect_on_suspend: bool,
    gateway: SocketAddr,
    label: String,
    settings_auth: AuthMethod,
    identity: Option<String>,
    /// The profile's CertificatePinList for this host.
    pins: Vec<String>,
}

/// A profile's AutoReconnectBehavior: whether to end the session after the
/// machine slept. The schema's default (absent element) is
/// DisconnectOnSuspend, as in Cisco's client; an unknown value gets the
/// default too, with a warning, since real profiles carry values we do not know.
fn suspend_policy(behavior: Option<&str>) -> bool {
    match behavior.map(str::trim) {
        Some(b) if b.eq_ignore_ascii_case("ReconnectAfterResume") => false,
        None => true,
        Some(b) if b.eq_ignore_ascii_case("DisconnectOnSuspend") => true,
        Some(other) => {
            tracing::warn!(
                "profile AutoReconnectBehavior {other:?} is unknown: using DisconnectOnSuspend"
            );
            true
        }
    }
}

fn plan(a: &ConnectArgs) -> Result<Plan> {
    let mut profile_pins = Vec::new();
    let mut prefs = (None, None);
    let mut disconnect_on_suspend = false;
    let (addr, label, method, ike_identity, anyconnect, group) = match (&a.profile, &a.server) {
        (Some(p), _) => {
            let text = read_limited(p, MAX_FILE)
                .with_context(|| format!("cannot read profile {}", p.display()))?;
            let prof =
                acclient_core::profile::parse(&text).with_context(|| format!("{}", p.display()))?;
            prefs = (prof.auto_reconnect, prof.local_lan_access);
            disconnect_on_suspend = suspend_policy(prof.auto_reconnect_behavior.as_deref());
            // Like Cisco's client: without --host, the first entry of the list.
            let name = a
                .host
                .clone()
                .or_else(|| prof.hosts.first().map(|h| h.name.clone()))
                .unwrap_or_default();
            let name = name.as_str();
            let h = prof.host(name).ok_or_else(|| {
                anyhow!(
                    "no host {name:?} in {} (acclient profiles {} lists them)",
                    p.display(),
                    p.display()
                )
            })?;
            if h.primary_protocol
                .as_deref()
                .is_some_and(|x| !x.eq_ignore_ascii_case("ipsec"))
            {
                bail!(
                    "host {} uses PrimaryProtocol {}; acclient speaks IPsec (IKEv2) only",
                    h.name,
                    h.primary_protocol.as_deref().unwrap_or("")
                );
            }
            (
                h.connect_address().to_string(),
                h.name.clone(),
                h.auth_method.clone(),
                h.ike_identity.clone(),
                // IPsec without StandardAuthenticationOnly means Cisco's own
                // EAP-AnyConnect login (AnyConnectProfile.xsd).
                !h.standard_auth_only,
                {
                    profile_pins = h.pins.clone();
                    h.user_group.clone()
                },
            )
        }
        (None, Some(s)) => (s.clone(), s.clone(), None, None, a.anyconnect, None),
        (None, None) => return Err(usage("give --server ADDR, or --profile FILE [--host NAME]")),
    };
    let gateway = resolve(&addr)?;
    let psk = match &a.psk_file {
        Some(f) => Some(
            read_limited(f, 64 * 1024)
                .with_context(|| format!("cannot read PSK file {}", f.display()))?,
        ),
        None => None,
    };
    let client_cert = match &a.cert {
        Some(c) => Some(read_client_cert(
            c,
            a.key.as_ref(),
            a.key_password.as_deref(),
        )?),
        None => None,
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "linux".into());
    let auth = match (psk, method.as_deref()) {
        (None, _) if anyconnect => {
            let mut ac = AnyConnectClient::new(a.group.clone().or(group), hostname);
            ac.client_cert = client_cert;
            AuthMethod::AnyConnect(ac)
        }
        (Some(k), _) => AuthMethod::Psk(Secret::new(
            k.lines().next().unwrap_or("").as_bytes().to_vec(),
        )),
        (None, Some(m)) if m.eq_ignore_ascii_case("IKE-PSK") => {
            bail!("the profile asks for IKE-PSK: give --psk-file")
        }
        (None, m) => AuthMethod::Eap(eap_methods(a.eap.as_deref().or(m))?),
    };
    Ok(Plan {
        auto_reconnect: prefs.0,
        local_lan: prefs.1,
        disconnect_on_suspend: match a.on_suspend.as_deref() {
            Some(v) => v == "disconnect",
            None => disconnect_on_suspend,
        },
        gateway,
        label,
        settings_auth: auth,
        identity: ike_identity,
        pins: profile_pins,
    })
}

/// Runs the host-scan wrapper with openconnect's arguments and environment
/// (`-ticket`, `-stub`, `-group`, `-url`; CSD_TOKEN, CSD_TICKET, CSD_HOSTNAME),
/// at most 120 s — the ASA waits that long for each answer.
fn run_csd_wrapper(
    w: &PathBuf,
    hs: &acclient_core::eap::anyconnect::xml::HostScan,
    p: &Plan,
    group: Option<&str>,
) -> Result<bool> {
    let host = p.gateway.ip().to_string();
    eprintln!("Running host scan: {}", w.display());
    let mut child = std::process::Command::new(w)
        .args([
            "-ticket",
            &hs.ticket,
            "-stub",
            "0",
            "-group",
            group.unwrap_or(""),
        ])
        .args([
            "-url",
            &format!("https://{host}{}", hs.wait_uri),
            "-langsel",
            "langselen",
        ])
        .env("CSD_TOKEN", &hs.token)
        .env("CSD_TICKET", &hs.ticket)
        .env("CSD_HOSTNAME", &host)
        .env("CSD_BASE_URI", &hs.base_uri)
        .spawn()
        .with_context(|| format!("cannot run the host-scan wrapper {}", w.display()))?;
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                eprintln!("acclient: the host-scan wrapper failed ({st})");
            }
            return Ok(st.success());
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("acclient: the host-scan wrapper did not finish within 120 s");
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Passwords from standard input: the first line (already read), then one
/// more line per password input.
struct StdinPasswords {
    first: Option<Secret>,
    more: bool,
    /// Everything given so far, replayed for a reconnect's fresh login.
    given: Vec<Secret>,
    replay: std::collections::VecDeque<Secret>,
}

impl StdinPasswords {
    fn new(first: Option<Secret>, more: bool) -> Self {
        StdinPasswords {
            first,
            more,
            given: Vec::new(),
            replay: Default::default(),
        }
    }

    /// A reconnect logs in again with the same answers (in memory only).
    fn rewind(&mut self) {
        self.replay = self.given.iter().cloned().collect();
    }

    fn next(&mut self) -> Option<Secret> {
        if let Some(p) = self.replay.pop_front() {
            return Some(p);
        }
        let p = self.read()?;
        self.given.push(p.clone());
        Some(p)
    }

    fn read(&mut self) -> Option<Secret> {
        if let Some(p) = self.first.take() {
            return Some(p);
        }
        if !self.more {
            return None;
        }
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(n) if n > 0 => Some(Secret::new(
                line.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
            )),
            _ => {
                self.more = false;
                None
            }
        }
    }
}

/// The text of a login form (the core's `Form`, or the agent's prompt).
struct FormText<'a> {
    title: &'a str,
    banner: &'a str,
    message: &'a str,
    error: Option<&'a str>,
}

/// Answers an EAP-AnyConnect login form from the command line, or by asking
/// on the terminal. The fill rules (hidden inputs, the group, the user name,
/// choices, verify fields) are the core's `Form`; this only collects values:
/// `--group` and `--user` arrive as the form's prefills, passwords come from
/// stdin (one line per password field) or the terminal. `check` is the
/// core's `Form::answer` (in process) or passes the values on (to the agent,
/// which checks them there).
fn fill_form<T>(
    text: FormText<'_>,
    fields: &[Field],
    a: &ConnectArgs,
    interactive: bool,
    passwords: &mut StdinPasswords,
    check: impl Fn(Vec<(String, Secret)>) -> std::result::Result<T, FormError>,
) -> Result<T> {
    for t in [text.title, text.banner, text.message] {
        if !t.is_empty() {
            eprintln!("{t}");
        }
    }
    if let Some(e) = text.error {
        eprintln!("The gateway says: {e}");
    }
    let mut values: Vec<(String, Secret)> = Vec::new();
    // A choice typed at the prompt that is not offered is asked again.
    let mut asked_choice = None;
    for f in fields {
        let v = match &f.kind {
            FieldKind::Password => match passwords.next() {
                Some(p) => p,
                None if interactive => {
                    Secret::new(prompt_line(&format!("{} ", f.label), true)?.into_bytes())
                }
                None => match text.error {
                    Some(e) => bail!("the gateway rejected the credentials ({e})"),
                    None => bail!("the gateway asks for {:?}; give --passwd-on-stdin", f.label),
                },
            },
            // --group insists: Form::answer refuses it if not offered.
            FieldKind::Select(_) if f.is_group() && a.group.is_some() => {
                Secret::new(a.group.clone().unwrap_or_default().into_bytes())
            }
            FieldKind::Select(choices) if interactive => {
                asked_choice = Some((f, choices));
                let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
                let prompt = format!("{} [{}] ", f.label, labels.join(", "));
                Secret::new(prompt_line(&prompt, false)?.into_bytes())
            }
            FieldKind::Select(_) => continue, // the gateway's default
            FieldKind::Text if f.name.contains("user") && a.user.is_some() => continue,
            FieldKind::Text if interactive => {
                Secret::new(prompt_line(&format!("{} ", f.label), false)?.into_bytes())
            }
            FieldKind::Text if f.prefill.is_some() => continue,
            FieldKind::Text => bail!(
                "the gateway asks for {:?} ({}); this needs --user or a terminal",
                f.label,
                f.name
            ),
        };
        values.push((f.name.clone(), v));
    }
    for _ in 0..3 {
        match check(values.clone()) {
            Err(e @ FormError::NotAChoice { .. }) if asked_choice.is_some() => {
                eprintln!("{e}");
                let Some((f, choices)) = asked_choice else {
                    break;
                };
                let labels: Vec<&str> = choices.iter().map(|c| c.label.as_str()).collect();
                let prompt = format!("{} [{}] ", f.label, labels.join(", "));
                let typed = Secret::new(prompt_line(&prompt, false)?.into_bytes());
                values.retain(|(n, _)| n != &f.name);
                values.push((f.name.clone(), typed));
            }
            r => return Ok(r?),
        }
    }
    Ok(check(values)?)
}

/// The terminal's settings while a hidden prompt has echo off, so that any
/// exit — Ctrl-C at the prompt included — puts them back ([`restore_tty`]).
static SAVED_TTY: std::sync::Mutex<Option<(std::fs::File, nix::sys::termios::Termios)>> =
    std::sync::Mutex::new(None);

/// Puts the terminal back if a hidden prompt left echo off (called on every
/// exit path and by the prompt itself).
fn restore_tty() {
    let saved = SAVED_TTY.lock().ok().and_then(|mut g| g.take());
    if let Some((tty, t)) = saved {
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &t);
    }
}

fn prompt_line(prompt: &str, hidden: bool) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask on (use --passwd-on-stdin or --non-inter)")?;
    if hidden {
        // Echo off *before* the label, so typeahead is not shown either;
        // the saved settings come back however we leave.
        if let Ok(orig) = tcgetattr(&tty) {
            let mut quiet = orig.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            quiet.local_flags.insert(LocalFlags::ECHONL);
            if tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).is_ok() {
                if let Ok(mut g) = SAVED_TTY.lock() {
                    *g = tty.try_clone().ok().map(|t| (t, orig));
                }
            }
        }
    }
    let mut w = &tty;
    let r = (|| -> Result<String> {
        write!(w, "{prompt}")?;
        w.flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    })();
    if hidden {
        restore_tty();
    }
    r
}

/// Man pages (one per subcommand, clap_mangen) and bash / zsh / fish
/// completions (clap_complete) for the package.
fn generate_docs(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "acclient", &comp)?;
    }
    Ok(())
}

/// `acclient connect`: through acclientd when it runs (any user in group
/// acclient), else in this process (root only).
async fn connect_cmd(a: ConnectArgs) -> Result<i32> {
    check_mode(&a, true)?;
    if !a.no_agent {
        match agent_client::Agent::open().await {
            Ok(agent) => return connect_via_agent(agent, a).await,
            Err(agent_client::NoAgent::Refused(m)) => bail!("{m}"),
            Err(agent_client::NoAgent::Absent) => {}
        }
    }
    if a.background {
        bail!("--background needs acclientd (start it with `systemctl start acclientd`)");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "acclientd is not running ({} does not answer) and running the tunnel in this process needs root; start it with `systemctl start acclientd`",
            agent_client::socket_path().display()
        );
    }
    probe(a).await
}

/// What the agent needs, read here as the user: files become content.
fn connect_request(a: &ConnectArgs, p: &Plan) -> Result<acclient_core::ipc::ConnectRequest> {
    let mut req = acclient_core::ipc::ConnectRequest {
        host: p.label.clone(),
        server: p.gateway.to_string(),
        user: a.user.clone(),
        identity: p.identity.clone(),
        remote_id: a.remote_id.clone(),
        legacy: a.legacy,
        ipv6: a.ipv6,
        fragment_size: Some(a.fragment_size.into()),
        ike_lifetime: Some(a.ike_lifetime),
        child_lifetime: Some(a.child_lifetime),
        dpd: Some(a.dpd),
        retries: Some(a.retries),
        reconnect: !a.no_reconnect && p.auto_reconnect != Some(false),
        reconnect_timeout: Some(a.reconnect_timeout),
        disconnect_on_suspend: p.disconnect_on_suspend,
        local_lan: if a.no_local_lan {
            false
        } else {
            a.local_lan || p.local_lan.unwrap_or(true)
        },
        split_include: a.split_include.clone(),
        split_exclude: a.split_exclude.clone(),
        no_dns: a.no_dns,
        mtu: a.mtu,
        interface: Some(a.interface.clone()),
        ..Default::default()
    };
    if a.script.is_some() {
        bail!("--script runs a program as root: not through acclientd (use --no-agent as root)");
    }
    if a.csd_wrapper.is_some() {
        bail!(
            "--csd-wrapper runs a program as root: not through acclientd (use --no-agent as root)"
        );
    }
    match &p.settings_auth {
        AuthMethod::Psk(k) => {
            req.psk = Some(String::from_utf8_lossy(k.expose()).into_owned());
        }
        AuthMethod::AnyConnect(ac) => {
            req.anyconnect = true;
            req.group = ac.group.clone();
            if let Some(c) = &ac.client_cert {
                req.client_cert = c.chain.clone();
                req.client_key = Some(c.key.expose().to_vec());
            }
        }
        AuthMethod::Eap(m) => {
            req.eap = m
                .iter()
                .map(|t| format!("{t:?}").to_ascii_lowercase())
                .collect();
        }
    }
    if let Some(f) = &a.cafile {
        req.ca_pem =
            Some(read_limited(f, 1 << 20).with_context(|| format!("cannot read {}", f.display()))?);
    }
    for pin in &a.servercert {
        if !acclient_core::crypto::sig::is_pin(pin) {
            return Err(usage(format!("--servercert takes pin-sha256:BASE64 (as printed when a certificate is refused), pin-sha512:, or the certificate's SHA-256 fingerprint in hex; got {pin:?}")));
        }
        req.pins.push(pin.clone());
    }
    req.pins.extend(p.pins.iter().cloned());
    req.pins.extend(remembered_pins(p));
    Ok(req)
}

/// Every file we read has a size limit (a profile, certificates, keys:
/// 1 MiB), so `--profile /dev/zero` is an error, not an out-of-memory kill.
const MAX_FILE: u64 = 1 << 20;

/// Reads a file of at most `max` bytes.
fn read_limited_bytes(path: &PathBuf, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut v = Vec::new();
    f.take(max + 1).read_to_end(&mut v)?;
    if v.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {max} bytes: refusing it"
        )));
    }
    Ok(v)
}

/// Reads a text file of at most `max` bytes.
fn read_limited(path: &PathBuf, max: u64) -> std::io::Result<String> {
    let v = read_limited_bytes(path, max)?;
    String::from_utf8(v).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// Answers the session's prompts in this process (in-process mode), from
/// the flags, stdin, the terminal and the host-scan wrapper. Blocking: it
/// runs on a blocking thread, never on the runtime's.
struct LocalAnswers {
    a: ConnectArgs,
    p: Plan,
    interactive: bool,
    passwords: StdinPasswords,
}

impl LocalAnswers {
    fn answer(&mut self, kind: &PromptKind) -> Result<Answer> {
        Ok(match kind {
            PromptKind::Password { user } => match self.passwords.next() {
                Some(p) => Answer::Secret(p),
                None if self.interactive => Answer::Secret(Secret::new(
                    prompt_line(&format!("Password for {user}: "), true)?.into_bytes(),
                )),
                None => bail!(
                    "the gateway asks for a password; give --passwd-on-stdin (non-interactive)"
                ),
            },
            PromptKind::HostScan(hs) => Answer::HostScan(match &self.a.csd_wrapper {
                Some(w) => run_csd_wrapper(w, hs, &self.p, self.a.group.as_deref())?,
                None => false,
            }),
            PromptKind::AuthForm(form) => {
                let text = FormText {
                    title: &form.title,
                    banner: &form.banner,
                    message: &form.message,
                    error: form.error.as_deref(),
                };
                Answer::Form(fill_form(
                    text,
                    &form.fields,
                    &self.a,
                    self.interactive,
                    &mut self.passwords,
                    |v| form.answer(v),
                )?)
            }
            PromptKind::TrustCertificate { summary, reason } => {
                eprintln!("The gateway's certificate is not trusted: {reason}");
                eprintln!("  subject:  {}", summary.subject);
                eprintln!("  issuer:   {}", summary.issuer);
                eprintln!("  SHA-256:  {}", summary.sha256);
                eprintln!("  key pin:  {}", summary.pin);
                let yes = self.interactive
                    && prompt_line("Connect anyway? [y/N] ", false)?
                        .trim()
                        .eq_ignore_ascii_case("y");
                if yes {
                    remember_pin(&self.p, &summary.pin);
                }
                if !yes && !self.interactive {
                    eprintln!(
                        "Refused (non-interactive). To trust it, pass --servercert {}",
                        summary.pin
                    );
                    eprintln!(
                        "  (or its SHA-256 fingerprint: --servercert {})",
                        summary.sha256
                    );
                }
                Answer::Accept(yes)
            }
        })
    }
}

/// Answers the agent's prompts from the flags, stdin and the terminal.
struct CliAnswers {
    a: ConnectArgs,
    p: Plan,
    interactive: bool,
    passwords: StdinPasswords,
}

impl agent_client::Answers for CliAnswers {
    fn answer(
        &mut self,
        prompt: &acclient_core::ipc::Prompt,
    ) -> Result<acclient_core::ipc::Answer> {
        use acclient_core::ipc::{Answer as A, Prompt as P};
        Ok(match prompt {
            P::Password { user } => match self.passwords.next() {
                Some(pw) => A::Secret {
                    value: String::from_utf8_lossy(pw.expose()).into_owned(),
                },
                None if self.interactive => A::Secret {
                    value: prompt_line(&format!("Password for {user}: "), true)?,
                },
                None => bail!(
                    "the gateway asks for a password; give --passwd-on-stdin (non-interactive)"
                ),
            },
            P::Form {
                title,
                banner,
                message,
                error,
                fields,
            } => {
                let text = FormText {
                    title,
                    banner,
                    message,
                    error: error.as_deref(),
                };
                let values = fill_form(
                    text,
                    fields,
                    &self.a,
                    self.interactive,
                    &mut self.passwords,
                    Ok,
                )?;
                A::Form {
                    values: values
                        .into_iter()
                        .map(|(n, v)| (n, String::from_utf8_lossy(v.expose()).into_owned()))
                        .collect(),
                }
            }
            P::TrustCertificate {
                subject,
                issuer,
                sha256,
                pin,
                reason,
            } => {
                eprintln!("The gateway's certificate is not trusted: {reason}");
                eprintln!("  subject:  {subject}");
                eprintln!("  issuer:   {issuer}");
                eprintln!("  SHA-256:  {sha256}");
                eprintln!("  key pin:  {pin}");
                let yes = self.interactive
                    && prompt_line("Connect anyway? [y/N] ", false)?
                        .trim()
                        .eq_ignore_ascii_case("y");
                if yes {
                    remember_pin(&self.p, pin);
                } else if !self.interactive {
                    eprintln!("Refused (non-interactive). To trust it, pass --servercert {pin}");
                    eprintln!("  (or its SHA-256 fingerprint: --servercert {sha256})");
                }
                A::Accept { yes }
            }
            P::Banner { text } => {
                eprintln!("Banner from the gateway:\n{text}");
                // A person must accept it; non-interactive use accepts by running.
                let yes = !self.interactive
                    || prompt_line("Accept and stay connected? [y/N] ", false)?
                        .trim()
                        .eq_ignore_ascii_case("y");
                A::Accept { yes }
            }
        })
    }
}

async fn connect_via_agent(agent: agent_client::Agent, a: ConnectArgs) -> Result<i32> {
    let p = plan(&a)?;
    let req = connect_request(&a, &p)?;
    let first = if a.passwd_on_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Some(Secret::new(
            line.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        ))
    } else {
        None
    };
    let interactive = !a.non_inter && std::io::stdin().is_terminal() && !a.passwd_on_stdin;
    let passwords = StdinPasswords::new(first, a.passwd_on_stdin);
    let (background, timeout) = (a.background, Duration::from_secs(a.timeout));
    let answers = Box::new(CliAnswers {
        a,
        p,
        interactive,
        passwords,
    });
    agent_client::connect(agent, req, background, timeout, answers).await
}

async fn probe(a: ConnectArgs) -> Result<i32> {
    tracing::debug!("probe: reading settings");
    let p = plan(&a)?;
    // Held until the tunnel is down (dropped at the end of this function).
    let _state_lock = if a.until_signal {
        Some(driver::netconfig::lock_state(
            &driver::netconfig::state_dir(),
        )?)
    } else {
        None
    };
    let started = Instant::now();
    // The effective uid decides (ports 500/4500 need it), never $USER.
    let is_root = nix::unistd::geteuid().is_root();
    let ike_port = a.source_port.unwrap_or(if is_root { 500 } else { 0 });
    let nat_port = if ike_port == 500 { 4500 } else { 0 };
    let socks = Sockets::bind(p.gateway, 4500, a.source, ike_port, nat_port)
        .await
        .with_context(|| format!("cannot open UDP sockets towards {}", p.gateway))?;
    let local = socks.local_addr()?;
    tracing::debug!("probe: sockets bound to {local}");
    let user = a.user.clone();
    let identity = match (&p.identity, &user) {
        (id, _) if matches!(p.settings_auth, AuthMethod::AnyConnect(_)) => Identity::Group(
            id.clone()
                .unwrap_or_else(|| ANYCONNECT_IDENTITY.to_string()),
        ),
        (Some(id), _) => Identity::for_user(id),
        (None, Some(u)) => Identity::for_user(u),
        (None, None) => Identity::Address,
    };
    let mut s = Settings::new(p.gateway, local, identity, p.settings_auth.clone());
    s.username = user.clone();
    s.remote_id = a.remote_id.clone();
    s.legacy = a.legacy;
    s.legacy_group1 = a.legacy_modp768;
    s.request_ipv6 = a.ipv6;
    apply_numeric_flags(&mut s, &a);
    if a.passwd_on_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        s.password = Some(Secret::new(
            line.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        ));
    }
    // --passwd-on-stdin: one line per password input (like openconnect), so
    // a second round (wrong password, OTP) reads the next line; when stdin
    // runs out, a non-interactive login stops instead of looping.
    let form_passwords = StdinPasswords::new(s.password.clone(), a.passwd_on_stdin);
    s.trust.anchors = match &a.cafile {
        Some(f) => read_pem_certs(f)?,
        None => {
            read_pem_certs(&PathBuf::from("/etc/ssl/certs/ca-certificates.crt")).unwrap_or_default()
        }
    };
    for pin in &a.servercert {
        if !acclient_core::crypto::sig::is_pin(pin) {
            return Err(usage(format!("--servercert takes pin-sha256:BASE64 (as printed when a certificate is refused), pin-sha512:, or the certificate's SHA-256 fingerprint in hex; got {pin:?}")));
        }
        s.trust.pins.push(pin.clone());
    }
    // The profile's CertificatePinList, and pins the user accepted before.
    s.trust.pins.extend(p.pins.iter().cloned());
    s.trust.pins.extend(remembered_pins(&p));
    s.trust.unix_time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tracing::debug!("probe: settings ready");
    let base = s.clone();
    let session =
        Session::new(s, Box::new(SystemRng), Instant::now()).map_err(|e| anyhow!("{e}"))?;
    tracing::debug!("probe: session created");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let opts = DriverOptions {
        ike_keylog: a.ike_keylog.clone(),
        ping: a.ping.map(|d| (d, a.ping_count)),
        disconnect_on_suspend: p.disconnect_on_suspend,
        host: Some(p.label.clone()),
    };
    let tunnel = if a.until_signal {
        let parse = |v: &[String], what: &str| -> Result<Vec<Prefix>> {
            v.iter()
                .map(|x| {
                    Prefix::parse(x)
                        .ok_or_else(|| anyhow!("--{what} {x:?} is not an address/length prefix"))
                })
                .collect()
        };
        let opts = TunnelOptions {
            interface: a.interface.clone(),
            routes: RouteOptions {
                local_lan: if a.no_local_lan {
                    false
                } else {
                    a.local_lan || p.local_lan.unwrap_or(true)
                },
                include: parse(&a.split_include, "split-include")?,
                exclude: parse(&a.split_exclude, "split-exclude")?,
            },
            dns: !a.no_dns,
            script: a.script.clone(),
            state_dir: driver::netconfig::state_dir(),
            mtu: a.mtu,
        };
        if opts.script.is_none() {
            // Anything a crashed run left behind goes back before we start.
            let n = driver::netconfig::replay_journal(&opts.state_dir)
                .await
                .context("cannot put back what a previous run changed")?;
            if n > 0 {
                eprintln!("Restored {n} network changes left by a previous acclient run.");
            }
        }
        socks.grow_buffers(4 << 20);
        Tunnel::open(opts)?
    } else {
        Tunnel::new(None)
    };
    let reconnect = if a.until_signal && !a.no_reconnect && p.auto_reconnect != Some(false) {
        let (gw, src) = (p.gateway, a.source);
        let make: driver::Reconnect = Box::new(move |resume| {
            let mut st = base.clone();
            if let AuthMethod::AnyConnect(ac) = &mut st.auth {
                ac.resume = resume;
            }
            Box::pin(async move {
                let socks = Sockets::bind(gw, 4500, src, ike_port, nat_port).await?;
                socks.grow_buffers(4 << 20);
                st.local = socks.local_addr()?;
                let sess = Session::new(st, Box::new(SystemRng), Instant::now())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok((sess, socks))
            })
        });
        Some((
            make,
            driver::ReconnectPolicy {
                give_up_after: Duration::from_secs(a.reconnect_timeout),
            },
        ))
    } else {
        None
    };
    let control = if a.until_signal {
        control_socket(cmd_tx.clone())
    } else {
        None
    };
    let task = tokio::spawn(driver::run(
        session, socks, opts, tunnel, reconnect, ev_tx, cmd_rx,
    ));
    let interactive = !a.non_inter && std::io::stdin().is_terminal() && !a.passwd_on_stdin;
    let deadline = tokio::time::sleep(Duration::from_secs(a.timeout));
    tokio::pin!(deadline);
    let mut connected: Option<(acclient_core::TunnelConfig, Option<driver::Status>)> = None;
    let mut connect_ms = 0u128;
    let mut closing = false;
    let mut gave_up = false;
    let mut hold: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = None;
    let mut early_exit: Option<i32> = None;
    // A signal before the tunnel is up still closes cleanly (DELETE once the
    // IKE SA exists, everything put back); after, `hold` waits for it.
    let early_signal = until_signal();
    tokio::pin!(early_signal);
    let mut answers = Some(LocalAnswers {
        a: a.clone(),
        p: p.clone(),
        interactive,
        passwords: form_passwords,
    });
    loop {
        let ev = tokio::select! {
            e = ev_rx.recv() => e,
            _ = &mut early_signal, if connected.is_none() && !closing => {
                let _ = cmd_tx.send(Command::Close);
                closing = true;
                continue;
            }
            _ = async { match hold.as_mut() { Some(h) => h.await, None => std::future::pending().await } } => {
                hold = None;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = cmd_tx.send(Command::Status(tx));
                if let (Some(c), Ok(st)) = (connected.as_mut(), rx.await) {
                    c.1 = Some(st);
                }
                let _ = cmd_tx.send(Command::Close);
                closing = true;
                continue;
            }
            _ = &mut deadline, if !closing && connected.is_none() => {
                eprintln!("acclient: no connection after {} s", a.timeout);
                let _ = cmd_tx.send(Command::Close);
                closing = true;
                gave_up = true;
                continue;
            }
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Progress(pr) => {
                if !a.json {
                    match pr {
                        Progress::Contacting => {
                            eprintln!("Contacting {} ({}).", p.label, p.gateway)
                        }
                        Progress::SaInitDone { proposal, nat } => eprintln!(
                            "IKE SA negotiated: {proposal}{}",
                            if nat { " (NAT detected)" } else { "" }
                        ),
                        Progress::GatewayAuthenticated { id, scheme } => {
                            eprintln!("Gateway {id} authenticated ({scheme}).");
                            eprintln!("Establishing VPN session...");
                        }
                        Progress::Eap(m) => eprintln!("Authenticating with EAP-{m}..."),
                        Progress::Reconnecting { attempt, reason } => {
                            eprintln!(
                                "Connection lost ({reason}); reconnecting (attempt {attempt})..."
                            );
                            if let Some(x) = answers.as_mut() {
                                x.passwords.rewind();
                            }
                        }
                        Progress::Reconnected { resumed: true } => {
                            eprintln!("Reconnected: the gateway resumed the session (no login).")
                        }
                        Progress::Reconnected { resumed: false } => {
                            eprintln!("Reconnected (logged in again).")
                        }
                        other => tracing::info!("{other:?}"),
                    }
                }
            }
            Event::Prompt(pr) => {
                if let (PromptKind::Password { .. }, false) = (&pr.kind, interactive) {
                    if answers.as_ref().is_some_and(|x| !x.passwords.more) {
                        eprintln!("acclient: the gateway asks for a password; give --passwd-on-stdin (non-interactive)");
                        let _ = cmd_tx.send(Command::Close);
                        closing = true;
                        continue;
                    }
                }
                // The terminal, stdin and the host-scan wrapper are read off
                // the runtime thread: the tunnel, DPD and status go on meanwhile.
                let Some(mut x) = answers.take() else {
                    continue;
                };
                let kind = pr.kind.clone();
                let task = tokio::task::spawn_blocking(move || {
                    let r = x.answer(&kind);
                    (r, x)
                });
                let Some(r) = or_signal(task).await else {
                    // Ctrl-C at the prompt: the thread stays blocked on the
                    // terminal until exit; later prompts find no answers.
                    let _ = cmd_tx.send(Command::Close);
                    closing = true;
                    continue;
                };
                let (ans, back) = r.map_err(|e| anyhow!("prompt task: {e}"))?;
                answers = Some(back);
                match ans {
                    Ok(ans) => {
                        let _ = cmd_tx.send(Command::Answer(pr.id, ans));
                    }
                    Err(e) => {
                        eprintln!("acclient: {e}");
                        let _ = cmd_tx.send(Command::Close);
                        closing = true;
                        early_exit = Some(2);
                    }
                }
            }
            Event::Connected(cfg) => {
                let cfg = *cfg;
                if connected.is_some() {
                    continue; // a reconnect: already reported
                }
                connect_ms = started.elapsed().as_millis();
                // The login banner: shown always; a person must accept it, as
                // with Cisco's client (non-interactive use accepts by running).
                if let Some(b) = cfg.cisco.banner.clone() {
                    eprintln!("Banner from the gateway:\n{b}");
                    let accepted = if interactive {
                        let task = tokio::task::spawn_blocking(|| {
                            prompt_line("Accept and stay connected? [y/N] ", false)
                                .is_ok_and(|l| l.trim().eq_ignore_ascii_case("y"))
                        });
                        matches!(or_signal(task).await, Some(Ok(true)))
                    } else {
                        true
                    };
                    if !accepted {
                        eprintln!("acclient: banner not accepted; disconnecting");
                        let _ = cmd_tx.send(Command::Close);
                        closing = true;
                        early_exit = Some(2);
                        continue;
                    }
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = cmd_tx.send(Command::Status(tx));
                let st = rx.await.ok();
                connected = Some((cfg, st));
                if a.until_signal {
                    if let Some((cfg, st)) = &connected {
                        print_connected(&p, cfg, st.as_ref(), connect_ms);
                    }
                    eprintln!("Connected to {}. Press Ctrl-C to disconnect.", p.label);
                    hold = Some(Box::pin(until_signal()));
                } else if a.hold == 0 && a.ping.is_some() {
                    // Give the echo replies a moment to come back through ESP.
                    hold = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1500))));
                } else if a.hold > 0 {
                    if !a.json {
                        eprintln!("Connected; holding for {} s.", a.hold);
                    }
                    hold = Some(Box::pin(tokio::time::sleep(Duration::from_secs(a.hold))));
                } else {
                    let _ = cmd_tx.send(Command::Close);
                    closing = true;
                }
            }
            Event::Disconnected(r) => {
                if early_exit.is_some() {
                    // We ended it (a refused banner, a failed form): that
                    // outcome stands; the DELETE went out and we tear down.
                } else if gave_up && connected.is_none() {
                    early_exit = Some(DisconnectReason::TimedOut(0).exit_code());
                } else if connected.is_none() || hold.is_some() {
                    eprintln!("acclient: {r}");
                    early_exit = Some(r.exit_code());
                }
                break;
            }
        }
    }
    let (reason, tunnel) = match task.await {
        Ok(x) => x,
        Err(_) => (
            DisconnectReason::Local("driver task failed".into()),
            Tunnel::new(None),
        ),
    };
    tunnel.close().await;
    if let Some(path) = control {
        let _ = std::fs::remove_file(path);
    }
    if let Some(code) = early_exit {
        return Ok(code);
    }
    let Some((cfg, st)) = connected else {
        eprintln!("acclient: {reason}");
        return Ok(reason.exit_code().max(1));
    };
    if a.until_signal {
        eprintln!("Disconnected.");
        return Ok(0);
    }
    print_result(&p, &cfg, st.as_ref(), connect_ms, a.json);
    Ok(0)
}

/// Serves `acclient status` on `control.sock` in the state directory: each
/// connection gets one JSON snapshot (root-only directory; no secrets in it).
fn control_socket(cmd: mpsc::UnboundedSender<Command>) -> Option<PathBuf> {
    use tokio::io::AsyncWriteExt;
    let dir = driver::netconfig::state_dir();
    // Root-only from the start (bound in a private directory, then renamed).
    let (l, path) = match driver::bind_unix(&dir, "control.sock", 0o600, None) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("no status socket in {}: {e}", dir.display());
            return None;
        }
    };
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if cmd.send(Command::Status(tx)).is_err() {
                break;
            }
            if let Ok(st) = rx.await {
                let _ = c.write_all(status_json(&st).to_string().as_bytes()).await;
            }
        }
    });
    Some(path)
}

/// The one JSON schema of `status --json`, `probe --json` and the control
/// socket: the driver's serde `Status` (with its `version`).
fn status_json(s: &driver::Status) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

/// `acclient status`: asks the running `connect` over its control socket.
async fn status_cmd(json: bool) -> Result<i32> {
    use tokio::io::AsyncReadExt;
    let v: serde_json::Value = match agent_client::status().await {
        Some(r) => r?,
        None => {
            let path = driver::netconfig::state_dir().join("control.sock");
            let mut c = match tokio::net::UnixStream::connect(&path).await {
                Ok(c) => c,
                // A root `connect --no-agent` keeps its socket to root: say
                // so rather than "not connected" while a tunnel runs.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(anyhow!(
                        "{} belongs to a root `acclient connect`; only root can read its status (sudo acclient status)",
                        path.display()
                    ))
                }
                Err(_) => {
                    return Err(anyhow!(
                        "not connected: neither acclientd ({}) nor an `acclient connect` ({}) is running",
                        agent_client::socket_path().display(),
                        path.display()
                    ))
                }
            };
            let mut buf = String::new();
            c.read_to_string(&mut buf).await?;
            serde_json::from_str(&buf).context("bad status answer")?
        }
    };
    if json {
        println!("{v}");
        return Ok(0);
    }
    let g = |p: &str| -> String {
        match v.pointer(p) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".into(),
            Some(x) => x.to_string(),
        }
    };
    // The layout of IOS `show crypto ikev2 sa detail` and `show crypto ipsec sa`.
    println!(
        "IKEv2 SA: Status {}, {} reconnect(s), up {} s",
        g("/state"),
        g("/reconnects"),
        g("/uptime_s")
    );
    println!(
        "  Local {}  Remote {}  NAT-T {}{}",
        g("/local"),
        g("/remote"),
        g("/nat_t"),
        if v.pointer("/behind_nat") == Some(&serde_json::Value::Bool(true)) {
            " (we are behind NAT)"
        } else {
            ""
        }
    );
    println!("      Encryption/PRF/DH: {}", g("/ike/algorithms"));
    println!(
        "      Local spi: {}  Remote spi: {}",
        g("/ike/spi_i"),
        g("/ike/spi_r")
    );
    println!(
        "      Rekey in: {} sec, rekeys done: {}",
        g("/ike/rekey_in_s"),
        g("/ike/rekeys")
    );
    println!("      DPD configured for {} seconds, last heard {} s ago, probe in flight: {}, answered {}",
        g("/dpd/interval_s"), g("/dpd/last_heard_s"), g("/dpd/probe_in_flight"), g("/dpd/answered"));
    if v.pointer("/session_id").is_some_and(|x| !x.is_null()) {
        println!(
            "      AnyConnect session: {}{}",
            g("/session_id"),
            if v.pointer("/session_resumed") == Some(&serde_json::Value::Bool(true)) {
                " (resumed with its token after a reconnect)"
            } else {
                ""
            }
        );
    }
    println!(
        "      IKE messages: {} sent, {} received, {} retransmits, {} dropped",
        g("/ike/sent"),
        g("/ike/received"),
        g("/ike/retransmits"),
        g("/ike/dropped")
    );
    println!();
    println!(
        "interface: {}  addresses: {}  MTU {}",
        g("/interface"),
        v.pointer("/addresses")
            .and_then(|a| a.as_array())
            .map(|a| a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        g("/mtu")
    );
    println!(
        "   local  ident: {}",
        v.pointer("/child/ts_local")
            .map(|x| x.to_string())
            .unwrap_or_default()
    );
    println!(
        "   remote ident: {}",
        v.pointer("/child/ts_remote")
            .map(|x| x.to_string())
            .unwrap_or_default()
    );
    println!(
        "    #pkts encaps: {}, #bytes: {}, #send errors: {}",
        g("/esp/tx_packets"),
        g("/esp/tx_bytes"),
        g("/esp/drop_tx")
    );
    println!(
        "    #pkts decaps: {}, #bytes: {}",
        g("/esp/rx_packets"),
        g("/esp/rx_bytes")
    );
    println!("    #pkts replay failed: {}, #pkts auth failed (ICV): {}, #pkts invalid spi: {}, #pkts malformed: {}",
        g("/esp/drop_replay"), g("/esp/drop_integrity"), g("/esp/drop_unknown_spi"), g("/esp/drop_malformed"));
    println!("    #NAT-T keepalives sent: {}", g("/esp/keepalives"));
    println!("     inbound esp sas:");
    println!(
        "      spi: 0x{}  transform: {}",
        g("/child/spi_in"),
        g("/child/algorithms")
    );
    println!(
        "        sa timing: rekey in (sec): {}",
        g("/child/rekey_in_s")
    );
    println!("     outbound esp sas:");
    println!(
        "      spi: 0x{}  transform: {}",
        g("/child/spi_out"),
        g("/child/algorithms")
    );
    Ok(0)
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn until_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGHUP (the terminal closed, ssh dropped) is a request to leave like
    // SIGTERM: without a handler it would kill us before the teardown.
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    eprintln!("Disconnecting...");
}

/// A prompt's blocking task, or `None` when a signal (Ctrl-C, SIGTERM,
/// SIGHUP) comes first: a person leaving at a prompt must not have to press
/// Enter before the teardown starts.
async fn or_signal<T>(
    task: tokio::task::JoinHandle<T>,
) -> Option<Result<T, tokio::task::JoinError>> {
    tokio::select! {
        r = task => Some(r),
        _ = until_signal() => None,
    }
}

/// The human-readable summary of a connection (connect and probe).
fn print_connected(
    p: &Plan,
    cfg: &acclient_core::TunnelConfig,
    st: Option<&driver::Status>,
    ms: u128,
) {
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let nets = |v: &[(std::net::IpAddr, u8)]| {
        v.iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect::<Vec<_>>()
    };
    println!("Connected to {} ({}) in {ms} ms", p.label, p.gateway);
    println!("  address:     {}", list(nets(&cfg.addresses)));
    println!(
        "  DNS:         {}",
        list(cfg.dns.iter().map(|d| d.to_string()).collect())
    );
    if !cfg.nbns.is_empty() {
        println!(
            "  NBNS:        {}",
            list(cfg.nbns.iter().map(|d| d.to_string()).collect())
        );
    }
    if !cfg.subnets.is_empty() {
        println!("  subnets:     {}", list(nets(&cfg.subnets)));
    }
    if !cfg.domains.is_empty() {
        println!("  domains:     {}", cfg.domains.join(", "));
    }
    // The banner was shown (and accepted) when it arrived: not again here.
    println!(
        "  local TS:    {}",
        list(cfg.ts_local.iter().map(|t| t.to_string()).collect())
    );
    println!(
        "  remote TS:   {}",
        list(cfg.ts_remote.iter().map(|t| t.to_string()).collect())
    );
    if let Some(s) = st {
        println!(
            "  IKE SA:      {}, SPIs {}_i {}_r{}",
            s.ike.algorithms.clone().unwrap_or_default(),
            s.ike.spi_i,
            s.ike.spi_r,
            if s.nat_t { ", NAT-T (UDP 4500)" } else { "" }
        );
        println!(
            "  CHILD SA:    {}, SPIs {}_i {}_o, tunnel mode",
            s.child.algorithms.clone().unwrap_or_default(),
            s.child.spi_in.as_deref().unwrap_or("00000000"),
            s.child.spi_out.as_deref().unwrap_or("00000000"),
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

fn print_result(
    p: &Plan,
    cfg: &acclient_core::TunnelConfig,
    st: Option<&driver::Status>,
    ms: u128,
    json: bool,
) {
    if json {
        // The same schema as `status --json`; the connect time as measured here.
        let mut st = st.cloned().unwrap_or_default();
        st.connect_ms = Some(ms as u64);
        println!("{}", status_json(&st));
    } else {
        print_connected(p, cfg, st, ms);
        if let Some(s) = st {
            let c = &s.stats;
            println!(
                "  IKE packets: {} sent, {} received, {} retransmits, {} dropped; DPD answered {}; rekeys IKE {} CHILD {}",
                c.ike_sent, c.ike_received, c.retransmits, c.dropped, c.dpd_answered, c.ike_rekeys, c.child_rekeys
            );
        }
        println!("Disconnected (DELETE sent).");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AutoReconnectBehavior: the schema's default is DisconnectOnSuspend;
    /// values are matched as real profiles write them (case, whitespace).
    #[test]
    fn suspend_policy_follows_the_profile() {
        assert!(suspend_policy(None), "schema default");
        assert!(suspend_policy(Some("DisconnectOnSuspend")));
        assert!(!suspend_policy(Some(" ReconnectAfterResume\r\n")));
        assert!(!suspend_policy(Some("reconnectafterresume")));
        assert!(suspend_policy(Some("Sometimes")), "unknown: the default");
    }

    /// The demo profile says ReconnectAfterResume; `--on-suspend` overrides.
    #[test]
    fn on_suspend_flag_overrides_the_profile() {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles/demo.xml");
        let parse = |extra: &[&str]| {
            let mut v = vec!["acclient", "connect", "--profile", demo];
            v.extend_from_slice(extra);
            let Cmd::Connect(a) = Cli::try_parse_from(v).expect("flags").cmd else {
                panic!("not connect")
            };
            plan(&a).expect("plan").disconnect_on_suspend
        };
        assert!(!parse(&[]));
        assert!(parse(&["--on-suspend", "disconnect"]));
        assert!(!parse(&["--on-suspend", "reconnect"]));
        assert!(Cli::try_parse_from(["acclient", "connect", "--on-suspend", "later"]).is_err());
    }

    /// Every numeric flag is bounded: the values that once panicked
    /// ("overflow when adding duration to instant") or underflowed
    /// (`--fragment-size 0..3`) are refused by name, and what the flags
    /// allow is what the engine's `Settings::validate` accepts.
    #[test]
    fn numeric_flags_are_bounded() {
        let huge = "18446744073709551615";
        for (flag, v) in [
            ("--ike-lifetime", huge),
            ("--child-lifetime", huge),
            ("--dpd", huge),
            ("--hold", huge),
            ("--timeout", huge),
            ("--timeout", "0"),
            ("--fragment-size", "0"),
            ("--fragment-size", "3"),
            ("--fragment-size", "70000"),
            ("--retries", "1000"),
            ("--mtu", "10"),
            ("--ping-count", "0"),
        ] {
            let r = Cli::try_parse_from(["acclient", "connect", "--server", "192.0.2.1", flag, v]);
            let e = r.err().unwrap_or_else(|| panic!("{flag} {v} accepted"));
            assert!(e.to_string().contains(flag), "{flag} {v}: {e}");
        }
        for extremes in [
            [
                "--ike-lifetime",
                "2592000",
                "--child-lifetime",
                "5",
                "--dpd",
                "86400",
            ],
            [
                "--ike-lifetime",
                "10",
                "--child-lifetime",
                "2592000",
                "--dpd",
                "0",
            ],
        ] {
            let mut v = vec!["acclient", "connect", "--server", "192.0.2.1"];
            v.extend_from_slice(&extremes);
            v.extend_from_slice(&["--fragment-size", "256", "--retries", "30"]);
            let Cmd::Connect(a) = Cli::try_parse_from(v).expect("in range").cmd else {
                panic!("not connect")
            };
            let gw = "192.0.2.1:500".parse().unwrap();
            let mut s = Settings::new(
                gw,
                gw,
                Identity::Address,
                AuthMethod::Psk(Secret::new(b"k".to_vec())),
            );
            apply_numeric_flags(&mut s, &a);
            assert_eq!(s.validate(), Ok(()), "{extremes:?}");
        }
    }
}
