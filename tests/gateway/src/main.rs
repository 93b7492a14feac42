//! `acgateway`: a test IKEv2 responder that behaves like the Cisco ASA of
//! seed 004 towards an AnyConnect client — same message sequence and payload
//! order, RSA certificate AUTH, EAP-AnyConnect hello / auth-request /
//! complete with a user database and an optional group list, Cisco
//! fragmentation of its large answers at `--mtu`, a CFG_REPLY with the seed's
//! Cisco attributes, and a CHILD SA. It reuses the core's codec and crypto;
//! the responder logic here is its own. For tests and the demo only.
//!
//! Every message it receives or sends is logged on stderr as one line,
//! `IKE_AUTH request 1 [ V IDi CERTREQ CP SA TSi TSr N ]`, which tests read.

mod aggregate_auth;
mod args;
mod config_reply;
mod data_plane;
mod ike;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use acclient_core::crypto::cipher::Protection;
use acclient_core::crypto::keymat::IkeKeys;
use acclient_core::crypto::SystemRng;
use acclient_core::ike::cisco_frag;
use acclient_core::ike::proposals::IkeSuite;
use acclient_core::wire::*;

use args::*;
use data_plane::*;

/// Which form the next auth-reply answers (the aggregate-auth rounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    /// User name and password (the first form).
    Login,
    /// The password expired: new + confirm.
    NewPassword,
    /// A one-time code.
    Otp,
    /// Posture assessment: the host-scan token must come back.
    HostScan,
    /// `<client-cert-request/>`: the second init carries the certificate.
    ClientCert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Auth1,
    Init,
    AuthReply,
    Ack,
    FinalAuth,
    Up,
}

struct Sa {
    spi_i: [u8; 8],
    suite: IkeSuite,
    keys: IkeKeys,
    out: Protection,
    inp: Protection,
    ni: Vec<u8>,
    nr: Vec<u8>,
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    idi_body: Vec<u8>,
    idr_body: Vec<u8>,
    stage: Stage,
    eap_id: u8,
    group: Option<String>,
    user: Option<String>,
    attempts: u32,
    /// What the next auth-reply answers.
    round: Round,
    opaque: String,
    child_offer: SaPayload,
    last: Option<(u32, Vec<Vec<u8>>)>,
    frag_id: u16,
    reasm: cisco_frag::CiscoReassembly,
    lease: Ipv4Addr,
    token: String,
    /// Our `session-id` (0 until `complete`).
    session_id: u32,
    /// Where the client's NAT-T datagrams come from (for our own requests).
    peer: Option<SocketAddr>,
    /// Message ID of our next request (DPD).
    next_req: u32,
}

/// A session a client may resume with its token (by `session-token`).
struct Resumable {
    session_id: u32,
    user: Option<String>,
    group: Option<String>,
    lease: Ipv4Addr,
    until: std::time::Instant,
}

struct Gw {
    dp: Arc<DataPlane>,
    a: Args,
    sas: HashMap<[u8; 8], Sa>,
    sessions: HashMap<String, Resumable>,
    next_session: u32,
    otp_used: bool,
    next_lease: u32,
    rng: SystemRng,
    drop_state: u32,
}

fn log(s: &str) {
    eprintln!("acgateway: {s}");
}

fn main() {
    let a = parse_args();
    let ike = Arc::new(
        UdpSocket::bind(SocketAddr::new(a.listen, 500))
            .unwrap_or_else(|e| usage(&format!("cannot bind UDP 500: {e}"))),
    );
    let nat = Arc::new(
        UdpSocket::bind(SocketAddr::new(a.listen, 4500))
            .unwrap_or_else(|e| usage(&format!("cannot bind UDP 4500: {e}"))),
    );
    {
        // Bursts at line rate overflow the global default receive buffer.
        use nix::sys::socket::{setsockopt, sockopt};
        let n: usize = 4 << 20;
        if setsockopt(&*nat, sockopt::RcvBufForce, &n).is_err() {
            let _ = setsockopt(&*nat, sockopt::RcvBuf, &n);
        }
        let _ = setsockopt(&*nat, sockopt::SndBufForce, &n);
    }
    log(&format!(
        "listening on {}:500 and :4500, MTU {}, {} users, groups {:?}",
        a.listen,
        a.mtu,
        a.users.len(),
        a.groups
    ));
    let dp = Arc::new(DataPlane {
        faults: a.knobs.esp_faults,
        ..Default::default()
    });
    if let Some(name) = &a.knobs.tun {
        // The pool's /24 is routed into the device; the gateway's address in
        // it is the last one.
        let net = u32::from(a.pool) & 0xffff_ff00;
        let dev = Arc::new(
            tun_rs::DeviceBuilder::new()
                .name(name)
                .ipv4(Ipv4Addr::from(net | 254), 24, None)
                .mtu(1500)
                .offload(true)
                .build_sync()
                .unwrap_or_else(|e| usage(&format!("cannot create TUN {name}: {e}"))),
        );
        *dp.tun.lock().expect("dp") = Some(dev.clone());
        let (d2, n2) = (dp.clone(), nat.clone());
        std::thread::spawn(move || d2.outbound_loop(dev, n2));
        log(&format!("data plane on {name}"));
    }
    let gw = Arc::new(Mutex::new(Gw {
        dp,
        a,
        sas: HashMap::new(),
        sessions: HashMap::new(),
        next_session: 0,
        otp_used: false,
        next_lease: 0,
        rng: SystemRng,
        drop_state: 1,
    }));
    let (g2, n2) = (gw.clone(), nat.clone());
    std::thread::spawn(move || serve(g2, n2, true));
    let dpd = gw.lock().expect("gateway lock").a.knobs.dpd;
    if dpd > 0 {
        let (g3, n3) = (gw.clone(), nat.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(dpd));
            let reqs = g3.lock().expect("gateway lock").dpd_requests();
            for (to, m) in reqs {
                let _ = n3.send_to(&[&[0u8, 0, 0, 0][..], &m].concat(), to);
            }
        });
    }
    serve(gw, ike, false);
}
