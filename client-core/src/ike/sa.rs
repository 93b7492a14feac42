//! The security associations a session owns: the IKE SA's keys and message
//! IDs (RFC 7296 §2.2, §2.14) and a CHILD SA's parameters (§2.17). The ESP
//! keys themselves live in the data plane's table (`esp::table`).

use super::proposals::{EspSuite, IkeSuite};
use crate::crypto::cipher::Protection;
use crate::crypto::keymat::{ChildKeys, IkeKeys};
use crate::esp::ChildSaInfo;
use crate::wire::TrafficSelector;

/// The keys and parameters of an established IKE SA.
pub(crate) struct IkeSa {
    pub(crate) spi_i: [u8; 8],
    pub(crate) spi_r: [u8; 8],
    /// Whether we are the original initiator (I flag, which keys we send with).
    pub(crate) initiator: bool,
    pub(crate) suite: IkeSuite,
    pub(crate) keys: IkeKeys,
    pub(crate) out: Protection,
    pub(crate) inp: Protection,
    /// Our next request's message ID.
    pub(crate) next_id: u32,
    /// The message ID the gateway's next request must carry (§2.3).
    pub(crate) peer_next_id: u32,
    /// The last response we sent, for a retransmitted request (§2.1).
    pub(crate) cached_response: Option<(u32, Vec<Vec<u8>>)>,
}

impl IkeSa {
    pub(crate) fn new(
        suite: IkeSuite,
        keys: IkeKeys,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        initiator: bool,
    ) -> IkeSa {
        let (ei, er) = (keys.sk_ei.clone(), keys.sk_er.clone());
        let (ai, ar) = (keys.sk_ai.clone(), keys.sk_ar.clone());
        let mk = |ek, ak| Protection {
            encr: suite.encr,
            integ: suite.integ,
            ek,
            ak,
        };
        let (out, inp) = if initiator {
            (mk(ei, ai), mk(er, ar))
        } else {
            (mk(er, ar), mk(ei, ai))
        };
        IkeSa {
            spi_i,
            spi_r,
            initiator,
            suite,
            keys,
            out,
            inp,
            next_id: 0,
            peer_next_id: 0,
            cached_response: None,
        }
    }

    /// Whether a header's SPIs name this SA.
    pub(crate) fn is(&self, spi_i: &[u8; 8], spi_r: &[u8; 8]) -> bool {
        &self.spi_i == spi_i && &self.spi_r == spi_r
    }
}

/// A CHILD SA as the control plane knows it (its keys went to the data plane).
#[derive(Clone, Debug)]
pub(crate) struct ChildSa {
    pub(crate) spi_in: u32,
    pub(crate) spi_out: u32,
    pub(crate) suite: EspSuite,
    pub(crate) ts_local: Vec<TrafficSelector>,
    pub(crate) ts_remote: Vec<TrafficSelector>,
}

impl ChildSa {
    /// The data-plane view of this SA with its KEYMAT. RFC 7296 §2.17 takes
    /// KEYMAT for the initiator→responder direction first, where "initiator"
    /// is whoever started the exchange that created this SA (the gateway,
    /// for its rekeys).
    pub(crate) fn with_keys(&self, keys: ChildKeys, we_initiated: bool) -> ChildSaInfo {
        let ChildKeys {
            encr_i,
            integ_i,
            encr_r,
            integ_r,
        } = keys;
        let (encr_out, integ_out, encr_in, integ_in) = if we_initiated {
            (encr_i, integ_i, encr_r, integ_r)
        } else {
            (encr_r, integ_r, encr_i, integ_i)
        };
        ChildSaInfo {
            spi_in: self.spi_in,
            spi_out: self.spi_out,
            encr: self.suite.encr,
            integ: self.suite.integ,
            esn: self.suite.esn,
            encr_out,
            integ_out,
            encr_in,
            integ_in,
            ts_local: self.ts_local.clone(),
            ts_remote: self.ts_remote.clone(),
        }
    }
}
