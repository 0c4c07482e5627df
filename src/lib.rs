//! runtrust: trust is established before execution begins (see DESIGN.md §2 for the lifecycle).

pub mod api;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod fsutil;
pub mod policy;
pub mod principal;
pub mod scope;
pub mod service;
pub mod store;
pub mod token;
pub mod tpm;

pub use runtrust_attestation as attestation;
