//! The tray icon: a StatusNotifierItem (KDE, XFCE, GNOME with the
//! AppIndicator extension) through `ksni`, which speaks D-Bus with zbus.
//! Its menu connects, disconnects, shows the window and quits; its icon and
//! tooltip follow the session. It runs on its own thread and only passes
//! [`TrayCmd`]s to the window, so a tray host that never answers cannot
//! hold the app up. Without a tray host (plain GNOME), it waits on the bus
//! for one to appear and the window works as before.

use std::sync::{mpsc, Arc};

use ksni::menu::StandardItem;
use ksni::{MenuItem, ToolTip, Tray, TrayMethods};

/// What the tray asks of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrayCmd {
    /// Raise the window.
    Show,
    /// Connect to the host picked in the window.
    Connect,
    /// End the session.
    Disconnect,
    /// Quit the app (the agent keeps an established session).
    Quit,
}

/// What the tray shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrayState {
    /// A session is going on (Connect is then off, Disconnect on).
    pub busy: bool,
    /// The tunnel is up.
    pub connected: bool,
    /// The window's state line, as the tooltip.
    pub line: String,
}

struct Item {
    state: TrayState,
    tx: mpsc::Sender<TrayCmd>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Item {
    fn send(&self, c: TrayCmd) {
        let _ = self.tx.send(c);
        (self.wake)();
    }
}

impl Tray for Item {
    fn id(&self) -> String {
        "acclient".into()
    }

    fn title(&self) -> String {
        "acclient VPN".into()
    }

    fn icon_name(&self) -> String {
        // freedesktop icon names every theme has.
        match (self.state.connected, self.state.busy) {
            (true, _) => "network-vpn",
            (false, true) => "network-vpn-acquiring",
            (false, false) => "network-vpn-disconnected",
        }
        .into()
    }

    fn tool_tip(&self) -> ToolTip {
        ToolTip {
            title: "acclient VPN".into(),
            description: self.state.line.clone(),
            ..Default::default()
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(TrayCmd::Show);
    }

    fn menu(&self) -> Vec<MenuItem<Self>> {
        let item = |label: &str, enabled: bool, c: TrayCmd| -> MenuItem<Self> {
            StandardItem {
                label: label.into(),
                enabled,
                activate: Box::new(move |t: &mut Self| t.send(c)),
                ..Default::default()
            }
            .into()
        };
        vec![
            item("Show acclient", true, TrayCmd::Show),
            MenuItem::Separator,
            item("Connect", !self.state.busy, TrayCmd::Connect),
            item("Disconnect", self.state.busy, TrayCmd::Disconnect),
            MenuItem::Separator,
            item("Quit", true, TrayCmd::Quit),
        ]
    }
}

/// The window's end of the tray.
pub struct TrayHandle {
    rx: mpsc::Receiver<TrayCmd>,
    up: tokio::sync::mpsc::UnboundedSender<TrayState>,
    last: TrayState,
}

impl TrayHandle {
    /// Puts the icon up; `wake` repaints the window after a menu choice.
    pub fn start(wake: impl Fn() + Send + Sync + 'static) -> TrayHandle {
        let (tx, rx) = mpsc::channel();
        let (up, mut states) = tokio::sync::mpsc::unbounded_channel::<TrayState>();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        let spawned = std::thread::Builder::new()
            .name("tray".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let item = Item {
                        state: TrayState::default(),
                        tx,
                        wake,
                    };
                    // A tray host may start after us (a panel restart): wait
                    // for it on the bus rather than giving up.
                    let h = match item.assume_sni_available(true).spawn().await {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::info!("no tray icon: {e}");
                            return;
                        }
                    };
                    while let Some(s) = states.recv().await {
                        if h.update(|t| t.state = s).await.is_none() {
                            return;
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::info!("no tray thread: {e}");
        }
        TrayHandle {
            rx,
            up,
            last: TrayState::default(),
        }
    }

    /// Shows `s` (only a change goes over the bus).
    pub fn set(&mut self, s: TrayState) {
        if s != self.last {
            self.last = s.clone();
            let _ = self.up.send(s);
        }
    }

    /// The next menu choice, if any.
    pub fn try_recv(&self) -> Option<TrayCmd> {
        self.rx.try_recv().ok()
    }
}
