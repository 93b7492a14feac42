//! How a person answers at the terminal: hidden and plain prompts with a
//! termios guard that every exit restores, `--passwd-on-stdin` lines, the
//! AnyConnect form filled from flags or asked field by field, and the
//! host-scan wrapper. Everything here blocks; callers run it on a blocking
//! thread, never on the runtime.

use super::*;
/// The answer to a host-scan request: the --csd-wrapper's success, or
/// false without one (the gateway then refuses, and says so).
pub(crate) fn host_scan(
    a: &ConnectArgs,
    hs: &acclient_core::eap::anyconnect::xml::HostScan,
    p: &Plan,
) -> Result<bool> {
    match &a.csd_wrapper {
        Some(w) => run_csd_wrapper(w, a.csd_user.as_deref(), hs, p, a.group.as_deref()),
        None => Ok(false),
    }
}

/// Runs the host-scan wrapper with openconnect's arguments and environment
/// (`-ticket`, `-stub`, `-group`, `-url`; CSD_TOKEN, CSD_TICKET, CSD_HOSTNAME),
/// at most 120 s — the ASA waits that long for each answer.
fn run_csd_wrapper(
    w: &PathBuf,
    csd_user: Option<&str>,
    hs: &acclient_core::eap::anyconnect::xml::HostScan,
    p: &Plan,
    group: Option<&str>,
) -> Result<bool> {
    use nix::unistd::{geteuid, User};
    use std::os::unix::process::CommandExt;
    let host = p.gateway.ip().to_string();
    // The wrapper is the gateway's program in all but name: never root's.
    let me = User::from_uid(geteuid()).ok().flatten();
    let name = match (csd_user, geteuid().is_root()) {
        (Some(u), _) => u.to_string(),
        (None, true) => "nobody".to_string(),
        (None, false) => me.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
    };
    let user = User::from_name(&name)
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("--csd-user {name:?}: no such user"))?;
    if !geteuid().is_root() && Some(user.uid) != me.as_ref().map(|u| u.uid) {
        bail!("--csd-user {name}: running the host-scan wrapper as another user needs root");
    }
    note(&format!("Running host scan: {} (as {name})", w.display()));
    let mut cmd = std::process::Command::new(w);
    cmd.args([
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
    // A clean environment: nothing of ours (state directory, proxies,
    // credentials in the caller's variables) reaches the wrapper.
    .env_clear()
    .env("PATH", "/usr/local/bin:/usr/bin:/bin")
    .env("HOME", &user.dir)
    .env("USER", &user.name)
    .env("LOGNAME", &user.name)
    .env("CSD_TOKEN", &hs.token)
    .env("CSD_TICKET", &hs.ticket)
    .env("CSD_HOSTNAME", &host)
    .env("CSD_BASE_URI", &hs.base_uri)
    .current_dir("/")
    .stdin(std::process::Stdio::null());
    if geteuid().is_root() {
        // std drops the supplementary groups (setgroups) before setuid.
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run the host-scan wrapper {} as {name}", w.display()))?;
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
        // On a blocking-pool thread (see the module doc): polling keeps the
        // 120 s bound, which std's wait() cannot.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Passwords from standard input: the first line (already read), then one
/// more line per password input.
pub(crate) struct StdinPasswords {
    first: Option<Secret>,
    pub(crate) more: bool,
    /// Everything given so far, replayed for a reconnect's fresh login.
    given: Vec<Secret>,
    replay: std::collections::VecDeque<Secret>,
}

impl StdinPasswords {
    pub(crate) fn new(first: Option<Secret>, more: bool) -> Self {
        StdinPasswords {
            first,
            more,
            given: Vec::new(),
            replay: Default::default(),
        }
    }

    /// A reconnect logs in again with the same answers (in memory only).
    pub(crate) fn rewind(&mut self) {
        self.replay = self.given.iter().cloned().collect();
    }

    pub(crate) fn next(&mut self) -> Option<Secret> {
        if let Some(p) = self.replay.pop_front() {
            return Some(p);
        }
        let p = self.read()?;
        self.given.push(p.clone());
        Some(p)
    }

    pub(crate) fn read(&mut self) -> Option<Secret> {
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
pub(crate) struct FormText<'a> {
    /// The `<auth id>`, for `--form-entry`.
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) banner: &'a str,
    pub(crate) message: &'a str,
    pub(crate) error: Option<&'a str>,
}

/// Answers an EAP-AnyConnect login form from the command line, or by asking
/// on the terminal. The fill rules (hidden inputs, the group, the user name,
/// choices, verify fields) are the core's `Form`; this only collects values:
/// `--group` and `--user` arrive as the form's prefills, passwords come from
/// stdin (one line per password field) or the terminal. `check` is the
/// core's `Form::answer` (in process) or passes the values on (to the agent,
/// which checks them there).
pub(crate) fn fill_form<T>(
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
        // --form-entry first: the scripted answer to this form's field.
        if let Some(v) = a.form_entry_for(text.id, &f.name) {
            values.push((f.name.clone(), Secret::new(v.as_bytes().to_vec())));
            continue;
        }
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
pub(crate) static SAVED_TTY: std::sync::Mutex<Option<(std::fs::File, nix::sys::termios::Termios)>> =
    std::sync::Mutex::new(None);

/// Puts the terminal back if a hidden prompt left echo off (called on every
/// exit path and by the prompt itself).
pub(crate) fn restore_tty() {
    let saved = SAVED_TTY.lock().ok().and_then(|mut g| g.take());
    if let Some((tty, t)) = saved {
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &t);
    }
}

pub(crate) fn prompt_line(prompt: &str, hidden: bool) -> Result<String> {
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
