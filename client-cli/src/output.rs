//! Where progress lines and logs go: stderr (never panicking on a closed
//! one), quieter with `-q`, stamped with `--timestamp`, or to syslog with
//! `--syslog` (openconnect's three options).
//!
//! Syslog is RFC 3164 framing (`<PRI>acclient[PID]: text`, facility user)
//! on the local datagram socket `/dev/log` (journald reads it too);
//! `$ACCLIENT_SYSLOG` names another socket (tests). Sends never block: a
//! full socket drops the line rather than stall the runtime.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static QUIET: AtomicBool = AtomicBool::new(false);
static STAMP: AtomicBool = AtomicBool::new(false);
static SYSLOG: OnceLock<UnixDatagram> = OnceLock::new();

/// Syslog severities we use.
#[derive(Clone, Copy)]
enum Severity {
    Err = 3,
    Info = 6,
}

/// Applies the three options once, at start. A `--syslog` whose socket
/// cannot be reached is an error naming it.
pub(crate) fn init(quiet: bool, timestamp: bool, syslog: bool) -> std::io::Result<()> {
    QUIET.store(quiet, Ordering::Relaxed);
    STAMP.store(timestamp, Ordering::Relaxed);
    if syslog {
        let path = std::env::var_os("ACCLIENT_SYSLOG").unwrap_or_else(|| "/dev/log".into());
        let s = UnixDatagram::unbound()?;
        s.connect(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("--syslog: {}: {e}", std::path::Path::new(&path).display()),
            )
        })?;
        s.set_nonblocking(true)?;
        let _ = SYSLOG.set(s);
    }
    Ok(())
}

fn to_syslog(sev: Severity, line: &str) -> bool {
    let Some(s) = SYSLOG.get() else {
        return false;
    };
    // Facility user (1): PRI = 8 + severity.
    let msg = format!(
        "<{}>acclient[{}]: {}",
        8 + sev as u8,
        std::process::id(),
        line.trim_end()
    );
    let _ = s.send(msg.as_bytes());
    true
}

/// `[2026-12-01 12:34:56 UTC] ` under `--timestamp`. UTC: a local offset
/// is not knowable soundly in a multi-threaded process.
fn stamp() -> String {
    if !STAMP.load(Ordering::Relaxed) {
        return String::new();
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "[{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC] ",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A progress line ("Contacting …", "Connected to …"): to syslog under
/// `--syslog`, else to stderr unless `-q`.
pub(crate) fn note(text: &str) {
    for line in text.lines() {
        if to_syslog(Severity::Info, line) || QUIET.load(Ordering::Relaxed) {
            continue;
        }
        let _ = writeln!(std::io::stderr(), "{}{line}", stamp());
    }
}

/// An error line: always to stderr, and to syslog too under `--syslog`.
pub(crate) fn error(line: &str) {
    to_syslog(Severity::Err, line);
    let _ = writeln!(std::io::stderr(), "{}{line}", stamp());
}

/// Whether `-q` asked for less.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The tracing writer: each event is one syslog message under `--syslog`,
/// else stderr (errors ignored).
pub(crate) struct LogWriter(Vec<u8>);

pub(crate) fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if SYSLOG.get().is_some() {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        } else {
            let _ = std::io::stderr().write_all(buf);
            Ok(buf.len())
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            to_syslog(Severity::Info, &String::from_utf8_lossy(&self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
    }
}
