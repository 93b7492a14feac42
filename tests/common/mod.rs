//! Test lab: a gateway and a client network namespace joined by a veth pair,
//! a private strongSwan (charon-systemd + swanctl from Debian) in the gateway
//! namespace, and helpers to run `acclient` in the client namespace.
//!
//! Addresses are documentation ranges only: 198.51.100.0/24 on the link,
//! 203.0.113.0/24 behind the gateway, 192.0.2.0/28 for virtual IPs.
//! Everything is torn down on drop: processes by PID, then the namespaces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const GW: &str = "198.51.100.1";
pub const CL: &str = "198.51.100.2";

/// The `acclient` binary under test (the CLI's tests are told where it is;
/// other crates' tests find it beside their own binary).
pub const ACCLIENT: &str = match option_env!("CARGO_BIN_EXE_acclient") {
    Some(p) => p,
    None => "acclient",
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why a test cannot run here, or None if it can.
pub fn skip_reason() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("needs root (network namespaces); CI runs as root".into());
    }
    for bin in [
        "/usr/sbin/charon-systemd",
        "/usr/sbin/swanctl",
        "/usr/bin/pki",
    ] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} missing: run .ci/run or install strongSwan from Debian"
            ));
        }
    }
    None
}

/// Returns a lab, or prints why the test is skipped and returns None.
#[macro_export]
macro_rules! lab_or_skip {
    ($tag:expr) => {
        match common::skip_reason() {
            Some(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
            None => common::Lab::new($tag),
        }
    };
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

/// Whether `script` (util-linux) is here to give a test a pseudo-terminal;
/// prints the skip reason when not.
pub fn have_script() -> bool {
    let ok = Command::new("script").arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: script (util-linux) missing");
    }
    ok
}

pub fn sh(script: &str) -> Output {
    run(Command::new("sh").arg("-c").arg(script))
}

pub fn must(script: &str) -> String {
    let o = sh(script);
    assert!(
        o.status.success(),
        "`{script}` failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `acclient SUB` to our test gateway as alice, the password on stdin,
/// trusting `ca`, then `extra`.
pub fn anyconnect_args<'a>(sub: &'a str, ca: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        sub,
        "--server",
        GW,
        "--anyconnect",
        "--user",
        "alice",
        "--passwd-on-stdin",
        "--cafile",
        ca,
    ];
    v.extend_from_slice(extra);
    v
}

/// Certificates made once per test process with strongSwan's `pki`.
pub struct Pki {
    pub dir: PathBuf,
}

pub fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("acclient-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        // RSA CA + gateway; ECDSA gateway; a 3-deep RSA-4096 chain for fragmentation;
        // an unrelated CA for the "untrusted" case.
        must(&format!(
            r#"set -e; cd {d}
            export STRONGSWAN_CONF={d}/pki.conf
            printf 'pki {{ load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp }}\n' > pki.conf
            issue() {{ pki --pub --in $1.key | pki --issue --lifetime 365 --cacert $2.crt --cakey $2.key --dn "C=XX, O=VPN Test, CN=$3" $4 --outform pem > $1.crt; }}
            gwflags='--san vpn.example.com --san 198.51.100.1 --flag serverAuth --flag ikeIntermediate'
            pki --gen --type rsa --size 2048 --outform pem > ca.key
            pki --self --ca --lifetime 3650 --in ca.key --dn "C=XX, O=VPN Test, CN=VPN Test Root CA" --outform pem > ca.crt
            pki --gen --type rsa --size 2048 --outform pem > gw.key
            issue gw ca vpn.example.com "$gwflags"
            pki --gen --type ecdsa --size 256 --outform pem > gwec.key
            issue gwec ca vpn.example.com "$gwflags"
            pki --gen --type rsa --size 2048 --outform pem > other.key
            pki --self --ca --lifetime 3650 --in other.key --dn "C=XX, O=Elsewhere, CN=Unrelated CA" --outform pem > other.crt
            pki --gen --type rsa --size 2048 --outform pem > client.key
            issue client ca alice "--flag clientAuth"
            pki --gen --type ecdsa --size 256 --outform pem > clientec.key
            issue clientec ca alice-ec "--flag clientAuth"
            openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:key-pw -in client.key -out client-enc.key
            pki --gen --type rsa --size 2048 --outform pem > rogue.key
            issue rogue other mallory "--flag clientAuth"
            pki --gen --type rsa --size 4096 --outform pem > bigca.key
            pki --self --ca --lifetime 3650 --in bigca.key --dn "C=XX, O=VPN Test, CN=VPN Test Big Root CA" --outform pem > bigca.crt
            pki --gen --type rsa --size 4096 --outform pem > int1.key
            issue int1 bigca "VPN Test Intermediate 1" "--ca"
            pki --gen --type rsa --size 4096 --outform pem > int2.key
            issue int2 int1 "VPN Test Intermediate 2" "--ca"
            pki --gen --type rsa --size 4096 --outform pem > biggw.key
            issue biggw int2 vpn.example.com "$gwflags"
            "#
        ));
        Pki { dir }
    })
}

pub struct Lab {
    pub tag: String,
    pub gw: String,
    pub cl: String,
    pub dir: PathBuf,
    charon: Option<Child>,
    procs: Vec<Child>,
    acgw_pids: Vec<u32>,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{}", std::process::id() % 100000, n);
        let gw = format!("acgw{id}");
        let cl = format!("accl{id}");
        let dir = std::env::temp_dir().join(format!("acl-{tag}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            tag: tag.into(),
            gw: gw.clone(),
            cl: cl.clone(),
            dir,
            charon: None,
            procs: Vec::new(),
            acgw_pids: Vec::new(),
        };
        must(&format!(
            "set -e; ip netns add {gw}; ip netns add {cl}
             ip link add veth-gw netns {gw} type veth peer name veth-cl netns {cl}
             ip -n {gw} addr add {GW}/24 dev veth-gw; ip -n {cl} addr add {CL}/24 dev veth-cl
             ip -n {gw} addr add 203.0.113.1/32 dev lo
             ip -n {gw} link set lo up; ip -n {cl} link set lo up
             ip -n {gw} link set veth-gw up; ip -n {cl} link set veth-cl up
             mkdir -p /etc/netns/{cl}
             printf 'nameserver 198.51.100.53\nsearch lab.example\n' > /etc/netns/{cl}/resolv.conf"
        ));
        lab
    }

    /// Starts charon in the gateway namespace with `conn` (swanctl syntax:
    /// connections / pools / secrets) and `extra` lines inside `charon { }`.
    pub fn start_strongswan(&mut self, swanctl: &str, extra: &str) {
        let d = self.dir.join("gw");
        for sub in [
            "x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "private", "rsa", "ecdsa",
            "pkcs8", "pkcs12", "pubkey",
        ] {
            std::fs::create_dir_all(d.join("swanctl").join(sub)).unwrap();
        }
        let p = &pki().dir;
        for (f, sub) in [
            ("gw.crt", "x509"),
            ("gwec.crt", "x509"),
            ("biggw.crt", "x509"),
            ("int1.crt", "x509ca"),
            ("int2.crt", "x509ca"),
        ] {
            std::fs::copy(p.join(f), d.join("swanctl").join(sub).join(f)).unwrap();
        }
        for f in ["gw.key", "gwec.key", "biggw.key"] {
            std::fs::copy(p.join(f), d.join("swanctl/private").join(f)).unwrap();
        }
        let dd = d.display();
        let conf = format!(
            r#"charon {{
    retransmit_timeout = 1.0
    retransmit_tries = 2
    retransmit_base = 1.4
    load_modular = no
    load = random nonce drbg openssl aes sha1 sha2 md5 hmac gcm pem pkcs1 pkcs8 x509 revocation constraints pubkey gmp kdf attr kernel-libipsec kernel-netlink socket-default vici updown eap-identity eap-md5 eap-mschapv2 eap-gtc xauth-generic counters
    plugins {{
        vici {{ socket = unix://{dd}/charon.vici }}
        eap-gtc {{ backend = generic }}
    }}
    filelog {{
        main {{
            path = {dd}/charon.log
            append = no
            flush_line = yes
            time_format = %H:%M:%S
            time_add_ms = yes
            default = 1
            ike = 2
            cfg = 2
            enc = 1
        }}
    }}
    syslog {{ daemon {{ default = -1 }} auth {{ default = -1 }} }}
{extra}
}}
swanctl {{
    socket = unix://{dd}/charon.vici
    load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints
}}
"#
        );
        std::fs::write(d.join("strongswan.conf"), conf).unwrap();
        std::fs::write(d.join("swanctl/swanctl.conf"), swanctl).unwrap();
        let stdout = std::fs::File::create(d.join("stdout.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.gw, "env"])
            .arg(format!("STRONGSWAN_CONF={dd}/strongswan.conf"))
            .arg("/usr/sbin/charon-systemd")
            .stdout(stdout.try_clone().unwrap())
            .stderr(stdout)
            .spawn()
            .expect("start charon-systemd");
        self.charon = Some(child);
        let sock = d.join("charon.vici");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "charon did not start: {}",
                self.gw_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.swanctl("--load-all");
    }

    /// `swanctl ARGS` against this lab's charon, with its swanctl.conf.
    /// The usual gateway: certificate `certs`, EAP-MSCHAPv2, default timers.
    pub fn start_eap_gateway(&mut self, certs: &str) {
        let local = format!("auth = pubkey\n certs = {certs}");
        self.start_strongswan(
            &gw_conf(&local, "auth = eap-mschapv2\n eap_id = %any", "", ""),
            "",
        );
    }

    pub fn swanctl(&self, args: &str) -> String {
        let d = self.dir.join("gw");
        must(&format!(
            "STRONGSWAN_CONF={0}/strongswan.conf swanctl {args} --file {0}/swanctl/swanctl.conf --uri unix://{0}/charon.vici",
            d.display()
        ))
    }

    pub fn list_sas(&self) -> String {
        let d = self.dir.join("gw");
        must(&format!(
            "STRONGSWAN_CONF={0}/strongswan.conf swanctl --list-sas --uri unix://{0}/charon.vici",
            d.display()
        ))
    }

    /// Starts our test gateway (`acgateway`, built by `cargo build --workspace`)
    /// in the gateway namespace with the lab's RSA certificate and `args`.
    pub fn start_acgateway(&mut self, args: &[&str]) {
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("acgateway"))
            .unwrap();
        assert!(
            bin.exists(),
            "{} missing: build the workspace first (scripts/test does)",
            bin.display()
        );
        let log = std::fs::File::create(self.dir.join("acgateway.log")).unwrap();
        let p = &pki().dir;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.gw])
            .arg(&bin)
            .args(["--listen", GW, "--cert"])
            .arg(p.join("gw.crt"))
            .arg("--key")
            .arg(p.join("gw.key"))
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start acgateway");
        self.acgw_pids.push(child.id());
        self.procs.push(child);
        assert!(
            self.wait_acgw("listening on", 5),
            "acgateway did not start: {}",
            self.acgw_log()
        );
    }

    /// Kills the test gateway(s) started so far (by PID) and waits for them.
    pub fn kill_acgateway(&mut self) {
        for pid in std::mem::take(&mut self.acgw_pids) {
            if let Some(i) = self.procs.iter().position(|c| c.id() == pid) {
                let mut c = self.procs.remove(i);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub fn acgw_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("acgateway.log")).unwrap_or_default()
    }

    pub fn wait_acgw(&self, pat: &str, secs: u64) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if self.acgw_log().contains(pat) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits (at most `secs`) until the gateway log contains `pat`.
    pub fn wait_log(&self, pat: &str, secs: u64) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if self.gw_log().contains(pat) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn gw_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gw/charon.log")).unwrap_or_default()
    }

    /// Runs `acclient ARGS` in the client namespace with `stdin`; returns
    /// (exit code, stdout, stderr, elapsed).
    pub fn acclient(&self, args: &[&str], stdin: &str) -> (i32, String, String, Duration) {
        self.acclient_env(args, stdin, &[])
    }

    /// Like [`Lab::acclient`] with extra environment variables for this run only.
    pub fn acclient_env(
        &self,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> (i32, String, String, Duration) {
        use std::io::Write;
        let t = Instant::now();
        let mut c = self
            .acclient_cmd(args, env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run acclient");
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        eprintln!(
            "--- acclient {args:?} exit {:?}\n{out}{err}",
            o.status.code()
        );
        (o.status.code().unwrap_or(-1), out, err, t.elapsed())
    }

    /// `acclient probe` as alice with EAP against the gateway, trusting `ca`,
    /// with `extra` arguments; the password comes on stdin.
    pub fn eap_probe(&self, ca: &str, extra: &[&str]) -> (i32, String, String, Duration) {
        let mut args = vec![
            "probe",
            "--server",
            GW,
            "--user",
            "alice",
            "--passwd-on-stdin",
            "--cafile",
            ca,
        ];
        args.extend_from_slice(extra);
        self.acclient(&args, "alice-password\n")
    }

    /// `acclient ARGS` in the client namespace with this lab's state directory.
    fn acclient_cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.cl, ACCLIENT])
            .args(args)
            .env("ACCLIENT_STATE_DIR", self.state_dir())
            .envs(env.iter().copied());
        c
    }

    /// This lab's acclient state directory (journal, status socket).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts `acclient ARGS` in the background in the client namespace;
    /// its output goes to `name`.log in the lab directory. Returns the PID.
    pub fn spawn_acclient(&mut self, name: &str, args: &[&str], stdin: &str) -> u32 {
        self.spawn_acclient_env(name, args, stdin, &[])
    }

    /// Like [`Lab::spawn_acclient`] with extra environment variables.
    pub fn spawn_acclient_env(
        &mut self,
        name: &str,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> u32 {
        use std::io::Write;
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let mut c = self
            .acclient_cmd(args, env)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run acclient");
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let pid = c.id();
        self.procs.push(c);
        pid
    }

    /// Starts a helper process (output to `name`.log), killed by PID at the end.
    pub fn spawn_bg(&mut self, name: &str, cmd: &mut Command) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let c = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = c.id();
        self.procs.push(c);
        pid
    }

    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits (at most `secs`) until `name`.log contains `pat`.
    pub fn wait_for(&self, name: &str, pat: &str, secs: u64) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if self.log_of(name).contains(pat) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends `sig` to a process we started and waits (at most 10 s) for it.
    pub fn signal(&mut self, pid: u32, sig: &str) -> Option<i32> {
        let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        let i = self.procs.iter().position(|c| c.id() == pid)?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.procs[i].try_wait() {
                let _ = self.procs.remove(i).wait();
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The exit code of a process we started, if it has ended.
    pub fn exit_code(&mut self, pid: u32) -> Option<i32> {
        let i = self.procs.iter().position(|c| c.id() == pid)?;
        match self.procs[i].try_wait() {
            Ok(Some(st)) => {
                let _ = self.procs.remove(i).wait();
                Some(st.code().unwrap_or(-1))
            }
            _ => None,
        }
    }

    /// Waits (bounded) for `pid` to exit; its exit code, or None if it is
    /// still running after `secs`.
    pub fn wait_exit(&mut self, pid: u32, secs: u64) -> Option<i32> {
        let t = Instant::now();
        loop {
            if let Some(c) = self.exit_code(pid) {
                return Some(c);
            }
            if t.elapsed() > Duration::from_secs(secs) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes `text` to `name` in the lab directory; its path.
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// The shell line `cmd` on a pseudo-terminal (`script`) in the client
    /// namespace, fed `input` (a shell snippet printing keystrokes between
    /// sleeps), killed after `secs`. Returns the terminal's transcript.
    /// `script` runs the line with `$SHELL`; it is pinned to `/bin/sh` so a
    /// developer's bash and a CI machine's dash behave alike.
    pub fn on_pty(&self, cmd: &str, input: &str, secs: u32) -> Output {
        sh(&format!(
            "({input}) | SHELL=/bin/sh timeout {secs} ip netns exec {} script -qec '{cmd}' /dev/null",
            self.cl
        ))
    }

    /// Ctrl-C three seconds into `acclient ARGS` at its hidden password
    /// prompt. The terminal's input stays open past the timeout, so only a
    /// CLI that acts on Ctrl-C itself reaches `echo EXIT` and `stty` (one
    /// waiting for Enter or end of input is killed first). Asserts that it
    /// exited with 0 and that echo is back on; returns the transcript.
    pub fn ctrl_c_at_password_prompt(&self, acclient: &str, args: &str) -> String {
        // The ^C reaches the whole foreground group, the shell too. An
        // interactive shell carries on to the next line once its child has
        // exited; a non-interactive dash would kill itself instead, so the
        // line traps INT to stand in for the user's shell (the trap is reset
        // to the default in acclient, which must handle ^C itself).
        let cmd = format!(
            "trap : INT; ACCLIENT_STATE_DIR={} {acclient} {args}; echo EXIT=$?; stty -a",
            self.state_dir().display()
        );
        let o = self.on_pty(&cmd, "sleep 3; printf '\\003'; sleep 8", 10);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(out.contains("assword"), "no prompt seen: {out}");
        assert!(
            out.contains("EXIT="),
            "the CLI did not exit on Ctrl-C: {out}"
        );
        // A disconnect the user asked for is a clean end (0), not death by
        // SIGINT (130) with the teardown skipped.
        assert!(out.contains("EXIT=0"), "Ctrl-C did not end cleanly: {out}");
        let words: Vec<&str> = out.split_whitespace().collect();
        assert!(
            words.contains(&"echo") && !words.contains(&"-echo"),
            "echo left off after Ctrl-C: {out}"
        );
        out
    }

    /// A host-scan wrapper whose shell `body` may write to `$OUT` (the
    /// record file), in a directory its unprivileged user can reach and
    /// write. Returns (wrapper, record).
    pub fn csd_wrapper(&self, body: &str) -> (String, PathBuf) {
        let dir = self.dir.join("csd");
        std::fs::create_dir_all(&dir).unwrap();
        must(&format!(
            "chmod 1777 {0}; chmod 755 {1}",
            dir.display(),
            self.dir.display()
        ));
        let (wrapper, record) = (dir.join("csd.sh"), dir.join("csd.out"));
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nOUT={}\n{body}\n", record.display()),
        )
        .unwrap();
        must(&format!("chmod 755 {}", wrapper.display()));
        (wrapper.display().to_string(), record)
    }

    /// A shell command in the client namespace.
    pub fn in_cl(&self, script: &str) -> Output {
        run(Command::new("ip").args(["netns", "exec", &self.cl, "sh", "-c", script]))
    }

    /// A shell command in the gateway namespace.
    pub fn in_gw(&self, script: &str) -> Output {
        run(Command::new("ip").args(["netns", "exec", &self.gw, "sh", "-c", script]))
    }

    /// `acclient status --json` of this lab's running client.
    pub fn status(&self) -> serde_json::Value {
        let (code, out, err, _) = self.acclient(&["status", "--json"], "");
        assert_eq!(code, 0, "status failed: {err}");
        serde_json::from_str(&out).expect("status JSON")
    }

    /// The client namespace's routes, addresses and resolver, to compare.
    pub fn client_net_state(&self) -> String {
        let o = self.in_cl(
            "ip -4 route show table all; ip -6 route show table all | grep -Ev '^local|fe80|^multicast|^anycast'; ip -br addr; ip -br link; cat /etc/resolv.conf",
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn ca(&self, name: &str) -> String {
        pki().dir.join(name).display().to_string()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut c in self.procs.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.charon.take() {
            let pid = c.id();
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- gateway log ({}):\n{}{}",
                self.tag,
                self.gw_log(),
                self.acgw_log()
            );
        }
        let _ = Command::new("ip").args(["netns", "del", &self.gw]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.cl]).status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.cl));
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A gateway connection in swanctl syntax. `local_auth` is `psk` or
/// `pubkey` with `certs`; `remote_auth` is `psk` or `eap-…`.
pub fn gw_conf(local: &str, remote: &str, extra_conn: &str, extra_child: &str) -> String {
    format!(
        r#"connections {{
    vpn {{
        version = 2
        local_addrs = {GW}
        pools = pool4
        send_cert = always
        {extra_conn}
        local {{
            {local}
            id = vpn.example.com
        }}
        remote {{
            {remote}
        }}
        children {{
            net {{
                local_ts = 203.0.113.0/24
                esp_proposals = aes256gcm16,aes256-sha1
                {extra_child}
            }}
        }}
    }}
}}
pools {{
    pool4 {{
        addrs = 192.0.2.0/28
        dns = 203.0.113.53
    }}
}}
secrets {{
    ike-alice {{
        id-a = vpn.example.com
        id-b = alice@example.com
        secret = "test-psk-0123456789"
    }}
    eap-alice {{
        id = alice
        secret = "alice-password"
    }}
}}
"#
    )
}

/// A system user and group made for one test, removed on drop.
pub struct Account {
    pub user: String,
    group: Option<String>,
}

impl Account {
    pub fn new(user: &str, group: Option<&str>) -> Account {
        if let Some(g) = group {
            must(&format!(
                "getent group {g} >/dev/null || groupadd --system {g}"
            ));
        }
        let g = group.map_or(String::new(), |g| format!("-G {g}"));
        must(&format!(
            "userdel -f {user} 2>/dev/null; useradd --system --no-create-home --shell /usr/sbin/nologin {g} {user}"
        ));
        Account {
            user: user.into(),
            group: group.map(str::to_string),
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = sh(&format!("userdel -f {} 2>/dev/null", self.user));
        if let Some(g) = &self.group {
            let _ = sh(&format!("groupdel {g} 2>/dev/null"));
        }
    }
}
