//! What the window shows, as plain data: the link to the agent, the
//! session's phase, the progress lines, the prompt waiting for the user and
//! the last status snapshot. [`Model::apply`] folds in what the agent says;
//! the views only read it. No egui here, so it is tested on its own.

use std::collections::BTreeMap;

use acclient_core::ipc::client::NoAgent;
use acclient_core::ipc::{Event, Prompt, Reply};
use acclient_core::status::Status;

use crate::backend::Update;

/// Progress lines kept for the window.
const MAX_PROGRESS: usize = 40;

/// The link to acclientd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not known yet (the first second).
    Checking,
    /// Talking to the agent.
    Up,
    /// No agent, and why.
    Down(NoAgent),
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No session.
    Idle,
    /// Logging in.
    Connecting,
    /// The tunnel is up.
    Connected,
    /// Asked to disconnect, waiting for the agent to put things back.
    Disconnecting,
}

/// A question the agent is waiting on, with what the user typed so far.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The prompt's id.
    pub id: u32,
    /// The question.
    pub prompt: Prompt,
    /// Field values by name (password values live only here, in memory).
    pub values: BTreeMap<String, String>,
}

impl Pending {
    /// A prompt's starting values: the gateway's prefill, else what the
    /// user typed in a field of that name last round (never a password:
    /// `typed` holds none), else a select's first choice.
    fn new(id: u32, prompt: Prompt, typed: &BTreeMap<String, String>) -> Pending {
        let mut values = BTreeMap::new();
        if let Prompt::Form { fields, .. } = &prompt {
            for f in fields {
                let v = f
                    .prefill
                    .clone()
                    .or_else(|| typed.get(&f.name).cloned())
                    .or_else(|| f.choices().first().map(|c| c.value.clone()))
                    .unwrap_or_default();
                values.insert(f.name.clone(), v);
            }
        }
        Pending { id, prompt, values }
    }
}

/// Everything the views show.
#[derive(Debug)]
pub struct Model {
    /// The agent link.
    pub link: Link,
    /// The session's phase.
    pub phase: Phase,
    /// The host of the session (as the app or another front end named it).
    pub host: Option<String>,
    /// Progress lines of the current attempt, oldest first.
    pub progress: Vec<String>,
    /// The prompt waiting for an answer.
    pub pending: Option<Pending>,
    /// The last status snapshot (about once a second while connected).
    pub status: Option<Status>,
    /// Why the last attempt or session ended, or what was refused.
    pub notice: Option<String>,
    /// Set when the session came up (the app then remembers the user).
    pub came_up: bool,
    /// What the user typed in the last form, passwords left out: a retry
    /// ("Login failed.") keeps the user name and group.
    pub typed: BTreeMap<String, String>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            link: Link::Checking,
            phase: Phase::Idle,
            host: None,
            progress: Vec::new(),
            pending: None,
            status: None,
            notice: None,
            came_up: false,
            typed: BTreeMap::new(),
        }
    }
}

impl Model {
    /// The app asked the agent to connect to `host`.
    pub fn connecting(&mut self, host: &str) {
        self.phase = Phase::Connecting;
        self.host = Some(host.to_string());
        self.progress.clear();
        self.pending = None;
        self.status = None;
        self.notice = None;
        self.came_up = false;
        self.typed.clear();
        self.push(format!("Contacting {host}..."));
    }

    /// The app asked the agent to disconnect.
    pub fn disconnecting(&mut self) {
        if self.phase != Phase::Idle {
            self.phase = Phase::Disconnecting;
            self.pending = None;
            self.push("Disconnecting...".into());
        }
    }

    /// Folds in one update from the agent link.
    pub fn apply(&mut self, u: Update) {
        match u {
            Update::Linked(_) => self.link = Link::Up,
            Update::NoAgent(why) => {
                self.link = Link::Down(why);
                // Whatever was going on is the agent's; without it the
                // window cannot tell, so it says so instead of spinning.
                if self.phase != Phase::Idle {
                    self.phase = Phase::Idle;
                    self.pending = None;
                    self.notice = Some("Lost the connection to acclientd.".into());
                }
            }
            Update::Failed(why) => {
                self.phase = Phase::Idle;
                self.notice = Some(why);
            }
            Update::Reply(r) => self.reply(r),
        }
    }

    fn reply(&mut self, r: Reply) {
        match r {
            Reply::State { state, host } => match state.as_str() {
                "Idle" => {}
                "Established" => {
                    self.phase = Phase::Connected;
                    self.host = host;
                }
                _ => {
                    self.phase = Phase::Connecting;
                    self.host = host;
                }
            },
            Reply::Event { event } => self.event(event),
            Reply::Error { message } => {
                if self.phase == Phase::Connecting && self.pending.is_none() {
                    self.phase = Phase::Idle;
                }
                if self.phase == Phase::Disconnecting && message == "not connected" {
                    self.phase = Phase::Idle;
                }
                self.notice = Some(message);
            }
            Reply::Status { status } => self.status = serde_json::from_value(*status).ok(),
            Reply::Ok => {
                if self.phase == Phase::Disconnecting {
                    self.phase = Phase::Idle;
                }
            }
            Reply::Hello { .. } => {}
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Progress { text } => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Connecting;
                }
                self.push(text);
            }
            Event::Prompt { id, prompt } => {
                self.pending = Some(Pending::new(id, prompt, &self.typed))
            }
            Event::Connected { status } => {
                self.phase = Phase::Connected;
                self.came_up = true;
                // The agent sends the banner prompt just before this: it
                // stays until answered.
                if !matches!(
                    self.pending.as_ref().map(|p| &p.prompt),
                    Some(Prompt::Banner { .. })
                ) {
                    self.pending = None;
                }
                self.status = serde_json::from_value(*status).ok();
                if let Some(h) = self.status.as_ref().and_then(|s| s.host.clone()) {
                    self.host = Some(h);
                }
                let host = self.host.clone().unwrap_or_default();
                self.push(format!("Connected to {host}."));
            }
            Event::Stats { status } => {
                if let Ok(s) = serde_json::from_value::<Status>(*status) {
                    self.status = Some(s);
                }
            }
            Event::Disconnected { reason, exit_code } => {
                let asked = self.phase == Phase::Disconnecting;
                self.phase = Phase::Idle;
                self.pending = None;
                self.status = None;
                self.notice = if asked && exit_code == 0 {
                    Some("Disconnected.".into())
                } else {
                    Some(reason)
                };
            }
        }
    }

    fn push(&mut self, line: String) {
        if self.progress.len() == MAX_PROGRESS {
            self.progress.remove(0);
        }
        self.progress.push(line);
    }

    /// One line for the state, as Cisco's window shows it.
    pub fn state_line(&self) -> String {
        let host = self.host.as_deref().unwrap_or("the server");
        match (&self.link, self.phase) {
            (Link::Checking, _) => "Contacting the acclient service...".into(),
            (Link::Down(_), _) => "The acclient service is not available.".into(),
            (Link::Up, Phase::Idle) => "Ready to connect.".into(),
            (Link::Up, Phase::Connecting | Phase::Connected) if self.pending.is_some() => {
                format!("Waiting for you: {host} asks for an answer.")
            }
            (Link::Up, Phase::Connecting) => format!("Connecting to {host}..."),
            (Link::Up, Phase::Connected) => {
                match self.status.as_ref().and_then(|s| s.reconnecting.as_ref()) {
                    Some(r) => format!(
                        "Reconnecting to {host} (attempt {}): {}",
                        r.attempt, r.reason
                    ),
                    None => format!("Connected to {host}."),
                }
            }
            (Link::Up, Phase::Disconnecting) => format!("Disconnecting from {host}..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acclient_core::ipc::Event;

    fn ev(e: Event) -> Update {
        Update::Reply(Reply::Event { event: e })
    }

    #[test]
    fn a_session_from_progress_to_disconnect() {
        let mut m = Model::default();
        assert_eq!(m.state_line(), "Contacting the acclient service...");
        m.apply(Update::Linked("0.1.0".into()));
        assert_eq!(m.state_line(), "Ready to connect.");
        m.connecting("HQ");
        m.apply(ev(Event::Progress {
            text: "IKE SA negotiated".into(),
        }));
        m.apply(ev(Event::Prompt {
            id: 3,
            prompt: Prompt::Banner {
                text: "Authorized use only".into(),
            },
        }));
        assert_eq!(m.pending.as_ref().map(|p| p.id), Some(3));
        assert!(
            m.state_line().contains("asks for an answer"),
            "{}",
            m.state_line()
        );
        let status = serde_json::json!({"version": 2, "state": "Established", "host": "HQ"});
        m.apply(ev(Event::Connected {
            status: Box::new(status),
        }));
        assert_eq!((m.phase, m.came_up), (Phase::Connected, true));
        // The agent asks for the banner just before it says connected.
        assert_eq!(
            m.pending.as_ref().map(|p| p.id),
            Some(3),
            "the banner waits"
        );
        m.pending = None;
        assert_eq!(m.state_line(), "Connected to HQ.");
        m.disconnecting();
        m.apply(ev(Event::Disconnected {
            reason: "disconnected by the user".into(),
            exit_code: 0,
        }));
        assert_eq!(m.phase, Phase::Idle);
        assert_eq!(m.notice.as_deref(), Some("Disconnected."));
        assert_eq!(
            m.progress.first().map(String::as_str),
            Some("Contacting HQ...")
        );
    }

    #[test]
    fn a_lost_agent_is_said_never_spun() {
        let mut m = Model::default();
        m.apply(Update::Linked("0.1.0".into()));
        m.connecting("HQ");
        m.apply(Update::NoAgent(NoAgent::Absent(
            "/run/acclient/acclientd.sock".into(),
        )));
        assert_eq!(m.phase, Phase::Idle);
        assert_eq!(m.state_line(), "The acclient service is not available.");
        assert!(m.notice.as_deref().unwrap().contains("Lost the connection"));
    }

    #[test]
    fn form_values_start_from_prefill_and_first_choice() {
        use acclient_core::eap::anyconnect::form::{Choice, Field, FieldKind};
        let mut m = Model::default();
        let fields = vec![
            Field {
                name: "username".into(),
                label: "Username:".into(),
                kind: FieldKind::Text,
                prefill: Some("alice".into()),
            },
            Field {
                name: "password".into(),
                label: "Password:".into(),
                kind: FieldKind::Password,
                prefill: None,
            },
            Field {
                name: "group_list".into(),
                label: "GROUP:".into(),
                kind: FieldKind::Select(vec![Choice {
                    value: "eng".into(),
                    label: "Engineering".into(),
                }]),
                prefill: None,
            },
        ];
        m.apply(ev(Event::Prompt {
            id: 1,
            prompt: Prompt::Form {
                id: "main".into(),
                title: "Login".into(),
                banner: String::new(),
                message: String::new(),
                error: None,
                fields,
            },
        }));
        let v = &m.pending.as_ref().unwrap().values;
        assert_eq!(v["username"], "alice");
        assert_eq!(v["password"], "");
        assert_eq!(v["group_list"], "eng");
    }
}
