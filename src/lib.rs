//! runtrust: trust is established before execution begins (see DESIGN.md §2 for the lifecycle).

pub mod cli;
pub mod fsutil;
pub mod tpm;

pub use runtrust_attestation as attestation;
