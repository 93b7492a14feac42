//! The app's one connection to `acclientd`, on its own thread with a small
//! tokio runtime, so the window never waits on the agent and the agent
//! never waits on the window. Commands go in, [`Update`]s come out, and
//! each update wakes the window (`request_repaint`).
//!
//! The agent may come and go (not installed, restarted, stopped): the
//! link is retried every two seconds and the window says why it is down,
//! in the shared words of [`NoAgent`]. When a session is already up (the
//! CLI started it, or the app was restarted) the app watches it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use acclient_core::ipc::client::{Agent, NoAgent};
use acclient_core::ipc::{Answer, ConnectRequest, Reply, Request};
use tokio::sync::mpsc as tmpsc;

/// What the window asks for.
#[derive(Debug)]
pub enum Cmd {
    /// Start a session; `server` may be a name, resolved here (port 500 by default).
    Connect(Box<ConnectRequest>),
    /// Answer prompt `id`.
    Answer {
        /// The prompt.
        id: u32,
        /// The answer.
        answer: Answer,
    },
    /// End the session.
    Disconnect,
    /// Try the agent again now.
    Retry,
}

/// What the window hears.
#[derive(Debug)]
pub enum Update {
    /// The link to the agent is up (its version).
    Linked(String),
    /// There is no agent to talk to, and why.
    NoAgent(NoAgent),
    /// A line from the agent.
    Reply(Reply),
    /// A connect that never reached the agent (the name did not resolve).
    Failed(String),
}

/// The handle the window keeps.
pub struct Backend {
    tx: tmpsc::UnboundedSender<Cmd>,
    rx: mpsc::Receiver<Update>,
}

impl Backend {
    /// Starts the link to the agent at `socket`; `wake` is called after
    /// every update (the window's repaint).
    pub fn start(socket: PathBuf, wake: impl Fn() + Send + 'static) -> Backend {
        let (tx, crx) = tmpsc::unbounded_channel();
        let (utx, rx) = mpsc::channel();
        let failed = utx.clone();
        let spawned = std::thread::Builder::new()
            .name("agent-link".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = utx.send(Update::NoAgent(NoAgent::Refused(format!(
                            "cannot start the agent link: {e}"
                        ))));
                        wake();
                        return;
                    }
                };
                let out = move |u: Update| {
                    let ok = utx.send(u).is_ok();
                    wake();
                    ok
                };
                rt.block_on(link(socket, crx, out));
            });
        if let Err(e) = spawned {
            let _ = failed.send(Update::NoAgent(NoAgent::Refused(format!(
                "cannot start the agent link: {e}"
            ))));
        }
        Backend { tx, rx }
    }

    /// Queues a command (never blocks).
    pub fn send(&self, c: Cmd) {
        let _ = self.tx.send(c);
    }

    /// The next update, if any arrived.
    pub fn try_recv(&self) -> Option<Update> {
        self.rx.try_recv().ok()
    }
}

/// Keeps a link to the agent until the window goes away.
async fn link(
    socket: PathBuf,
    mut cmds: tmpsc::UnboundedReceiver<Cmd>,
    out: impl Fn(Update) -> bool,
) {
    loop {
        let mut agent = match Agent::open_at(socket.clone()).await {
            Ok(a) => a,
            Err(e) => {
                if !out(Update::NoAgent(e)) {
                    return;
                }
                // Commands while there is no agent cannot be carried out:
                // the window already shows why. Wait for a retry or 2 s.
                let wait = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        c = cmds.recv() => match c {
                            None => return,
                            Some(Cmd::Retry) => break,
                            Some(_) => {}
                        },
                    }
                }
                continue;
            }
        };
        if !out(Update::Linked(env!("CARGO_PKG_VERSION").into())) {
            return;
        }
        // What is going on already; a running session is watched.
        if agent.send(&Request::State).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                r = agent.next() => match r {
                    Ok(reply) => {
                        if let Reply::State { state, .. } = &reply {
                            if state != "Idle" && agent.send(&Request::Watch).await.is_err() {
                                break;
                            }
                        }
                        if !out(Update::Reply(reply)) {
                            return;
                        }
                    }
                    Err(e) => {
                        let gone = NoAgent::Refused(format!("{e}; reconnecting to acclientd"));
                        if !out(Update::NoAgent(gone)) {
                            return;
                        }
                        break;
                    }
                },
                c = cmds.recv() => {
                    let req = match c {
                        None => return,
                        Some(Cmd::Retry) => continue,
                        Some(Cmd::Disconnect) => Request::Disconnect,
                        Some(Cmd::Answer { id, answer }) => Request::Answer { id, answer },
                        Some(Cmd::Connect(mut req)) => match resolve(&req.server).await {
                            Ok(addr) => {
                                req.server = addr;
                                Request::Connect(req)
                            }
                            Err(e) => {
                                out(Update::Failed(e));
                                continue;
                            }
                        },
                    };
                    if agent.send(&req).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// `host[:port]` to one address; IKE's port 500 when none is given. The
/// agent takes addresses only: names are the user's business, resolved as
/// the user.
async fn resolve(server: &str) -> Result<String, String> {
    let s = server.trim();
    let with_port = match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(a)) => format!("[{a}]:500"),
        Ok(a) => format!("{a}:500"),
        Err(_) if s.contains(':') => s.to_string(),
        Err(_) => format!("{s}:500"),
    };
    let mut it = tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host(&with_port))
        .await
        .map_err(|_| format!("cannot resolve {s}: no answer within 10 s"))?
        .map_err(|e| format!("cannot resolve {s}: {e}"))?;
    it.next()
        .map(|a| a.to_string())
        .ok_or_else(|| format!("cannot resolve {s}: no address"))
}
