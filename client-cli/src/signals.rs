//! The signals `connect` reads: SIGINT / SIGTERM / SIGHUP to disconnect,
//! SIGUSR1 (status) and SIGUSR2 (reconnect now), as openconnect does.

use super::*;

/// SIGUSR1 and SIGUSR2, as openconnect reads them.
pub(crate) enum UserSignal {
    /// SIGUSR1: print the status.
    Status,
    /// SIGUSR2: close the session and log in again.
    Reconnect,
}

/// The two user signals as one stream (pending forever if the handlers
/// cannot be installed).
pub(crate) struct UserSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl UserSignals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        UserSignals(
            signal(SignalKind::user_defined1())
                .and_then(|a| Ok((a, signal(SignalKind::user_defined2())?)))
                .ok(),
        )
    }

    pub(crate) async fn next(&mut self) -> UserSignal {
        match self.0.as_mut() {
            Some((u1, u2)) => tokio::select! {
                _ = u1.recv() => UserSignal::Status,
                _ = u2.recv() => UserSignal::Reconnect,
            },
            None => std::future::pending().await,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn until_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGHUP (the terminal closed, ssh dropped) is a request to leave like
    // SIGTERM: without a handler it would kill us before the teardown.
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    note("Disconnecting...");
}
