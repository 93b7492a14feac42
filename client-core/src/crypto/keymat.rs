//! IKE SA and CHILD SA key derivation (RFC 7296 §2.14, §2.17, §2.18).

use super::prf::Prf;
use super::Secret;

/// Lengths of the keys an IKE SA needs.
#[derive(Clone, Copy, Debug)]
pub struct KeyLengths {
    /// Integrity key length (0 for AEAD).
    pub integ: usize,
    /// Encryption key length, including the 4-byte salt for AES-GCM.
    pub encr: usize,
}

/// The seven IKE SA keys.
#[derive(Clone, Debug)]
pub struct IkeKeys {
    /// SK_d: derives CHILD SA keys and the rekeyed IKE SA.
    pub sk_d: Secret,
    /// SK_ai / SK_ar.
    pub sk_ai: Secret,
    /// See `sk_ai`.
    pub sk_ar: Secret,
    /// SK_ei / SK_er.
    pub sk_ei: Secret,
    /// See `sk_ei`.
    pub sk_er: Secret,
    /// SK_pi / SK_pr: for the AUTH payloads.
    pub sk_pi: Secret,
    /// See `sk_pi`.
    pub sk_pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir)  (§2.14).
pub fn skeyseed(prf: &Prf, ni: &[u8], nr: &[u8], gir: &[u8]) -> Secret {
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    Secret::new(prf.compute(&key, &[gir]))
}

/// SKEYSEED for a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr)  (§2.18).
pub fn rekey_skeyseed(prf: &Prf, old_sk_d: &[u8], gir: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    Secret::new(prf.compute(old_sk_d, &[gir, ni, nr]))
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
pub fn ike_keys(
    prf: &Prf,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    l: KeyLengths,
) -> IkeKeys {
    let seed = [ni, nr, &spi_i[..], &spi_r[..]].concat();
    let p = prf.output_len();
    let total = 3 * p + 2 * l.integ + 2 * l.encr;
    let km = prf.plus(skeyseed, &seed, total);
    let mut at = 0;
    let mut take = |n: usize| {
        let s = Secret::from(&km[at..at + n]);
        at += n;
        s
    };
    IkeKeys {
        sk_d: take(p),
        sk_ai: take(l.integ),
        sk_ar: take(l.integ),
        sk_ei: take(l.encr),
        sk_er: take(l.encr),
        sk_pi: take(p),
        sk_pr: take(p),
    }
}

/// CHILD SA keys, per direction: encryption key (with salt for GCM) and integrity key.
#[derive(Clone, Debug)]
pub struct ChildKeys {
    /// Initiator → responder encryption key.
    pub encr_i: Secret,
    /// Initiator → responder integrity key.
    pub integ_i: Secret,
    /// Responder → initiator encryption key.
    pub encr_r: Secret,
    /// Responder → initiator integrity key.
    pub integ_r: Secret,
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken in the order of §2.17:
/// all keys initiator→responder first (encryption, then integrity), then
/// responder→initiator.
pub fn child_keys(
    prf: &Prf,
    sk_d: &[u8],
    gir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    l: KeyLengths,
) -> ChildKeys {
    let seed = [gir.unwrap_or(&[]), ni, nr].concat();
    let km = prf.plus(sk_d, &seed, 2 * (l.encr + l.integ));
    let (i, r) = km.split_at(l.encr + l.integ);
    ChildKeys {
        encr_i: Secret::from(&i[..l.encr]),
        integ_i: Secret::from(&i[l.encr..]),
        encr_r: Secret::from(&r[..l.encr]),
        integ_r: Secret::from(&r[l.encr..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::unhex;
    use crate::wire::PrfId;

    // NIST CAVS 14.1, SP 800-135 IKEv2 KDF, [SHA-1], DKM length = 1056 bits,
    // Child SA DKM length = 1056 bits, COUNT = 0 (ikev2.rsp; the same vector
    // is quoted in libreswan programs/cavp and its ikev2 CAVS test tool).
    const GIR: &str = "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52";
    const GIR_NEW: &str = "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330";
    const NI: &str = "32b50d5f4a3763f3";
    const NR: &str = "9206a04b26564cb1";
    const SPII: &str = "34c9e7c188868785";
    const SPIR: &str = "3ff77d760d2b2199";
    const SKEYSEED: &str = "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7";
    const DKM: &str = "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4";
    const DKM_CHILD: &str = "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4";
    const DKM_CHILD_DH: &str = "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c";
    const SKEYSEED_REKEY: &str = "63e81194946ebd05df7df5ebf5d8750056bf1f1d";

    #[test]
    fn nist_cavs_ikev2_kdf_sha1() {
        let prf = Prf::new(PrfId::HMAC_SHA1).unwrap();
        let (ni, nr, gir, gir_new) = (unhex(NI), unhex(NR), unhex(GIR), unhex(GIR_NEW));
        let spi_i: [u8; 8] = unhex(SPII).try_into().unwrap();
        let spi_r: [u8; 8] = unhex(SPIR).try_into().unwrap();
        let seed = skeyseed(&prf, &ni, &nr, &gir);
        assert_eq!(seed.expose(), &unhex(SKEYSEED)[..]);

        // DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), 132 bytes; check that
        // ike_keys() slices the same stream (lengths chosen to sum to 132).
        let dkm = prf.plus(seed.expose(), &[&ni[..], &nr, &spi_i, &spi_r].concat(), 132);
        assert_eq!(dkm, unhex(DKM));
        let keys = ike_keys(
            &prf,
            seed.expose(),
            &ni,
            &nr,
            &spi_i,
            &spi_r,
            KeyLengths {
                integ: 20,
                encr: 16,
            },
        );
        assert_eq!(keys.sk_d.expose(), &dkm[..20]);
        assert_eq!(keys.sk_ai.expose(), &dkm[20..40]);
        assert_eq!(keys.sk_er.expose(), &dkm[76..92]);
        assert_eq!(keys.sk_pr.expose(), &dkm[112..132]);

        // DKM(Child SA) = prf+(SK_d, Ni | Nr); with D-H: prf+(SK_d, g^ir(new) | Ni | Nr).
        let l = KeyLengths {
            integ: 20,
            encr: 46,
        }; // 2 * (46 + 20) = 132
        let c = child_keys(&prf, keys.sk_d.expose(), None, &ni, &nr, l);
        let want = unhex(DKM_CHILD);
        assert_eq!(c.encr_i.expose(), &want[..46]);
        assert_eq!(c.integ_r.expose(), &want[112..]);
        let c = child_keys(&prf, keys.sk_d.expose(), Some(&gir_new), &ni, &nr, l);
        assert_eq!(
            [
                c.encr_i.expose(),
                c.integ_i.expose(),
                c.encr_r.expose(),
                c.integ_r.expose()
            ]
            .concat(),
            unhex(DKM_CHILD_DH)
        );

        let re = rekey_skeyseed(&prf, keys.sk_d.expose(), &gir_new, &ni, &nr);
        assert_eq!(re.expose(), &unhex(SKEYSEED_REKEY)[..]);
    }

    // RFC 4231 test case 2 for HMAC-SHA-256/384/512 ("Jefe").
    #[test]
    fn rfc4231_hmac_case2() {
        let data = b"what do ya want for nothing?";
        let p = Prf::new(PrfId::HMAC_SHA2_256).unwrap();
        assert_eq!(
            p.compute(b"Jefe", &[data]),
            unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let p = Prf::new(PrfId::HMAC_SHA2_512).unwrap();
        assert_eq!(
            p.compute(b"Jefe", &[&data[..10], &data[10..]]),
            unhex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
        );
    }
}
