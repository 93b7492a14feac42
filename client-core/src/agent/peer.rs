//! Who is on the other end of the socket: `SO_PEERCRED` (the kernel's
//! word, not the front end's), then root or a member of the agent's group.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Uid, User};

/// The peer's uid when it may use the agent; else the refusal, naming the group.
pub(super) fn check(sock: &impl AsFd, gid: Option<u32>, group: &str) -> Result<u32, String> {
    let cred = getsockopt(sock, PeerCredentials)
        .map_err(|e| format!("cannot tell who is connecting (SO_PEERCRED: {e})"))?;
    let uid = cred.uid();
    if uid == 0 {
        return Ok(uid);
    }
    let refuse = || {
        format!("permission denied: uid {uid} is not in group {group} (ask an administrator: usermod -aG {group} USER, then log in again)")
    };
    let Some(gid) = gid else {
        return Err(refuse());
    };
    if cred.gid() == gid {
        return Ok(uid);
    }
    // Supplementary groups from the group database (the peer's own list is
    // not in SO_PEERCRED).
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Err(refuse());
    };
    let Ok(name) = std::ffi::CString::new(user.name.clone()) else {
        return Err(refuse());
    };
    match nix::unistd::getgrouplist(&name, user.gid) {
        Ok(groups) if groups.contains(&Gid::from_raw(gid)) => Ok(uid),
        _ => Err(refuse()),
    }
}
