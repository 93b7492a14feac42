//! The tunnel in this process (root, no agent, or `probe`): the session,
//! its driver and the TUN device run here; prompts are answered on a
//! blocking thread raced against signals, and the control socket serves
//! `acclient status`.

use super::*;
/// Answers the session's prompts in this process (in-process mode), from
/// the flags, stdin, the terminal and the host-scan wrapper. Blocking: it
/// runs on a blocking thread, never on the runtime's.
pub(crate) struct LocalAnswers {
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
            PromptKind::HostScan(hs) => Answer::HostScan(host_scan(&self.a, hs, &self.p)?),
            PromptKind::AuthForm(form) => {
                let text = FormText {
                    id: &form.id,
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
                if reason.starts_with("unknown issuer") {
                    eprintln!("  (to trust its CA, give it with --cafile)");
                }
                eprintln!("  subject:  {}", summary.subject);
                eprintln!("  issuer:   {}", summary.issuer);
                eprintln!(
                    "  valid:    {} to {}",
                    summary.not_before, summary.not_after
                );
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

pub(crate) async fn probe(a: ConnectArgs) -> Result<i32> {
    tracing::debug!("probe: reading settings");
    let p = plan_off_runtime(&a).await?;
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
    let ep = driver::Endpoint {
        gateway: p.gateway,
        source: a.source,
        ike_port,
        nat_port,
    };
    let socks = ep
        .bind()
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
    s.request_ipv6 = !a.disable_ipv6;
    apply_numeric_flags(&mut s, &a);
    // --retries, or what the profile's AuthenticationTimeout allows.
    s.retransmit.tries = p.retries;
    if a.passwd_on_stdin {
        s.password = Some(stdin_password().await?);
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
    tracing::debug!("probe: settings ready");
    let base = s.clone();
    let session = driver::new_session(s).map_err(|e| anyhow!("{e}"))?;
    tracing::debug!("probe: session created");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let opts = DriverOptions {
        ike_keylog: a.ike_keylog.clone(),
        ping: a.probe.ping.map(|d| (d, a.probe.ping_count)),
        disconnect_on_suspend: p.disconnect_on_suspend,
        host: Some(p.label.clone()),
    };
    let tunnel = if a.until_signal {
        let parse = |v: &[String], what: &str| Prefix::parse_all(v, what).map_err(|e| anyhow!(e));
        let opts = TunnelOptions {
            interface: a.connect.interface.clone(),
            routes: RouteOptions {
                local_lan: if a.connect.no_local_lan {
                    false
                } else {
                    a.connect.local_lan || p.local_lan.unwrap_or(true)
                },
                include: parse(&a.connect.split_include, "--split-include")?,
                exclude: parse(&a.connect.split_exclude, "--split-exclude")?,
                ipv6_bypass: a.connect.allow_ipv6_bypass,
            },
            dns: !a.connect.no_dns,
            script: a.connect.script.clone(),
            state_dir: driver::netconfig::state_dir(),
            mtu: a.connect.mtu,
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
        Tunnel::open(opts).await?
    } else {
        Tunnel::new(None)
    };
    let reconnect = if a.until_signal && !a.no_reconnect && p.auto_reconnect != Some(false) {
        let make = driver::reconnector(base, ep);
        Some((
            make,
            driver::ReconnectPolicy {
                give_up_after: Duration::from_secs(a.connect.reconnect_timeout),
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
    let can_reconnect = reconnect.is_some();
    let task = tokio::spawn(driver::run(
        session, socks, opts, tunnel, reconnect, ev_tx, cmd_rx,
    ));
    let interactive = !a.non_inter && std::io::stdin().is_terminal() && !a.passwd_on_stdin;
    let deadline = tokio::time::sleep(Duration::from_secs(a.timeout));
    tokio::pin!(deadline);
    // Once up: the status snapshot taken then (or at the end of --hold).
    let mut connected: Option<Option<driver::Status>> = None;
    let mut connect_ms = 0u128;
    let mut closing = false;
    let mut gave_up = false;
    let mut hold: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = None;
    let mut early_exit: Option<i32> = None;
    // A signal before the tunnel is up still closes cleanly (DELETE once the
    // IKE SA exists, everything put back); after, `hold` waits for it.
    let early_signal = until_signal();
    tokio::pin!(early_signal);
    // openconnect's SIGUSR1 (print the status) and SIGUSR2 (reconnect now).
    let mut usr = crate::UserSignals::new();
    let mut answers = Some(LocalAnswers {
        a: a.clone(),
        p: p.clone(),
        interactive,
        passwords: form_passwords,
    });
    loop {
        let ev = tokio::select! {
            e = ev_rx.recv() => e,
            u = usr.next(), if connected.is_some() && !closing => {
                match u {
                    crate::UserSignal::Status => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let _ = cmd_tx.send(Command::Status(tx));
                        if let Ok(st) = rx.await {
                            eprint!("{}", crate::report::human_status(&st));
                        }
                    }
                    crate::UserSignal::Reconnect if can_reconnect => {
                        note("Reconnecting (SIGUSR2)...");
                        let _ = cmd_tx.send(Command::Reconnect);
                    }
                    crate::UserSignal::Reconnect => {
                        eprintln!("acclient: SIGUSR2 ignored: reconnecting is off (--no-reconnect or the profile's AutoReconnect)");
                    }
                }
                continue;
            }
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
                    *c = Some(st);
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
                if let Progress::Reconnecting { .. } = pr {
                    if let Some(x) = answers.as_mut() {
                        x.passwords.rewind();
                    }
                }
                if !a.probe.json {
                    let host = format!("{} ({})", p.label, p.gateway);
                    match acclient_core::agent::progress_text(&pr, &host) {
                        Some(t) => note(&t),
                        None => tracing::info!("{pr:?}"),
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
                crate::CAME_UP.store(true, std::sync::atomic::Ordering::Relaxed);
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
                connected = Some(st);
                if a.until_signal {
                    if let Some(st) = &connected {
                        print_connected(&p, st.as_ref(), connect_ms);
                    }
                    note(&format!(
                        "Connected to {}. Press Ctrl-C to disconnect.",
                        p.label
                    ));
                    hold = Some(Box::pin(until_signal()));
                } else if a.probe.hold == 0 && a.probe.ping.is_some() {
                    // Give the echo replies a moment to come back through ESP.
                    hold = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1500))));
                } else if a.probe.hold > 0 {
                    if !a.probe.json {
                        eprintln!("Connected; holding for {} s.", a.probe.hold);
                    }
                    hold = Some(Box::pin(tokio::time::sleep(Duration::from_secs(
                        a.probe.hold,
                    ))));
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
                    crate::output::error(&format!("acclient: {r}"));
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
    let Some(st) = connected else {
        crate::output::error(&format!("acclient: {reason}"));
        return Ok(reason.exit_code().max(1));
    };
    if a.until_signal {
        note("Disconnected.");
        return Ok(0);
    }
    print_result(&p, st.as_ref(), connect_ms, a.probe.json);
    Ok(0)
}

/// Serves `acclient status` on `control.sock` in the state directory: each
/// connection gets one JSON snapshot (root-only directory; no secrets in it).
pub(crate) fn control_socket(cmd: mpsc::UnboundedSender<Command>) -> Option<PathBuf> {
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

/// A prompt's blocking task, or `None` when a signal (Ctrl-C, SIGTERM,
/// SIGHUP) comes first: a person leaving at a prompt must not have to press
/// Enter before the teardown starts.
pub(crate) async fn or_signal<T>(
    task: tokio::task::JoinHandle<T>,
) -> Option<Result<T, tokio::task::JoinError>> {
    tokio::select! {
        r = task => Some(r),
        _ = until_signal() => None,
    }
}
