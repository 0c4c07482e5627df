//! TPM 2.0 evidence appraisal in pure Rust.
//!
//! No I/O, no TPM library, no async: bytes in, verdicts out. Anyone who verifies TPM evidence can reuse
//! this crate. Structures are parsed strictly (big-endian, bounded sizes, no trailing bytes) following
//! *TPM 2.0 Library, Part 2: Structures*; cryptography is ring's.

#![forbid(unsafe_code)]

pub mod ak;
pub mod batch;
pub mod clock;
pub mod credential;
pub mod denial;
pub mod ek;
pub mod eventlog;
pub mod quote;
pub mod signing;
pub mod tpm2;

pub use denial::DenialCode;
pub use quote::{verify_quote, QuoteError, QuoteEvidence, QuoteOptions, VerifiedQuote};
pub use tpm2::{Attest, ClockInfo, HashAlg, ParseError, PcrSelection, PcrValues, Public, Signature};

/// Constant-time equality for secrets and nonces (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}
