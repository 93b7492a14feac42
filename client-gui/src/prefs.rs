//! The app's preferences (`~/.config/acclient/gui.json`): the last host and
//! what the user chose where the profile lets them choose
//! (`UserControllable`). Nothing secret is ever written here; secrets go to
//! the keyring.

use std::collections::BTreeSet;
use std::path::PathBuf;

use acclient_core::profile::Profile;
use serde::{Deserialize, Serialize};

/// What the user chose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// The host picked last time.
    pub last_host: Option<String>,
    /// Local LAN access, where the profile lets the user choose.
    pub local_lan: Option<bool>,
    /// Reconnect automatically, where the profile lets the user choose.
    pub auto_reconnect: Option<bool>,
    /// Cisco's "Block connections to untrusted servers" (default on).
    pub block_untrusted: bool,
    /// Hosts whose gateway allowed saving the password (Cisco SAVE_PASSWD)
    /// the last time; only for these is "Save password" offered.
    pub save_password_allowed: BTreeSet<String>,
}

impl Default for Prefs {
    fn default() -> Prefs {
        Prefs {
            last_host: None,
            local_lan: None,
            auto_reconnect: None,
            block_untrusted: true,
            save_password_allowed: BTreeSet::new(),
        }
    }
}

/// The settings in force for one connection: the profile's where it
/// decides, the user's where it lets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    /// Keep the local LAN reachable.
    pub local_lan: bool,
    /// May the user change it?
    pub local_lan_controllable: bool,
    /// Reconnect when the gateway is lost.
    pub auto_reconnect: bool,
    /// May the user change it?
    pub auto_reconnect_controllable: bool,
    /// Refuse untrusted gateways without asking.
    pub block_untrusted: bool,
    /// The profile forbids connecting to untrusted servers at all.
    pub strict: bool,
}

impl Prefs {
    /// Where they live.
    pub fn path() -> Option<PathBuf> {
        acclient_core::ipc::known::config_dir().map(|d| d.join("gui.json"))
    }

    /// Reads them (defaults when missing or unreadable).
    pub fn load() -> Prefs {
        Self::path()
            .and_then(|p| acclient_core::ipc::known::read_bounded(&p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Writes them; the error says where and why.
    pub fn save(&self) -> Result<(), String> {
        let p = Self::path().ok_or("no home directory for the preferences")?;
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// What is in force for a host of `profile` (none: a typed server).
    pub fn effective(&self, profile: Option<&Profile>) -> Effective {
        let (lan_c, lan_d, ar_c, ar_d, strict) = match profile {
            Some(p) => (
                p.local_lan_controllable(),
                p.local_lan_access.unwrap_or(false),
                p.auto_reconnect_controllable(),
                p.auto_reconnect.unwrap_or(true),
                p.strict_certificate_trust.unwrap_or(false),
            ),
            None => (true, false, true, true, false),
        };
        Effective {
            local_lan: if lan_c {
                self.local_lan.unwrap_or(lan_d)
            } else {
                lan_d
            },
            local_lan_controllable: lan_c,
            auto_reconnect: if ar_c {
                self.auto_reconnect.unwrap_or(ar_d)
            } else {
                ar_d
            },
            auto_reconnect_controllable: ar_c,
            block_untrusted: strict || self.block_untrusted,
            strict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_decides_unless_it_lets_the_user() {
        let mut u = Prefs {
            local_lan: Some(true),
            auto_reconnect: Some(false),
            block_untrusted: false,
            ..Prefs::default()
        };
        let locked = acclient_core::profile::parse(
            "<AnyConnectProfile><ClientInitialization><LocalLanAccess UserControllable=\"false\">false</LocalLanAccess><AutoReconnect>true</AutoReconnect><StrictCertificateTrust>true</StrictCertificateTrust></ClientInitialization></AnyConnectProfile>",
        )
        .unwrap();
        let e = u.effective(Some(&locked));
        assert!(!e.local_lan && !e.local_lan_controllable);
        assert!(
            e.auto_reconnect && !e.auto_reconnect_controllable,
            "AutoReconnect is not user-controllable by default"
        );
        assert!(e.block_untrusted && e.strict);
        let e = u.effective(None);
        assert!(e.local_lan && !e.auto_reconnect && !e.block_untrusted);
        u.block_untrusted = true;
        assert!(u.effective(None).block_untrusted);
        let back: Prefs = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back, u);
        assert!(
            Prefs::default().block_untrusted,
            "blocking untrusted servers is the default"
        );
    }
}
