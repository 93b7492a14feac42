//! The CLI as a front end of `acclientd`: `connect` (with `--background`),
//! `disconnect`, `state` and `status` over the agent's socket. Prompts are
//! answered here, as the user, off the runtime thread; the agent never
//! waits on us for anything but an answer, and gives up the attempt if we
//! go away while it waits.

use crate::note;

use acclient_core::ipc::client::NoAgent;
pub(crate) use acclient_core::ipc::client::{socket_path, Agent};
use acclient_core::ipc::{Answer, ConnectRequest, Event, Prompt, Reply, Request};
use anyhow::{anyhow, bail, Result};

/// Opens the agent or explains why not, for commands that need it.
pub(crate) async fn require() -> Result<Agent> {
    Agent::open().await.map_err(|e| anyhow!("{e}"))
}

/// `acclient state`: Idle, Connecting, Established or Disconnecting.
pub(crate) async fn state() -> Result<i32> {
    let mut a = require().await?;
    a.send(&Request::State).await?;
    match a.next().await? {
        Reply::State { state, host } => {
            match host {
                Some(h) => println!("state: {state} ({h})"),
                None => println!("state: {state}"),
            }
            Ok(0)
        }
        Reply::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// `acclient disconnect`: returns once the network is put back.
pub(crate) async fn disconnect() -> Result<i32> {
    let mut a = require().await?;
    a.send(&Request::Disconnect).await?;
    loop {
        match a.next().await? {
            Reply::Ok => {
                println!("Disconnected.");
                return Ok(0);
            }
            Reply::Error { message } if message == "not connected" => {
                println!("Not connected.");
                return Ok(0);
            }
            Reply::Error { message } => bail!("{message}"),
            _ => {}
        }
    }
}

/// The status snapshot through the agent, if one runs.
pub(crate) async fn status() -> Option<Result<serde_json::Value>> {
    let mut a = match Agent::open().await {
        Ok(a) => a,
        Err(NoAgent::Absent(_)) => return None,
        Err(e) => return Some(Err(anyhow!("{e}"))),
    };
    let r = async {
        a.send(&Request::Status).await?;
        match a.next().await? {
            Reply::Status { status } => Ok(*status),
            Reply::Error { message } => bail!("{message}"),
            other => bail!("unexpected answer {other:?}"),
        }
    }
    .await;
    Some(r)
}

/// How the CLI answers the agent's prompts (terminal, stdin, flags).
pub(crate) trait Answers {
    /// The answer to `prompt`, or an error that ends the attempt.
    fn answer(&mut self, prompt: &Prompt) -> Result<Answer>;
}

/// `acclient connect` through the agent. With `background`, returns once
/// connected; otherwise stays until Ctrl-C / SIGTERM / SIGHUP, then
/// disconnects (the agent puts everything back).
pub(crate) async fn connect(
    mut agent: Agent,
    req: ConnectRequest,
    background: bool,
    timeout: std::time::Duration,
    mut answers: Box<dyn Answers + Send>,
) -> Result<i32> {
    let host = req.host.clone();
    agent.send(&Request::Connect(Box::new(req))).await?;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut connected = false;
    let mut banner_pending = false;
    // The agent asks for the banner just before it reports connected.
    let mut banner_answered = false;
    let mut closing = false;
    let signal = crate::until_signal();
    tokio::pin!(signal);
    let mut usr = crate::UserSignals::new();
    loop {
        let r = tokio::select! {
            r = agent.next() => r?,
            u = usr.next(), if connected && !closing => {
                agent.send(&match u {
                    crate::UserSignal::Status => Request::Status,
                    crate::UserSignal::Reconnect => {
                        note("Reconnecting (SIGUSR2)...");
                        Request::Reconnect
                    }
                }).await?;
                continue;
            }
            _ = &mut deadline, if !connected && !closing => {
                eprintln!("acclient: no connection after {} s", timeout.as_secs());
                agent.send(&Request::Disconnect).await?;
                closing = true;
                continue;
            }
            _ = &mut signal, if !closing => {
                agent.send(&Request::Disconnect).await?;
                closing = true;
                continue;
            }
        };
        match r {
            Reply::Event {
                event: Event::Progress { text },
            } => note(&text),
            Reply::Event {
                event: Event::Prompt { id, prompt },
            } => {
                if let Prompt::Banner { .. } = prompt {
                    banner_pending = true;
                }
                let p = prompt.clone();
                // The terminal is read off the runtime thread.
                let task = tokio::task::spawn_blocking(move || {
                    let a = answers.answer(&p);
                    (a, answers)
                });
                // Ctrl-C at a prompt must still end the attempt: the agent
                // is told to disconnect and the reader thread is left to the
                // process exit (which puts the terminal back).
                let (ans, back) = tokio::select! {
                    r = task => r.map_err(|e| anyhow!("prompt task: {e}"))?,
                    _ = &mut signal, if !closing => {
                        eprintln!();
                        agent.send(&Request::Answer { id, answer: Answer::Cancel }).await?;
                        agent.send(&Request::Disconnect).await?;
                        return finish_closing(&mut agent).await;
                    }
                };
                answers = back;
                let ans = match ans {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("acclient: {e}");
                        Answer::Cancel
                    }
                };
                if let (Prompt::Banner { .. }, Answer::Accept { yes }) = (&prompt, &ans) {
                    banner_pending = false;
                    banner_answered = true;
                    if !*yes {
                        eprintln!("acclient: banner not accepted; disconnecting");
                    }
                }
                agent.send(&Request::Answer { id, answer: ans }).await?;
                if connected && !banner_pending && background && !closing {
                    return done_background(&host);
                }
            }
            Reply::Event {
                event: Event::Connected { status },
            } => {
                crate::CAME_UP.store(true, std::sync::atomic::Ordering::Relaxed);
                connected = true;
                print_summary(&host, &status);
                if background && !banner_pending {
                    // The banner prompt, if any, comes right after.
                    if status_has_banner(&status) && !banner_answered {
                        banner_pending = true;
                        continue;
                    }
                    return done_background(&host);
                }
                if !background {
                    note(&format!("Connected to {host}. Press Ctrl-C to disconnect."));
                }
            }
            Reply::Event {
                event: Event::Disconnected { reason, exit_code },
            } => {
                if closing && exit_code == 0 {
                    note("Disconnected.");
                    return Ok(0);
                }
                crate::output::error(&format!("acclient: {reason}"));
                return Ok(exit_code.max(if connected { 0 } else { 1 }));
            }
            Reply::Error { message } => {
                eprintln!("acclient: {message}");
                if !connected {
                    return Ok(1);
                }
            }
            Reply::Status { status } => {
                // Asked for by SIGUSR1.
                match serde_json::from_value::<acclient_core::driver::Status>(*status) {
                    Ok(s) => eprint!("{}", crate::report::human_status(&s)),
                    Err(e) => eprintln!("acclient: unreadable status: {e}"),
                }
            }
            Reply::Event {
                event: Event::Stats { .. },
            }
            | Reply::Ok
            | Reply::Hello { .. }
            | Reply::State { .. } => {}
        }
    }
}

/// After Ctrl-C at a prompt: waits (bounded) for the agent to report the
/// session gone, so the exit code says whether the network was put back.
async fn finish_closing(agent: &mut Agent) -> Result<i32> {
    let wait = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match agent.next().await? {
                Reply::Event {
                    event: Event::Disconnected { .. },
                } => return Ok::<i32, anyhow::Error>(0),
                Reply::Error { message } => {
                    eprintln!("acclient: {message}");
                    return Ok(1);
                }
                _ => {}
            }
        }
    });
    match wait.await {
        Ok(r) => {
            let code = r?;
            if code == 0 {
                note("Disconnected.");
            }
            Ok(code)
        }
        Err(_) => {
            eprintln!("acclient: the agent did not confirm the disconnect within 15 s");
            Ok(1)
        }
    }
}

fn status_has_banner(status: &serde_json::Value) -> bool {
    status.get("banner").is_some_and(|b| !b.is_null())
}

fn done_background(host: &str) -> Result<i32> {
    note(&format!(
        "Connected to {host} in the background; `acclient disconnect` ends it."
    ));
    Ok(0)
}

fn print_summary(host: &str, st: &serde_json::Value) {
    if crate::output::quiet() {
        return;
    }
    match serde_json::from_value::<acclient_core::driver::Status>(st.clone()) {
        Ok(s) => print!("{}", crate::report::summary(host, &s)),
        Err(e) => println!("Connected to {host} (status unreadable: {e})"),
    }
}
