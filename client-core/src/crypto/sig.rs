//! Peer authentication by certificate: chain and name checks with
//! rustls-webpki, and AUTH payload signatures (RFC 7296 §2.15 / §3.8 method 1,
//! RFC 4754 methods 9–11, RFC 7427 method 14).

use core::time::Duration;

use aws_lc_rs::{digest, signature as sg};
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::wire::{AuthMethod, PrfId};

/// Why a certificate or signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Could not parse the certificate.
    #[error("the gateway's certificate cannot be parsed")]
    Unparsable,
    /// Chain building or validation failed (why, in words).
    #[error("{0}")]
    Untrusted(String),
    /// The certificate does not name the identity the gateway claimed (IDr).
    #[error("the gateway's certificate is not valid for its identity {0}")]
    NameMismatch(String),
    /// The AUTH payload's signature does not verify.
    #[error("the gateway's AUTH signature does not verify")]
    BadSignature,
    /// An authentication method or signature algorithm we do not implement.
    #[error("unsupported signature scheme: {0}")]
    Unsupported(String),
}

/// What a user needs to decide whether to trust a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// `pin-sha256:` + base64(SHA-256(SubjectPublicKeyInfo)), as openconnect prints it.
    pub pin: String,
    /// SHA-256 of the whole certificate, hex.
    pub sha256: String,
    /// SHA-512 of the SubjectPublicKeyInfo (Cisco's CertificatePinList), hex.
    pub spki_sha512_hex: String,
    /// The same, base64.
    pub spki_sha512_b64: String,
    /// Not-before, as printed by x509-parser.
    pub not_before: String,
    /// Not-after, as printed by x509-parser.
    pub not_after: String,
}

impl CertSummary {
    /// Whether `pin` names this certificate's key: `pin-sha256:` (base64,
    /// openconnect's form) or `pin-sha512:` / a bare Cisco CertificatePinList
    /// value (SHA-512 of the public key, base64 or hex).
    pub fn matches_pin(&self, pin: &str) -> bool {
        let pin = pin.trim();
        if pin.starts_with("pin-sha256:") {
            return pin == self.pin;
        }
        // The certificate's own SHA-256 fingerprint, as the trust prompt
        // shows it (hex, colons allowed, `sha256:` optional; openconnect
        // accepts the same).
        let fp: String = pin
            .strip_prefix("sha256:")
            .unwrap_or(pin)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if fp.len() == 64 && fp.eq_ignore_ascii_case(&self.sha256) {
            return true;
        }
        let v = pin.strip_prefix("pin-sha512:").unwrap_or(pin);
        v == self.spki_sha512_b64 || v.eq_ignore_ascii_case(&self.spki_sha512_hex)
    }
}

/// Whether `s` is a pin [`CertSummary::matches_pin`] understands:
/// `pin-sha256:B64` (SPKI), `pin-sha512:` or Cisco's SHA-512 hex, or the
/// certificate's SHA-256 fingerprint in hex (colons and `sha256:` allowed).
pub fn is_pin(s: &str) -> bool {
    let s = s.trim();
    if s.starts_with("pin-sha256:") || s.starts_with("pin-sha512:") {
        return true;
    }
    let hex: String = s
        .strip_prefix("sha256:")
        .unwrap_or(s)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    (hex.len() == 64 || hex.len() == 128) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Summary of a DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, CertError> {
    let (_, c) = X509Certificate::from_der(der).map_err(|_| CertError::Unparsable)?;
    let spki = c.tbs_certificate.subject_pki.raw;
    let pin =
        base64::engine::general_purpose::STANDARD.encode(digest::digest(&digest::SHA256, spki));
    Ok(CertSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        pin: format!("pin-sha256:{pin}"),
        sha256: super::hex(digest::digest(&digest::SHA256, der).as_ref()),
        spki_sha512_hex: super::hex(digest::digest(&digest::SHA512, spki).as_ref()),
        spki_sha512_b64: base64::engine::general_purpose::STANDARD
            .encode(digest::digest(&digest::SHA512, spki)),
        not_before: c.validity().not_before.to_string(),
        not_after: c.validity().not_after.to_string(),
    })
}

// OIDs (DER content bytes) of extended key usages accepted for IKE gateways.
const EKU_IKE_INTERMEDIATE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x08, 0x02, 0x02];
const EKU_IPSEC_IKE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11];

/// Validates `ee` (with `intermediates`) to one of `anchors` (DER certificates)
/// at `unix_time` seconds. A gateway certificate may carry serverAuth (what
/// Cisco and strongSwan examples use), ikeIntermediate or ipsecIKE as its EKU.
pub fn verify_chain(
    ee: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
    unix_time: u64,
) -> Result<(), CertError> {
    let usages = [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::required(EKU_IKE_INTERMEDIATE),
        webpki::KeyUsage::required(EKU_IPSEC_IKE),
    ];
    verify_for(ee, intermediates, anchors, unix_time, &usages)
}

/// Chain validation accepting the first of `usages` that fits.
fn verify_for(
    ee: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
    unix_time: u64,
    usages: &[webpki::KeyUsage],
) -> Result<(), CertError> {
    let ee_der = CertificateDer::from(ee);
    let cert = webpki::EndEntityCert::try_from(&ee_der)
        .map_err(|e| CertError::Untrusted(e.to_string()))?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(&a[..]))
        .collect();
    let tas: Vec<_> = anchor_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    if tas.is_empty() {
        return Err(CertError::Untrusted("no trust anchors configured".into()));
    }
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|i| CertificateDer::from(&i[..]))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(unix_time));
    let mut errors = Vec::new();
    for usage in usages {
        match cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &tas,
            &inter,
            time,
            *usage,
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => errors.push(e),
        }
    }
    // Each usage is tried in turn; the key-usage refusals of the others are
    // noise when the real problem is, say, an unknown issuer.
    #[allow(deprecated)] // older webpki builds still report the unit variant
    let is_eku = |e: &webpki::Error| {
        matches!(
            e,
            webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_)
        )
    };
    let worst = errors.iter().find(|e| !is_eku(e)).or(errors.first());
    Err(CertError::Untrusted(
        worst.map(in_words).unwrap_or_default(),
    ))
}

/// Why a chain was refused, in words a user can act on (not a Debug dump).
#[allow(deprecated)] // see is_eku
fn in_words(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "unknown issuer: it is not signed by a CA you trust".into(),
        E::CertExpired { .. } => "the certificate has expired".into(),
        E::CertNotValidYet { .. } => "the certificate is not valid yet (check the clock)".into(),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            "wrong key usage: the certificate is not for a server or IKE".into()
        }
        E::CertNotValidForName(_) => "the certificate does not name this gateway".into(),
        E::CertRevoked => "the certificate was revoked".into(),
        E::InvalidSignatureForPublicKey => "a signature in the chain does not verify".into(),
        E::CaUsedAsEndEntity => "a CA certificate was presented as the gateway's".into(),
        other => format!("{other:?}"),
    }
}

/// Validates a *client* certificate chain (EKU clientAuth if present), for a
/// gateway checking an AnyConnect user certificate.
pub fn verify_client_chain(
    ee: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
    unix_time: u64,
) -> Result<(), CertError> {
    verify_for(
        ee,
        intermediates,
        anchors,
        unix_time,
        &[webpki::KeyUsage::client_auth()],
    )
}

/// A client certificate's private key (RSA or ECDSA), signing the way an
/// IKE initiator signs its AUTH: RSA with PKCS#1 v1.5 and the PRF's hash,
/// SHA-1 included ("the hash follows the PRF", as Cisco's client does and
/// gateways expect in EAP-AnyConnect TLV 1); ECDSA as RFC 4754 methods 9–11,
/// the hash fixed by the curve and the signature as fixed-length r | s.
pub struct ClientKey {
    kind: ClientKeyKind,
    /// The public key as a certificate's SubjectPublicKeyInfo carries it
    /// (RSAPublicKey DER, or the uncompressed EC point), to match the two.
    public: Vec<u8>,
}

enum ClientKeyKind {
    /// The DER is kept for the SHA-1 path, which aws-lc-rs cannot sign.
    Rsa(aws_lc_rs::rsa::KeyPair, super::Secret),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair, &'static str),
}

impl core::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ClientKey({} [redacted])", self.algorithm())
    }
}

impl ClientKey {
    /// From DER: PKCS#1 RSAPrivateKey, SEC1 ECPrivateKey (P-256, P-384,
    /// P-521) or PKCS#8 PrivateKeyInfo of either, as [`super::pem::private_key`]
    /// returns them.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        use aws_lc_rs::signature::KeyPair as _;
        if let Ok(k) = aws_lc_rs::rsa::KeyPair::from_der(der)
            .or_else(|_| aws_lc_rs::rsa::KeyPair::from_pkcs8(der))
        {
            let public = k.public_key().as_ref().to_vec();
            return Ok(ClientKey {
                kind: ClientKeyKind::Rsa(k, super::Secret::from(der)),
                public,
            });
        }
        let curves: [(&'static sg::EcdsaSigningAlgorithm, &'static str); 3] = [
            (&sg::ECDSA_P256_SHA256_FIXED_SIGNING, "ECDSA P-256"),
            (&sg::ECDSA_P384_SHA384_FIXED_SIGNING, "ECDSA P-384"),
            (&sg::ECDSA_P521_SHA512_FIXED_SIGNING, "ECDSA P-521"),
        ];
        for (alg, name) in curves {
            if let Ok(k) = sg::EcdsaKeyPair::from_pkcs8(alg, der)
                .or_else(|_| sg::EcdsaKeyPair::from_private_key_der(alg, der))
            {
                let public = k.public_key().as_ref().to_vec();
                return Ok(ClientKey {
                    kind: ClientKeyKind::Ecdsa(k, name),
                    public,
                });
            }
        }
        Err(CertError::Unsupported(
            "the client key is neither RSA nor ECDSA P-256/P-384/P-521 (PKCS#1, SEC1 or PKCS#8)"
                .into(),
        ))
    }

    /// "RSA 2048" or "ECDSA P-256", for messages.
    pub fn algorithm(&self) -> String {
        match &self.kind {
            ClientKeyKind::Rsa(k, _) => format!("RSA {}", k.public_modulus_len() * 8),
            ClientKeyKind::Ecdsa(_, name) => (*name).to_string(),
        }
    }

    /// Whether this is the private half of certificate `ee`'s public key.
    pub fn matches(&self, ee: &[u8]) -> bool {
        key_of(ee).is_ok_and(|(_, k)| k == self.public)
    }

    /// The signature of `msg` for an IKE SA whose PRF is `prf`.
    pub fn sign(&self, prf: PrfId, msg: &[u8]) -> Result<Vec<u8>, CertError> {
        let failed = || CertError::Unsupported(format!("{} signing failed", self.algorithm()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.kind {
            ClientKeyKind::Rsa(k, der) => {
                let enc: &'static dyn sg::RsaEncoding = match prf {
                    PrfId::HMAC_SHA1 => {
                        return super::rsa_sha1::sign(der.expose(), msg).ok_or_else(failed)
                    }
                    PrfId::HMAC_SHA2_384 => &sg::RSA_PKCS1_SHA384,
                    PrfId::HMAC_SHA2_512 => &sg::RSA_PKCS1_SHA512,
                    // HMAC-SHA2-256 and PRFs without a hash of their own
                    // (AES-XCBC, AES-CMAC): SHA-256.
                    _ => &sg::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(enc, &rng, msg, &mut sig).map_err(|_| failed())?;
                Ok(sig)
            }
            ClientKeyKind::Ecdsa(k, _) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
        }
    }
}

/// Checks that the certificate names `id`: an FQDN or IP against its
/// subjectAltName (webpki rules), a DN against its subject.
pub fn verify_identity(ee: &[u8], id: &crate::wire::Id<'_>) -> Result<(), CertError> {
    use crate::wire::IdType;
    let mismatch = || CertError::NameMismatch(id.to_string());
    match id.ty {
        IdType::DER_ASN1_DN => {
            let (_, c) = X509Certificate::from_der(ee).map_err(|_| CertError::Unparsable)?;
            if c.tbs_certificate.subject.as_raw() == id.data {
                Ok(())
            } else {
                Err(mismatch())
            }
        }
        IdType::FQDN | IdType::IPV4_ADDR | IdType::IPV6_ADDR => {
            let name = match id.ty {
                IdType::FQDN => {
                    let s = core::str::from_utf8(id.data).map_err(|_| mismatch())?;
                    ServerName::try_from(s.to_owned()).map_err(|_| mismatch())?
                }
                _ => ServerName::IpAddress(id_ip(id).ok_or_else(mismatch)?.into()),
            };
            let der = CertificateDer::from(ee);
            let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| CertError::Unparsable)?;
            cert.verify_is_valid_for_subject_name(&name)
                .map_err(|_| mismatch())
        }
        _ => Err(mismatch()),
    }
}

fn id_ip(id: &crate::wire::Id<'_>) -> Option<std::net::IpAddr> {
    match id.data.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(id.data).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(id.data).ok()?)),
        _ => None,
    }
}

/// The key type of a certificate, to pick algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

fn key_of(ee: &[u8]) -> Result<(KeyKind, Vec<u8>), CertError> {
    let (_, c) = X509Certificate::from_der(ee).map_err(|_| CertError::Unparsable)?;
    let spki = &c.tbs_certificate.subject_pki;
    let key = spki.subject_public_key.data.to_vec();
    let oid = spki.algorithm.algorithm.to_id_string();
    let kind = match oid.as_str() {
        "1.2.840.113549.1.1.1" => KeyKind::Rsa,
        "1.2.840.10045.2.1" => match key.len() {
            65 => KeyKind::EcP256,
            97 => KeyKind::EcP384,
            133 => KeyKind::EcP521,
            _ => {
                return Err(CertError::Unsupported(format!(
                    "EC key of {} bytes",
                    key.len()
                )))
            }
        },
        "1.3.101.112" => KeyKind::Ed25519,
        other => {
            return Err(CertError::Unsupported(format!(
                "public key algorithm {other}"
            )))
        }
    };
    Ok((kind, key))
}

// Signature AlgorithmIdentifier OIDs, DER-encoded OID element (RFC 7427 §3 / Appendix A).
const OID_SHA1_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05,
];
const OID_SHA256_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
];
const OID_SHA384_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c,
];
const OID_SHA512_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d,
];
const OID_RSA_PSS: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
];
const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Verifies an AUTH payload made with the private key of certificate `ee`
/// over `signed` (the responder's signed octets). Returns a short name of the
/// scheme used, for logs and `probe` output.
pub fn verify_auth(
    method: AuthMethod,
    data: &[u8],
    signed: &[u8],
    ee: &[u8],
    prf: PrfId,
) -> Result<&'static str, CertError> {
    let (kind, key) = key_of(ee)?;
    let check = |alg: &'static dyn sg::VerificationAlgorithm, sig: &[u8]| {
        sg::UnparsedPublicKey::new(alg, &key)
            .verify(signed, sig)
            .is_ok()
    };
    match (method, kind) {
        (AuthMethod::RSA_SIG, KeyKind::Rsa) => {
            // RFC 7296 §3.8 leaves the hash open; Cisco and strongSwan use
            // SHA-1, some gateways the PRF's hash. Accept either.
            if check(&sg::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, data) {
                return Ok("RSA_EMSA_PKCS1_SHA1");
            }
            let (alg, name): (&'static dyn sg::VerificationAlgorithm, _) = match prf {
                PrfId::HMAC_SHA2_256 => (
                    &sg::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                    "RSA_EMSA_PKCS1_SHA2_256",
                ),
                PrfId::HMAC_SHA2_384 => {
                    (&sg::RSA_PKCS1_2048_8192_SHA384, "RSA_EMSA_PKCS1_SHA2_384")
                }
                PrfId::HMAC_SHA2_512 => (
                    &sg::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                    "RSA_EMSA_PKCS1_SHA2_512",
                ),
                _ => return Err(CertError::BadSignature),
            };
            if check(alg, data) {
                Ok(name)
            } else {
                Err(CertError::BadSignature)
            }
        }
        (AuthMethod::ECDSA_SHA256_P256, KeyKind::EcP256) => ok_if(
            check(&sg::ECDSA_P256_SHA256_FIXED, data),
            "ECDSA_WITH_SHA256",
        ),
        (AuthMethod::ECDSA_SHA384_P384, KeyKind::EcP384) => ok_if(
            check(&sg::ECDSA_P384_SHA384_FIXED, data),
            "ECDSA_WITH_SHA384",
        ),
        (AuthMethod::ECDSA_SHA512_P521, KeyKind::EcP521) => ok_if(
            check(&sg::ECDSA_P521_SHA512_FIXED, data),
            "ECDSA_WITH_SHA512",
        ),
        (AuthMethod::DIGITAL_SIGNATURE, _) => {
            // RFC 7427 §3: 1-byte length, AlgorithmIdentifier, signature.
            let (&n, rest) = data.split_first().ok_or(CertError::BadSignature)?;
            if rest.len() < n as usize {
                return Err(CertError::BadSignature);
            }
            let (algid, sig) = rest.split_at(n as usize);
            let has = |o: &[u8]| contains(algid, o);
            let (alg, name): (&'static dyn sg::VerificationAlgorithm, &'static str) = match kind {
                KeyKind::Rsa if has(OID_SHA256_RSA) => (
                    &sg::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                    "RSA_EMSA_PKCS1_SHA2_256",
                ),
                KeyKind::Rsa if has(OID_SHA384_RSA) => {
                    (&sg::RSA_PKCS1_2048_8192_SHA384, "RSA_EMSA_PKCS1_SHA2_384")
                }
                KeyKind::Rsa if has(OID_SHA512_RSA) => (
                    &sg::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                    "RSA_EMSA_PKCS1_SHA2_512",
                ),
                KeyKind::Rsa if has(OID_SHA1_RSA) => (
                    &sg::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    "RSA_EMSA_PKCS1_SHA1",
                ),
                KeyKind::Rsa if has(OID_RSA_PSS) && has(OID_SHA256) => {
                    (&sg::RSA_PSS_2048_8192_SHA256, "RSA_EMSA_PSS_SHA2_256")
                }
                KeyKind::Rsa if has(OID_RSA_PSS) && has(OID_SHA384) => {
                    (&sg::RSA_PSS_2048_8192_SHA384, "RSA_EMSA_PSS_SHA2_384")
                }
                KeyKind::Rsa if has(OID_RSA_PSS) && has(OID_SHA512) => {
                    (&sg::RSA_PSS_2048_8192_SHA512, "RSA_EMSA_PSS_SHA2_512")
                }
                KeyKind::EcP256 if has(OID_ECDSA_SHA256) => {
                    (&sg::ECDSA_P256_SHA256_ASN1, "ECDSA-256_WITH_SHA2_256")
                }
                KeyKind::EcP384 if has(OID_ECDSA_SHA384) => {
                    (&sg::ECDSA_P384_SHA384_ASN1, "ECDSA-384_WITH_SHA2_384")
                }
                KeyKind::EcP384 if has(OID_ECDSA_SHA256) => {
                    (&sg::ECDSA_P384_SHA256_ASN1, "ECDSA-384_WITH_SHA2_256")
                }
                KeyKind::EcP256 if has(OID_ECDSA_SHA384) => {
                    (&sg::ECDSA_P256_SHA384_ASN1, "ECDSA-256_WITH_SHA2_384")
                }
                KeyKind::EcP521 if has(OID_ECDSA_SHA512) => {
                    (&sg::ECDSA_P521_SHA512_ASN1, "ECDSA-521_WITH_SHA2_512")
                }
                KeyKind::Ed25519 if has(OID_ED25519) => (&sg::ED25519, "ED25519"),
                _ => {
                    return Err(CertError::Unsupported(format!(
                        "RFC 7427 AlgorithmIdentifier {}",
                        super::hex(algid)
                    )))
                }
            };
            ok_if(check(alg, sig), name)
        }
        (m, k) => Err(CertError::Unsupported(format!(
            "AUTH method {m} with a {k:?} key"
        ))),
    }
}

fn ok_if(ok: bool, name: &'static str) -> Result<&'static str, CertError> {
    if ok {
        Ok(name)
    } else {
        Err(CertError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::pem;

    fn key(name: &str) -> ClientKey {
        let text = std::fs::read(format!(
            "{}/src/crypto/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        ClientKey::from_der(pem::private_key(&text, None).unwrap().expose()).unwrap()
    }

    fn cert(name: &str) -> Vec<u8> {
        let text = std::fs::read(format!(
            "{}/src/crypto/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        pem::certificates(&text).unwrap().remove(0)
    }

    fn verifies(alg: &'static dyn sg::VerificationAlgorithm, ee: &[u8], sig: &[u8]) -> bool {
        let (_, k) = key_of(ee).unwrap();
        sg::UnparsedPublicKey::new(alg, &k)
            .verify(b"signed octets", sig)
            .is_ok()
    }

    /// The RSA hash follows the PRF, SHA-1 included (seed 004's ASA
    /// negotiates PRF_HMAC_SHA1); each signature verifies with that hash
    /// only.
    #[test]
    fn rsa_signature_hash_follows_the_prf() {
        let k = key("rsa-pkcs1.pem");
        let ee = cert("rsa.crt");
        assert_eq!(k.algorithm(), "RSA 2048");
        let cases: [(PrfId, &'static dyn sg::VerificationAlgorithm); 4] = [
            (
                PrfId::HMAC_SHA1,
                &sg::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            ),
            (PrfId::HMAC_SHA2_256, &sg::RSA_PKCS1_2048_8192_SHA256),
            (PrfId::HMAC_SHA2_384, &sg::RSA_PKCS1_2048_8192_SHA384),
            (PrfId::HMAC_SHA2_512, &sg::RSA_PKCS1_2048_8192_SHA512),
        ];
        for (prf, alg) in cases {
            let sig = k.sign(prf, b"signed octets").unwrap();
            assert_eq!(sig.len(), 256);
            for (other, other_alg) in cases {
                assert_eq!(
                    verifies(other_alg, &ee, &sig),
                    other == prf,
                    "PRF {prf:?} signature checked as {other:?}"
                );
            }
            let _ = alg;
        }
        // PKCS#8 of the same key signs the same (PKCS#1 v1.5 is deterministic).
        assert_eq!(
            key("rsa-pkcs8.pem")
                .sign(PrfId::HMAC_SHA1, b"signed octets")
                .unwrap(),
            k.sign(PrfId::HMAC_SHA1, b"signed octets").unwrap()
        );
    }

    /// ECDSA keys (SEC1 and PKCS#8) sign fixed r | s with the curve's hash.
    #[test]
    fn ecdsa_keys_sign_with_the_curve_hash() {
        let k = key("ec256-sec1.pem");
        let ee = cert("ec256.crt");
        assert_eq!(k.algorithm(), "ECDSA P-256");
        assert!(k.matches(&ee));
        let sig = k.sign(PrfId::HMAC_SHA1, b"signed octets").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(verifies(&sg::ECDSA_P256_SHA256_FIXED, &ee, &sig));
        let k384 = key("ec384-pkcs8.pem");
        assert_eq!(k384.algorithm(), "ECDSA P-384");
        let sig = k384.sign(PrfId::HMAC_SHA2_256, b"signed octets").unwrap();
        assert_eq!(sig.len(), 96);
        assert!(
            sg::UnparsedPublicKey::new(&sg::ECDSA_P384_SHA384_FIXED, &k384.public)
                .verify(b"signed octets", &sig)
                .is_ok()
        );
    }

    /// A key is matched against its certificate; garbage is named, not a panic.
    #[test]
    fn keys_match_their_certificates_only() {
        let (rsa, ec) = (key("rsa-pkcs8.pem"), key("ec256-sec1.pem"));
        assert!(rsa.matches(&cert("rsa.crt")));
        assert!(!rsa.matches(&cert("ec256.crt")));
        assert!(!ec.matches(&cert("rsa.crt")));
        assert!(!rsa.matches(b"not a certificate"));
        let e = ClientKey::from_der(b"\x30\x03\x02\x01\x00").unwrap_err();
        assert!(e.to_string().contains("neither RSA nor ECDSA"), "{e}");
        assert!(!format!("{rsa:?}").contains("30"), "{rsa:?}");
    }
}
