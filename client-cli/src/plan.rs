//! From flags and profile to what to connect to (`Plan`): the gateway
//! resolved, the AnyConnect host entry, identities, client certificate,
//! remembered gateway pins, suspend and reconnect preferences.

use super::*;
pub(crate) fn host_keys(p: &Plan) -> [String; 2] {
    [p.label.to_ascii_lowercase(), p.gateway.ip().to_string()]
}

pub(crate) fn remembered_pins(p: &Plan) -> Vec<String> {
    acclient_core::ipc::known::remembered(&host_keys(p))
}

pub(crate) fn remember_pin(p: &Plan, pin: &str) {
    match acclient_core::ipc::known::remember(&host_keys(p)[0], pin) {
        Ok(f) => eprintln!("Remembered {pin} for {} in {}.", p.label, f.display()),
        Err(e) => eprintln!("acclient: cannot remember the pin: {e}"),
    }
}

/// A client certificate chain and key: PEM files (`--cert`, `--key`; the key
/// may be encrypted PKCS#8) or one PKCS#12 file. A passphrase comes from
/// `--key-password`, else the terminal.
pub(crate) fn read_client_cert(
    cert: &PathBuf,
    key: Option<&PathBuf>,
    password: Option<&str>,
) -> Result<acclient_core::settings::ClientCert> {
    use acclient_core::crypto::pem;
    use acclient_core::settings::ClientCert;
    let ask = |what: &PathBuf| -> Result<Option<String>> {
        Ok(match password {
            Some(p) => Some(p.to_string()),
            None if std::io::stdin().is_terminal() => Some(prompt_line(
                &format!("Passphrase for {}: ", what.display()),
                true,
            )?),
            None => None,
        })
    };
    let raw = read_limited_bytes(cert, MAX_FILE)
        .with_context(|| format!("cannot read {}", cert.display()))?;
    if raw.first() == Some(&0x30) {
        // DER: PKCS#12 (RFC 7292), key and chain in one file.
        let pw = ask(cert)?.unwrap_or_default();
        let ks = p12_keystore::KeyStore::from_pkcs12(
            &raw,
            &pw,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            anyhow!(
                "{}: cannot open the PKCS#12 file (wrong password?): {e}",
                cert.display()
            )
        })?;
        let (_, chain) = ks
            .private_key_chain()
            .ok_or_else(|| anyhow!("{}: no private key in the PKCS#12 file", cert.display()))?;
        let der = chain.key().as_der().to_vec();
        let certs = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
        return ClientCert::new(certs, Secret::new(der))
            .map_err(|e| anyhow!("{}: {e}", cert.display()));
    }
    let key = key.ok_or_else(|| anyhow!("{}: a PEM certificate needs --key", cert.display()))?;
    let chain = read_pem_certs(cert)?;
    let text = read_limited_bytes(key, MAX_FILE)
        .with_context(|| format!("cannot read {}", key.display()))?;
    let pass = if pem::key_is_encrypted(&text) {
        ask(key)?
    } else {
        None
    };
    let der = pem::private_key(&text, pass.as_deref().map(str::as_bytes)).map_err(|e| match e {
        pem::PemError::NeedsPassphrase => anyhow!(
            "{}: {e}; give --key-password, or run on a terminal to be asked",
            key.display()
        ),
        e => anyhow!("{}: {e}", key.display()),
    })?;
    ClientCert::new(chain, der).map_err(|e| anyhow!("{}: {e}", key.display()))
}

/// Every certificate of a PEM file (a chain, or a CA bundle).
pub(crate) fn read_pem_certs(path: &PathBuf) -> Result<Vec<Vec<u8>>> {
    let text = read_limited_bytes(path, MAX_FILE)
        .with_context(|| format!("cannot read {}", path.display()))?;
    acclient_core::crypto::pem::certificates(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub(crate) fn eap_methods(name: Option<&str>) -> Result<Vec<EapType>> {
    Ok(match name.map(|s| s.to_ascii_lowercase()) {
        None => vec![EapType::MsChapV2, EapType::Md5, EapType::Gtc],
        Some(s) => match s.trim_start_matches("eap-") {
            "mschapv2" => vec![EapType::MsChapV2],
            "md5" => vec![EapType::Md5],
            "gtc" => vec![EapType::Gtc],
            other => bail!("unsupported authentication method {other:?} (use EAP-MSCHAPv2, EAP-MD5, EAP-GTC or IKE-PSK)"),
        },
    })
}

pub(crate) fn resolve(host: &str) -> Result<SocketAddr> {
    let with_port = if host.parse::<IpAddr>().is_ok() || !host.contains(':') {
        format!("{host}:500")
    } else {
        host.to_string()
    };
    let with_port = if let Ok(IpAddr::V6(a)) = host.parse::<IpAddr>() {
        format!("[{a}]:500")
    } else {
        with_port
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .ok_or_else(|| anyhow!("no address for {host}"))
}

#[derive(Clone)]
pub(crate) struct Plan {
    /// The profile's AutoReconnect and LocalLanAccess.
    pub(crate) auto_reconnect: Option<bool>,
    pub(crate) local_lan: Option<bool>,
    /// End the session after the machine slept (AutoReconnectBehavior).
    pub(crate) disconnect_on_suspend: bool,
    pub(crate) gateway: SocketAddr,
    pub(crate) label: String,
    pub(crate) settings_auth: AuthMethod,
    pub(crate) identity: Option<String>,
    /// The profile's CertificatePinList for this host.
    pub(crate) pins: Vec<String>,
    /// Retransmissions: --retries, else what the profile's
    /// AuthenticationTimeout allows, else the default.
    pub(crate) retries: u32,
}

/// The addresses `over_servers` goes through: the profile host's
/// HostAddress and BackupServerList (just the one server without a profile,
/// or when the profile cannot be read: `plan` then says why).
pub(crate) fn servers_of(a: &ConnectArgs) -> Vec<String> {
    let (Some(p), None) = (&a.profile, &a.common.server) else {
        return vec![a.common.server.clone().unwrap_or_default()];
    };
    let Some(prof) = read_limited(p, MAX_FILE)
        .ok()
        .and_then(|t| acclient_core::profile::parse(&t).ok())
    else {
        return vec![String::new()];
    };
    match prof.select(a.host.as_deref()) {
        Ok(h) => std::iter::once(h.connect_address().to_string())
            .chain(h.backup_servers.iter().map(|b| b.trim().to_string()))
            .collect(),
        Err(_) => vec![String::new()],
    }
}

/// A profile's AutoReconnectBehavior: whether to end the session after the
/// machine slept. The schema's default (absent element) is
/// DisconnectOnSuspend, as in Cisco's client; an unknown value gets the
/// default too, with a warning, since real profiles carry values we do not know.
pub(crate) fn suspend_policy(behavior: Option<&str>) -> bool {
    match behavior.map(str::trim) {
        Some(b) if b.eq_ignore_ascii_case("ReconnectAfterResume") => false,
        None => true,
        Some(b) if b.eq_ignore_ascii_case("DisconnectOnSuspend") => true,
        Some(other) => {
            tracing::warn!(
                "profile AutoReconnectBehavior {other:?} is unknown: using DisconnectOnSuspend"
            );
            true
        }
    }
}

/// [`plan`] on a blocking thread: it resolves the gateway's name and may ask
/// for a key's passphrase at the terminal, and neither may hold up the
/// runtime thread (signals, the agent link, a tunnel's teardown).
pub(crate) async fn plan_off_runtime(a: &ConnectArgs) -> Result<Plan> {
    let a = a.clone();
    tokio::task::spawn_blocking(move || plan(&a))
        .await
        .map_err(|e| anyhow!("settings task: {e}"))?
}

pub(crate) fn plan(a: &ConnectArgs) -> Result<Plan> {
    let mut profile_pins = Vec::new();
    let mut prefs = (None, None);
    let mut disconnect_on_suspend = false;
    let mut auth_timeout = None;
    let (addr, label, method, ike_identity, anyconnect, group) = match (&a.profile, &a.server) {
        (Some(p), _) => {
            let text = read_limited(p, MAX_FILE)
                .with_context(|| format!("cannot read profile {}", p.display()))?;
            let prof =
                acclient_core::profile::parse(&text).with_context(|| format!("{}", p.display()))?;
            prefs = (prof.auto_reconnect, prof.local_lan_access);
            disconnect_on_suspend = suspend_policy(prof.auto_reconnect_behavior.as_deref());
            auth_timeout = prof.authentication_timeout;
            // Like Cisco's client: without --host, the first entry of the list.
            let h = prof
                .select(a.host.as_deref())
                .map_err(|e| anyhow!("{}: {e}", p.display()))?;
            if h.protocol() == acclient_core::profile::Protocol::Ssl && a.protocol.is_none() {
                bail!(
                    "host {} uses PrimaryProtocol {} ({}); acclient speaks IPsec (IKEv2) only: --protocol ikev2 tries IKEv2 with it (a head-end with IKEv2 client services answers)",
                    h.name,
                    h.primary_protocol.as_deref().unwrap_or("SSL"),
                    if h.primary_protocol.is_some() {
                        "as the profile says"
                    } else {
                        "the profile schema's default, the entry names none"
                    }
                );
            }
            let servers: Vec<String> = std::iter::once(h.connect_address().to_string())
                .chain(h.backup_servers.iter().map(|b| b.trim().to_string()))
                .collect();
            let addr = servers
                .get(a.server_index)
                .cloned()
                .unwrap_or_else(|| h.connect_address().to_string());
            (
                addr,
                h.name.clone(),
                h.auth_method.clone(),
                h.ike_identity.clone(),
                // IPsec without StandardAuthenticationOnly means Cisco's own
                // EAP-AnyConnect login (AnyConnectProfile.xsd).
                !h.standard_auth_only,
                {
                    profile_pins = h.pins.clone();
                    h.user_group.clone()
                },
            )
        }
        (None, Some(s)) => (s.clone(), s.clone(), None, None, a.anyconnect, None),
        (None, None) => return Err(usage("give --server ADDR, or --profile FILE [--host NAME]")),
    };
    let gateway = resolve(&addr)?;
    let psk = match &a.psk_file {
        Some(f) => Some(
            read_limited(f, 64 * 1024)
                .with_context(|| format!("cannot read PSK file {}", f.display()))?,
        ),
        None => None,
    };
    let client_cert = match &a.cert {
        Some(c) => Some(read_client_cert(
            c,
            a.key.as_ref(),
            a.key_password.as_deref(),
        )?),
        None => None,
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "linux".into());
    let auth = match (psk, method.as_deref()) {
        (None, _) if anyconnect => {
            let mut ac = AnyConnectClient::new(a.group.clone().or(group), hostname);
            ac.describe(&a.description()).map_err(usage)?;
            ac.client_cert = client_cert;
            AuthMethod::AnyConnect(ac)
        }
        (Some(k), _) => AuthMethod::Psk(Secret::new(
            k.lines().next().unwrap_or("").as_bytes().to_vec(),
        )),
        (None, Some(m)) if m.eq_ignore_ascii_case("IKE-PSK") => {
            bail!("the profile asks for IKE-PSK: give --psk-file")
        }
        (None, m) => AuthMethod::Eap(eap_methods(a.eap.as_deref().or(m))?),
    };
    Ok(Plan {
        auto_reconnect: prefs.0,
        local_lan: prefs.1,
        disconnect_on_suspend: match a.on_suspend.as_deref() {
            Some(v) => v == "disconnect",
            None => disconnect_on_suspend,
        },
        gateway,
        label,
        settings_auth: auth,
        identity: ike_identity,
        pins: profile_pins,
        retries: a.retries.unwrap_or_else(|| {
            let r = acclient_core::settings::Retransmit::default();
            match auth_timeout {
                Some(t) => r.tries_within(Duration::from_secs(t.into())),
                None => r.tries,
            }
        }),
    })
}
