//! DNS names from the gateway (Cisco's default domain, split-DNS names,
//! INTERNAL_DNS_DOMAIN) are untrusted text on their way into
//! `/etc/resolv.conf` or systemd-resolved: only names of RFC 1035 §2.3.1
//! shape pass (letters, digits, hyphens, underscores in labels of 1..=63,
//! 253 in all, an optional final dot); anything else — a newline that would
//! smuggle in a `nameserver` line, spaces, control characters — is dropped.

/// Whether `s` is a DNS name fit for a resolver configuration.
pub fn is_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The names of `v` that pass [`is_name`]; the others are logged and dropped.
pub fn names<'a>(v: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    v.into_iter()
        .filter(|n| {
            let ok = is_name(n);
            if !ok {
                tracing::warn!("the gateway's DNS name {n:?} is not a domain name: ignored");
            }
            ok
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_smuggling() {
        for ok in [
            "corp.example",
            "a-b.lab.example.",
            "_ldap._tcp.corp.example",
            "x",
        ] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in [
            "corp.example\nnameserver 192.0.2.66",
            "corp example",
            "",
            ".",
            "a..b",
            "-a.example",
            "a\u{0}b",
            &"a".repeat(64),
            &format!("{}.example", "a.".repeat(130)),
        ] {
            assert!(!is_name(bad), "{bad:?}");
        }
        let v = vec!["good.example".to_string(), "bad\nname".to_string()];
        assert_eq!(names(&v), ["good.example"]);
    }
}
