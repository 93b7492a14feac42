//! A PKCS#7 / CMS "certs-only" SignedData (RFC 5652 §5, degenerate case):
//! how AnyConnect carries its certificate chain in EAP-AnyConnect TLV 3
//! (anyconnect-ikev2.md §2): version 1, no digest algorithms, id-data content
//! with an empty OCTET STRING, the chain, no signer infos.

/// DER TLV with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = body.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend_from_slice(&bytes);
    }
    v.extend_from_slice(body);
    v
}

const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// Wraps DER certificates (end entity first) into a certs-only SignedData.
pub fn certs_only(chain: &[Vec<u8>]) -> Vec<u8> {
    let content_info = tlv(0x30, &[OID_DATA, &tlv(0xa0, &tlv(0x04, &[]))].concat());
    let certs = tlv(0xa0, &chain.concat());
    let signed_data = tlv(
        0x30,
        &[
            &tlv(0x02, &[1])[..],
            &tlv(0x31, &[]),
            &content_info,
            &certs,
            &tlv(0x31, &[]),
        ]
        .concat(),
    );
    tlv(0x30, &[OID_SIGNED_DATA, &tlv(0xa0, &signed_data)].concat())
}

/// Reads a DER TLV header: (tag, header length, body length).
fn header(d: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *d.first()?;
    let l0 = *d.get(1)? as usize;
    if l0 < 0x80 {
        return Some((tag, 2, l0));
    }
    let n = l0 & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let len = d
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |a, b| (a << 8) | *b as usize);
    Some((tag, 2 + n, len))
}

/// Splits a DER sequence of TLVs into their raw encodings.
fn children(mut d: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let (_, h, l) = header(d)?;
        let all = d.get(..h + l)?;
        out.push(all);
        d = &d[h + l..];
    }
    Some(out)
}

fn body(d: &[u8]) -> Option<&[u8]> {
    let (_, h, l) = header(d)?;
    d.get(h..h + l)
}

/// The certificates of a SignedData (any signer infos are ignored), in order.
pub fn certificates(p7: &[u8]) -> Option<Vec<Vec<u8>>> {
    let ci = children(body(p7)?)?;
    if *ci.first()? != OID_SIGNED_DATA {
        return None;
    }
    let sd = body(body(ci.get(1)?)?)?;
    let parts = children(sd)?;
    let certs = parts.iter().find(|p| p.first() == Some(&0xa0))?;
    Some(
        children(body(certs)?)?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_read_back() {
        let a = tlv(0x30, &[0x02, 0x01, 0x05]);
        let b = tlv(0x30, &vec![0x04; 300]);
        let p7 = certs_only(&[a.clone(), b.clone()]);
        assert_eq!(&p7[..2], &[0x30, 0x82], "long-form length for > 127 bytes");
        assert_eq!(certificates(&p7).unwrap(), vec![a, b]);
        assert!(certificates(&p7[..20]).is_none());
        assert!(certificates(&[0x30, 0x03, 0x06, 0x01, 0x00]).is_none());
    }
}
