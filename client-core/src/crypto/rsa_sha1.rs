//! RSASSA-PKCS1-v1_5 with SHA-1 (RFC 8017 §8.2), for the one place IKEv2
//! still needs it: an AnyConnect client-certificate signature (EAP TLV 1)
//! when the IKE SA's PRF is HMAC-SHA1, as on the ASA of seed 004. Gateways
//! that follow the PRF's hash refuse a SHA-256 signature there.
//!
//! aws-lc-rs verifies PKCS#1 SHA-1 but signs with SHA-2 only, so this calls
//! aws-lc's `RSA_sign` through aws-lc-sys (the same library build aws-lc-rs
//! links, with its blinding and constant-time code) rather than bring in a
//! second RSA implementation. This is the crate's only unsafe code.
#![allow(unsafe_code)]

use aws_lc_rs::digest;
use aws_lc_sys as ffi;

/// Signs `msg` (hashed here with SHA-1) with the RSA key in `der` (PKCS#1
/// RSAPrivateKey or PKCS#8 PrivateKeyInfo). `None` if the key is not RSA or
/// aws-lc refuses.
pub(crate) fn sign(der: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, msg);
    let rsa = Rsa::parse(der)?;
    // SAFETY: `rsa.0` is a valid, owned RSA*; `out` has RSA_size bytes, the
    // most RSA_sign writes; the digest pointer and length describe `hash`.
    unsafe {
        let size = ffi::RSA_size(rsa.0) as usize;
        if size == 0 {
            return None;
        }
        let mut out = vec![0u8; size];
        let mut len: core::ffi::c_uint = 0;
        let ok = ffi::RSA_sign(
            ffi::NID_sha1,
            hash.as_ref().as_ptr(),
            hash.as_ref().len(),
            out.as_mut_ptr(),
            &mut len,
            rsa.0,
        );
        if ok != 1 || len as usize > size {
            return None;
        }
        out.truncate(len as usize);
        Some(out)
    }
}

/// An owned `RSA*`, freed on drop.
struct Rsa(*mut ffi::RSA);

impl Rsa {
    fn parse(der: &[u8]) -> Option<Rsa> {
        // SAFETY: CBS_init only records the pointer and length of `der`,
        // which outlives the parse; the parsers read within them and return
        // an owned object or NULL. EVP_PKEY_get1_RSA takes its own reference
        // on the RSA key, so freeing the EVP_PKEY afterwards is sound.
        unsafe {
            let mut cbs = core::mem::MaybeUninit::<ffi::CBS>::uninit();
            ffi::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
            let rsa = ffi::RSA_parse_private_key(cbs.as_mut_ptr());
            if !rsa.is_null() {
                return Some(Rsa(rsa));
            }
            ffi::ERR_clear_error();
            ffi::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
            let pkey = ffi::EVP_parse_private_key(cbs.as_mut_ptr());
            if pkey.is_null() {
                ffi::ERR_clear_error();
                return None;
            }
            let rsa = ffi::EVP_PKEY_get1_RSA(pkey);
            ffi::EVP_PKEY_free(pkey);
            if rsa.is_null() {
                ffi::ERR_clear_error();
                return None;
            }
            Some(Rsa(rsa))
        }
    }
}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own the one reference taken in `parse`.
        unsafe { ffi::RSA_free(self.0) }
    }
}
