//! Which payloads each exchange may carry (RFC 7296 §1.2–§1.5), checked on the
//! whole (decrypted) message before any logic sees it — strongSwan's
//! `encoding/message.c` rule tables, written as data.

use super::{Error, ErrorKind, ExchangeType, Payload, PayloadBody, PayloadType};

/// Request or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The sender initiated this exchange.
    Request,
    /// The sender answers.
    Response,
}

/// (payload, min, max) — `u8::MAX` means unbounded.
type Rule = (PayloadType, u8, u8);
const ANY: u8 = u8::MAX;

use PayloadType as P;

const SA_INIT_REQ: &[Rule] = &[
    (P::SA, 1, 1),
    (P::KE, 1, 1),
    (P::NONCE, 1, 1),
    (P::NOTIFY, 0, ANY),
    (P::VENDOR_ID, 0, ANY),
];
const SA_INIT_RESP: &[Rule] = &[
    (P::SA, 1, 1),
    (P::KE, 1, 1),
    (P::NONCE, 1, 1),
    (P::NOTIFY, 0, ANY),
    (P::VENDOR_ID, 0, ANY),
    (P::CERTREQ, 0, ANY),
];
const AUTH_REQ: &[Rule] = &[
    (P::IDI, 1, 1),
    (P::IDR, 0, 1),
    (P::CERT, 0, ANY),
    (P::CERTREQ, 0, ANY),
    (P::AUTH, 0, 1),
    (P::EAP, 0, 1),
    (P::CP, 0, 1),
    (P::SA, 0, 1),
    (P::TSI, 0, 1),
    (P::TSR, 0, 1),
    (P::NOTIFY, 0, ANY),
    (P::VENDOR_ID, 0, ANY),
];
// Responses in an EAP dialogue carry only EAP (plus IDr/CERT/AUTH in the
// first one), so everything is optional here; the session checks what each
// step needs.
const AUTH_RESP: &[Rule] = &[
    (P::IDR, 0, 1),
    (P::CERT, 0, ANY),
    (P::AUTH, 0, 1),
    (P::EAP, 0, 1),
    (P::CP, 0, 1),
    (P::SA, 0, 1),
    (P::TSI, 0, 1),
    (P::TSR, 0, 1),
    (P::NOTIFY, 0, ANY),
    (P::VENDOR_ID, 0, ANY),
];
const CHILD: &[Rule] = &[
    (P::SA, 0, 1),
    (P::NONCE, 0, 1),
    (P::KE, 0, 1),
    (P::TSI, 0, 1),
    (P::TSR, 0, 1),
    (P::NOTIFY, 0, ANY),
    (P::VENDOR_ID, 0, ANY),
];
const INFO: &[Rule] = &[
    (P::NOTIFY, 0, ANY),
    (P::DELETE, 0, ANY),
    (P::CP, 0, 1),
    (P::VENDOR_ID, 0, ANY),
];

fn rules(exchange: ExchangeType, dir: Direction) -> Option<&'static [Rule]> {
    Some(match (exchange, dir) {
        (ExchangeType::IKE_SA_INIT, Direction::Request) => SA_INIT_REQ,
        (ExchangeType::IKE_SA_INIT, Direction::Response) => SA_INIT_RESP,
        (ExchangeType::IKE_AUTH, Direction::Request) => AUTH_REQ,
        (ExchangeType::IKE_AUTH, Direction::Response) => AUTH_RESP,
        (ExchangeType::CREATE_CHILD_SA, _) => CHILD,
        (ExchangeType::INFORMATIONAL, _) => INFO,
        _ => return None,
    })
}

/// Checks the payload set of a (decrypted) message against the table.
///
/// A message carrying an error notify is exempt from minimums (RFC 7296
/// §2.21: an error response carries just the notify). Unknown non-critical
/// payloads were already admitted by the parser and are ignored here.
pub fn check_payloads(
    exchange: ExchangeType,
    dir: Direction,
    payloads: &[Payload<'_>],
) -> Result<(), Error> {
    let Some(table) = rules(exchange, dir) else {
        return Err(Error::new(ErrorKind::Unexpected, PayloadType::NONE));
    };
    let has_error = payloads
        .iter()
        .any(|p| matches!(&p.body, PayloadBody::Notify(n) if n.ty.is_error() || n.ty == super::NotifyType::COOKIE));
    for p in payloads {
        let ty = p.body.ty();
        if matches!(p.body, PayloadBody::Unknown(..)) {
            continue;
        }
        if !table.iter().any(|r| r.0 == ty) {
            return Err(Error::new(ErrorKind::Unexpected, ty));
        }
    }
    for &(ty, min, max) in table {
        let n = payloads.iter().filter(|p| p.body.ty() == ty).count();
        if n > max as usize || (!has_error && n < min as usize) {
            return Err(Error::new(ErrorKind::Unexpected, ty));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Notify, NotifyType};

    #[test]
    fn sa_init_response_needs_ke_unless_error() {
        let n = [1u8; 16];
        let only_nonce = vec![Payload::from(PayloadBody::Nonce(&n))];
        let e = check_payloads(ExchangeType::IKE_SA_INIT, Direction::Response, &only_nonce)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unexpected);
        let err = vec![Payload::from(PayloadBody::Notify(Notify::new(
            NotifyType::NO_PROPOSAL_CHOSEN,
            &[],
        )))];
        check_payloads(ExchangeType::IKE_SA_INIT, Direction::Response, &err).unwrap();
    }

    #[test]
    fn eap_not_allowed_in_informational_and_no_duplicates() {
        let eap = [3u8, 1, 0, 4];
        let p = vec![Payload::from(PayloadBody::Eap(&eap))];
        let e = check_payloads(ExchangeType::INFORMATIONAL, Direction::Request, &p).unwrap_err();
        assert_eq!(e.payload, PayloadType::EAP);
        let two = vec![
            Payload::from(PayloadBody::Eap(&eap)),
            Payload::from(PayloadBody::Eap(&eap)),
        ];
        assert!(check_payloads(ExchangeType::IKE_AUTH, Direction::Response, &two).is_err());
        check_payloads(ExchangeType::IKE_AUTH, Direction::Response, &two[..1]).unwrap();
    }
}
