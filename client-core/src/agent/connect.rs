//! A session started for a front end: its settings from the request's
//! content (never a path the front end names), the driver in its own task,
//! and the events translated into IPC for the front end that asked, with
//! its prompts kept until they are answered.
//!
//! Like `driver/`, this is the agent's I/O shell: it reads the clock (the
//! session's start `Instant`, the certificate check's Unix time) and spawns
//! tasks, and hands the engine under it (`ike/`, `esp/`, `eap/`) only `now`
//! and datagrams, never a socket or a clock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::info;

use super::{lock, Active, AgentOptions, Phase, State};
use crate::crypto::Secret;
use crate::driver::{self, Command, DriverOptions, Tunnel, TunnelOptions};
use crate::eap::anyconnect::form::Form;
use crate::eap::EapType;
use crate::event::{Event as CoreEvent, Progress, PromptId, PromptKind};
use crate::ipc::{self, ConnectRequest, Event, Prompt, Reply};
use crate::routes::{Prefix, RouteOptions};
use crate::settings::{AnyConnectClient, AuthMethod, ClientCert, Identity, ANYCONNECT_IDENTITY};
use crate::{Answer, Settings};

/// Prompt ids the agent makes itself (the banner) start here, above the
/// session's own.
const AGENT_PROMPTS: u32 = 0x8000_0000;

/// What a pending prompt expects.
enum Pending {
    Password,
    Form(Box<Form>),
    Trust,
    Banner,
    HostScan,
}

/// The prompts waiting for the front end.
#[derive(Default)]
pub(super) struct Prompts {
    pending: HashMap<u32, Pending>,
    next_own: u32,
}

impl Prompts {
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The line for a progress event, as the CLI prints it.
pub fn progress_text(p: &Progress, host: &str) -> Option<String> {
    Some(match p {
        Progress::Contacting => format!("Contacting {host}."),
        Progress::SaInitDone { proposal, nat } => format!(
            "IKE SA negotiated: {proposal}{}",
            if *nat { " (NAT detected)" } else { "" }
        ),
        Progress::GatewayAuthenticated { id, scheme } => {
            format!("Gateway {id} authenticated ({scheme}).\nEstablishing VPN session...")
        }
        Progress::Eap(m) => format!("Authenticating with EAP-{m}..."),
        Progress::Reconnecting { attempt, reason } => {
            format!("Connection lost ({reason}); reconnecting (attempt {attempt})...")
        }
        Progress::Reconnected { resumed: true } => {
            "Reconnected: the gateway resumed the session (no login).".into()
        }
        Progress::Reconnected { resumed: false } => "Reconnected (logged in again).".into(),
        _ => return None,
    })
}

/// The system bundle's certificates; an unreadable bundle trusts nothing.
fn parse_pem(text: &str) -> Vec<Vec<u8>> {
    crate::crypto::pem::certificates(text.as_bytes()).unwrap_or_default()
}

fn gateway_of(server: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = server.parse::<SocketAddr>() {
        return Ok(a);
    }
    server
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 500))
        .map_err(|_| format!("{server:?} is not an address[:port] (the front end resolves names)"))
}

fn eap_methods(names: &[String]) -> Result<Vec<EapType>, String> {
    if names.is_empty() {
        return Ok(vec![EapType::MsChapV2, EapType::Md5, EapType::Gtc]);
    }
    names
        .iter()
        .map(
            |n| match n.to_ascii_lowercase().trim_start_matches("eap-") {
                "mschapv2" => Ok(EapType::MsChapV2),
                "md5" => Ok(EapType::Md5),
                "gtc" => Ok(EapType::Gtc),
                other => Err(format!("unsupported EAP method {other:?}")),
            },
        )
        .collect()
}

/// The session's settings from the request (the local address is set once
/// the sockets are bound).
fn settings(req: &ConnectRequest, gateway: SocketAddr) -> Result<Settings, String> {
    let auth = match (&req.psk, req.anyconnect) {
        (Some(psk), _) => AuthMethod::Psk(Secret::new(psk.as_bytes().to_vec())),
        (None, true) => {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "linux".into());
            let mut ac = AnyConnectClient::new(req.group.clone(), host);
            ac.describe(&req.client)?;
            if let (false, Some(key)) = (req.client_cert.is_empty(), &req.client_key) {
                ac.client_cert = Some(
                    ClientCert::new(req.client_cert.clone(), Secret::new(key.clone()))
                        .map_err(|e| format!("client certificate: {e}"))?,
                );
            }
            AuthMethod::AnyConnect(ac)
        }
        (None, false) => AuthMethod::Eap(eap_methods(&req.eap)?),
    };
    let identity = match (&req.identity, &req.user) {
        (id, _) if matches!(auth, AuthMethod::AnyConnect(_)) => Identity::Group(
            id.clone()
                .unwrap_or_else(|| ANYCONNECT_IDENTITY.to_string()),
        ),
        (Some(id), _) => Identity::for_user(id),
        (None, Some(u)) => Identity::for_user(u),
        (None, None) => Identity::Address,
    };
    let mut s = Settings::new(gateway, gateway, identity, auth);
    s.username = req.user.clone();
    s.remote_id = req.remote_id.clone();
    s.legacy = req.legacy;
    s.request_ipv6 = req.ipv6;
    if let Some(f) = req.fragment_size {
        s.fragment_size = f;
    }
    if let Some(r) = req.retries {
        s.retransmit.tries = r;
    }
    if let Some(l) = req.ike_lifetime {
        s.ike_lifetime = Some(Duration::from_secs(l));
    }
    if let Some(l) = req.child_lifetime {
        s.child_lifetime = Some(Duration::from_secs(l));
    }
    if let Some(d) = req.dpd {
        s.dpd_interval = (d > 0).then(|| Duration::from_secs(d));
    }
    s.trust.anchors = match &req.ca_pem {
        Some(pem) => crate::crypto::pem::certificates(pem.as_bytes())
            .map_err(|e| format!("the CA certificates sent (--cafile): {e}"))?,
        // The system store: a fixed path of the agent's, not the front end's.
        None => std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt")
            .map(|t| parse_pem(&t))
            .unwrap_or_default(),
    };
    for p in &req.pins {
        if !crate::crypto::sig::is_pin(p) {
            return Err(format!(
                "{p:?} is not a pin (pin-sha256:, pin-sha512: or a SHA-256 fingerprint)"
            ));
        }
    }
    s.trust.pins = req.pins.clone();
    s.validate()?;
    Ok(s)
}

/// Starts the session for front end `owner`; returns once it is running
/// (or why it could not start).
pub(super) async fn start(
    req: ConnectRequest,
    opts: &Arc<AgentOptions>,
    state: State,
    owner: u64,
    owner_tx: mpsc::Sender<Reply>,
) -> Result<(), String> {
    let gateway = gateway_of(&req.server)?;
    let mut base = settings(&req, gateway)?;
    let interface = req.interface.clone().unwrap_or_else(|| "acvpn0".into());
    let topts = TunnelOptions {
        interface,
        routes: RouteOptions {
            local_lan: req.local_lan,
            include: Prefix::parse_all(&req.split_include, "split-include")?,
            exclude: Prefix::parse_all(&req.split_exclude, "split-exclude")?,
            ipv6_bypass: req.allow_ipv6_bypass,
        },
        dns: !req.no_dns,
        script: None, // the agent never runs a program a front end names
        state_dir: opts.state_dir.clone(),
        mtu: req.mtu,
    };
    let ep = driver::Endpoint {
        gateway,
        source: None,
        ike_port: 500,
        nat_port: 4500,
    };
    let socks = ep
        .bind()
        .await
        .map_err(|e| format!("cannot open UDP sockets towards {gateway}: {e}"))?;
    socks.grow_buffers(4 << 20);
    base.local = socks.local_addr().map_err(|e| e.to_string())?;
    let tunnel = Tunnel::open(topts)
        .await
        .map_err(|e| format!("cannot create the tunnel device: {e}"))?;
    let session = driver::new_session(base.clone()).map_err(|e| e.to_string())?;
    let give_up_after = match req.reconnect_timeout {
        None => Duration::from_secs(600),
        Some(s) if crate::settings::limits::RECONNECT_TIMEOUT_S.contains(&s) => {
            Duration::from_secs(s)
        }
        Some(s) => {
            return Err(format!(
                "reconnect timeout {s} s is out of range (1-604800)"
            ))
        }
    };
    let reconnect = req.reconnect.then(|| {
        let make = driver::reconnector(base, ep);
        (make, driver::ReconnectPolicy { give_up_after })
    });
    let dopts = DriverOptions {
        disconnect_on_suspend: req.disconnect_on_suspend,
        host: Some(req.host.clone()),
        ..Default::default()
    };
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = watch::channel(false);
    {
        let mut s = lock(&state);
        if let Some(a) = s.active.as_ref() {
            return Err(format!("already connected to {}; disconnect first", a.host));
        }
        s.active = Some(Active {
            host: req.host.clone(),
            phase: Phase::Connecting,
            cmd: cmd_tx.clone(),
            owner,
            owner_tx: Some(owner_tx),
            watchers: Vec::new(),
            prompts: Prompts::default(),
            done: done_rx,
        });
    }
    info!(
        "connecting to {} ({gateway}) for front end {owner}",
        req.host
    );
    let pump = tokio::spawn(pump(ev_rx, state.clone(), cmd_tx, req.host.clone()));
    tokio::spawn(async move {
        let (reason, tunnel) =
            driver::run(session, socks, dopts, tunnel, reconnect, ev_tx, cmd_rx).await;
        let _ = pump.await;
        tunnel.close().await;
        info!("session ended: {reason}");
        let ev = Event::Disconnected {
            reason: reason.to_string(),
            exit_code: reason.exit_code(),
        };
        let targets = {
            let mut s = lock(&state);
            let t = s.active.take().map(|a| targets_of(&a)).unwrap_or_default();
            let _ = done_tx.send(true);
            t
        };
        send_all(&targets, Reply::Event { event: ev });
    });
    Ok(())
}

fn targets_of(a: &Active) -> Vec<mpsc::Sender<Reply>> {
    a.owner_tx.iter().chain(&a.watchers).cloned().collect()
}

fn send_all(targets: &[mpsc::Sender<Reply>], r: Reply) {
    for t in targets {
        // Full queue: that front end is not reading; it loses this line,
        // the session goes on.
        let _ = t.try_send(r.clone());
    }
}

/// Translates the session's events for the front ends.
async fn pump(
    mut ev: mpsc::UnboundedReceiver<CoreEvent>,
    state: State,
    cmd: mpsc::UnboundedSender<Command>,
    host: String,
) {
    // While established, the front ends get a stats event about once a
    // second (the desktop app's statistics window refreshes from it).
    let mut tick = tokio::time::interval(STATS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let e = tokio::select! {
            e = ev.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                stats(&state, &cmd).await;
                continue;
            }
        };
        let event = match e {
            CoreEvent::Progress(p) => match progress_text(&p, &host) {
                Some(text) => Event::Progress { text },
                None => continue,
            },
            CoreEvent::Prompt(p) => {
                let (pending, prompt) = match p.kind {
                    PromptKind::Password { user } => (Pending::Password, Prompt::Password { user }),
                    PromptKind::AuthForm(form) => {
                        let prompt = form_prompt(&form, None);
                        (Pending::Form(form), prompt)
                    }
                    PromptKind::TrustCertificate { summary, reason } => (
                        Pending::Trust,
                        Prompt::TrustCertificate {
                            subject: summary.subject,
                            issuer: summary.issuer,
                            sha256: summary.sha256,
                            pin: summary.pin,
                            reason,
                            not_before: summary.not_before,
                            not_after: summary.not_after,
                        },
                    ),
                    // The front end runs the wrapper, as the user: the agent
                    // never runs a program a front end names.
                    PromptKind::HostScan(scan) => (Pending::HostScan, Prompt::HostScan { scan }),
                };
                let mut s = lock(&state);
                let Some(a) = s.active.as_mut() else { continue };
                a.prompts.pending.insert(p.id.0, pending);
                if a.owner_tx.is_none() {
                    // Nobody to ask: the attempt ends (the front end left).
                    let _ = cmd.send(Command::Close);
                    continue;
                }
                Event::Prompt { id: p.id.0, prompt }
            }
            CoreEvent::Connected(cfg) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = cmd.send(Command::Status(tx));
                let status = rx
                    .await
                    .ok()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or_default();
                let mut s = lock(&state);
                let Some(a) = s.active.as_mut() else { continue };
                // The login banner: a person accepts it before the session
                // counts as up, as with Cisco's client.
                if let Some(text) = cfg.cisco.banner.clone() {
                    let id = AGENT_PROMPTS + a.prompts.next_own;
                    a.prompts.next_own += 1;
                    a.prompts.pending.insert(id, Pending::Banner);
                    send_all(
                        &targets_of(a),
                        Reply::Event {
                            event: Event::Prompt {
                                id,
                                prompt: Prompt::Banner { text },
                            },
                        },
                    );
                } else {
                    a.phase = Phase::Established;
                }
                Event::Connected {
                    status: Box::new(status),
                }
            }
            CoreEvent::Disconnected(_) => continue, // sent once the network is back
        };
        let targets = match lock(&state).active.as_ref() {
            Some(a) => targets_of(a),
            None => continue,
        };
        send_all(&targets, Reply::Event { event });
    }
}

/// How often an established session's stats go to its front ends.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Sends the status snapshot as a stats event, when established and someone listens.
async fn stats(state: &State, cmd: &mpsc::UnboundedSender<Command>) {
    let wanted = lock(state)
        .active
        .as_ref()
        .is_some_and(|a| a.phase == Phase::Established && !targets_of(a).is_empty());
    if !wanted {
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if cmd.send(Command::Status(tx)).is_err() {
        return;
    }
    let Ok(st) = rx.await else { return };
    let status = Box::new(serde_json::to_value(st).unwrap_or_default());
    if let Some(a) = lock(state).active.as_ref() {
        send_all(
            &targets_of(a),
            Reply::Event {
                event: Event::Stats { status },
            },
        );
    }
}

fn form_prompt(form: &Form, error: Option<String>) -> Prompt {
    Prompt::Form {
        id: form.id.clone(),
        title: form.title.clone(),
        banner: form.banner.clone(),
        message: form.message.clone(),
        error: error.or_else(|| form.error.clone()),
        fields: form.fields.clone(),
    }
}

/// What became of an answer.
pub(super) enum Answered {
    /// Passed on to the session.
    Done,
    /// Ask again with this (a choice that is not offered, mismatching passwords).
    ReAsk(Reply),
    /// The banner was accepted: the session is up.
    BannerAccepted,
}

/// Applies the front end's answer to prompt `id`.
pub(super) fn answer(
    prompts: &mut Prompts,
    cmd: &mpsc::UnboundedSender<Command>,
    id: u32,
    answer: ipc::Answer,
) -> Result<Answered, String> {
    if let ipc::Answer::Cancel = answer {
        let _ = cmd.send(Command::Close);
        prompts.pending.clear();
        return Ok(Answered::Done);
    }
    let Some(p) = prompts.pending.remove(&id) else {
        return Err(format!("no prompt {id} is pending"));
    };
    let core = match (p, answer) {
        (Pending::Password, ipc::Answer::Secret { value }) => {
            Answer::Secret(Secret::new(value.into_bytes()))
        }
        (Pending::Trust, ipc::Answer::Accept { yes }) => Answer::Accept(yes),
        (Pending::HostScan, ipc::Answer::Accept { yes }) => Answer::HostScan(yes),
        (Pending::Banner, ipc::Answer::Accept { yes }) => {
            if !yes {
                info!("banner not accepted: disconnecting");
                let _ = cmd.send(Command::Close);
                return Ok(Answered::Done);
            }
            return Ok(Answered::BannerAccepted);
        }
        (Pending::Form(form), ipc::Answer::Form { values }) => {
            let values = values
                .into_iter()
                .map(|(n, v)| (n, Secret::new(v.into_bytes())))
                .collect();
            match form.answer(values) {
                Ok(a) => Answer::Form(a),
                Err(e) => {
                    let again = form_prompt(&form, Some(e.to_string()));
                    prompts.pending.insert(id, Pending::Form(form));
                    return Ok(Answered::ReAsk(Reply::Event {
                        event: Event::Prompt { id, prompt: again },
                    }));
                }
            }
        }
        (p, _) => {
            prompts.pending.insert(id, p);
            return Err(format!("that answer does not fit prompt {id}"));
        }
    };
    let _ = cmd.send(Command::Answer(PromptId(id), core));
    Ok(Answered::Done)
}
