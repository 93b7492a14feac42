//! What a user accepted and chose, shared by every front end: the gateways
//! trusted with "Connect anyway" (one `HOST PIN` line each in
//! `~/.config/acclient/pins`, Cisco's "Always trust this server") and where
//! that configuration lives. Pins are hashes of public keys, not secrets;
//! secrets go to the keyring (`secrets`), never here.

use std::io::{self, Read, Write};
use std::path::PathBuf;

/// The most of the pins file that is read (a line per accepted host).
const MAX_PINS_FILE: u64 = 1 << 20;

/// The user's acclient configuration directory: `$ACCLIENT_CONFIG_DIR`,
/// else `$XDG_CONFIG_HOME/acclient`, else `~/.config/acclient`. For root
/// it is root's own home from the user database, never a `$HOME` another
/// user set (`sudo -E`), where that user could plant a pin.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ACCLIENT_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if nix::unistd::geteuid().is_root() {
        let home = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0))
            .ok()
            .flatten()
            .map_or_else(|| PathBuf::from("/root"), |u| u.dir);
        return Some(home.join(".config/acclient"));
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(|x| PathBuf::from(x).join("acclient"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/acclient")))
}

/// Where accepted gateway pins are remembered.
pub fn pins_file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("pins"))
}

/// The pins remembered for any of `keys` (host names lower-cased, addresses).
pub fn remembered(keys: &[String]) -> Vec<String> {
    let Some(text) = pins_file().and_then(|f| read_bounded(&f).ok()) else {
        return Vec::new();
    };
    text.lines()
        // The pin has no spaces; a host name (a profile's HostName) may.
        .filter_map(|l| l.trim_end().rsplit_once(' '))
        .filter(|(h, _)| keys.iter().any(|k| k == h))
        .map(|(_, pin)| pin.trim().to_string())
        .collect()
}

/// Remembers `pin` for `key`; returns the file it went to.
pub fn remember(key: &str, pin: &str) -> io::Result<PathBuf> {
    if key.trim().is_empty()
        || key.contains(['\n', '\r'])
        || pin.is_empty()
        || pin.contains(char::is_whitespace)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a host name with a line break, or a pin with spaces, cannot be remembered",
        ));
    }
    let f =
        pins_file().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no home directory"))?;
    if let Some(dir) = f.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f)?
        .write_all(format!("{key} {pin}\n").as_bytes())?;
    Ok(f)
}

/// A text file of the user's configuration, read up to 1 MiB.
pub fn read_bounded(path: &std::path::Path) -> io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(MAX_PINS_FILE)
        .read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_for_host_names_with_spaces() {
        let dir = std::env::temp_dir().join(format!("acknown-{}", std::process::id()));
        std::env::set_var("ACCLIENT_CONFIG_DIR", &dir);
        remember("lab hq", "pin-sha256:AAA=").unwrap();
        remember("198.51.100.1", "pin-sha256:BBB=").unwrap();
        assert!(remember("a\nb", "pin-sha256:CCC=").is_err());
        assert!(remember("lab", "pin sha").is_err());
        assert_eq!(remembered(&["lab hq".into()]), ["pin-sha256:AAA="]);
        assert_eq!(remembered(&["lab".into()]), Vec::<String>::new());
        assert_eq!(
            remembered(&["x".into(), "198.51.100.1".into()]),
            ["pin-sha256:BBB="]
        );
        std::env::remove_var("ACCLIENT_CONFIG_DIR");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
