//! What a front end remembers for its user, in the user's own keyring (the
//! Secret Service on Linux, through the `keyring` ecosystem): the user name
//! for a host, and a password only where the gateway allows saving it
//! (Cisco's SAVE_PASSWD, attribute 28673) and the user asked. Nothing of it
//! is ever written to a file of ours. The CLI and the desktop app both use
//! this module; the agent never does (it runs as root, not as the user).
//!
//! Every call may block on D-Bus: front ends call it off their async
//! runtime's threads (`spawn_blocking`).

use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error};

use crate::crypto::Secret;

/// The keyring's service names for what we keep.
const USER_SERVICE: &str = "acclient user name";
const PASSWORD_SERVICE: &str = "acclient password";

/// The user's keyring (or a test's store).
#[derive(Clone)]
pub struct Keyring(Arc<CredentialStore>);

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({})", self.0.vendor())
    }
}

fn words(e: Error) -> String {
    match e {
        Error::NoStorageAccess(e) => format!(
            "the keyring is locked or not running (is a Secret Service such as gnome-keyring or KWallet up in this session?): {e}"
        ),
        Error::PlatformFailure(e) => format!("the keyring failed: {e}"),
        other => format!("the keyring: {other}"),
    }
}

impl Keyring {
    /// The session's Secret Service (D-Bus). Fails when none runs.
    pub fn secret_service() -> Result<Keyring, String> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(words)?;
        Ok(Keyring(store))
    }

    /// Any keyring-core store (tests: `keyring_core::mock::Store`).
    pub fn with_store(store: Arc<CredentialStore>) -> Keyring {
        Keyring(store)
    }

    fn entry(&self, service: &str, key: &str) -> Result<Entry, String> {
        Entry::new_in_store(&self.0, service, key).map_err(words)
    }

    /// The user name remembered for `host`, if any.
    pub fn user(&self, host: &str) -> Result<Option<String>, String> {
        match self.entry(USER_SERVICE, host)?.get_password() {
            Ok(u) => Ok(Some(u)),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(words(e)),
        }
    }

    /// Remembers `user` for `host`.
    pub fn save_user(&self, host: &str, user: &str) -> Result<(), String> {
        self.entry(USER_SERVICE, host)?
            .set_password(user)
            .map_err(words)
    }

    /// Forgets what is kept for `host` (user name, and its password).
    pub fn forget(&self, host: &str) -> Result<(), String> {
        if let Some(u) = self.user(host)? {
            match self
                .entry(PASSWORD_SERVICE, &format!("{u}@{host}"))?
                .delete_credential()
            {
                Ok(()) | Err(Error::NoEntry) => {}
                Err(e) => return Err(words(e)),
            }
        }
        match self.entry(USER_SERVICE, host)?.delete_credential() {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(e) => Err(words(e)),
        }
    }

    /// The password kept for `user` at `host`, if any.
    pub fn password(&self, host: &str, user: &str) -> Result<Option<Secret>, String> {
        match self
            .entry(PASSWORD_SERVICE, &format!("{user}@{host}"))?
            .get_secret()
        {
            Ok(p) => Ok(Some(Secret::new(p))),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(words(e)),
        }
    }

    /// Forgets the saved password of `user` at `host` (the user unticked
    /// "save password", or the gateway no longer allows it).
    pub fn forget_password(&self, host: &str, user: &str) -> Result<(), String> {
        match self
            .entry(PASSWORD_SERVICE, &format!("{user}@{host}"))?
            .delete_credential()
        {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(e) => Err(words(e)),
        }
    }

    /// Keeps the password, only when the gateway allowed saving it.
    pub fn save_password(
        &self,
        host: &str,
        user: &str,
        password: &Secret,
        gateway_allows: bool,
    ) -> Result<(), String> {
        if !gateway_allows {
            return Err(
                "the gateway does not allow saving the password (Cisco attribute SAVE_PASSWD)"
                    .into(),
            );
        }
        self.entry(PASSWORD_SERVICE, &format!("{user}@{host}"))?
            .set_secret(password.expose())
            .map_err(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> Keyring {
        Keyring::with_store(keyring_core::mock::Store::new().unwrap())
    }

    #[test]
    fn user_names_per_host() {
        let k = mock();
        assert_eq!(k.user("vpn.example.com"), Ok(None));
        k.save_user("vpn.example.com", "alice").unwrap();
        k.save_user("other.example.com", "bob").unwrap();
        assert_eq!(k.user("vpn.example.com").unwrap().as_deref(), Some("alice"));
        assert_eq!(k.user("other.example.com").unwrap().as_deref(), Some("bob"));
        k.save_user("vpn.example.com", "carol").unwrap();
        assert_eq!(k.user("vpn.example.com").unwrap().as_deref(), Some("carol"));
        k.forget("vpn.example.com").unwrap();
        assert_eq!(k.user("vpn.example.com"), Ok(None));
        assert!(k.forget("never.example.com").is_ok());
    }

    #[test]
    fn passwords_only_where_the_gateway_allows() {
        let k = mock();
        let pw = Secret::new(b"s3cret".to_vec());
        let e = k.save_password("vpn", "alice", &pw, false).unwrap_err();
        assert!(e.contains("SAVE_PASSWD"), "{e}");
        assert!(k.password("vpn", "alice").unwrap().is_none());
        k.save_password("vpn", "alice", &pw, true).unwrap();
        assert_eq!(k.password("vpn", "alice").unwrap(), Some(pw.clone()));
        k.forget_password("vpn", "alice").unwrap();
        assert!(k.password("vpn", "alice").unwrap().is_none());
        k.forget_password("vpn", "alice").unwrap();
        k.save_password("vpn", "alice", &pw, true).unwrap();
        k.save_user("vpn", "alice").unwrap();
        k.forget("vpn").unwrap();
        assert!(k.password("vpn", "alice").unwrap().is_none());
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}
