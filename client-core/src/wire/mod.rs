//! The IKEv2 wire format (RFC 7296 §3, RFC 7383 §2.5): bytes only — no state,
//! no keys.
//!
//! Parsing produces borrowed views ([`Payload`] and friends hold `&[u8]`
//! slices of the datagram); every read is bounds-checked through [`Reader`]
//! and fails with a typed, `Copy` [`Error`] naming the payload at fault.
//! Emitting goes through [`Writer`], whose length guards patch a length field
//! once, after the body is written (rustls `LengthPrefixedBuffer`).

mod cp;
mod header;
mod payload;
pub mod registry;
mod rules;
mod sa;
mod ts;

pub use cp::{CfgAttribute, ConfigPayload};
pub use header::{Flags, Header, HEADER_LEN};
pub use payload::{
    emit_chain, parse_chain, Auth, Cert, Delete, Id, Ke, Message, Notify, Payload, PayloadBody, Skf,
};
pub use registry::*;
pub use rules::{check_payloads, Direction};
pub use sa::{Attribute, Proposal, SaPayload, Transform};
pub use ts::{TrafficSelector, TsPayload};

use core::fmt;

/// What was wrong with a piece of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ended before a field or a declared length.
    Truncated,
    /// A length field is smaller than its fixed part or larger than its container.
    BadLength,
    /// A field holds a value that makes the structure meaningless.
    Malformed,
    /// A payload appears where RFC 7296 does not allow it, or a required one is missing.
    Unexpected,
    /// The peer marked a payload critical that we do not understand (RFC 7296 §2.5).
    UnsupportedCritical,
}

/// A parse error: what went wrong and in which payload. `Copy`, never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The payload being read (`NONE` for the IKE header).
    pub payload: PayloadType,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, payload: PayloadType) -> Self {
        Error { kind, payload }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadLength => "bad length",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Unexpected => "unexpected or missing",
            ErrorKind::UnsupportedCritical => "unsupported critical",
        };
        if self.payload == PayloadType::NONE {
            write!(f, "{what} IKE header")
        } else {
            write!(f, "{what} {} payload", self.payload)
        }
    }
}

impl std::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// A bounds-checked cursor over input bytes.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    ctx: PayloadType,
}

impl<'a> Reader<'a> {
    /// Reads `buf`; errors are attributed to payload `ctx`.
    pub fn new(buf: &'a [u8], ctx: PayloadType) -> Self {
        Reader { buf, ctx }
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.ctx)
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.err(ErrorKind::Truncated));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes everything left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Splits off a sub-reader for a structure whose total length `len`
    /// includes `already` bytes that were read from it.
    pub fn sub(&mut self, len: usize, already: usize) -> Result<Reader<'a>> {
        let body = len
            .checked_sub(already)
            .ok_or(self.err(ErrorKind::BadLength))?;
        if body > self.buf.len() {
            return Err(self.err(ErrorKind::BadLength));
        }
        Ok(Reader::new(self.take(body)?, self.ctx))
    }
}

/// An output buffer with single-pass length patching.
#[derive(Default, Debug)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Reserves a 16-bit length at the current position; the length written
    /// by [`Writer::patch_u16`] counts from `start`.
    pub fn placeholder_u16(&mut self) -> usize {
        let at = self.buf.len();
        self.u16(0);
        at
    }

    /// Patches the 16-bit length at `at` with `len(buf) - start`.
    /// Structures longer than 65535 bytes cannot be encoded; the caller keeps
    /// payloads small (the largest we build is a certificate chain, fragmented
    /// well below that), so saturating is the documented behaviour.
    pub fn patch_u16(&mut self, at: usize, start: usize) {
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
}
