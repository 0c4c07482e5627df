//! Wire types of the HTTP API (docs/api.md), by resource, shared by the service and the client. Byte
//! strings are base64url without padding; hashes and ids are lowercase hex. Records (`model`) convert
//! into these views; nothing here is stored.

mod admin;
mod audit;
mod console;
mod enroll;
mod evidence;
mod executions;
mod lineage;
mod policies;
mod problem;
mod rebaseline;
mod revocations;
pub mod routes;
mod tokens;

pub use crate::model::b64;
pub use admin::*;
pub use audit::*;
pub use console::*;
pub use enroll::*;
pub use evidence::*;
pub use executions::*;
pub use lineage::*;
pub use policies::*;
pub use problem::*;
pub use rebaseline::*;
pub use revocations::*;
pub use tokens::*;

/// API version prefix.
pub const V1: &str = "/v1";
