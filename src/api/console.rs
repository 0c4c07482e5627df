//! `POST /v1/console/links` (admin, auditor): a one-time sign-in link to the web console (docs/design.md §17).

use serde::{Deserialize, Serialize};

/// The link, as a path on the service (`/console/signin?code=…`): the client puts its own base URL in front,
/// the address it reached the service at.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsoleLinkView {
    pub path: String,
    /// The principal the link signs in.
    pub principal: String,
    /// Unix seconds; unused by then, the link is refused.
    pub expires_at: u64,
}
