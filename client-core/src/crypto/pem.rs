//! PEM files (RFC 7468): certificates and private keys, the one reader the
//! CLI, the agent, the desktop app and the test gateway share.
//!
//! Sections come from rustls-pki-types' `PemObject` (text around them, such
//! as openssl's "Bag Attributes", is skipped). Keys may be PKCS#1 RSA, SEC1
//! EC or PKCS#8 (RFC 5208), and PKCS#8 may be encrypted (RFC 5958 §3, PBES2
//! of RFC 8018) — what `openssl pkcs8 -topk8` and `openssl genpkey -aes256`
//! write. OpenSSL's older per-file encryption ("Proc-Type: 4,ENCRYPTED") is
//! refused with the command that converts it.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Secret;

/// Why a PEM file gave no usable certificate or key. The messages are
/// written to follow a file name ("FILE: …").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No `CERTIFICATE` section.
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")]
    NoCertificate,
    /// No private key section of a kind we read.
    #[error("no PEM private key (RSA PRIVATE KEY, EC PRIVATE KEY, PRIVATE KEY or ENCRYPTED PRIVATE KEY) in the file")]
    NoKey,
    /// A section that cannot be decoded (bad base64, missing END line).
    #[error("malformed PEM: {0}")]
    Malformed(String),
    /// The key is encrypted and no passphrase was given.
    #[error("the private key is encrypted; its passphrase is needed")]
    NeedsPassphrase,
    /// The passphrase does not decrypt the key.
    #[error("the passphrase does not decrypt the private key (wrong passphrase?)")]
    WrongPassphrase,
    /// An encryption we do not read.
    #[error("{0}")]
    Unsupported(String),
}

/// Every certificate in `text`, in file order (end entity first in a chain
/// file; a CA bundle in any order).
pub fn certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(text) {
        let c = c.map_err(|e| PemError::Malformed(e.to_string()))?;
        out.push(c.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(out)
}

/// Whether `text` holds an encrypted private key (so a front end knows to
/// ask for the passphrase before calling [`private_key`]).
pub fn key_is_encrypted(text: &[u8]) -> bool {
    contains(text, ENCRYPTED_BEGIN.as_bytes()) || contains(text, b"Proc-Type: 4,ENCRYPTED")
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The first private key in `text` as DER: PKCS#1, SEC1 or PKCS#8 (what
/// [`super::sig::ClientKey::from_der`] takes). An encrypted PKCS#8 key is
/// decrypted with `passphrase`.
pub fn private_key(text: &[u8], passphrase: Option<&[u8]>) -> Result<Secret, PemError> {
    if contains(text, b"Proc-Type: 4,ENCRYPTED") {
        return Err(PemError::Unsupported(
            "the key uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED); convert it with \
             `openssl pkcs8 -topk8 -in OLD.key -out NEW.key` (PKCS#8, encrypted or not)"
                .into(),
        ));
    }
    if let Some(block) = encrypted_block(text) {
        return decrypt_pkcs8(block, passphrase);
    }
    match PrivateKeyDer::from_pem_slice(text) {
        Ok(k) => Ok(Secret::new(k.secret_der().to_vec())),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(PemError::NoKey),
        Err(e) => Err(PemError::Malformed(e.to_string())),
    }
}

/// The `ENCRYPTED PRIVATE KEY` section, BEGIN to END lines included.
fn encrypted_block(text: &[u8]) -> Option<&[u8]> {
    let s = find(text, ENCRYPTED_BEGIN.as_bytes())?;
    let e = find(&text[s..], ENCRYPTED_END.as_bytes())? + s + ENCRYPTED_END.len();
    Some(&text[s..e])
}

fn decrypt_pkcs8(block: &[u8], passphrase: Option<&[u8]>) -> Result<Secret, PemError> {
    use pkcs8::der::Decode as _;
    // To DER first: der's PEM reader cannot look ahead into the PBES2
    // parameters.
    let (_, der) = pkcs8::der::pem::decode_vec(block)
        .map_err(|e| PemError::Malformed(format!("encrypted PKCS#8: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der)
        .map_err(|e| PemError::Malformed(format!("encrypted PKCS#8: {e}")))?;
    let Some(pass) = passphrase else {
        return Err(PemError::NeedsPassphrase);
    };
    match info.decrypt(pass) {
        Ok(doc) => Ok(Secret::new(doc.as_bytes().to_vec())),
        // PBES2 has no integrity check of its own: a wrong passphrase shows
        // as bad padding or as plaintext that is not a PrivateKeyInfo.
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm {
            oid,
        })) => Err(PemError::Unsupported(format!(
            "the key is encrypted with an algorithm we do not read ({oid}); re-encrypt it with \
                 `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
        ))),
        Err(_) => Err(PemError::WrongPassphrase),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.pem");
    const RSA_PKCS8: &str = include_str!("testdata/rsa-pkcs8.pem");
    const RSA_PKCS8_ENC: &str = include_str!("testdata/rsa-pkcs8-enc.pem");
    const RSA_LEGACY: &str = include_str!("testdata/rsa-legacy-enc.pem");
    const RSA_CRT: &str = include_str!("testdata/rsa.crt");
    const EC_CRT: &str = include_str!("testdata/ec256.crt");

    #[test]
    fn certificates_in_order_with_text_around() {
        let bundle = format!("Bag Attributes\n  friendlyName: x\n{RSA_CRT}\n# comment\n{EC_CRT}");
        let c = certificates(bundle.as_bytes()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0][0], 0x30);
        assert_ne!(c[0], c[1]);
        assert_eq!(
            certificates(RSA_PKCS1.as_bytes()),
            Err(PemError::NoCertificate)
        );
        let broken = RSA_CRT.replace("MII", "M!I");
        assert!(matches!(
            certificates(broken.as_bytes()),
            Err(PemError::Malformed(_))
        ));
    }

    #[test]
    fn encrypted_pkcs8_is_the_same_key_as_plain() {
        let plain = private_key(RSA_PKCS8.as_bytes(), None).unwrap();
        assert!(key_is_encrypted(RSA_PKCS8_ENC.as_bytes()));
        assert!(!key_is_encrypted(RSA_PKCS8.as_bytes()));
        assert_eq!(
            private_key(RSA_PKCS8_ENC.as_bytes(), None),
            Err(PemError::NeedsPassphrase)
        );
        assert_eq!(
            private_key(RSA_PKCS8_ENC.as_bytes(), Some(b"wrong horse")),
            Err(PemError::WrongPassphrase)
        );
        let dec = private_key(RSA_PKCS8_ENC.as_bytes(), Some(b"correct horse")).unwrap();
        assert_eq!(dec.expose(), plain.expose());
    }

    #[test]
    fn legacy_encryption_and_missing_keys_say_what_to_do() {
        let e = private_key(RSA_LEGACY.as_bytes(), Some(b"x")).unwrap_err();
        assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
        assert!(key_is_encrypted(RSA_LEGACY.as_bytes()));
        assert_eq!(private_key(RSA_CRT.as_bytes(), None), Err(PemError::NoKey));
        assert_eq!(private_key(b"", None), Err(PemError::NoKey));
        assert!(private_key(RSA_PKCS1.as_bytes(), None).is_ok());
    }
}
