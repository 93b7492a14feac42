//! `acclientd`, the privileged agent: it owns the session, the TUN device,
//! routes, DNS and the crash journal; front ends (the CLI, the desktop app)
//! only talk to it over [`crate::ipc`] on a Unix socket (Cisco's
//! `vpnagentd`, NetworkManager, `mullvad-daemon`, `tailscaled` split the
//! same way). One session at a time. Nothing a front end does — waiting on
//! a prompt, dying, never reading — stalls the data plane: the session runs
//! in its own task and a front end's lines go through a bounded queue.
//!
//! Who may talk to it: root, or a member of group [`ipc::GROUP`], checked
//! with `SO_PEERCRED` on every connection. The socket is created inside a
//! root-only directory with its final owner and mode, then renamed into
//! place, so there is no moment when anyone else could connect.

// Like driver/, the agent is I/O: sockets, tokio, the clock (clippy.toml
// refuses them in the engine).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::driver::{self, Command};
use crate::ipc::{self, Reply, Request};

mod connect;
mod peer;
pub use connect::progress_text;

/// Where and for whom the agent serves.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// State directory: socket, journal, lock, backups (`/run/acclient`).
    pub state_dir: PathBuf,
    /// The group allowed besides root.
    pub group: String,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            state_dir: driver::netconfig::state_dir(),
            group: ipc::GROUP.into(),
        }
    }
}

/// Where the session is, as `state` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Established,
    Disconnecting,
}

/// The one session, while there is one.
struct Active {
    host: String,
    phase: Phase,
    cmd: mpsc::UnboundedSender<Command>,
    /// The connection that asked for it: it gets the events and answers prompts.
    owner: u64,
    owner_tx: Option<mpsc::Sender<Reply>>,
    watchers: Vec<mpsc::Sender<Reply>>,
    /// Prompts waiting for the owner, by id (forms kept to check answers).
    prompts: connect::Prompts,
    /// Becomes true when the session ended and the network is put back.
    done: watch::Receiver<bool>,
}

#[derive(Default)]
struct Shared {
    active: Option<Active>,
    next_conn: u64,
}

type State = Arc<Mutex<Shared>>;

fn lock(s: &State) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock is a bug elsewhere; keep serving.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks (or makes) the state directory (see
/// [`driver::netconfig::check_state_dir`]).
pub fn prepare_state_dir(dir: &Path) -> io::Result<()> {
    driver::netconfig::check_state_dir(dir)
}

/// Tells systemd we are ready (`Type=notify`): one datagram to
/// `$NOTIFY_SOCKET`, if set.
fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return warn!("sd_notify: {e}"),
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), Path::new(&path))
    };
    if let Err(e) = r {
        warn!("sd_notify: {e}");
    }
}

/// Runs the agent until SIGTERM / SIGINT: then any session is closed
/// (DELETE, everything put back) and the socket removed.
pub async fn run(opts: AgentOptions) -> io::Result<()> {
    prepare_state_dir(&opts.state_dir)?;
    let n = driver::netconfig::replay_journal(&opts.state_dir).await?;
    if n > 0 {
        info!("put back {n} network changes left by a previous run");
    }
    let gid = nix::unistd::Group::from_name(&opts.group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if gid.is_none() {
        warn!(
            "group {} does not exist: only root can use the agent",
            opts.group
        );
    }
    let (listener, path) = driver::bind_unix(&opts.state_dir, ipc::SOCKET, 0o660, gid)?;
    info!("listening on {}", path.display());
    sd_notify("READY=1\nSTATUS=waiting for front ends");
    let state: State = Arc::default();
    let opts = Arc::new(opts);
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            c = listener.accept() => match c {
                Ok((stream, _)) => {
                    let (state, opts) = (state.clone(), opts.clone());
                    tokio::spawn(async move { serve(stream, state, opts, gid).await });
                }
                Err(e) => warn!("accept: {e}"),
            },
            _ = &mut stop => break,
        }
    }
    info!("stopping");
    sd_notify("STOPPING=1");
    let done = {
        let s = lock(&state);
        s.active.as_ref().map(|a| {
            let _ = a.cmd.send(Command::Close);
            a.done.clone()
        })
    };
    if let Some(mut d) = done {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), d.wait_for(|x| *x)).await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// One front end's connection.
async fn serve(stream: UnixStream, state: State, opts: Arc<AgentOptions>, gid: Option<u32>) {
    let who = peer::check(&stream, gid, &opts.group);
    let (rd, mut wr) = stream.into_split();
    // Replies go through a bounded queue to a writer task: a front end
    // that never reads cannot block the session, it only loses events.
    let (tx, mut rx) = mpsc::channel::<Reply>(256);
    let writer = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            if wr.write_all(ipc::line(&r).as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let id = {
        let mut s = lock(&state);
        s.next_conn += 1;
        s.next_conn
    };
    match who {
        Err(message) => {
            info!("refused a front end: {message}");
            let _ = tx.send(Reply::Error { message }).await;
        }
        Ok(uid) => {
            debug!("front end {id} (uid {uid}) connected");
            let mut lines = BufReader::new(rd.take(u64::MAX));
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = match (&mut lines)
                    .take(ipc::MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if n > ipc::MAX_LINE {
                    let _ = tx
                        .send(Reply::Error {
                            message: format!("request longer than {} bytes", ipc::MAX_LINE),
                        })
                        .await;
                    break;
                }
                let req = match serde_json::from_slice::<Request>(&buf) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx
                            .send(Reply::Error {
                                message: format!("not a request: {e}"),
                            })
                            .await;
                        continue;
                    }
                };
                handle(req, id, &tx, &state, &opts).await;
            }
            gone(id, &state);
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A front end went away: if it owned a session still logging in (or
/// with a prompt pending), the attempt is cancelled — DELETE if an IKE SA
/// exists, everything put back. An established session stays (background).
fn gone(id: u64, state: &State) {
    let mut s = lock(state);
    let Some(a) = s.active.as_mut() else { return };
    a.watchers.retain(|w| !w.is_closed());
    if a.owner != id {
        return;
    }
    a.owner_tx = None;
    if a.phase == Phase::Connecting || !a.prompts.is_empty() {
        info!(
            "the front end that asked for {} went away while logging in: cancelled",
            a.host
        );
        a.phase = Phase::Disconnecting;
        let _ = a.cmd.send(Command::Close);
    }
}

async fn handle(
    req: Request,
    id: u64,
    tx: &mpsc::Sender<Reply>,
    state: &State,
    opts: &Arc<AgentOptions>,
) {
    let reply = |r: Reply| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r).await;
        }
    };
    match req {
        Request::Hello { version } if version == ipc::IPC_VERSION => {
            reply(Reply::Hello {
                version: ipc::IPC_VERSION,
                agent: env!("CARGO_PKG_VERSION").into(),
            })
            .await
        }
        Request::Hello { version } => {
            reply(Reply::Error {
                message: format!(
                    "this agent speaks IPC version {}, the front end {version}",
                    ipc::IPC_VERSION
                ),
            })
            .await
        }
        Request::Connect(c) => {
            let busy = lock(state).active.as_ref().map(|a| a.host.clone());
            if let Some(host) = busy {
                let message = format!("already connected to {host}; disconnect first");
                return reply(Reply::Error { message }).await;
            }
            match connect::start(*c, opts, state.clone(), id, tx.clone()).await {
                Ok(()) => {}
                Err(message) => reply(Reply::Error { message }).await,
            }
        }
        Request::Answer { id: pid, answer } => {
            let r = {
                let mut s = lock(state);
                match s.active.as_mut() {
                    Some(a) if a.owner == id => {
                        let r = connect::answer(&mut a.prompts, &a.cmd, pid, answer);
                        if let Ok(connect::Answered::BannerAccepted) = r {
                            a.phase = Phase::Established;
                        }
                        r
                    }
                    Some(_) => Err("only the front end that connected answers its prompts".into()),
                    None => Err("no session".into()),
                }
            };
            match r {
                Ok(connect::Answered::ReAsk(again)) => reply(again).await,
                Ok(_) => {}
                Err(message) => reply(Reply::Error { message }).await,
            }
        }
        Request::Disconnect => {
            let done = {
                let mut s = lock(state);
                s.active.as_mut().map(|a| {
                    a.phase = Phase::Disconnecting;
                    let _ = a.cmd.send(Command::Close);
                    a.done.clone()
                })
            };
            match done {
                Some(mut d) => {
                    let _ = d.wait_for(|x| *x).await;
                    reply(Reply::Ok).await
                }
                None => {
                    reply(Reply::Error {
                        message: "not connected".into(),
                    })
                    .await
                }
            }
        }
        Request::Reconnect => {
            let sent = lock(state)
                .active
                .as_ref()
                .is_some_and(|a| a.cmd.send(Command::Reconnect).is_ok());
            reply(if sent {
                Reply::Ok
            } else {
                Reply::Error {
                    message: "not connected".into(),
                }
            })
            .await
        }
        Request::State => {
            let (st, host) = match lock(state).active.as_ref() {
                None => ("Idle".to_string(), None),
                Some(a) => (format!("{:?}", a.phase), Some(a.host.clone())),
            };
            reply(Reply::State { state: st, host }).await
        }
        Request::Status => {
            let rx = {
                let s = lock(state);
                s.active.as_ref().map(|a| {
                    let (otx, orx) = oneshot::channel();
                    let _ = a.cmd.send(Command::Status(otx));
                    orx
                })
            };
            match rx {
                Some(rx) => match rx.await {
                    Ok(st) => {
                        reply(Reply::Status {
                            status: Box::new(serde_json::to_value(&st).unwrap_or_default()),
                        })
                        .await
                    }
                    Err(_) => {
                        reply(Reply::Error {
                            message: "the session ended".into(),
                        })
                        .await
                    }
                },
                None => {
                    reply(Reply::Error {
                        message: "not connected".into(),
                    })
                    .await
                }
            }
        }
        Request::Watch => {
            let watching = {
                let mut s = lock(state);
                s.active
                    .as_mut()
                    .map(|a| a.watchers.push(tx.clone()))
                    .is_some()
            };
            if !watching {
                reply(Reply::Error {
                    message: "not connected".into(),
                })
                .await
            }
        }
    }
}
