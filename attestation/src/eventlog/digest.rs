//! Re-deriving event digests from event data.
//!
//! The event type is not covered by the extended digest, so a forged log can relabel an event (e.g. call
//! a measured boot loader an EV_SEPARATOR) and a policy that trusts the type or data would be fooled. For
//! the types below PFP mandates that the digest is the hash of the event data itself, so for them the
//! data is bound to the PCR and can be checked.
//!
//! What the five real logs under `shared/testdata/eventlogs` showed (SHA-1 and SHA-256 digests of every
//! extended event compared with H(data)):
//!
//! | type | holds | violates | enforced |
//! |---|---|---|---|
//! | EV_SEPARATOR | 40 | 0 | yes |
//! | EV_EFI_ACTION | 9 | 0 | yes |
//! | EV_EFI_VARIABLE_DRIVER_CONFIG | 25 | 0 | yes |
//! | EV_EFI_GPT_EVENT | 5 | 0 | yes |
//! | EV_S_CRTM_VERSION | 5 | 0 | yes |
//! | EV_EFI_VARIABLE_BOOT | 10 | 12 | no (1) |
//! | EV_EFI_VARIABLE_AUTHORITY | 4 | 2 | no (2) |
//! | EV_IPL | 0 | 156 | no (3) |
//! | EV_ACTION | - | - | no (4) |
//!
//! 1. On cos-85, rhel8 and ubuntu-2104 the digest is H(VariableData) only, not H(UEFI_VARIABLE_DATA).
//! 2. On cos-85 (e.g. `db`, logged with 6 bytes past its UEFI_VARIABLE_DATA) the digest matches neither.
//! 3. GRUB and shim log a name (`grub.cfg`, `MokList`) and measure the object it names.
//! 4. PFP mandates H(action string), but no test log has one, so enforcing it is unverified.
//!
//! Types whose digest is of something other than the data (code images, firmware blobs, handoff tables,
//! POST code, CRTM contents, EV_NONHOST_INFO) are never checked here.

use crate::denial::DenialCode;
use crate::tpm2::HashAlg;

use super::event_type::*;
use super::{Event, EventLog};

/// Event types whose digest must equal H(event data) in every bank, with the PFP (rev. 1.05) text that
/// mandates it.
pub const DIGEST_IS_HASH_OF_DATA: &[(u32, &str)] = &[
    // The data is the 4-byte separator value that is measured: 0, or 0xFFFFFFFF on an error.
    (EV_SEPARATOR, "PFP Table 9 EV_SEPARATOR; §3.3.2.2 / §10.4.4"),
    // The digest is the hash of the action string that is the event data (ASCII, not NUL-terminated).
    (EV_EFI_ACTION, "PFP Table 9 EV_EFI_ACTION; §10.4.4 (EV_EFI_ACTION strings)"),
    // The digest is the hash of the UEFI_VARIABLE_DATA structure that is the event data.
    (EV_EFI_VARIABLE_DRIVER_CONFIG, "PFP Table 9 EV_EFI_VARIABLE_DRIVER_CONFIG; §3.3.4.8 (PCR[7] variables)"),
    // The digest is the hash of the UEFI_GPT_DATA structure that is the event data.
    (EV_EFI_GPT_EVENT, "PFP Table 9 EV_EFI_GPT_EVENT; §3.3.4.6 (PCR[5])"),
    // The data is the S-CRTM version string (UCS-2) and the digest its hash.
    (EV_S_CRTM_VERSION, "PFP Table 9 EV_S_CRTM_VERSION; §3.3.4.1 (PCR[0])"),
];

/// An event whose digest is not the hash of its data although its type requires it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataDigestError {
    #[error("event {index} at byte {offset} ({type_name}): its {bank} digest is not {bank}(event data)")]
    Mismatch { index: usize, offset: usize, event_type: u32, type_name: &'static str, bank: HashAlg },
}

impl DataDigestError {
    pub fn code(&self) -> DenialCode {
        DenialCode::EventLogMismatch
    }
}

/// Whether `event`'s `bank` digest equals `bank`(event data); None when it has no digest in `bank`.
pub fn digest_matches_data(event: &Event, bank: HashAlg) -> Option<bool> {
    Some(event.digest(bank)? == bank.digest(&event.data).as_slice())
}

impl EventLog {
    /// For every extended event of a type in [`DIGEST_IS_HASH_OF_DATA`], every known-bank digest must be the
    /// hash of the event data.
    pub fn verify_data_digests(&self) -> Result<(), DataDigestError> {
        for event in self.events.iter().filter(|e| e.is_extended()) {
            if !DIGEST_IS_HASH_OF_DATA.iter().any(|&(t, _)| t == event.event_type) {
                continue;
            }
            for bank in event.digests.iter().filter_map(|d| d.hash()) {
                if digest_matches_data(event, bank) == Some(false) {
                    return Err(DataDigestError::Mismatch {
                        index: event.index,
                        offset: event.offset,
                        event_type: event.event_type,
                        type_name: event.type_name().unwrap_or("unknown"),
                        bank,
                    });
                }
            }
        }
        Ok(())
    }
}
