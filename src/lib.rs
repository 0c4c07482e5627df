//! runtrust: trust is established before execution begins (docs/design.md §2 is the lifecycle).

pub mod agent;
pub mod api;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod fsutil;
pub mod gateway;
pub mod model;
pub mod policy;
pub mod principal;
pub mod scope;
pub mod service;
pub mod store;
pub mod token;
pub mod tpm;

pub use runtrust_attestation as attestation;
