//! The servers to offer: every AnyConnect profile in the places an IT
//! department deploys them — ours (`~/.config/acclient/profiles/`,
//! `/etc/acclient/profiles/`) and Cisco Secure Client's
//! (`/opt/cisco/secureclient/vpn/profile/`, `/opt/cisco/anyconnect/profile/`)
//! — and the trust anchors Cisco's Linux client reads
//! (`~/.cisco/certificates/ca/`, `/opt/.cisco/certificates/ca/`).
//! `ACCLIENT_PROFILE_PATH` and `ACCLIENT_CA_PATH` (colon-separated
//! directories) replace the two search lists, for the demo and packagers.

use std::path::{Path, PathBuf};

use acclient_core::profile::{self, HostEntry, Profile, Protocol};

/// Profiles and CA files above this size are not read.
const MAX_FILE: u64 = 1 << 20;
/// No more than this many profiles per directory.
const MAX_PER_DIR: usize = 64;

/// One host the user can pick.
#[derive(Clone, Debug)]
pub struct Host {
    /// The profile's `HostName`.
    pub name: String,
    /// Its entry.
    pub entry: HostEntry,
    /// The profile it came from.
    pub profile: Profile,
    /// That profile's file.
    pub file: PathBuf,
}

impl Host {
    /// Why acclient cannot connect to this host, if it cannot.
    pub fn unsupported(&self) -> Option<String> {
        if self.entry.protocol() == Protocol::Ssl {
            return Some(format!(
                "{} uses SSL (TLS/DTLS), which acclient does not speak; ask your administrator for an IPsec (IKEv2) entry",
                self.name
            ));
        }
        if self.entry.login().eq_ignore_ascii_case("IKE-RSA") {
            return Some(format!(
                "{} logs in with a client certificate (IKE-RSA), which the app does not pick yet; use `acclient connect --cert`",
                self.name
            ));
        }
        if self.entry.login().eq_ignore_ascii_case("IKE-PSK") {
            return Some(format!(
                "{} logs in with a pre-shared key, which the app does not ask for; use `acclient connect --psk-file`",
                self.name
            ));
        }
        None
    }
}

/// What was found.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Hosts in profile order (first directory first, files by name).
    pub hosts: Vec<Host>,
    /// Profiles that could not be read, one line each.
    pub problems: Vec<String>,
    /// Whether any profile forbids typing a server.
    pub manual_forbidden: bool,
}

/// Where profiles are looked for.
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("ACCLIENT_PROFILE_PATH") {
        return std::env::split_paths(&p).collect();
    }
    let mut v = Vec::new();
    if let Some(d) = acclient_core::ipc::known::config_dir() {
        v.push(d.join("profiles"));
    }
    v.extend(
        [
            "/etc/acclient/profiles",
            "/opt/cisco/secureclient/vpn/profile",
            "/opt/cisco/anyconnect/profile",
        ]
        .map(PathBuf::from),
    );
    v
}

/// Reads every `*.xml` profile in `dirs`.
pub fn load(dirs: &[PathBuf]) -> Catalog {
    let mut c = Catalog::default();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
            .collect();
        files.sort();
        for f in files.into_iter().take(MAX_PER_DIR) {
            match read(&f).and_then(|t| profile::parse(&t).map_err(|e| e.to_string())) {
                Ok(p) => {
                    c.manual_forbidden |= !p.allows_manual_host();
                    for h in &p.hosts {
                        // The same host in two profiles: the first wins, as
                        // Cisco's client merges its profile directory.
                        if c.hosts.iter().any(|x| x.name.eq_ignore_ascii_case(&h.name)) {
                            continue;
                        }
                        c.hosts.push(Host {
                            name: h.name.clone(),
                            entry: h.clone(),
                            profile: p.clone(),
                            file: f.clone(),
                        });
                    }
                }
                Err(e) => c.problems.push(format!("{}: {e}", f.display())),
            }
        }
    }
    c
}

fn read(f: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(f)
        .and_then(|h| h.take(MAX_FILE + 1).read_to_string(&mut s))
        .map_err(|e| e.to_string())?;
    if s.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    Ok(s)
}

/// Trust anchors for the gateway: Cisco's certificate directories, then the
/// system bundle (the agent uses the system bundle alone when we send none).
pub fn ca_bundle() -> Option<String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("ACCLIENT_CA_PATH") {
        dirs.extend(std::env::split_paths(&p));
    } else {
        if let Some(h) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(h).join(".cisco/certificates/ca"));
        }
        dirs.push(PathBuf::from("/opt/.cisco/certificates/ca"));
    }
    let mut pem = String::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files.into_iter().take(MAX_PER_DIR) {
            if let Ok(t) = read(&f) {
                if t.contains("-----BEGIN CERTIFICATE-----") {
                    pem.push_str(&t);
                    pem.push('\n');
                }
            }
        }
    }
    if pem.is_empty() {
        return None;
    }
    if let Ok(system) = read(Path::new("/etc/ssl/certs/ca-certificates.crt")) {
        pem.push_str(&system);
    }
    Some(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_every_directory_first_host_wins() {
        let d = std::env::temp_dir().join(format!("acgui-prof-{}", std::process::id()));
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let host = |n: &str, proto: &str| {
            format!("<HostEntry><HostName>{n}</HostName><HostAddress>{n}.example.com</HostAddress>{proto}</HostEntry>")
        };
        std::fs::write(
            a.join("corp.xml"),
            format!(
                "<AnyConnectProfile><ServerList>{}{}</ServerList></AnyConnectProfile>",
                host("HQ", "<PrimaryProtocol>IPsec</PrimaryProtocol>"),
                host("Legacy", "")
            ),
        )
        .unwrap();
        std::fs::write(
            b.join("cisco.xml"),
            format!(
                "<AnyConnectProfile><ClientInitialization><AllowManualHostInput>false</AllowManualHostInput></ClientInitialization><ServerList>{}</ServerList></AnyConnectProfile>",
                host("hq", "")
            ),
        )
        .unwrap();
        std::fs::write(b.join("notes.xml"), "just text").unwrap();
        std::fs::write(b.join("readme.txt"), "ignored").unwrap();
        let c = load(&[a, b, d.join("missing")]);
        let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["HQ", "Legacy"]);
        assert!(c.hosts[0].unsupported().is_none());
        assert!(c.hosts[1].unsupported().unwrap().contains("SSL"));
        assert!(c.manual_forbidden, "one profile forbids typed servers");
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(c.problems[0].contains("notes.xml: not an AnyConnect profile"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
