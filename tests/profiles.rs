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
        .arg(repo().join("profiles/seed-004.xml"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "Anu-IKEV2\t10.0.0.1\tASA-IKEV2\tIPsec"
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
