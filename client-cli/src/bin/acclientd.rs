//! `acclientd`: the agent that owns the tunnel (see `acclient_core::agent`).
//! Runs as root, normally under systemd (`packaging/acclientd.service`);
//! front ends (`acclient`, the desktop app) talk to it over
//! `$ACCLIENT_STATE_DIR/acclientd.sock` (default `/run/acclient`).

use std::io::IsTerminal;
use std::path::PathBuf;

use acclient_core::agent::{self, AgentOptions};
use clap::Parser;

/// The acclient agent: owns the VPN session, the TUN device, routes and DNS.
#[derive(Parser)]
#[command(name = "acclientd", version)]
struct Args {
    /// State directory: socket, journal, backups (default $ACCLIENT_STATE_DIR, else /run/acclient).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Group whose members may use the agent besides root.
    #[arg(long, default_value = acclient_core::ipc::GROUP)]
    group: String,
    /// More log detail (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() {
    let a = Args::parse();
    let level = match a.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // The journal (or a pipe) gets plain lines: colour only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACCLIENT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(|| acclient_core::driver::QuietStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("acclientd: must run as root (it configures the network); start it with systemd or sudo");
        std::process::exit(1);
    }
    let mut opts = AgentOptions {
        group: a.group,
        ..Default::default()
    };
    if let Some(d) = a.state_dir {
        opts.state_dir = d;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acclientd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(agent::run(opts)) {
        eprintln!("acclientd: {e}");
        std::process::exit(1);
    }
}
