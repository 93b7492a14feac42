//! Which server an attempt goes to: a profile host's HostAddress, then its
//! BackupServerList; and the user name the keyring remembers for it.

use super::*;

/// Set once a session came up in this process (the failover below does
/// not apply to a session that was lost later).
pub(crate) static CAME_UP: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The profile host's HostAddress, then its BackupServerList in order, as
/// Cisco's client tries them: the next one only while the one before gave
/// no answer (exit 4) and no session ever came up.
pub(crate) async fn over_servers<F, Fut>(a: ConnectArgs, one: F) -> Result<i32>
where
    F: Fn(ConnectArgs) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let servers = servers_of(&a);
    let mut a = a;
    // A user name remembered in the keyring for this host, when none given.
    let label = host_label(&a);
    if a.user.is_none() {
        if let Some(l) = label.clone() {
            // Bounded: a session bus whose keyring service never starts must
            // not hold up the connect (the lookup is only a convenience).
            let saved = tokio::time::timeout(
                KEYRING_WAIT,
                tokio::task::spawn_blocking(move || {
                    acclient_core::secrets::Keyring::secret_service().and_then(|k| k.user(&l))
                }),
            )
            .await
            .unwrap_or_else(|_| Ok(Err("no answer from the keyring".into())));
            match saved {
                Ok(Ok(Some(u))) => {
                    note(&format!("User name {u} (remembered in your keyring)."));
                    a.common.user = Some(u);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!("no remembered user name: {e}"),
                Err(e) => tracing::debug!("keyring task: {e}"),
            }
        }
    }
    let save = match (&label, &a.user) {
        (Some(l), Some(u)) if a.save_user => Some((l.clone(), u.clone())),
        _ => None,
    };
    let r = over_servers_loop(a, servers, one).await;
    if let (Some((l, u)), true) = (save, CAME_UP.load(std::sync::atomic::Ordering::Relaxed)) {
        let host = l.clone();
        let saved = tokio::time::timeout(
            KEYRING_WAIT,
            tokio::task::spawn_blocking(move || {
                acclient_core::secrets::Keyring::secret_service().and_then(|k| k.save_user(&l, &u))
            }),
        )
        .await
        .unwrap_or_else(|_| Ok(Err("no answer from the keyring within 5 s".into())));
        match saved {
            Ok(Ok(())) => note(&format!(
                "Remembered the user name for {host} in your keyring."
            )),
            Ok(Err(e)) => crate::output::error(&format!("acclient: --save-user: {e}")),
            Err(e) => crate::output::error(&format!("acclient: --save-user: {e}")),
        }
    }
    r
}

/// How long a keyring call may take before we go on without it.
pub(crate) const KEYRING_WAIT: Duration = Duration::from_secs(5);

/// What the keyring keys a host by: the profile entry's HostName, else
/// the server as given.
pub(crate) fn host_label(a: &ConnectArgs) -> Option<String> {
    match (&a.profile, &a.common.server) {
        (Some(p), None) => read_limited(p, MAX_FILE)
            .ok()
            .and_then(|t| acclient_core::profile::parse(&t).ok())
            .and_then(|prof| prof.select(a.host.as_deref()).ok().map(|h| h.name.clone())),
        (_, Some(s)) => Some(s.clone()),
        (None, None) => None,
    }
}

pub(crate) async fn over_servers_loop<F, Fut>(
    a: ConnectArgs,
    servers: Vec<String>,
    one: F,
) -> Result<i32>
where
    F: Fn(ConnectArgs) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    let mut a = a;
    loop {
        let r = one(a.clone()).await;
        let next = a.server_index + 1;
        match r {
            Ok(4)
                if next < servers.len() && !CAME_UP.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                note(&format!(
                    "No answer from {}; trying backup server {} ({} of {}).",
                    servers[a.server_index],
                    servers[next],
                    next,
                    servers.len() - 1
                ));
                a.server_index = next;
            }
            r => return r,
        }
    }
}
