//! TPM 2.0 structures (Part 2: Structures), parsed strictly from their canonical big-endian form.

mod alg;
mod attest;
mod pcr;
mod public;
mod signature;
mod wire;

pub use alg::{alg_id, EccCurve, HashAlg};
pub use attest::{Attest, ClockInfo, QuoteInfo, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};
pub use pcr::{PcrBank, PcrSelection, PcrValues, PcrValuesError, MAX_PCR_INDEX};
pub use public::{ObjectAttributes, Public, PublicKey, Scheme, SymDef};
pub use signature::{SigScheme, Signature};
pub use wire::{ParseError, Reader};
