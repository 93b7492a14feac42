//! IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registries as
//! open enums (RFC 7296 §3, RFC 7383, RFC 7427, RFC 4306 legacy values).
//!
//! Every registry is a newtype over its wire integer with named constants, so
//! values we do not know survive a parse and can be printed, echoed or
//! honoured by their critical bit (smoltcp `enum_with_unknown!` idea, done as
//! associated constants so `match` on known values still works).

use core::fmt;

macro_rules! registry {
    ($(#[$meta:meta])* $name:ident($ty:ty) { $($(#[$vmeta:meta])* $variant:ident = $val:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        #[allow(missing_docs)]
        impl $name {
            $($(#[$vmeta])* pub const $variant: $name = $name($val);)*

            /// The registry name of this value, if we know it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($variant)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

registry! {
    /// Exchange types (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
    }
}

registry! {
    /// Payload types (RFC 7296 §3.2, RFC 7383 §2.5, Cisco 132).
    PayloadType(u8) {
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR_ID = 43,
        TSI = 44,
        TSR = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
        SKF = 53,
        /// Cisco's proprietary fragmentation payload (seen from ASA / IOS).
        CISCO_FRAGMENT = 132,
    }
}

registry! {
    /// Security protocol identifiers (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

registry! {
    /// Transform types (RFC 7296 §3.3.2).
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        DH = 4,
        ESN = 5,
    }
}

registry! {
    /// Transform type 1 identifiers (RFC 7296 §3.3.2, RFC 5282).
    EncrId(u16) {
        DES = 2,
        TRIPLE_DES = 3,
        NULL = 11,
        AES_CBC = 12,
        AES_CTR = 13,
        AES_GCM_8 = 18,
        AES_GCM_12 = 19,
        AES_GCM_16 = 20,
        CHACHA20_POLY1305 = 28,
    }
}

registry! {
    /// Transform type 2 identifiers.
    PrfId(u16) {
        HMAC_MD5 = 1,
        HMAC_SHA1 = 2,
        AES128_XCBC = 4,
        HMAC_SHA2_256 = 5,
        HMAC_SHA2_384 = 6,
        HMAC_SHA2_512 = 7,
    }
}

registry! {
    /// Transform type 3 identifiers.
    IntegId(u16) {
        NONE = 0,
        HMAC_MD5_96 = 1,
        HMAC_SHA1_96 = 2,
        AES_XCBC_96 = 5,
        HMAC_SHA2_256_128 = 12,
        HMAC_SHA2_384_192 = 13,
        HMAC_SHA2_512_256 = 14,
    }
}

registry! {
    /// Transform type 4 identifiers (Diffie-Hellman groups).
    DhId(u16) {
        NONE = 0,
        MODP_768 = 1,
        MODP_1024 = 2,
        MODP_1536 = 5,
        MODP_2048 = 14,
        MODP_3072 = 15,
        MODP_4096 = 16,
        ECP_256 = 19,
        ECP_384 = 20,
        ECP_521 = 21,
        CURVE25519 = 31,
    }
}

registry! {
    /// Transform type 5 identifiers.
    EsnId(u16) {
        NO_ESN = 0,
        ESN = 1,
    }
}

registry! {
    /// Identification types (RFC 7296 §3.5).
    IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
        /// Cisco AnyConnect's "group" identity (private use range; shared/protocol/anyconnect-ikev2.md §3).
        ID_GROUP = 201,
    }
}

registry! {
    /// Certificate encodings (RFC 7296 §3.6).
    CertEncoding(u8) {
        PKCS7_WRAPPED_X509 = 1,
        X509_SIGNATURE = 4,
        CRL = 7,
        HASH_AND_URL_X509 = 12,
    }
}

registry! {
    /// Authentication methods (RFC 7296 §3.8, RFC 4754, RFC 7427).
    AuthMethod(u8) {
        RSA_SIG = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIG = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// Notify message types (RFC 7296 §3.10.1 and later RFCs).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        EAP_ONLY_AUTHENTICATION = 16417,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        REDIRECT_SUPPORTED = 16406,
        REDIRECT = 16407,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// RFC 7296 §3.10.1: types below 16384 report errors.
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

registry! {
    /// Configuration payload types (RFC 7296 §3.15).
    CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

registry! {
    /// Configuration attribute types (RFC 7296 §3.15.1, Cisco 28672+).
    CfgAttr(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_ADDRESS_EXPIRY = 5,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
        INTERNAL_DNS_DOMAIN = 25,
    }
}

registry! {
    /// Traffic selector types (RFC 7296 §3.13.1).
    TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// Hash algorithms for RFC 7427 SIGNATURE_HASH_ALGORITHMS.
    HashAlgorithm(u16) {
        SHA1 = 1,
        SHA2_256 = 2,
        SHA2_384 = 3,
        SHA2_512 = 4,
        IDENTITY = 5,
    }
}
