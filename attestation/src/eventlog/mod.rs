//! TCG PC Client event logs: parsing and replay.
//!
//! The log is the one Linux exposes as `/sys/kernel/security/tpm0/binary_bios_measurements`, in either
//! format of the *TCG PC Client Platform Firmware Profile Specification* (PFP, rev. 1.05):
//!
//! - SHA-1 ("legacy") logs: every event is a TCG_PCClientPCREvent (PFP §10.2.1, TCG_PCR_EVENT);
//! - crypto-agile logs: the first event is a legacy-format EV_NO_ACTION whose data is the TCG_EfiSpecIdEvent
//!   "Spec ID Event03" (PFP §9.4.5.1 "Specification ID Version Event") listing the algorithms and their
//!   digest sizes; every further event is a TCG_PCR_EVENT2 (PFP §10.2.2) carrying one digest per algorithm.
//!
//! Parsing is strict and bounded and never panics; replay recomputes every PCR of every bank the log
//! carries, and [`EventLog::check_against`] explains which quoted PCR disagrees and after which event.
//! Nothing here trusts the event *type*: it is not covered by the extended digest (see [`digest`]).
//! [`facts`] draws measured-boot facts from a log only once it is a [`VerifiedLog`] (replayed against a
//! quote, data-bound digests re-derived).

pub mod builder;
pub mod describe;
pub mod digest;
pub mod event_type;
pub mod facts;
mod parse;
mod reader;
mod replay;

pub use digest::{DataDigestError, DIGEST_IS_HASH_OF_DATA};
pub use facts::{unverified_facts, FactsError, MeasuredBootFacts, VerifiedLog, VerifyError};
pub use parse::{parse, EventLogError, MAX_ALGORITHMS, MAX_EVENTS, MAX_EVENT_DATA};
pub use replay::{MismatchKind, PcrMismatch, ReplayMismatch, Replayed};

use crate::tpm2::HashAlg;

/// pcrIndex of a record logged to no PCR: only EV_NO_ACTION events may carry it (Windows logs end with such a
/// record); they extend nothing.
pub const NO_PCR: u32 = 0xFFFF_FFFF;

/// One entry of TCG_EfiSpecIdEvent.digestSizes (PFP §9.4.5.1, TCG_EfiSpecIdEventAlgorithmSize).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSize {
    pub alg_id: u16,
    pub digest_size: u16,
}

impl AlgorithmSize {
    /// The bank, when runtrust knows the algorithm.
    pub fn hash(&self) -> Option<HashAlg> {
        HashAlg::from_alg_id(self.alg_id)
    }
}

/// TCG_EfiSpecIdEvent (PFP §9.4.5.1 "Specification ID Version Event"): the header of a crypto-agile log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecId {
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    pub uintn_size: u8,
    /// The algorithms of every TCG_PCR_EVENT2 in the log, in table order.
    pub algorithms: Vec<AlgorithmSize>,
    pub vendor_info: Vec<u8>,
}

/// One digest of an event: a TPMT_HA (PFP §10.2.2) whose size came from the Spec ID table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDigest {
    pub alg_id: u16,
    pub digest: Vec<u8>,
}

impl EventDigest {
    /// The bank, when runtrust knows the algorithm (unknown ones are parsed and skipped in replay).
    pub fn hash(&self) -> Option<HashAlg> {
        HashAlg::from_alg_id(self.alg_id)
    }
}

/// One event, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, counting from 0 (the Spec ID event, when present, is event 0).
    pub index: usize,
    /// Byte offset of the event's first byte in the log.
    pub offset: usize,
    /// pcrIndex: 0–31, or [`NO_PCR`] for an EV_NO_ACTION record logged to no PCR.
    pub pcr: u32,
    pub event_type: u32,
    /// One digest per algorithm: SHA-1 only in a legacy log, the Spec ID table's order otherwise.
    pub digests: Vec<EventDigest>,
    pub data: Vec<u8>,
}

impl Event {
    /// This event's digest in `bank`, if it carries one.
    pub fn digest(&self, bank: HashAlg) -> Option<&[u8]> {
        self.digests.iter().find(|d| d.alg_id == bank.alg_id()).map(|d| d.digest.as_slice())
    }

    /// The PCR the event is logged to; None for an EV_NO_ACTION record with pcrIndex [`NO_PCR`].
    pub fn pcr_index(&self) -> Option<u32> {
        (self.pcr != NO_PCR).then_some(self.pcr)
    }

    /// The spec name of the event type, e.g. `EV_SEPARATOR`.
    pub fn type_name(&self) -> Option<&'static str> {
        event_type::name(self.event_type)
    }

    /// EV_NO_ACTION events are informational and never extended (PFP §9.4.5, Table 9).
    pub fn is_extended(&self) -> bool {
        self.event_type != event_type::EV_NO_ACTION
    }

    /// The locality of a StartupLocality event (PFP §9.4.5.3), which sets PCR 0's initial value.
    pub fn startup_locality(&self) -> Option<u8> {
        if self.event_type != event_type::EV_NO_ACTION || self.pcr != 0 {
            return None;
        }
        match self.data.strip_prefix(parse::STARTUP_LOCALITY_SIGNATURE) {
            Some(&[locality]) => Some(locality),
            _ => None,
        }
    }
}

/// A parsed event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    /// The Spec ID header of a crypto-agile log; None for a SHA-1 legacy log.
    pub spec: Option<SpecId>,
    /// Every event, including the Spec ID event itself (event 0 of a crypto-agile log).
    pub events: Vec<Event>,
}

impl EventLog {
    /// The banks the log carries digests for and runtrust can replay.
    pub fn banks(&self) -> Vec<HashAlg> {
        match &self.spec {
            None => vec![HashAlg::Sha1],
            Some(spec) => spec.algorithms.iter().filter_map(AlgorithmSize::hash).collect(),
        }
    }

    /// PCR 0's locality from a StartupLocality event (PFP §9.4.5.3), if the log has one.
    pub fn startup_locality(&self) -> Option<u8> {
        self.events.iter().find_map(Event::startup_locality)
    }
}
