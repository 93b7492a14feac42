//! The desktop app: one window, as Cisco Secure Client's — a server list and
//! Connect, the login dialog the gateway's form asks for, the banner, the
//! untrusted-server warning, statistics and preferences. It is a front end
//! of acclientd exactly as the CLI is: it builds a [`ConnectRequest`] (content,
//! never paths), answers prompts as the user, and never touches the network
//! itself.

use std::collections::HashMap;
use std::path::PathBuf;

use acclient_core::crypto::Secret;
use acclient_core::ipc::{Answer, ConnectRequest, Prompt};
use acclient_core::secrets::Keyring;
use eframe::egui;

use crate::backend::{Backend, Cmd};
use crate::keys::{KeyCmd, KeyUpdate, Keys};
use crate::model::{Model, Phase};
use crate::prefs::Prefs;
use crate::profiles::{self, Catalog, Host};
use crate::tray::{TrayCmd, TrayHandle, TrayState};

/// How the app is set up (the binary's defaults, or a test's).
pub struct Options {
    /// The agent's socket.
    pub socket: PathBuf,
    /// Where profiles are looked for.
    pub profile_dirs: Vec<PathBuf>,
    /// Opens the keyring (the session's Secret Service by default).
    pub keyring: Box<dyn FnOnce() -> Result<Keyring, String> + Send>,
    /// Preselect this host (`--host`).
    pub host: Option<String>,
    /// Put up a tray icon.
    pub tray: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            socket: acclient_core::ipc::client::socket_path(),
            profile_dirs: profiles::search_dirs(),
            keyring: Box::new(Keyring::secret_service),
            host: None,
            tray: true,
        }
    }
}

/// The window's tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// Server, Connect, progress (and prompts over it).
    Connection,
    /// The statistics window.
    Statistics,
    /// What the profile lets the user change.
    Preferences,
}

/// What the current attempt typed, to remember once the session is up.
#[derive(Default)]
pub(crate) struct Attempt {
    /// The host label.
    pub(crate) label: String,
    /// The user name typed in the form.
    pub(crate) user: Option<String>,
    /// The password typed (memory only, for an opted-in save).
    pub(crate) password: Option<Secret>,
    /// The user ticked "Save password".
    pub(crate) save_password: bool,
    /// Done remembering.
    pub(crate) remembered: bool,
}

/// The app.
pub struct App {
    pub(crate) backend: Backend,
    pub(crate) keys: Keys,
    /// What the window shows.
    pub model: Model,
    pub(crate) catalog: Catalog,
    pub(crate) prefs: Prefs,
    /// Index into the catalog's hosts; `hosts.len()` is the typed server.
    pub(crate) selected: usize,
    pub(crate) manual: String,
    /// The tab shown.
    pub tab: Tab,
    pub(crate) users: HashMap<String, String>,
    pub(crate) passwords: HashMap<String, Secret>,
    pub(crate) keyring_note: Option<String>,
    pub(crate) attempt: Attempt,
    /// "Save password" on the login form.
    pub(crate) save_password: bool,
    pub(crate) tray: Option<TrayHandle>,
    /// The user name typed for a standard EAP login.
    pub(crate) user_input: String,
    ctx: egui::Context,
}

impl App {
    /// Starts the agent link and the keyring worker; reads profiles and preferences.
    pub fn new(ctx: &egui::Context, o: Options) -> App {
        let c = ctx.clone();
        let backend = Backend::start(o.socket, move || c.request_repaint());
        let c = ctx.clone();
        let keys = Keys::start(o.keyring, move || c.request_repaint());
        let tray = o.tray.then(|| {
            let c = ctx.clone();
            TrayHandle::start(move || c.request_repaint())
        });
        let catalog = profiles::load(&o.profile_dirs);
        let prefs = Prefs::load();
        let want = o.host.or_else(|| prefs.last_host.clone());
        let selected = want
            .and_then(|w| {
                catalog
                    .hosts
                    .iter()
                    .position(|h| h.name.eq_ignore_ascii_case(&w))
            })
            // The first host; with none, the typed server (index 0 = len).
            .unwrap_or(0);
        let mut app = App {
            backend,
            keys,
            model: Model::default(),
            catalog,
            prefs,
            selected,
            manual: String::new(),
            tab: Tab::Connection,
            users: HashMap::new(),
            passwords: HashMap::new(),
            keyring_note: None,
            attempt: Attempt::default(),
            save_password: false,
            tray,
            user_input: String::new(),
            ctx: ctx.clone(),
        };
        app.lookup_selected();
        app
    }

    /// The host picked, if it is a profile's.
    pub(crate) fn host(&self) -> Option<&Host> {
        self.catalog.hosts.get(self.selected)
    }

    /// Whether a typed server is offered (no profile forbids it).
    pub(crate) fn manual_allowed(&self) -> bool {
        !self.catalog.manual_forbidden
    }

    /// The label of what is picked: a host name or the typed server.
    pub(crate) fn label(&self) -> String {
        match self.host() {
            Some(h) => h.name.clone(),
            None => self.manual.trim().to_string(),
        }
    }

    /// Whether the picked host logs in with a standard EAP method (the
    /// user name is then asked before connecting, as Cisco's client does).
    pub(crate) fn standard_login(&self) -> bool {
        self.host()
            .is_some_and(|h| !h.entry.login().eq_ignore_ascii_case("EAP-AnyConnect"))
    }

    pub(crate) fn lookup_selected(&mut self) {
        let l = self.label();
        self.user_input = self.users.get(&l).cloned().unwrap_or_default();
        if !l.is_empty() && !self.users.contains_key(&l) {
            self.keys.send(KeyCmd::Lookup(l));
        }
    }

    /// Drains what the agent and the keyring said.
    pub fn poll(&mut self) {
        while let Some(u) = self.backend.try_recv() {
            self.model.apply(u);
        }
        while let Some(k) = self.keys.try_recv() {
            match k {
                KeyUpdate::Found {
                    host,
                    user,
                    password,
                } => {
                    if let Some(u) = user {
                        if host == self.label() && self.user_input.is_empty() {
                            self.user_input = u.clone();
                        }
                        self.users.insert(host.clone(), u);
                    }
                    if let Some(p) = password {
                        self.passwords.insert(host, p);
                    }
                }
                KeyUpdate::Note(n) => self.keyring_note = Some(n),
                KeyUpdate::Unavailable(e) => {
                    self.keyring_note = Some(format!("User names are not remembered: {e}"))
                }
            }
        }
        self.on_prompt();
        if self.model.came_up && !self.attempt.remembered {
            self.remember();
        }
        self.on_tray();
    }

    /// The tray's menu choices, and what it should show.
    fn on_tray(&mut self) {
        let Some(t) = self.tray.as_ref() else {
            return;
        };
        let mut cmds = Vec::new();
        while let Some(c) = t.try_recv() {
            cmds.push(c);
        }
        for c in cmds {
            match c {
                TrayCmd::Show => {
                    self.ctx
                        .send_viewport_cmd(egui::ViewportCommand::Visible(true));
                    self.ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
                }
                TrayCmd::Connect if !self.busy() => self.connect(),
                TrayCmd::Disconnect if self.busy() => self.disconnect(),
                TrayCmd::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                TrayCmd::Connect | TrayCmd::Disconnect => {}
            }
        }
        let state = TrayState {
            busy: self.busy(),
            connected: self.model.phase == Phase::Connected && self.model.pending.is_none(),
            line: self.model.state_line(),
        };
        if let Some(t) = self.tray.as_mut() {
            t.set(state);
        }
    }

    /// Prompts the app answers itself, and a saved password filled in.
    fn on_prompt(&mut self) {
        let Some(p) = self.model.pending.as_mut() else {
            return;
        };
        match &p.prompt {
            // The agent never runs a wrapper; the app has none configured
            // (the CLI's --csd-wrapper does): say so and decline.
            Prompt::HostScan { .. } => {
                let id = p.id;
                self.model.pending = None;
                self.model.progress.push(
                    "The gateway asks for a host scan; the app runs none (acclient connect --csd-wrapper does).".into(),
                );
                self.backend.send(Cmd::Answer {
                    id,
                    answer: Answer::Accept { yes: false },
                });
            }
            Prompt::Form {
                fields,
                error: None,
                ..
            } => {
                if let Some(pw) = self.passwords.get(&self.attempt.label) {
                    for f in fields {
                        if matches!(
                            f.kind,
                            acclient_core::eap::anyconnect::form::FieldKind::Password
                        ) {
                            let v = p.values.entry(f.name.clone()).or_default();
                            if v.is_empty() {
                                *v = String::from_utf8_lossy(pw.expose()).into_owned();
                                self.save_password = true;
                            }
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The session is up: remember the user name, the password if the
    /// gateway allows it and the user opted in, and the host.
    fn remember(&mut self) {
        self.attempt.remembered = true;
        let label = self.attempt.label.clone();
        if label.is_empty() {
            return;
        }
        let allows = self
            .model
            .status
            .as_ref()
            .and_then(|s| s.cisco.save_password)
            .unwrap_or(false);
        let changed = if allows {
            self.prefs.save_password_allowed.insert(label.clone())
        } else {
            self.prefs.save_password_allowed.remove(&label)
        };
        let user = self.attempt.user.clone();
        if let Some(u) = &user {
            if self.users.get(&label) != Some(u) {
                self.users.insert(label.clone(), u.clone());
                self.keys.send(KeyCmd::SaveUser(label.clone(), u.clone()));
            }
        }
        if let (Some(u), Some(pw)) = (user, self.attempt.password.take()) {
            if allows && self.attempt.save_password {
                self.passwords.insert(label.clone(), pw.clone());
                self.keys
                    .send(KeyCmd::SavePassword(label.clone(), u, pw, true));
            } else if self.passwords.remove(&label).is_some() {
                // Unticked, or the gateway no longer allows it: as Cisco's
                // client, the saved password goes.
                self.keys.send(KeyCmd::ForgetPassword(label.clone(), u));
            }
        }
        if changed || self.prefs.last_host.as_deref() != Some(&label) {
            self.prefs.last_host = Some(label);
            self.save_prefs();
        }
    }

    pub(crate) fn save_prefs(&mut self) {
        if let Err(e) = self.prefs.save() {
            self.keyring_note = Some(format!("Preferences not saved: {e}"));
        }
    }

    /// Connect to what is picked.
    pub(crate) fn connect(&mut self) {
        let label = self.label();
        match self.request() {
            Ok(req) => {
                self.attempt = Attempt {
                    label: label.clone(),
                    ..Attempt::default()
                };
                self.save_password = false;
                self.model.connecting(&label);
                self.tab = Tab::Connection;
                self.backend.send(Cmd::Connect(Box::new(req)));
            }
            Err(e) => self.model.notice = Some(e),
        }
    }

    /// The request for what is picked, or why there is none.
    pub(crate) fn request(&self) -> Result<ConnectRequest, String> {
        let label = self.label();
        if label.is_empty() {
            return Err("Pick a server or type its address.".into());
        }
        let mut r = ConnectRequest {
            host: label.clone(),
            anyconnect: true,
            user: self.users.get(&label).cloned(),
            ca_pem: profiles::ca_bundle(),
            ..ConnectRequest::default()
        };
        let eff = self.prefs.effective(self.host().map(|h| &h.profile));
        r.local_lan = eff.local_lan;
        r.reconnect = eff.auto_reconnect;
        match self.host() {
            Some(h) => {
                if let Some(why) = h.unsupported() {
                    return Err(why);
                }
                r.server = h.entry.connect_address().to_string();
                r.group = h.entry.user_group.clone();
                r.identity = h.entry.ike_identity.clone();
                r.pins = h.entry.pins.clone();
                let login = h.entry.login();
                if !login.eq_ignore_ascii_case("EAP-AnyConnect") {
                    let u = self.user_input.trim();
                    if u.is_empty() {
                        return Err(format!("Type your user name for {label}."));
                    }
                    r.user = Some(u.to_string());
                    r.anyconnect = false;
                    r.eap = vec![login
                        .to_ascii_lowercase()
                        .trim_start_matches("eap-")
                        .to_string()];
                }
                r.disconnect_on_suspend = h
                    .profile
                    .auto_reconnect_behavior
                    .as_deref()
                    .is_some_and(|b| b.eq_ignore_ascii_case("DisconnectOnSuspend"));
            }
            None => {
                if !self.manual_allowed() {
                    return Err(
                        "Your administrator's profile allows only the servers in its list.".into(),
                    );
                }
                r.server = label.clone();
            }
        }
        r.pins.extend(acclient_core::ipc::known::remembered(&[
            label.to_ascii_lowercase()
        ]));
        Ok(r)
    }

    /// End the session.
    pub(crate) fn disconnect(&mut self) {
        self.model.disconnecting();
        self.backend.send(Cmd::Disconnect);
    }

    /// Answer the pending prompt.
    pub(crate) fn answer(&mut self, answer: Answer) {
        let Some(p) = self.model.pending.take() else {
            return;
        };
        if let (Prompt::TrustCertificate { pin, .. }, Answer::Accept { yes: true }) =
            (&p.prompt, &answer)
        {
            // "Connect anyway" is remembered for this host, as Cisco's
            // "Always trust this server": the next connect does not ask.
            match acclient_core::ipc::known::remember(&self.attempt.label.to_ascii_lowercase(), pin)
            {
                Ok(_) => self
                    .model
                    .progress
                    .push(format!("Trusting this server's key from now on ({pin}).")),
                Err(e) => self.model.notice = Some(format!("Not remembered: {e}")),
            }
        }
        if let (Prompt::Banner { .. }, Answer::Accept { yes: false }) = (&p.prompt, &answer) {
            self.model.disconnecting();
        }
        if matches!(answer, Answer::Cancel) {
            self.model.disconnecting();
        }
        self.backend.send(Cmd::Answer { id: p.id, answer });
    }

    /// Retry the agent now.
    pub(crate) fn retry(&mut self) {
        self.backend.send(Cmd::Retry);
    }

    /// Whether a session is going on (Connect is then Disconnect).
    pub(crate) fn busy(&self) -> bool {
        self.model.phase != Phase::Idle
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        crate::views::show(self, ui);
        // The agent link wakes the window on every line; the statistics tick
        // needs nothing more. While checking, look again now and then.
        if self.model.link == crate::model::Link::Checking {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(250));
        }
    }
}
