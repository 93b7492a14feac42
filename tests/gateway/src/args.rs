//! Command-line arguments and knobs of `acgateway`.

use std::net::{IpAddr, Ipv4Addr};

pub(crate) struct Args {
    pub(crate) listen: IpAddr,
    pub(crate) cert: Vec<u8>,
    /// The gateway certificate's RSA key; it signs method-1 AUTH with the
    /// PRF's hash, SHA-1 included, as an ASA does.
    pub(crate) key: acclient_core::crypto::sig::ClientKey,
    pub(crate) users: Vec<(String, String)>,
    pub(crate) groups: Vec<String>,
    pub(crate) mtu: usize,
    pub(crate) pool: Ipv4Addr,
    pub(crate) dns: Option<Ipv4Addr>,
    pub(crate) protected: (Ipv4Addr, u8),
    pub(crate) loss: u32,
    pub(crate) knobs: Knobs,
}

/// Second login rounds and fault injection.
#[derive(Default)]
pub(crate) struct Knobs {
    /// After the password: a challenge form whose `answer` must be this code.
    pub(crate) otp: Option<String>,
    /// After the password: "password expired", a new-password form.
    pub(crate) expire_password: bool,
    /// UNITY_BANNER in the CFG_REPLY.
    pub(crate) banner: Option<String>,
    /// Send every datagram twice.
    pub(crate) dup: bool,
    /// Drop Cisco fragment N of the first fragmented answer, once.
    pub(crate) drop_fragment: Option<u8>,
    /// Always drop Cisco fragment N.
    pub(crate) stall_fragment: Option<u8>,
    /// Ask for a client certificate chaining to this CA (DER) before the form.
    pub(crate) client_ca: Option<Vec<u8>>,
    /// Only for this tunnel group (default: every group).
    pub(crate) cert_group: Option<String>,
    /// Delay every answer by this many milliseconds.
    pub(crate) delay_ms: u64,
    /// Send a DPD (empty INFORMATIONAL request) to every established SA this often (seconds).
    pub(crate) dpd: u64,
    /// Ask for posture assessment (host scan) before the login form.
    pub(crate) host_scan: bool,
    /// Send a broken document: `xml` (auth-request), `tlv` (EAP TLV), `cp` (CFG_REPLY).
    pub(crate) malformed: Option<String>,
    /// Carry traffic: a TUN device of this name routes the pool (ESP data plane).
    pub(crate) tun: Option<String>,
    /// Only accept this ESP suite: `gcm256` or `cbc256-sha1`.
    pub(crate) esp_suite: Option<String>,
    /// Every 10th ESP packet to a client also goes out replayed, corrupted and with a bogus SPI.
    pub(crate) esp_faults: bool,
    /// Split-include subnets in the CFG_REPLY (INTERNAL_IP4_SUBNET).
    pub(crate) split: Vec<(Ipv4Addr, u8)>,
    /// Cisco DPD interval attribute (seconds, default 30).
    pub(crate) dpd_attr: u32,
    /// Cisco NAT-T keepalive attribute (seconds, default 20).
    pub(crate) keepalive_attr: u32,
    /// Only this IKE PRF (`sha1`, `sha256`, `sha384`, `sha512`), as an ASA
    /// with one proposal (seed 004's negotiates PRF SHA1).
    pub(crate) ike_prf: Option<acclient_core::wire::PrfId>,
    /// Pick extended sequence numbers when the client offers them.
    pub(crate) esn: bool,
    /// Cisco default domain and split-DNS list (comma separated).
    pub(crate) domain: Option<String>,
    pub(crate) split_dns: Option<String>,
    /// How long a session can be resumed with its token (seconds; 0: never).
    pub(crate) resume_timeout: u64,
    /// The OTP code is good for one login only, like a real one-time password.
    pub(crate) otp_once: bool,
    /// Allow the client to save the password (Cisco SAVE_PASSWD in the CFG_REPLY).
    pub(crate) save_password: bool,
}

/// The first certificate of a PEM file (the shared reader of acclient-core).
pub(crate) fn pem_cert(text: &str) -> Option<Vec<u8>> {
    acclient_core::crypto::pem::certificates(text.as_bytes())
        .ok()?
        .into_iter()
        .next()
}

pub(crate) fn usage(msg: &str) -> ! {
    eprintln!("acgateway: {msg}\nusage: acgateway --listen ADDR --cert PEM --key PEM --user NAME:PASSWORD... [--group NAME]... [--mtu 544] [--pool 192.0.2.10] [--dns ADDR] [--protected NET/LEN] [--loss PERCENT]");
    std::process::exit(2)
}

pub(crate) fn parse_args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut listen, mut cert, mut key) = (None, None, None);
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    let (mut mtu, mut pool, mut dns, mut protected, mut loss) = (
        544,
        Ipv4Addr::new(192, 0, 2, 10),
        None,
        (Ipv4Addr::UNSPECIFIED, 0),
        0,
    );
    let mut knobs = Knobs {
        dpd_attr: 30,
        keepalive_attr: 20,
        resume_timeout: 1800,
        ..Default::default()
    };
    while let Some(flag) = a.next() {
        let mut val = || {
            a.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--listen" => listen = Some(val().parse().unwrap_or_else(|_| usage("bad --listen"))),
            "--cert" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                cert = Some(pem_cert(&t).unwrap_or_else(|| usage("no certificate in --cert")));
            }
            "--key" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                let k = acclient_core::crypto::pem::private_key(t.as_bytes(), None)
                    .ok()
                    .and_then(|d| acclient_core::crypto::sig::ClientKey::from_der(d.expose()).ok())
                    .filter(|k| k.algorithm().starts_with("RSA"));
                key = Some(k.unwrap_or_else(|| usage("--key must be an RSA key (PEM)")));
            }
            "--user" => {
                let v = val();
                let (u, p) = v
                    .split_once(':')
                    .unwrap_or_else(|| usage("--user NAME:PASSWORD"));
                users.push((u.to_string(), p.to_string()));
            }
            "--group" => groups.push(val()),
            "--mtu" => mtu = val().parse().unwrap_or_else(|_| usage("bad --mtu")),
            "--pool" => pool = val().parse().unwrap_or_else(|_| usage("bad --pool")),
            "--dns" => dns = Some(val().parse().unwrap_or_else(|_| usage("bad --dns"))),
            "--protected" => {
                let v = val();
                let (n, l) = v
                    .split_once('/')
                    .unwrap_or_else(|| usage("--protected NET/LEN"));
                protected = (
                    n.parse().unwrap_or_else(|_| usage("bad net")),
                    l.parse().unwrap_or_else(|_| usage("bad len")),
                );
            }
            "--loss" => loss = val().parse().unwrap_or_else(|_| usage("bad --loss")),
            "--otp" => knobs.otp = Some(val()),
            "--otp-once" => knobs.otp_once = true,
            "--save-password" => knobs.save_password = true,
            "--resume-timeout" => {
                knobs.resume_timeout = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --resume-timeout"))
            }
            "--expire-password" => knobs.expire_password = true,
            "--banner" => knobs.banner = Some(val()),
            "--dup" => knobs.dup = true,
            "--host-scan" => knobs.host_scan = true,
            "--cert-group" => knobs.cert_group = Some(val()),
            "--delay-ms" => {
                knobs.delay_ms = val().parse().unwrap_or_else(|_| usage("bad --delay-ms"))
            }
            "--dpd" => knobs.dpd = val().parse().unwrap_or_else(|_| usage("bad --dpd")),
            "--client-ca" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                knobs.client_ca =
                    Some(pem_cert(&t).unwrap_or_else(|| usage("no certificate in --client-ca")));
            }
            "--drop-fragment" => {
                knobs.drop_fragment = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --drop-fragment")),
                )
            }
            "--stall-fragment" => {
                knobs.stall_fragment = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --stall-fragment")),
                )
            }
            "--malformed" => knobs.malformed = Some(val()),
            "--tun" => knobs.tun = Some(val()),
            "--esp-suite" => knobs.esp_suite = Some(val()),
            "--esp-faults" => knobs.esp_faults = true,
            "--esn" => knobs.esn = true,
            "--ike-prf" => {
                use acclient_core::wire::PrfId;
                knobs.ike_prf = Some(match val().as_str() {
                    "sha1" => PrfId::HMAC_SHA1,
                    "sha256" => PrfId::HMAC_SHA2_256,
                    "sha384" => PrfId::HMAC_SHA2_384,
                    "sha512" => PrfId::HMAC_SHA2_512,
                    _ => usage("--ike-prf is sha1, sha256, sha384 or sha512"),
                })
            }
            "--domain" => knobs.domain = Some(val()),
            "--split-dns" => knobs.split_dns = Some(val()),
            "--keepalive-attr" => {
                knobs.keepalive_attr = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --keepalive-attr"))
            }
            "--dpd-attr" => {
                knobs.dpd_attr = val().parse().unwrap_or_else(|_| usage("bad --dpd-attr"))
            }
            "--split" => {
                let v = val();
                let (n, l) = v
                    .split_once('/')
                    .and_then(|(n, l)| Some((n.parse().ok()?, l.parse().ok()?)))
                    .unwrap_or_else(|| usage("--split NET/LEN"));
                knobs.split.push((n, l));
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage("--listen is required")),
        cert: cert.unwrap_or_else(|| usage("--cert is required")),
        key: key.unwrap_or_else(|| usage("--key is required")),
        users,
        groups,
        mtu,
        pool,
        dns,
        protected,
        loss,
        knobs,
    }
}
