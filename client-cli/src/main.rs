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

macro_rules! print {
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)+);
    }};
}

macro_rules! eprint {
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)+);
    }};
}

mod agent_client;
mod output;
use output::note;
mod inprocess;
use inprocess::probe;
mod plan;
use plan::*;
mod prompt;
mod report;
use prompt::{fill_form, host_scan, prompt_line, restore_tty, FormText, StdinPasswords};
use report::{print_connected, print_result, status_cmd, status_json};

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
    /// Less output: no progress lines or summary, only prompts, errors and
    /// what was asked for (JSON, status).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Prefix progress lines with the time (UTC).
    #[arg(long, global = true)]
    timestamp: bool,
    /// Progress lines and logs to syslog (/dev/log, the journal) instead of
    /// stderr; errors go to both.
    #[arg(long, global = true)]
    syslog: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect and stay connected until Ctrl-C (SIGINT) or SIGTERM, then disconnect cleanly.
    Connect(Box<ConnectCli>),
    /// Connect, authenticate, set up the CHILD SA, print what the gateway gave, disconnect.
    Probe(Box<ProbeCli>),
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

/// Options of both `connect` and `probe`.
#[derive(Args, Clone)]
struct CommonArgs {
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
    /// Do not ask the gateway for IPv6 (an address and IPv6 traffic
    /// selectors); by default both are asked for, as openconnect and Cisco's
    /// client do.
    #[arg(long)]
    disable_ipv6: bool,
    /// The default now (IPv6 is asked for); kept so older scripts still run.
    #[arg(long, hide = true, conflicts_with = "disable_ipv6")]
    ipv6: bool,
    /// Never prompt; fail instead.
    #[arg(long)]
    non_inter: bool,
    /// Write IKE SA keys in Wireshark's ikev2_decryption_table format (troubleshooting only!).
    #[arg(long)]
    ike_keylog: Option<PathBuf>,
    /// Give up after this many seconds (1..=86400).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Rekey the IKE SA ourselves after about this many seconds (10..=2592000).
    #[arg(long, default_value_t = 4 * 3600, value_parser = secs_in(&limits::IKE_LIFETIME_S))]
    ike_lifetime: u64,
    /// Rekey the CHILD SA ourselves after about this many seconds (5..=2592000).
    #[arg(long, default_value_t = 3600, value_parser = secs_in(&limits::CHILD_LIFETIME_S))]
    child_lifetime: u64,
    /// Client certificate for gateways that ask for one: PEM chain (end entity
    /// first, with --key) or a PKCS#12 file (.p12/.pfx, key included).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Passphrase of a PKCS#12 --cert or an encrypted --key (asked on the
    /// terminal if missing). Visible to other local users in the process
    /// list, as openconnect's is.
    #[arg(long)]
    key_password: Option<String>,
    /// The client certificate's private key, RSA or ECDSA (PEM: PKCS#1, SEC1,
    /// PKCS#8 or encrypted PKCS#8).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Host-scan (posture) wrapper, run like openconnect's --csd-wrapper when the
    /// gateway asks for posture assessment.
    #[arg(long)]
    csd_wrapper: Option<PathBuf>,
    /// The application version we report (CP attribute 7, as openconnect's
    /// User-Agent; default "AnyConnect Linux VERSION").
    #[arg(long, value_name = "STRING")]
    useragent: Option<String>,
    /// The OS we report as device-id: linux, linux-64 (default), win,
    /// mac-intel, android, apple-ios.
    #[arg(long, value_name = "NAME")]
    os: Option<String>,
    /// The client version we report in the login XML (default: acclient's).
    #[arg(long, value_name = "STRING")]
    version_string: Option<String>,
    /// The host name we report (default: this machine's).
    #[arg(long, value_name = "NAME")]
    local_hostname: Option<String>,
    /// Answer field OPT of login form FORM (its `<auth id>`: main,
    /// challenge, …) with VALUE, as openconnect does; repeatable. A password
    /// given this way is visible in the process list.
    #[arg(short = 'F', long, value_name = "FORM:OPT=VALUE", value_parser = form_entry)]
    form_entry: Vec<(String, String, String)>,
    /// Remember the user name for this host in your keyring (Secret Service)
    /// once logged in; later connects to the host use it when --user is
    /// not given.
    #[arg(long)]
    save_user: bool,
    /// Run --csd-wrapper as this user (openconnect's option; default
    /// `nobody` when acclient runs as root, else yourself), with a clean
    /// environment.
    #[arg(long, value_name = "USER")]
    csd_user: Option<String>,
    /// Retransmissions of an unanswered request before giving up (0..=30;
    /// default 7, ~27 s, or what the profile's AuthenticationTimeout allows).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=30))]
    retries: Option<u32>,
    /// Try IKEv2 with a profile host whose PrimaryProtocol is SSL (or not
    /// given: the schema's default), which acclient otherwise refuses.
    #[arg(long, value_name = "ikev2", value_parser = ["ikev2"])]
    protocol: Option<String>,
    /// Dead peer detection interval in seconds when the gateway sends none (0: off; at most 86400).
    #[arg(long, default_value_t = 30, value_parser = secs_in(&limits::DPD_S))]
    dpd: u64,
    /// Do not reconnect when the gateway is lost (default: the profile's AutoReconnect, else on).
    #[arg(long)]
    no_reconnect: bool,
    /// After the machine slept: `disconnect` (end the session) or `reconnect`
    /// (check the gateway, reconnect if it is gone). Default: the profile's
    /// AutoReconnectBehavior (Cisco's default DisconnectOnSuspend when a
    /// profile does not say), else reconnect.
    #[arg(long, value_name = "disconnect|reconnect", value_parser = ["disconnect", "reconnect"])]
    on_suspend: Option<String>,
}

/// Options of `connect` only: the tunnel device, routes, DNS, the agent.
#[derive(Args, Clone)]
#[command(next_help_heading = "Tunnel, routes, DNS and the agent")]
struct ConnectOnly {
    /// In a full tunnel without an IPv6 address, let IPv6 use the machine's
    /// own routes. By default it is sent into the tunnel device and dropped
    /// (counted in `status`), so it cannot leak around the tunnel.
    #[arg(long)]
    allow_ipv6_bypass: bool,
    /// Tunnel device name.
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
    /// Keep trying to reconnect a lost session for this many seconds (1-604800).
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = secs_in(&limits::RECONNECT_TIMEOUT_S))]
    reconnect_timeout: u64,
    /// Write our PID to FILE while connected (removed at the end); the
    /// PID to send SIGTERM, SIGUSR1 (status) or SIGUSR2 (reconnect) to.
    #[arg(long, value_name = "FILE", conflicts_with = "background")]
    pid_file: Option<PathBuf>,
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

/// Options of `probe` only.
#[derive(Args, Clone)]
#[command(next_help_heading = "Probe")]
struct ProbeOnly {
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// After connecting, ping this IPv4 address through ESP: a data-plane
    /// check without a tunnel device (the replies are counted in the output).
    #[arg(long)]
    ping: Option<std::net::Ipv4Addr>,
    /// Echo requests for --ping.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    ping_count: u16,
    /// Stay connected this many seconds before disconnecting (answers DPD and rekeys meanwhile; at most 30 days).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    hold: u64,
}

/// `acclient connect`'s command line.
#[derive(Args, Clone)]
struct ConnectCli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    only: ConnectOnly,
}

/// `acclient probe`'s command line.
#[derive(Args, Clone)]
struct ProbeCli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    only: ProbeOnly,
}

/// What one connect or probe was asked for: the shared options (reached
/// through `Deref`) and each subcommand's own, the other's at their
/// defaults.
#[derive(Clone)]
struct ConnectArgs {
    common: CommonArgs,
    connect: ConnectOnly,
    probe: ProbeOnly,
    /// Set by `connect`: stay up until a signal.
    until_signal: bool,
    /// Which of the profile host's servers this attempt uses: 0 the
    /// HostAddress, then its BackupServerList in order.
    server_index: usize,
}

/// `FORM:OPT=VALUE` of `--form-entry`.
fn form_entry(s: &str) -> std::result::Result<(String, String, String), String> {
    let bad = || format!("{s:?} is not FORM:OPT=VALUE (e.g. main:password=secret)");
    let (form, rest) = s.split_once(':').ok_or_else(bad)?;
    let (opt, value) = rest.split_once('=').ok_or_else(bad)?;
    if form.is_empty() || opt.is_empty() {
        return Err(bad());
    }
    Ok((form.to_string(), opt.to_string(), value.to_string()))
}

impl CommonArgs {
    /// The `--form-entry` value for field `opt` of form `form`, if any.
    fn form_entry_for(&self, form: &str, opt: &str) -> Option<&str> {
        self.form_entry
            .iter()
            .find(|(f, o, _)| f == form && o == opt)
            .map(|(_, _, v)| v.as_str())
    }

    /// `--useragent`, `--os`, `--version-string`, `--local-hostname`.
    fn description(&self) -> acclient_core::settings::ClientDescription {
        acclient_core::settings::ClientDescription {
            useragent: self.useragent.clone(),
            os: self.os.clone(),
            version: self.version_string.clone(),
            hostname: self.local_hostname.clone(),
        }
    }
}

impl std::ops::Deref for ConnectArgs {
    type Target = CommonArgs;
    fn deref(&self) -> &CommonArgs {
        &self.common
    }
}

impl std::ops::DerefMut for ConnectArgs {
    fn deref_mut(&mut self) -> &mut CommonArgs {
        &mut self.common
    }
}

/// A clap `Args` group with every option at its default.
fn defaults<T: Args + clap::FromArgMatches>() -> T {
    let m = T::augment_args(clap::Command::new("defaults"))
        .no_binary_name(true)
        .get_matches_from(std::iter::empty::<String>());
    T::from_arg_matches(&m).expect("defaults parse")
}

impl From<ConnectCli> for ConnectArgs {
    fn from(c: ConnectCli) -> Self {
        ConnectArgs {
            common: c.common,
            connect: c.only,
            probe: defaults(),
            until_signal: true,
            server_index: 0,
        }
    }
}

impl From<ProbeCli> for ConnectArgs {
    fn from(c: ProbeCli) -> Self {
        ConnectArgs {
            common: c.common,
            connect: defaults(),
            probe: c.only,
            until_signal: false,
            server_index: 0,
        }
    }
}

/// The long options of one subcommand only, to name the right one when an
/// option is given to the other.
fn long_options<T: Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("x"))
        .get_arguments()
        .flat_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|c| format!("-{c}"));
            long.into_iter().chain(short)
        })
        .collect()
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
    s.retransmit.tries = a.retries.unwrap_or(s.retransmit.tries);
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
fn check_mode(a: &ConnectArgs, _connect: bool) -> Result<()> {
    if a.host.is_some() && a.profile.is_none() {
        return Err(usage(
            "--host names an entry of --profile; without a profile give the gateway with --server",
        ));
    }
    Ok(())
}

/// An option of `probe` given to `connect` (or the reverse) is named as
/// such, rather than as clap's bare "unexpected argument".
fn other_subcommands_option(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next().unwrap_or(arg);
    let sub = std::env::args().skip(1).find(|a| !a.starts_with('-'))?;
    match sub.as_str() {
        "connect" if long_options::<ProbeOnly>().iter().any(|l| l == flag) => Some(format!(
            "{flag} is an option of `acclient probe`, not of `connect` (use `acclient status --json` for a running session)"
        )),
        "probe" if long_options::<ConnectOnly>().iter().any(|l| l == flag) => Some(format!(
            "{flag} is an option of `acclient connect` (probe sets up no tunnel device)"
        )),
        _ => None,
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if let Some(m) = other_subcommands_option(&e) {
                eprintln!("acclient: {m}");
                std::process::exit(EXIT_USAGE)
            }
            let code = if e.exit_code() == 0 { 0 } else { EXIT_USAGE };
            let _ = e.print();
            std::process::exit(code)
        }
    };
    if let Err(e) = output::init(cli.quiet, cli.timestamp, cli.syslog) {
        eprintln!("acclient: {e}");
        std::process::exit(1)
    }
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACCLIENT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(output::log_writer)
        .with_ansi(std::io::stderr().is_terminal() && !cli.syslog)
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
            let a = ConnectArgs::from(*a);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let r = rt.block_on(over_servers(a, connect_cmd));
            // A prompt abandoned by Ctrl-C still has a thread blocked on the
            // terminal; dropping the runtime would wait for it (for Enter).
            rt.shutdown_background();
            r
        }
        Cmd::Disconnect => rt().block_on(agent_client::disconnect()),
        Cmd::GenerateDocs { dir } => generate_docs(&dir).map(|_| 0),
        Cmd::State => rt().block_on(agent_client::state()),
        Cmd::Probe(a) => {
            let a = ConnectArgs::from(*a);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let r = check_mode(&a, false).and_then(|_| rt.block_on(over_servers(a, probe)));
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
            crate::output::error(&format!("acclient: {e:#}"));
            std::process::exit(EXIT_USAGE)
        }
        Err(e) => {
            restore_tty();
            crate::output::error(&format!("acclient: {e:#}"));
            std::process::exit(1)
        }
    }
}

fn profiles(file: &PathBuf) -> Result<()> {
    use acclient_core::profile::Protocol;
    let text =
        read_limited(file, MAX_FILE).with_context(|| format!("cannot read {}", file.display()))?;
    let p = acclient_core::profile::parse(&text).with_context(|| format!("{}", file.display()))?;
    if p.hosts.is_empty() {
        bail!(
            "{}: the profile has no HostEntry in its ServerList",
            file.display()
        );
    }
    // What `connect --host NAME` will actually do with each entry.
    let rows: Vec<[String; 5]> = p
        .hosts
        .iter()
        .map(|h| {
            [
                h.name.clone(),
                h.connect_address().to_string(),
                h.user_group.clone().unwrap_or_else(|| "-".into()),
                match (h.protocol(), &h.primary_protocol) {
                    (Protocol::Ipsec, _) => "IPsec (IKEv2)".into(),
                    (Protocol::Ssl, Some(_)) => {
                        "SSL: not spoken (--protocol ikev2 tries IKEv2)".into()
                    }
                    (Protocol::Ssl, None) => {
                        "SSL (default): not spoken (--protocol ikev2 tries IKEv2)".into()
                    }
                },
                h.login(),
            ]
        })
        .collect();
    let head = ["HOST", "ADDRESS", "GROUP", "PROTOCOL", "LOGIN"];
    let mut w = [0usize; 5];
    for r in rows
        .iter()
        .map(|r| r.each_ref().map(|s| s.as_str()))
        .chain([head])
    {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                s += &format!("{c:<width$}  ", width = w[i]);
            } else {
                s += c;
            }
        }
        println!("{}", s.trim_end());
    };
    line(head);
    for (r, h) in rows.iter().zip(&p.hosts) {
        line(r.each_ref().map(|s| s.as_str()));
        if !h.backup_servers.is_empty() {
            println!("  backup servers: {}", h.backup_servers.join(", "));
        }
    }
    if let Some(t) = p.authentication_timeout {
        println!("AuthenticationTimeout: {t} s");
    }
    Ok(())
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
    // The PID that SIGTERM, SIGUSR1 and SIGUSR2 go to, while it runs.
    let _pid = match &a.connect.pid_file {
        Some(f) => Some(PidFile::write(f)?),
        None => None,
    };
    if !a.connect.no_agent {
        match agent_client::Agent::open().await {
            Ok(agent) => return connect_via_agent(agent, a).await,
            Err(agent_client::NoAgent::Refused(m)) => bail!("{m}"),
            Err(agent_client::NoAgent::Absent) => {}
        }
    }
    if a.connect.background {
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

/// Set once a session came up in this process (the failover below does
/// not apply to a session that was lost later).
pub(crate) static CAME_UP: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The profile host's HostAddress, then its BackupServerList in order, as
/// Cisco's client tries them: the next one only while the one before gave
/// no answer (exit 4) and no session ever came up.
async fn over_servers<F, Fut>(a: ConnectArgs, one: F) -> Result<i32>
where
    F: Fn(ConnectArgs) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let servers = servers_of(&a);
    let mut a = a;
    // A user name remembered in the keyring for this host, when none given.
    let label = host_label(&a);
    if a.user.is_none() {
        if let Some(l) = label.clone() {
            // Bounded: a session bus whose keyring service never starts must
            // not hold up the connect (the lookup is only a convenience).
            let saved = tokio::time::timeout(
                KEYRING_WAIT,
                tokio::task::spawn_blocking(move || {
                    acclient_core::secrets::Keyring::secret_service().and_then(|k| k.user(&l))
                }),
            )
            .await
            .unwrap_or_else(|_| Ok(Err("no answer from the keyring".into())));
            match saved {
                Ok(Ok(Some(u))) => {
                    note(&format!("User name {u} (remembered in your keyring)."));
                    a.common.user = Some(u);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!("no remembered user name: {e}"),
                Err(e) => tracing::debug!("keyring task: {e}"),
            }
        }
    }
    let save = match (&label, &a.user) {
        (Some(l), Some(u)) if a.save_user => Some((l.clone(), u.clone())),
        _ => None,
    };
    let r = over_servers_loop(a, servers, one).await;
    if let (Some((l, u)), true) = (save, CAME_UP.load(std::sync::atomic::Ordering::Relaxed)) {
        let host = l.clone();
        let saved = tokio::time::timeout(
            KEYRING_WAIT,
            tokio::task::spawn_blocking(move || {
                acclient_core::secrets::Keyring::secret_service().and_then(|k| k.save_user(&l, &u))
            }),
        )
        .await
        .unwrap_or_else(|_| Ok(Err("no answer from the keyring within 5 s".into())));
        match saved {
            Ok(Ok(())) => note(&format!(
                "Remembered the user name for {host} in your keyring."
            )),
            Ok(Err(e)) => crate::output::error(&format!("acclient: --save-user: {e}")),
            Err(e) => crate::output::error(&format!("acclient: --save-user: {e}")),
        }
    }
    r
}

/// How long a keyring call may take before we go on without it.
const KEYRING_WAIT: Duration = Duration::from_secs(5);

/// What the keyring keys a host by: the profile entry's HostName, else
/// the server as given.
fn host_label(a: &ConnectArgs) -> Option<String> {
    match (&a.profile, &a.common.server) {
        (Some(p), None) => read_limited(p, MAX_FILE)
            .ok()
            .and_then(|t| acclient_core::profile::parse(&t).ok())
            .and_then(|prof| prof.select(a.host.as_deref()).ok().map(|h| h.name.clone())),
        (_, Some(s)) => Some(s.clone()),
        (None, None) => None,
    }
}

async fn over_servers_loop<F, Fut>(a: ConnectArgs, servers: Vec<String>, one: F) -> Result<i32>
where
    F: Fn(ConnectArgs) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let mut a = a;
    loop {
        let r = one(a.clone()).await;
        let next = a.server_index + 1;
        match r {
            Ok(4)
                if next < servers.len() && !CAME_UP.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                note(&format!(
                    "No answer from {}; trying backup server {} ({} of {}).",
                    servers[a.server_index],
                    servers[next],
                    next,
                    servers.len() - 1
                ));
                a.server_index = next;
            }
            r => return r,
        }
    }
}

/// `--pid-file`: our PID while we run, removed when we end (if it is still
/// ours).
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &PathBuf) -> Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("--pid-file {}", path.display()))?;
        Ok(PidFile(path.clone()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = format!("{}\n", std::process::id());
        if std::fs::read_to_string(&self.0).is_ok_and(|s| s == ours) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
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
        ipv6: !a.disable_ipv6,
        client: a.description(),
        allow_ipv6_bypass: a.connect.allow_ipv6_bypass,
        fragment_size: Some(a.fragment_size.into()),
        ike_lifetime: Some(a.ike_lifetime),
        child_lifetime: Some(a.child_lifetime),
        dpd: Some(a.dpd),
        retries: Some(p.retries),
        reconnect: !a.no_reconnect && p.auto_reconnect != Some(false),
        reconnect_timeout: Some(a.connect.reconnect_timeout),
        disconnect_on_suspend: p.disconnect_on_suspend,
        local_lan: if a.connect.no_local_lan {
            false
        } else {
            a.connect.local_lan || p.local_lan.unwrap_or(true)
        },
        split_include: a.connect.split_include.clone(),
        split_exclude: a.connect.split_exclude.clone(),
        no_dns: a.connect.no_dns,
        mtu: a.connect.mtu,
        interface: Some(a.connect.interface.clone()),
        ..Default::default()
    };
    if a.connect.script.is_some() {
        bail!("--script runs a program as root: not through acclientd (use --no-agent as root)");
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
                id,
                title,
                banner,
                message,
                error,
                fields,
            } => {
                let text = FormText {
                    id,
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
            // Run here, as the user who asked (the agent never runs it).
            P::HostScan { scan } => A::Accept {
                yes: host_scan(&self.a, scan, &self.p)?,
            },
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

/// The first `--passwd-on-stdin` line, read off the runtime thread (stdin
/// may be a pipe that is slow to deliver).
/// The first line of stdin, read once: a backup server's attempt after
/// the primary gave no answer logs in with the same password.
async fn stdin_password() -> Result<Secret> {
    static FIRST: std::sync::Mutex<Option<Secret>> = std::sync::Mutex::new(None);
    if let Some(s) = FIRST.lock().ok().and_then(|g| g.clone()) {
        return Ok(s);
    }
    let s = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Ok::<_, anyhow::Error>(Secret::new(
            line.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        ))
    })
    .await
    .map_err(|e| anyhow!("stdin task: {e}"))??;
    if let Ok(mut g) = FIRST.lock() {
        *g = Some(s.clone());
    }
    Ok(s)
}

async fn connect_via_agent(agent: agent_client::Agent, a: ConnectArgs) -> Result<i32> {
    let p = plan(&a)?;
    let req = connect_request(&a, &p)?;
    let first = if a.passwd_on_stdin {
        Some(stdin_password().await?)
    } else {
        None
    };
    let interactive = !a.non_inter && std::io::stdin().is_terminal() && !a.passwd_on_stdin;
    let passwords = StdinPasswords::new(first, a.passwd_on_stdin);
    let (background, timeout) = (a.connect.background, Duration::from_secs(a.timeout));
    let answers = Box::new(CliAnswers {
        a,
        p,
        interactive,
        passwords,
    });
    agent_client::connect(agent, req, background, timeout, answers).await
}

/// SIGUSR1 and SIGUSR2, as openconnect reads them.
pub(crate) enum UserSignal {
    /// SIGUSR1: print the status.
    Status,
    /// SIGUSR2: close the session and log in again.
    Reconnect,
}

/// The two user signals as one stream (pending forever if the handlers
/// cannot be installed).
pub(crate) struct UserSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl UserSignals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        UserSignals(
            signal(SignalKind::user_defined1())
                .and_then(|a| Ok((a, signal(SignalKind::user_defined2())?)))
                .ok(),
        )
    }

    pub(crate) async fn next(&mut self) -> UserSignal {
        match self.0.as_mut() {
            Some((u1, u2)) => tokio::select! {
                _ = u1.recv() => UserSignal::Status,
                _ = u2.recv() => UserSignal::Reconnect,
            },
            None => std::future::pending().await,
        }
    }
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
    note("Disconnecting...");
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
            plan(&ConnectArgs::from(*a))
                .expect("plan")
                .disconnect_on_suspend
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
            let sub = if ["--hold", "--ping-count"].contains(&flag) {
                "probe"
            } else {
                "connect"
            };
            let r = Cli::try_parse_from(["acclient", sub, "--server", "192.0.2.1", flag, v]);
            let e = r.err().unwrap_or_else(|| panic!("{flag} {v} accepted"));
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag} {v}: {e}"
            );
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
            apply_numeric_flags(&mut s, &ConnectArgs::from(*a));
            assert_eq!(s.validate(), Ok(()), "{extremes:?}");
        }
    }
}
