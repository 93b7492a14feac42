//! `acclient`: command-line front end of the acclient VPN client.
//!
//! Exit codes (stable, documented in the README): 0 success, 1 usage or
//! local error, 2 authentication failed, 3 gateway certificate refused or
//! gateway not authenticated, 4 gateway unreachable / no answer, 5 protocol
//! error or other refusal by the gateway, 6 the gateway ended the session.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
mod args;
use args::*;
mod output;
use output::note;
mod inprocess;
use inprocess::probe;
mod plan;
use plan::*;
mod prompt;
mod report;
mod servers;
use servers::*;
mod signals;
use prompt::{fill_form, host_scan, prompt_line, restore_tty, FormText, StdinPasswords};
use report::{print_connected, print_result, status_cmd, status_json};
use signals::*;

use acclient_core::crypto::Secret;
use acclient_core::driver::{self, Command, DriverOptions, Tunnel, TunnelOptions};
use acclient_core::eap::anyconnect::form::{Field, FieldKind, FormError};
use acclient_core::eap::EapType;
use acclient_core::routes::{Prefix, RouteOptions};
use acclient_core::settings::{limits, AnyConnectClient, ANYCONNECT_IDENTITY};
use acclient_core::{
    Answer, AuthMethod, DisconnectReason, Event, Identity, Progress, PromptKind, Settings,
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
            let r = check_mode(&a).and_then(|_| rt.block_on(over_servers(a, probe)));
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
    check_mode(&a)?;
    // The PID that SIGTERM, SIGUSR1 and SIGUSR2 go to, while it runs.
    let _pid = match &a.connect.pid_file {
        Some(f) => Some(PidFile::write(f)?),
        None => None,
    };
    if !a.connect.no_agent {
        match agent_client::Agent::open().await {
            Ok(agent) => return connect_via_agent(agent, a).await,
            Err(acclient_core::ipc::client::NoAgent::Absent(_)) => {}
            Err(e) => bail!("{e}"),
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
                not_before,
                not_after,
            } => {
                eprintln!("The gateway's certificate is not trusted: {reason}");
                if reason.starts_with("unknown issuer") {
                    eprintln!("  (to trust its CA, give it with --cafile)");
                }
                eprintln!("  subject:  {subject}");
                eprintln!("  issuer:   {issuer}");
                if !not_after.is_empty() {
                    eprintln!("  valid:    {not_before} to {not_after}");
                }
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
    let p = plan_off_runtime(&a).await?;
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
