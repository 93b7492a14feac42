//! A front end's end of the agent's socket (feature `ipc-client`): connect,
//! say hello, send [`Request`]s and read [`Reply`]s, one JSON line each. The
//! CLI and the desktop app both talk to `acclientd` through this, so the two
//! explain a missing agent or a refused user in the same words.
//!
//! This is the front ends' I/O, not the engine's: it sits beside `driver/`
//! and `agent/` as the other place tokio is used.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::{line, Reply, Request, GROUP, IPC_VERSION, MAX_LINE, SOCKET};

/// The agent's state directory: `$ACCLIENT_STATE_DIR`, else `/run/acclient`
/// (the same rule as the agent's own).
pub fn state_dir() -> PathBuf {
    std::env::var_os("ACCLIENT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/acclient"))
}

/// The agent's socket in the state directory.
pub fn socket_path() -> PathBuf {
    state_dir().join(SOCKET)
}

/// Why there is no agent to talk to, in words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAgent {
    /// Nothing listens at the socket (not installed, not started).
    #[error("acclientd is not running ({} does not answer); start it with `systemctl start acclientd`", .0.display())]
    Absent(PathBuf),
    /// The socket is there but we may not use it: not in the group.
    #[error("cannot reach the agent at {}: permission denied (the socket is for root and group {GROUP}; ask an administrator: usermod -aG {GROUP} $USER, then log in again)", .0.display())]
    NotInGroup(PathBuf),
    /// It answered but refused us, or spoke another version.
    #[error("{0}")]
    Refused(String),
}

/// Talking to the agent failed after hello.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The connection closed or broke.
    #[error("the agent went away: {0}")]
    Gone(String),
    /// A line that is not one of the agent's replies, or too long.
    #[error("bad line from the agent: {0}")]
    BadLine(String),
}

/// A connection to the agent.
pub struct Agent {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Agent {
    /// Connects to the agent's socket and says hello.
    pub async fn open() -> Result<Agent, NoAgent> {
        Self::open_at(socket_path()).await
    }

    /// Connects to `path` and says hello.
    pub async fn open_at(path: PathBuf) -> Result<Agent, NoAgent> {
        let s = match UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(NoAgent::NotInGroup(path))
            }
            Err(_) => return Err(NoAgent::Absent(path)),
        };
        let (rd, wr) = s.into_split();
        let mut a = Agent {
            rd: BufReader::new(rd),
            wr,
        };
        let hello = Request::Hello {
            version: IPC_VERSION,
        };
        a.send(&hello)
            .await
            .map_err(|e| NoAgent::Refused(e.to_string()))?;
        match a.next().await {
            Ok(Reply::Hello { version, .. }) if version == IPC_VERSION => Ok(a),
            Ok(Reply::Hello { version, agent }) => Err(NoAgent::Refused(format!(
                "acclientd {agent} speaks IPC version {version}, this front end {IPC_VERSION}: update both together"
            ))),
            Ok(Reply::Error { message }) => Err(NoAgent::Refused(format!("acclientd: {message}"))),
            Ok(other) => Err(NoAgent::Refused(format!("unexpected answer {other:?}"))),
            Err(e) => Err(NoAgent::Refused(e.to_string())),
        }
    }

    /// Sends one request.
    pub async fn send(&mut self, r: &Request) -> Result<(), IpcError> {
        self.wr
            .write_all(line(r).as_bytes())
            .await
            .map_err(|e| IpcError::Gone(e.to_string()))
    }

    /// The next reply (or event); a line is read up to [`MAX_LINE`] bytes.
    pub async fn next(&mut self) -> Result<Reply, IpcError> {
        let mut buf = Vec::new();
        let n = (&mut self.rd)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| IpcError::Gone(e.to_string()))?;
        if n == 0 {
            return Err(IpcError::Gone("it closed the connection".into()));
        }
        if buf.last() != Some(&b'\n') {
            return Err(if n > MAX_LINE {
                IpcError::BadLine(format!("longer than {MAX_LINE} bytes"))
            } else {
                IpcError::Gone("it closed the connection mid-line".into())
            });
        }
        serde_json::from_slice(&buf).map_err(|e| {
            let text = String::from_utf8_lossy(&buf);
            IpcError::BadLine(format!("{e}: {:.80}", text.trim_end()))
        })
    }
}
