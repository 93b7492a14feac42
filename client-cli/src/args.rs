//! The command line of `connect` and `probe`: options both take
//! (`CommonArgs`), each one's own, and what one attempt was asked for
//! (`ConnectArgs`); usage errors (exit 64) and the options of one
//! subcommand given to the other.

use super::*;

/// Options of both `connect` and `probe`.
#[derive(Args, Clone)]
pub(crate) struct CommonArgs {
    /// AnyConnect XML profile.
    #[arg(long)]
    pub(crate) profile: Option<PathBuf>,
    /// Host entry (HostName or HostAddress) in the profile.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Gateway address (host[:port]) when not using a profile.
    #[arg(long, conflicts_with = "profile")]
    pub(crate) server: Option<String>,
    /// User name (EAP identity; also our IKE identity unless the profile sets IKEIdentity).
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub(crate) passwd_on_stdin: bool,
    /// Authenticate with the pre-shared key in this file (first line).
    #[arg(long)]
    pub(crate) psk_file: Option<PathBuf>,
    /// Log in with EAP-AnyConnect (Cisco ASA / IOS "aggregate auth") when not using a profile.
    #[arg(long, conflicts_with_all = ["eap", "psk_file"])]
    pub(crate) anyconnect: bool,
    /// Tunnel group to select (AnyConnect; default: the profile's UserGroup).
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// EAP method when the profile does not say: mschapv2, md5 or gtc.
    #[arg(long, value_parser = ["mschapv2", "md5", "gtc"])]
    pub(crate) eap: Option<String>,
    /// Trust anchors (PEM) for the gateway's certificate; default: the system store.
    #[arg(long)]
    pub(crate) cafile: Option<PathBuf>,
    /// Accept the gateway certificate with this public key hash (pin-sha256:BASE64).
    #[arg(long)]
    pub(crate) servercert: Vec<String>,
    /// Identity the gateway must present (IDr), e.g. vpn.example.com.
    #[arg(long)]
    pub(crate) remote_id: Option<String>,
    /// Local address to send from.
    #[arg(long)]
    pub(crate) source: Option<IpAddr>,
    /// Local IKE port (default 500 as root, else any).
    #[arg(long)]
    pub(crate) source_port: Option<u16>,
    /// Also offer legacy algorithms (3DES, SHA-1, MODP 1024/1536).
    #[arg(long)]
    pub(crate) legacy: bool,
    /// Also offer MODP-768 (DH group 1), as very old Cisco head-ends need (seed 004). Weak.
    #[arg(long)]
    pub(crate) legacy_modp768: bool,
    /// Largest IKE datagram before fragmenting (RFC 7383).
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u16).range(256..))]
    pub(crate) fragment_size: u16,
    /// Do not ask the gateway for IPv6 (an address and IPv6 traffic
    /// selectors); by default both are asked for, as openconnect and Cisco's
    /// client do.
    #[arg(long)]
    pub(crate) disable_ipv6: bool,
    /// The default now (IPv6 is asked for); kept so older scripts still run.
    #[arg(long, hide = true, conflicts_with = "disable_ipv6")]
    pub(crate) ipv6: bool,
    /// Never prompt; fail instead.
    #[arg(long)]
    pub(crate) non_inter: bool,
    /// Write IKE SA keys in Wireshark's ikev2_decryption_table format (troubleshooting only!).
    #[arg(long)]
    pub(crate) ike_keylog: Option<PathBuf>,
    /// Give up after this many seconds (1..=86400).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) timeout: u64,
    /// Rekey the IKE SA ourselves after about this many seconds (10..=2592000).
    #[arg(long, default_value_t = 4 * 3600, value_parser = secs_in(&limits::IKE_LIFETIME_S))]
    pub(crate) ike_lifetime: u64,
    /// Rekey the CHILD SA ourselves after about this many seconds (5..=2592000).
    #[arg(long, default_value_t = 3600, value_parser = secs_in(&limits::CHILD_LIFETIME_S))]
    pub(crate) child_lifetime: u64,
    /// Client certificate for gateways that ask for one: PEM chain (end entity
    /// first, with --key) or a PKCS#12 file (.p12/.pfx, key included).
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// Passphrase of a PKCS#12 --cert or an encrypted --key (asked on the
    /// terminal if missing). Visible to other local users in the process
    /// list, as openconnect's is.
    #[arg(long)]
    pub(crate) key_password: Option<String>,
    /// The client certificate's private key, RSA or ECDSA (PEM: PKCS#1, SEC1,
    /// PKCS#8 or encrypted PKCS#8).
    #[arg(long, requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Host-scan (posture) wrapper, run like openconnect's --csd-wrapper when the
    /// gateway asks for posture assessment.
    #[arg(long)]
    pub(crate) csd_wrapper: Option<PathBuf>,
    /// The application version we report (CP attribute 7, as openconnect's
    /// User-Agent; default "AnyConnect Linux VERSION").
    #[arg(long, value_name = "STRING")]
    pub(crate) useragent: Option<String>,
    /// The OS we report as device-id: linux, linux-64 (default), win,
    /// mac-intel, android, apple-ios.
    #[arg(long, value_name = "NAME")]
    pub(crate) os: Option<String>,
    /// The client version we report in the login XML (default: acclient's).
    #[arg(long, value_name = "STRING")]
    pub(crate) version_string: Option<String>,
    /// The host name we report (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub(crate) local_hostname: Option<String>,
    /// Answer field OPT of login form FORM (its `<auth id>`: main,
    /// challenge, …) with VALUE, as openconnect does; repeatable. A password
    /// given this way is visible in the process list.
    #[arg(short = 'F', long, value_name = "FORM:OPT=VALUE", value_parser = form_entry)]
    pub(crate) form_entry: Vec<(String, String, String)>,
    /// Remember the user name for this host in your keyring (Secret Service)
    /// once logged in; later connects to the host use it when --user is
    /// not given.
    #[arg(long)]
    pub(crate) save_user: bool,
    /// Run --csd-wrapper as this user (openconnect's option; default
    /// `nobody` when acclient runs as root, else yourself), with a clean
    /// environment.
    #[arg(long, value_name = "USER")]
    pub(crate) csd_user: Option<String>,
    /// Retransmissions of an unanswered request before giving up (0..=30;
    /// default 7, ~27 s, or what the profile's AuthenticationTimeout allows).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=30))]
    pub(crate) retries: Option<u32>,
    /// Try IKEv2 with a profile host whose PrimaryProtocol is SSL (or not
    /// given: the schema's default), which acclient otherwise refuses.
    #[arg(long, value_name = "ikev2", value_parser = ["ikev2"])]
    pub(crate) protocol: Option<String>,
    /// Dead peer detection interval in seconds when the gateway sends none (0: off; at most 86400).
    #[arg(long, default_value_t = 30, value_parser = secs_in(&limits::DPD_S))]
    pub(crate) dpd: u64,
    /// Do not reconnect when the gateway is lost (default: the profile's AutoReconnect, else on).
    #[arg(long)]
    pub(crate) no_reconnect: bool,
    /// After the machine slept: `disconnect` (end the session) or `reconnect`
    /// (check the gateway, reconnect if it is gone). Default: the profile's
    /// AutoReconnectBehavior (Cisco's default DisconnectOnSuspend when a
    /// profile does not say), else reconnect.
    #[arg(long, value_name = "disconnect|reconnect", value_parser = ["disconnect", "reconnect"])]
    pub(crate) on_suspend: Option<String>,
}

/// Options of `connect` only: the tunnel device, routes, DNS, the agent.
#[derive(Args, Clone)]
#[command(next_help_heading = "Tunnel, routes, DNS and the agent")]
pub(crate) struct ConnectOnly {
    /// In a full tunnel without an IPv6 address, let IPv6 use the machine's
    /// own routes. By default it is sent into the tunnel device and dropped
    /// (counted in `status`), so it cannot leak around the tunnel.
    #[arg(long)]
    pub(crate) allow_ipv6_bypass: bool,
    /// Tunnel device name.
    #[arg(long, short = 'i', default_value = "acvpn0")]
    pub(crate) interface: String,
    /// Configure the tunnel with this vpnc-script (openconnect/vpnc environment) instead of
    /// acclient's own routes and DNS.
    #[arg(long)]
    pub(crate) script: Option<PathBuf>,
    /// Leave DNS alone.
    #[arg(long)]
    pub(crate) no_dns: bool,
    /// Keep the local LAN reachable in a full tunnel (default: the profile's LocalLanAccess,
    /// else allowed).
    #[arg(long, conflicts_with = "no_local_lan")]
    pub(crate) local_lan: bool,
    /// Send the local LAN through the tunnel too (Cisco's default without LocalLanAccess).
    #[arg(long)]
    pub(crate) no_local_lan: bool,
    /// Also route this prefix through the tunnel (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub(crate) split_include: Vec<String>,
    /// Keep this prefix outside the tunnel (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub(crate) split_exclude: Vec<String>,
    /// Keep trying to reconnect a lost session for this many seconds (1-604800).
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = secs_in(&limits::RECONNECT_TIMEOUT_S))]
    pub(crate) reconnect_timeout: u64,
    /// Write our PID to FILE while connected (removed at the end); the
    /// PID to send SIGTERM, SIGUSR1 (status) or SIGUSR2 (reconnect) to.
    #[arg(long, value_name = "FILE", conflicts_with = "background")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Return once connected and leave the session to acclientd (openconnect's -b).
    #[arg(long, short = 'b')]
    pub(crate) background: bool,
    /// Run the tunnel in this process (needs root) even when acclientd runs.
    #[arg(long)]
    pub(crate) no_agent: bool,
    /// Tunnel MTU (default: the gateway's, or the path MTU minus ESP overhead; 576..=9000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(576..=9000))]
    pub(crate) mtu: Option<u32>,
}

/// Options of `probe` only.
#[derive(Args, Clone)]
#[command(next_help_heading = "Probe")]
pub(crate) struct ProbeOnly {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// After connecting, ping this IPv4 address through ESP: a data-plane
    /// check without a tunnel device (the replies are counted in the output).
    #[arg(long)]
    pub(crate) ping: Option<std::net::Ipv4Addr>,
    /// Echo requests for --ping.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) ping_count: u16,
    /// Stay connected this many seconds before disconnecting (answers DPD and rekeys meanwhile; at most 30 days).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub(crate) hold: u64,
}

/// `acclient connect`'s command line.
#[derive(Args, Clone)]
pub(crate) struct ConnectCli {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) only: ConnectOnly,
}

/// `acclient probe`'s command line.
#[derive(Args, Clone)]
pub(crate) struct ProbeCli {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) only: ProbeOnly,
}

/// What one connect or probe was asked for: the shared options (reached
/// through `Deref`) and each subcommand's own, the other's at their
/// defaults.
#[derive(Clone)]
pub(crate) struct ConnectArgs {
    pub(crate) common: CommonArgs,
    pub(crate) connect: ConnectOnly,
    pub(crate) probe: ProbeOnly,
    /// Set by `connect`: stay up until a signal.
    pub(crate) until_signal: bool,
    /// Which of the profile host's servers this attempt uses: 0 the
    /// HostAddress, then its BackupServerList in order.
    pub(crate) server_index: usize,
}

/// `FORM:OPT=VALUE` of `--form-entry`.
pub(crate) fn form_entry(s: &str) -> std::result::Result<(String, String, String), String> {
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
    pub(crate) fn form_entry_for(&self, form: &str, opt: &str) -> Option<&str> {
        self.form_entry
            .iter()
            .find(|(f, o, _)| f == form && o == opt)
            .map(|(_, _, v)| v.as_str())
    }

    /// `--useragent`, `--os`, `--version-string`, `--local-hostname`.
    pub(crate) fn description(&self) -> acclient_core::settings::ClientDescription {
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
pub(crate) fn defaults<T: Args + clap::FromArgMatches>() -> T {
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
pub(crate) fn long_options<T: Args>() -> Vec<String> {
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
pub(crate) fn secs_in(
    r: &'static std::ops::RangeInclusive<u64>,
) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(*r.start()..=*r.end())
}

/// The numeric flags into the engine's settings (their ranges are the
/// engine's `limits`, checked again by `Session::new`).
pub(crate) fn apply_numeric_flags(s: &mut Settings, a: &ConnectArgs) {
    s.fragment_size = a.fragment_size.into();
    s.retransmit.tries = a.retries.unwrap_or(s.retransmit.tries);
    s.ike_lifetime = Some(Duration::from_secs(a.ike_lifetime));
    s.child_lifetime = Some(Duration::from_secs(a.child_lifetime));
    s.dpd_interval = (a.dpd > 0).then(|| Duration::from_secs(a.dpd));
}

/// Exit code of a usage error (sysexits' EX_USAGE): never one of the real
/// outcomes 0..=7 (clap's own 2 is "authentication failed" here).
pub(crate) const EXIT_USAGE: i32 = 64;

/// A mistake in the command line found after parsing (a missing target,
/// options that do not go together): exits with [`EXIT_USAGE`].
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// Options of one subcommand given to the other are an error, not ignored.
pub(crate) fn check_mode(a: &ConnectArgs) -> Result<()> {
    if a.host.is_some() && a.profile.is_none() {
        return Err(usage(
            "--host names an entry of --profile; without a profile give the gateway with --server",
        ));
    }
    Ok(())
}

/// An option of `probe` given to `connect` (or the reverse) is named as
/// such, rather than as clap's bare "unexpected argument".
pub(crate) fn other_subcommands_option(e: &clap::Error) -> Option<String> {
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
