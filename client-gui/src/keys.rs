//! The user's keyring, off the window's thread: lookups and saves go to one
//! worker thread (a Secret Service that never answers only stalls that
//! thread), answers come back as [`KeyUpdate`]s. What is kept is the
//! shared `acclient_core::secrets` module's: a user name per host, and a
//! password only where the gateway allowed it and the user opted in.

use std::sync::mpsc;

use acclient_core::crypto::Secret;
use acclient_core::secrets::Keyring;

/// A request to the keyring worker.
pub enum KeyCmd {
    /// The user name (and a saved password, if any) for a host.
    Lookup(String),
    /// Remember the user name for a host.
    SaveUser(String, String),
    /// Remember a password (host, user, password, whether the gateway allows it).
    SavePassword(String, String, Secret, bool),
    /// Forget the saved password of (host, user).
    ForgetPassword(String, String),
    /// Forget both for a host.
    Forget(String),
}

/// What the keyring said.
#[derive(Debug)]
pub enum KeyUpdate {
    /// The remembered user name and password of a host.
    Found {
        /// The host.
        host: String,
        /// Its user name, if one is remembered.
        user: Option<String>,
        /// Its password, if one is saved.
        password: Option<Secret>,
    },
    /// Done, in words for the window.
    Note(String),
    /// The keyring is not usable, and why (once).
    Unavailable(String),
}

/// The handle the window keeps.
pub struct Keys {
    tx: mpsc::Sender<KeyCmd>,
    rx: mpsc::Receiver<KeyUpdate>,
}

impl Keys {
    /// Starts the worker on `open` (the session's Secret Service, or a
    /// test's store); `wake` repaints the window after each answer.
    pub fn start(
        open: impl FnOnce() -> Result<Keyring, String> + Send + 'static,
        wake: impl Fn() + Send + 'static,
    ) -> Keys {
        let (tx, crx) = mpsc::channel::<KeyCmd>();
        let (utx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let send = |u: KeyUpdate| {
                    let _ = utx.send(u);
                    wake();
                };
                let k = match open() {
                    Ok(k) => k,
                    Err(e) => {
                        send(KeyUpdate::Unavailable(e));
                        return;
                    }
                };
                for c in crx {
                    match c {
                        KeyCmd::Lookup(host) => {
                            let user = k.user(&host).unwrap_or_else(|e| {
                                tracing::debug!("keyring: {e}");
                                None
                            });
                            let password = user
                                .as_deref()
                                .and_then(|u| k.password(&host, u).ok().flatten());
                            send(KeyUpdate::Found {
                                host,
                                user,
                                password,
                            });
                        }
                        KeyCmd::SaveUser(host, user) => match k.save_user(&host, &user) {
                            Ok(()) => send(KeyUpdate::Note(format!(
                                "Remembered the user name for {host} in your keyring."
                            ))),
                            Err(e) => send(KeyUpdate::Note(format!("Not remembered: {e}"))),
                        },
                        KeyCmd::SavePassword(host, user, pw, allowed) => {
                            match k.save_password(&host, &user, &pw, allowed) {
                                Ok(()) => send(KeyUpdate::Note(format!(
                                    "Saved the password for {host} in your keyring."
                                ))),
                                Err(e) => send(KeyUpdate::Note(format!("Password not saved: {e}"))),
                            }
                        }
                        KeyCmd::ForgetPassword(host, user) => {
                            match k.forget_password(&host, &user) {
                                Ok(()) => send(KeyUpdate::Note(format!(
                                    "Removed the saved password for {host}."
                                ))),
                                Err(e) => send(KeyUpdate::Note(format!("Not removed: {e}"))),
                            }
                        }
                        KeyCmd::Forget(host) => match k.forget(&host) {
                            Ok(()) => send(KeyUpdate::Note(format!(
                                "Forgot the saved credentials for {host}."
                            ))),
                            Err(e) => send(KeyUpdate::Note(format!("Not forgotten: {e}"))),
                        },
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no keyring thread: {e}");
        }
        Keys { tx, rx }
    }

    /// Queues a request (never blocks).
    pub fn send(&self, c: KeyCmd) {
        let _ = self.tx.send(c);
    }

    /// The next answer, if any.
    pub fn try_recv(&self) -> Option<KeyUpdate> {
        self.rx.try_recv().ok()
    }
}
