//! AnyConnect XML client profiles (`AnyConnectProfile.xsd`): the server list
//! and the settings a connection needs. Pure data; usable without a session.
//!
//! Real profiles vary (CRLF, whitespace inside mixed content, unknown
//! elements, a default namespace), so the reader ignores what it does not
//! know and reports broken XML with line and column.

use quick_xml::events::Event as X;
use quick_xml::Reader;

/// One `HostEntry`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// `HostName`: what the user picks.
    pub name: String,
    /// `HostAddress`: where to connect (may be empty: then the name is the address).
    pub address: String,
    /// `UserGroup` (tunnel group).
    pub user_group: Option<String>,
    /// `PrimaryProtocol` text: `IPsec` or `SSL`.
    pub primary_protocol: Option<String>,
    /// `PrimaryProtocol/StandardAuthenticationOnly`.
    pub standard_auth_only: bool,
    /// `AuthMethodDuringIKENegotiation` (EAP-MSCHAPv2, EAP-MD5, EAP-GTC, EAP-AnyConnect, IKE-RSA, IKE-PSK…).
    pub auth_method: Option<String>,
    /// `IKEIdentity`.
    pub ike_identity: Option<String>,
    /// `BackupServerList/HostAddress`.
    pub backup_servers: Vec<String>,
    /// `CertificatePinList/Pin`: SHA-512 hashes of accepted gateway public keys.
    pub pins: Vec<String>,
}

/// The tunnel protocol a host entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `PrimaryProtocol` IPsec: IKEv2, what acclient speaks.
    Ipsec,
    /// `PrimaryProtocol` SSL, or none given (the schema's default): TLS and
    /// DTLS, which acclient does not speak.
    Ssl,
}

impl HostEntry {
    /// What `PrimaryProtocol` says, with the schema's default (SSL) when the
    /// entry names none.
    pub fn protocol(&self) -> Protocol {
        match &self.primary_protocol {
            Some(p) if p.trim().eq_ignore_ascii_case("ipsec") => Protocol::Ipsec,
            _ => Protocol::Ssl,
        }
    }

    /// How the login goes, in the profile's words: `EAP-AnyConnect` (Cisco's
    /// own, the default for IPsec) or the standard method it names.
    pub fn login(&self) -> String {
        if !self.standard_auth_only {
            return "EAP-AnyConnect".into();
        }
        self.auth_method
            .clone()
            .unwrap_or_else(|| "EAP-AnyConnect".into())
    }

    /// The address to connect to, without scheme or path.
    pub fn connect_address(&self) -> &str {
        let a = if self.address.is_empty() {
            &self.name
        } else {
            &self.address
        };
        let a = a.trim();
        let a = a.strip_prefix("https://").unwrap_or(a);
        a.split('/').next().unwrap_or(a)
    }
}

/// A parsed profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Host entries in document order.
    pub hosts: Vec<HostEntry>,
    /// `ClientInitialization/AutoReconnect`.
    pub auto_reconnect: Option<bool>,
    /// `ClientInitialization/LocalLanAccess`.
    pub local_lan_access: Option<bool>,
    /// `AutoReconnect/AutoReconnectBehavior` (DisconnectOnSuspend, ReconnectAfterResume).
    pub auto_reconnect_behavior: Option<String>,
    /// `ClientInitialization/AuthenticationTimeout`, seconds.
    pub authentication_timeout: Option<u32>,
    /// `LocalLanAccess UserControllable`: may the user change it (schema
    /// default true)?
    pub local_lan_user_controllable: Option<bool>,
    /// `AutoReconnect UserControllable` (schema default false).
    pub auto_reconnect_user_controllable: Option<bool>,
    /// `ClientInitialization/AllowManualHostInput`: may the user type a
    /// server that is not in the list (schema default true)?
    pub allow_manual_host_input: Option<bool>,
    /// `ClientInitialization/StrictCertificateTrust` (a local-policy
    /// element): never offer to connect to an untrusted server.
    pub strict_certificate_trust: Option<bool>,
}

impl Profile {
    /// Whether the user may change local LAN access (schema default: yes).
    pub fn local_lan_controllable(&self) -> bool {
        self.local_lan_user_controllable.unwrap_or(true)
    }

    /// Whether the user may change auto-reconnect (schema default: no).
    pub fn auto_reconnect_controllable(&self) -> bool {
        self.auto_reconnect_user_controllable.unwrap_or(false)
    }

    /// Whether a server not in the list may be typed (schema default: yes).
    pub fn allows_manual_host(&self) -> bool {
        self.allow_manual_host_input.unwrap_or(true)
    }

    /// The host to connect to: `name` (its `HostName` or `HostAddress`), or
    /// the first entry as Cisco's client picks it. The error says what is
    /// there instead.
    pub fn select(&self, name: Option<&str>) -> Result<&HostEntry, String> {
        if self.hosts.is_empty() {
            return Err("the profile has no HostEntry in its ServerList".into());
        }
        match name {
            None => Ok(&self.hosts[0]),
            Some(n) => self.host(n).ok_or_else(|| {
                let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                format!("no host {n:?} in the profile (it has {})", names.join(", "))
            }),
        }
    }

    /// Finds a host by `HostName` (case-insensitive) or `HostAddress`.
    pub fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.trim()) || h.address.trim() == name.trim())
    }
}

/// A profile that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Broken XML.
    #[error("profile is not well-formed XML at line {line}, column {column}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the XML reader said.
        message: String,
    },
    /// XML (or text) that is not an `<AnyConnectProfile>`.
    #[error("not an AnyConnect profile: {0}")]
    NotAProfile(String),
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn truthy(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("true")
}

/// Parses profile XML.
pub fn parse(text: &str) -> Result<Profile, ProfileError> {
    // Text that is not XML at all (a README, a shell script) is named as
    // such before an XML reader finds tags in it.
    let start = text.trim_start_matches('\u{feff}').trim_start();
    if !start.starts_with('<') {
        let head: String = start.chars().take(20).collect();
        return Err(ProfileError::NotAProfile(format!(
            "it is not XML (it begins {head:?})"
        )));
    }
    let mut r = Reader::from_str(text);
    r.config_mut().trim_text(false);
    let mut path: Vec<String> = Vec::new();
    let mut p = Profile::default();
    let mut host: Option<HostEntry> = None;
    let mut root: Option<String> = None;
    loop {
        let pos = r.buffer_position() as usize;
        let ev = r.read_event().map_err(|e| {
            let (line, column) = position(text, r.error_position() as usize);
            let _ = pos;
            ProfileError::Xml {
                line,
                column,
                message: e.to_string(),
            }
        })?;
        match ev {
            X::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_none() {
                    if name != "AnyConnectProfile" {
                        return Err(ProfileError::NotAProfile(format!(
                            "its root element is <{name}>, not <AnyConnectProfile>"
                        )));
                    }
                    root = Some(name.clone());
                }
                if path.last().is_some_and(|p| p == "ClientInitialization") {
                    let controllable = e
                        .try_get_attribute("UserControllable")
                        .ok()
                        .flatten()
                        .map(|a| truthy(String::from_utf8_lossy(&a.value).trim()));
                    match name.as_str() {
                        "LocalLanAccess" => p.local_lan_user_controllable = controllable,
                        "AutoReconnect" => p.auto_reconnect_user_controllable = controllable,
                        _ => {}
                    }
                }
                if name == "HostEntry" && path.last().is_some_and(|p| p == "ServerList") {
                    host = Some(HostEntry::default());
                }
                path.push(name);
            }
            X::Empty(e) if root.is_none() => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name != "AnyConnectProfile" {
                    return Err(ProfileError::NotAProfile(format!(
                        "its root element is <{name}>, not <AnyConnectProfile>"
                    )));
                }
                root = Some(name);
            }
            X::End(_) if path.pop().as_deref() == Some("HostEntry") => {
                if let Some(h) = host.take() {
                    p.hosts.push(h);
                }
            }
            X::Text(t) => {
                let v = t.unescape().map(|c| c.into_owned()).unwrap_or_default();
                let v = v.trim();
                if v.is_empty() {
                    continue;
                }
                let leaf = path.last().map(String::as_str).unwrap_or("");
                let parent = path
                    .len()
                    .checked_sub(2)
                    .and_then(|i| path.get(i))
                    .map(String::as_str)
                    .unwrap_or("");
                if let Some(h) = host.as_mut() {
                    match (parent, leaf) {
                        ("HostEntry", "HostName") => h.name = v.to_string(),
                        ("HostEntry", "HostAddress") => h.address = v.to_string(),
                        ("HostEntry", "UserGroup") => h.user_group = Some(v.to_string()),
                        ("HostEntry", "PrimaryProtocol") => {
                            h.primary_protocol = Some(v.to_string())
                        }
                        // XSD: PrimaryProtocol (mixed) > StandardAuthenticationOnly (mixed) > these.
                        ("PrimaryProtocol", "StandardAuthenticationOnly") => {
                            h.standard_auth_only = truthy(v)
                        }
                        ("StandardAuthenticationOnly", "AuthMethodDuringIKENegotiation") => {
                            h.auth_method = Some(v.to_string())
                        }
                        ("StandardAuthenticationOnly", "IKEIdentity") => {
                            h.ike_identity = Some(v.to_string())
                        }
                        ("BackupServerList", "HostAddress") => h.backup_servers.push(v.to_string()),
                        ("CertificatePinList", "Pin") => h.pins.push(v.to_string()),
                        _ => {}
                    }
                } else {
                    match (parent, leaf) {
                        ("ClientInitialization", "AutoReconnect") => {
                            p.auto_reconnect = Some(truthy(v))
                        }
                        ("ClientInitialization", "LocalLanAccess") => {
                            p.local_lan_access = Some(truthy(v))
                        }
                        ("AutoReconnect", "AutoReconnectBehavior") => {
                            p.auto_reconnect_behavior = Some(v.to_string())
                        }
                        ("ClientInitialization", "AuthenticationTimeout") => {
                            p.authentication_timeout = v.parse().ok()
                        }
                        ("ClientInitialization", "AllowManualHostInput") => {
                            p.allow_manual_host_input = Some(truthy(v))
                        }
                        ("ClientInitialization", "StrictCertificateTrust") => {
                            p.strict_certificate_trust = Some(truthy(v))
                        }
                        _ => {}
                    }
                }
            }
            X::Eof => break,
            _ => {}
        }
    }
    if root.is_none() {
        return Err(ProfileError::NotAProfile(
            "no <AnyConnectProfile> element in it".into(),
        ));
    }
    if !path.is_empty() {
        let (line, column) = position(text, text.len());
        return Err(ProfileError::Xml {
            line,
            column,
            message: format!("unclosed element <{}>", path.join("/")),
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The server list from seed 004 (whitespace and CRLF as real profiles have
    // them); its 10.0.0.1 is the seed's own value, a parse vector only.
    const SEED: &str = "<?xml version=\"1.0\"?>\r\n<AnyConnectProfile xmlns=\"http://schemas.xmlsoap.org/encoding/\">\r\n<ServerList>\r\n       <HostEntry>\r\n               <HostName>Anu-IKEV2</HostName>\r\n               <HostAddress>10.0.0.1</HostAddress>\r\n               <UserGroup>ASA-IKEV2</UserGroup>\r\n               <PrimaryProtocol>IPsec</PrimaryProtocol>\r\n       </HostEntry>\r\n</ServerList></AnyConnectProfile>";

    /// Text or other XML is not a profile, said so (once it "parsed" to no
    /// hosts); an empty profile names what it lacks; the schema's default
    /// protocol is SSL.
    #[test]
    fn what_is_not_a_profile_is_named() {
        for (text, want) in [
            (
                "# acclient\n\nAn AnyConnect-compatible client.\n",
                "it is not XML",
            ),
            (
                "<?xml version=\"1.0\"?>\n<!-- empty -->\n",
                "no <AnyConnectProfile>",
            ),
            ("<html><body/></html>", "root element is <html>"),
            ("<Other/>", "root element is <Other>"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(e, ProfileError::NotAProfile(_)) && e.to_string().contains(want),
                "{text:?}: {e}"
            );
        }
        let empty = parse("<AnyConnectProfile/>").unwrap();
        assert_eq!(
            empty.select(None).unwrap_err(),
            "the profile has no HostEntry in its ServerList"
        );
        let p = parse("<AnyConnectProfile><ServerList><HostEntry><HostName>A</HostName></HostEntry><HostEntry><HostName>B</HostName><PrimaryProtocol>IPsec</PrimaryProtocol></HostEntry></ServerList></AnyConnectProfile>").unwrap();
        assert_eq!(p.select(None).unwrap().name, "A");
        assert_eq!(p.hosts[0].protocol(), Protocol::Ssl);
        assert_eq!(p.hosts[1].protocol(), Protocol::Ipsec);
        assert_eq!(p.hosts[1].login(), "EAP-AnyConnect");
        assert!(p.select(Some("C")).unwrap_err().contains("it has A, B"));
    }

    #[test]
    fn seed_server_list() {
        let p = parse(SEED).unwrap();
        let h = p.host("anu-ikev2").unwrap();
        // Seed 004's own address: a parse vector, never dialled.
        assert_eq!(h.connect_address(), "10.0.0.1");
        assert_eq!(h.user_group.as_deref(), Some("ASA-IKEV2"));
        assert_eq!(h.primary_protocol.as_deref(), Some("IPsec"));
    }

    #[test]
    fn protocol_settings_mixed_content_and_unknown_elements() {
        let x = r#"<AnyConnectProfile><ClientInitialization><AutoReconnect UserControllable="false">true
            <AutoReconnectBehavior>ReconnectAfterResume</AutoReconnectBehavior></AutoReconnect><Unknown>x</Unknown></ClientInitialization>
            <ServerList><HostEntry><HostName>vpn</HostName><HostAddress>https://vpn.example.com/ra</HostAddress>
            <PrimaryProtocol>IPsec <StandardAuthenticationOnly>true
              <AuthMethodDuringIKENegotiation>EAP-MSCHAPv2</AuthMethodDuringIKENegotiation>
              <IKEIdentity>alice@example.com</IKEIdentity></StandardAuthenticationOnly></PrimaryProtocol>
            </HostEntry></ServerList></AnyConnectProfile>"#;
        let p = parse(x).unwrap();
        assert_eq!(p.auto_reconnect, Some(true));
        assert_eq!(
            p.auto_reconnect_behavior.as_deref(),
            Some("ReconnectAfterResume")
        );
        let h = &p.hosts[0];
        assert_eq!(h.connect_address(), "vpn.example.com");
        assert_eq!(h.primary_protocol.as_deref(), Some("IPsec"));
        assert!(h.standard_auth_only);
        assert_eq!(h.auth_method.as_deref(), Some("EAP-MSCHAPv2"));
        assert_eq!(h.ike_identity.as_deref(), Some("alice@example.com"));
        // What the desktop app may offer: the schema's defaults, bar AutoReconnect.
        assert!(!p.auto_reconnect_controllable());
        assert!(p.local_lan_controllable() && p.allows_manual_host());
        assert_eq!(p.strict_certificate_trust, None);
    }

    #[test]
    fn user_controllable_preferences_and_local_policy() {
        let x = "<AnyConnectProfile><ClientInitialization>\r\n\
            <LocalLanAccess UserControllable=\"false\">true</LocalLanAccess>\r\n\
            <AutoReconnect UserControllable=\"true\">true</AutoReconnect>\r\n\
            <AllowManualHostInput> false </AllowManualHostInput>\r\n\
            <StrictCertificateTrust>true</StrictCertificateTrust>\r\n\
            </ClientInitialization></AnyConnectProfile>";
        let p = parse(x).unwrap();
        assert_eq!(p.local_lan_access, Some(true));
        assert!(!p.local_lan_controllable());
        assert!(p.auto_reconnect_controllable());
        assert!(!p.allows_manual_host());
        assert_eq!(p.strict_certificate_trust, Some(true));
    }

    #[test]
    fn broken_xml_has_line_and_column() {
        let e = parse("<AnyConnectProfile>\n<ServerList>\n<HostEntry></ServerList>").unwrap_err();
        assert!(matches!(e, ProfileError::Xml { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("line 3"));
        assert!(parse("<a><b>").is_err());
    }
}
