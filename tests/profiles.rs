//! Every profile we ship validates against the AnyConnect profile schema
//! (xmllint) and is read by `acclient profiles`; broken XML is reported with
//! its line and column and exit code 1.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    assert!(v.len() >= 2, "demo.xml and seed-004.xml at least");
    v
}

#[test]
fn shipped_profiles_validate_against_the_xsd() {
    if Command::new("xmllint").arg("--version").output().is_err() {
        eprintln!("SKIPPED: xmllint missing (scripts/setup installs libxml2-utils)");
        return;
    }
    let xsd = repo().join("profiles/schema/AnyConnectProfile.xsd");
    for p in shipped() {
        let o = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn acclient_lists_every_shipped_profile() {
    for p in shipped() {
        let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
            .arg("profiles")
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", p.display());
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("IPsec"), "{}: {out}", p.display());
    }
    let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
        .arg("profiles")
        // Seed 004's profile: its 10.0.0.1 is a parse vector, never dialled.
        .arg(repo().join("profiles/seed-004.xml"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "HOST       ADDRESS   GROUP      PROTOCOL       LOGIN\nAnu-IKEV2  10.0.0.1  ASA-IKEV2  IPsec (IKEv2)  EAP-AnyConnect"
    );
}

#[test]
fn broken_profile_reports_line_and_column() {
    let dir = std::env::temp_dir().join(format!("acclient-badprofile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.xml");
    std::fs::write(
        &f,
        "<AnyConnectProfile>\n  <ServerList>\n    <HostEntry></ServerList>\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
        .arg("profiles")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("bad.xml") && err.contains("line 3"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Usage errors exit 64, never a real outcome's code (2 is authentication
/// failed), and options of one subcommand given to the other are refused by
/// name instead of ignored. No network, no root.
#[test]
fn usage_errors_have_their_own_exit_code() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["connect", "--bogus"]);
    assert_eq!(code, Some(64), "{err}");
    let (code, err) = run(&["connect"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("give --server ADDR"), "{err}");
    let (code, err) = run(&["connect", "--server", "127.0.0.1", "--json"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("--json is an option of `acclient probe`"),
        "{err}"
    );
    let (code, err) = run(&["probe", "--server", "127.0.0.1", "--background"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("--background is an option of `acclient connect`"),
        "{err}"
    );
    let (code, err) = run(&["probe", "--server", "127.0.0.1", "--host", "ASA"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--host names an entry of --profile"), "{err}");
    let (code, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    let (code, err) = run(&["probe", "--server", "127.0.0.1", "-b"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("-b is an option of `acclient connect`"),
        "{err}"
    );
    let (code, err) = run(&[
        "connect",
        "--server",
        "127.0.0.1",
        "--disable-ipv6",
        "--ipv6",
    ]);
    assert_eq!(code, Some(64), "contradictory: {err}");
}

/// Each subcommand's help lists its own options only (once `connect --help`
/// offered probe's `--json`, `--hold`, `--ping`), and no help text refers
/// to the project's issues.
#[test]
fn each_subcommand_helps_with_its_own_options() {
    let help = |sub: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (connect, probe) = (help("connect"), help("probe"));
    let words = |h: &str| -> Vec<String> {
        h.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| w.starts_with("--"))
            .map(str::to_string)
            .collect()
    };
    let (cw, pw) = (words(&connect), words(&probe));
    for probe_only in ["--json", "--hold", "--ping", "--ping-count"] {
        assert!(
            !cw.iter().any(|w| w == probe_only),
            "{probe_only} in connect --help:\n{connect}"
        );
        assert!(
            pw.iter().any(|w| w == probe_only),
            "{probe_only} missing from probe --help"
        );
    }
    for connect_only in [
        "--background",
        "--no-agent",
        "--script",
        "--split-include",
        "--split-exclude",
        "--no-dns",
        "--mtu",
        "--interface",
        "--reconnect-timeout",
        "--allow-ipv6-bypass",
        "--local-lan",
    ] {
        assert!(
            !pw.iter().any(|w| w == connect_only),
            "{connect_only} in probe --help:\n{probe}"
        );
        assert!(
            cw.iter().any(|w| w == connect_only),
            "{connect_only} missing from connect --help"
        );
    }
    for h in [&connect, &probe] {
        assert!(!h.contains("issue"), "{h}");
        assert!(cw.iter().any(|w| w == "--server"), "shared options in both");
    }
}

/// `acclient profiles` says what `connect` will do with each entry, under a
/// header: a host without PrimaryProtocol is SSL (the schema's default) and
/// is refused by `connect` as an explicit SSL host is, with the hint;
/// `--protocol ikev2` goes past that (here to the connect attempt against a
/// closed loopback port); a file that is not a profile, or one without
/// hosts, is an error naming it. No root, loopback only.
#[test]
fn profiles_list_what_will_be_used() {
    let dir = std::env::temp_dir().join(format!("acclient-prof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prof = dir.join("mixed.xml");
    std::fs::write(
        &prof,
        "<AnyConnectProfile><ClientInitialization><AuthenticationTimeout>10</AuthenticationTimeout></ClientInitialization><ServerList>\
         <HostEntry><HostName>Web</HostName><HostAddress>127.0.0.1:9</HostAddress></HostEntry>\
         <HostEntry><HostName>Tls</HostName><HostAddress>127.0.0.1:9</HostAddress><PrimaryProtocol>SSL</PrimaryProtocol></HostEntry>\
         <HostEntry><HostName>Corp</HostName><HostAddress>127.0.0.1:9</HostAddress><UserGroup>OPS</UserGroup><PrimaryProtocol>IPsec</PrimaryProtocol>\
         <BackupServerList><HostAddress>127.0.0.2:9</HostAddress></BackupServerList></HostEntry>\
         </ServerList></AnyConnectProfile>",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let p = prof.display().to_string();
    let (code, out, err) = run(&["profiles", &p]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("HOST") && lines[0].contains("PROTOCOL") && lines[0].contains("LOGIN"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("Web") && lines[1].contains("SSL (default): not spoken"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("Tls") && lines[2].contains("SSL: not spoken"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("Corp")
            && lines[3].contains("IPsec (IKEv2)")
            && lines[3].contains("EAP-AnyConnect"),
        "{out}"
    );
    assert!(out.contains("backup servers: 127.0.0.2:9"), "{out}");
    let (code, _, err) = run(&["probe", "--profile", &p, "--host", "Web", "--non-inter"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("host Web uses PrimaryProtocol SSL (the profile schema's default")
            && err.contains("--protocol ikev2"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "probe",
        "--profile",
        &p,
        "--host",
        "Web",
        "--protocol",
        "ikev2",
        "--non-inter",
        "--anyconnect",
        "--timeout",
        "20",
    ]);
    assert!(!err.contains("PrimaryProtocol"), "{err}");
    assert_eq!(code, Some(4), "tried, and found nothing listening: {err}");
    // The backup is tried when the primary gives no answer.
    let (code, _, err) = run(&[
        "probe",
        "--profile",
        &p,
        "--host",
        "Corp",
        "--non-inter",
        "--timeout",
        "30",
    ]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("No answer from 127.0.0.1:9; trying backup server 127.0.0.2:9 (1 of 1)."),
        "{err}"
    );
    let readme = repo().join("README.md").display().to_string();
    let (code, _, err) = run(&["profiles", &readme]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("README.md: not an AnyConnect profile"),
        "{err}"
    );
    let empty = dir.join("empty.xml");
    std::fs::write(&empty, "<AnyConnectProfile/>").unwrap();
    let e = empty.display().to_string();
    let (code, _, err) = run(&["profiles", &e]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no HostEntry in its ServerList"), "{err}");
    let (code, _, err) = run(&["connect", "--profile", &e, "--no-agent"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no HostEntry in its ServerList"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's option table and `--help` agree: every option `connect` or
/// `probe` takes is in the table, and every option the table names exists.
#[test]
fn readme_option_table_matches_help() {
    let longs = |text: &str| -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2 && !w.starts_with("---"))
            .map(str::to_string)
            .collect()
    };
    let mut help = std::collections::BTreeSet::new();
    for sub in ["connect", "probe"] {
        let o = Command::new(env!("CARGO_BIN_EXE_acclient"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        // Options only (the first word of each option line), not words in
        // the descriptions.
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let t = line.trim_start();
            if t.starts_with('-') {
                help.extend(
                    longs(t.split("  ").next().unwrap_or(""))
                        .into_iter()
                        .filter(|w| w != "--help"),
                );
            }
        }
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table: String = readme
        .lines()
        .skip_while(|l| !l.starts_with("| option | meaning |"))
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap_or("").to_string() + "\n")
        .collect();
    let documented = longs(&table);
    let missing: Vec<_> = help.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "in --help, not in the README table: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&help).collect();
    assert!(
        stale.is_empty(),
        "in the README table, not in --help: {stale:?}"
    );
}
