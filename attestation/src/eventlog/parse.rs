//! Parsing of both log formats (PFP §10.2.1 TCG_PCR_EVENT, §10.2.2 TCG_PCR_EVENT2) and of the Spec ID
//! header (PFP §9.4.5.1). Every size is bounded before anything is allocated.

use crate::denial::DenialCode;
use crate::tpm2::{HashAlg, MAX_PCR_INDEX};

use super::event_type::EV_NO_ACTION;
use super::reader::LeReader;
use super::{AlgorithmSize, Event, EventDigest, EventLog, SpecId, NO_PCR};

/// Largest event data accepted (real events are at most a few tens of KiB: certificate databases, GPTs).
pub const MAX_EVENT_DATA: usize = 1 << 20;
/// Most events in one log (real pre-OS logs have tens to a few hundred).
pub const MAX_EVENTS: usize = 65_536;
/// Most algorithms in a Spec ID table (HASH_COUNT of a TPM is far smaller).
pub const MAX_ALGORITHMS: usize = 16;
/// Largest digest size in a Spec ID table (SHA-512).
const MAX_DIGEST_SIZE: usize = 64;
/// TCG_EfiSpecIdEvent.signature of a crypto-agile log (PFP §9.4.5.1).
pub(super) const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// Signature of the StartupLocality EV_NO_ACTION event (PFP §9.4.5.3).
pub(super) const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";

/// Why an event log did not parse. Every variant names the field and the byte offset in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    #[error("the event log is empty")]
    Empty,
    #[error("{field}: truncated at byte {offset} ({needed} more bytes needed)")]
    Truncated { field: &'static str, offset: usize, needed: usize },
    #[error("{field}: {size} at byte {offset} exceeds the maximum of {max}")]
    Oversized { field: &'static str, offset: usize, size: u64, max: u64 },
    #[error("{field}: invalid value {value:#x} at byte {offset}")]
    InvalidValue { field: &'static str, offset: usize, value: u64 },
    #[error("{field}: {reason} at byte {offset}")]
    Invalid { field: &'static str, offset: usize, reason: &'static str },
}

impl EventLogError {
    pub fn code(&self) -> DenialCode {
        DenialCode::EventLogMismatch
    }

    /// Byte offset in the log at which parsing failed (0 for an empty log).
    pub fn offset(&self) -> usize {
        match self {
            EventLogError::Empty => 0,
            EventLogError::Truncated { offset, .. }
            | EventLogError::Oversized { offset, .. }
            | EventLogError::InvalidValue { offset, .. }
            | EventLogError::Invalid { offset, .. } => *offset,
        }
    }
}

/// Parses a whole event log; the log must end exactly after its last event.
pub fn parse(bytes: &[u8]) -> Result<EventLog, EventLogError> {
    if bytes.is_empty() {
        return Err(EventLogError::Empty);
    }
    let mut r = LeReader::new(bytes);
    // The first event is always in the SHA-1 format (PFP §10.2.1), also in a crypto-agile log.
    let first = legacy_event(&mut r, 0)?;
    let spec = if first.event_type == EV_NO_ACTION && first.data.starts_with(SPEC_ID_SIGNATURE) {
        // PFP §9.4.5.1: the Spec ID event is logged to PCR 0 with a digest of 20 zero bytes.
        if first.pcr != 0 {
            return Err(EventLogError::InvalidValue {
                field: "TCG_PCR_EVENT.pcrIndex",
                offset: first.offset,
                value: first.pcr.into(),
            });
        }
        if first.digests.iter().any(|d| d.digest.iter().any(|&b| b != 0)) {
            return Err(EventLogError::Invalid {
                field: "TCG_PCR_EVENT.digest",
                offset: first.offset + 8,
                reason: "the Spec ID event's digest is not zero",
            });
        }
        Some(spec_id(&first.data, first.offset + 32)?)
    } else {
        None
    };
    let mut events = vec![first];
    let mut locality_seen = false;
    check_startup_locality(&events[0], &mut locality_seen, false)?;
    let mut pcr0_extended = events[0].pcr == 0 && events[0].is_extended();
    while !r.is_empty() {
        let offset = r.offset();
        if events.len() >= MAX_EVENTS {
            return Err(EventLogError::Oversized {
                field: "event count",
                offset,
                size: events.len() as u64 + 1,
                max: MAX_EVENTS as u64,
            });
        }
        let index = events.len();
        let event = match &spec {
            None => legacy_event(&mut r, index)?,
            Some(spec) => event2(&mut r, index, &spec.algorithms)?,
        };
        check_startup_locality(&event, &mut locality_seen, pcr0_extended)?;
        pcr0_extended |= event.pcr == 0 && event.is_extended();
        events.push(event);
    }
    Ok(EventLog { spec, events })
}

/// pcrIndex and eventType, shared by both event formats. pcrIndex is a PCR (0–31) or, for EV_NO_ACTION only,
/// [`NO_PCR`]: a record logged to no PCR (Windows logs end with one); EV_NO_ACTION extends nothing (PFP §9.4.5).
fn header(
    r: &mut LeReader<'_>,
    pcr_field: &'static str,
    type_field: &'static str,
) -> Result<(u32, u32), EventLogError> {
    let offset = r.offset();
    let pcr = r.u32(pcr_field)?;
    let event_type = r.u32(type_field)?;
    if pcr > u32::from(MAX_PCR_INDEX) && !(pcr == NO_PCR && event_type == EV_NO_ACTION) {
        return Err(EventLogError::InvalidValue { field: pcr_field, offset, value: pcr.into() });
    }
    Ok((pcr, event_type))
}

/// eventSize and event, shared by both event formats.
fn event_data(
    r: &mut LeReader<'_>,
    size_field: &'static str,
    data_field: &'static str,
) -> Result<Vec<u8>, EventLogError> {
    let offset = r.offset();
    let size = r.u32(size_field)?;
    if size as usize > MAX_EVENT_DATA {
        return Err(EventLogError::Oversized {
            field: size_field,
            offset,
            size: size.into(),
            max: MAX_EVENT_DATA as u64,
        });
    }
    Ok(r.take(size as usize, data_field)?.to_vec())
}

/// TCG_PCClientPCREvent (PFP §10.2.1): pcrIndex, eventType, digest[20], eventSize, event.
fn legacy_event(r: &mut LeReader<'_>, index: usize) -> Result<Event, EventLogError> {
    let offset = r.offset();
    let (pcr, event_type) = header(r, "TCG_PCR_EVENT.pcrIndex", "TCG_PCR_EVENT.eventType")?;
    let digest = r.take(20, "TCG_PCR_EVENT.digest")?.to_vec();
    let data = event_data(r, "TCG_PCR_EVENT.eventSize", "TCG_PCR_EVENT.event")?;
    let digests = vec![EventDigest { alg_id: HashAlg::Sha1.alg_id(), digest }];
    Ok(Event { index, offset, pcr, event_type, digests, data })
}

/// TCG_PCR_EVENT2 (PFP §10.2.2): pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event. The digest
/// sizes come from the Spec ID table; every event carries each algorithm of the table exactly once.
fn event2(r: &mut LeReader<'_>, index: usize, algorithms: &[AlgorithmSize]) -> Result<Event, EventLogError> {
    let offset = r.offset();
    let (pcr, event_type) = header(r, "TCG_PCR_EVENT2.pcrIndex", "TCG_PCR_EVENT2.eventType")?;
    let count_offset = r.offset();
    let count = r.u32("TCG_PCR_EVENT2.digests.count")?;
    if count as usize != algorithms.len() {
        return Err(EventLogError::InvalidValue {
            field: "TCG_PCR_EVENT2.digests.count",
            offset: count_offset,
            value: count.into(),
        });
    }
    let mut digests: Vec<EventDigest> = Vec::with_capacity(algorithms.len());
    for _ in 0..count {
        let alg_offset = r.offset();
        let alg_id = r.u16("TPMT_HA.hashAlg")?;
        let Some(alg) = algorithms.iter().find(|a| a.alg_id == alg_id) else {
            return Err(EventLogError::InvalidValue {
                field: "TPMT_HA.hashAlg",
                offset: alg_offset,
                value: alg_id.into(),
            });
        };
        if digests.iter().any(|d| d.alg_id == alg_id) {
            return Err(EventLogError::Invalid {
                field: "TPMT_HA.hashAlg",
                offset: alg_offset,
                reason: "algorithm listed twice in one event",
            });
        }
        let digest = r.take(alg.digest_size.into(), "TPMT_HA.digest")?.to_vec();
        digests.push(EventDigest { alg_id, digest });
    }
    let data = event_data(r, "TCG_PCR_EVENT2.eventSize", "TCG_PCR_EVENT2.event")?;
    Ok(Event { index, offset, pcr, event_type, digests, data })
}

/// TCG_EfiSpecIdEvent (PFP §9.4.5.1): `data` is the first event's data, which starts at byte `base`.
fn spec_id(data: &[u8], base: usize) -> Result<SpecId, EventLogError> {
    let mut r = LeReader::at(data, base);
    r.take(16, "TCG_EfiSpecIdEvent.signature")?;
    let platform_class = r.u32("TCG_EfiSpecIdEvent.platformClass")?;
    let spec_version_minor = r.u8("TCG_EfiSpecIdEvent.specVersionMinor")?;
    let spec_version_major = r.u8("TCG_EfiSpecIdEvent.specVersionMajor")?;
    let spec_errata = r.u8("TCG_EfiSpecIdEvent.specErrata")?;
    let uintn_offset = r.offset();
    let uintn_size = r.u8("TCG_EfiSpecIdEvent.uintnSize")?;
    // 1: UINTN is 32 bits, 2: 64 bits.
    if !matches!(uintn_size, 1 | 2) {
        return Err(EventLogError::InvalidValue {
            field: "TCG_EfiSpecIdEvent.uintnSize",
            offset: uintn_offset,
            value: uintn_size.into(),
        });
    }
    let count_offset = r.offset();
    let count = r.u32("TCG_EfiSpecIdEvent.numberOfAlgorithms")?;
    if count == 0 {
        return Err(EventLogError::Invalid {
            field: "TCG_EfiSpecIdEvent.numberOfAlgorithms",
            offset: count_offset,
            reason: "no algorithm",
        });
    }
    if count as usize > MAX_ALGORITHMS {
        return Err(EventLogError::Oversized {
            field: "TCG_EfiSpecIdEvent.numberOfAlgorithms",
            offset: count_offset,
            size: count.into(),
            max: MAX_ALGORITHMS as u64,
        });
    }
    let mut algorithms: Vec<AlgorithmSize> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let alg_offset = r.offset();
        let alg_id = r.u16("TCG_EfiSpecIdEventAlgorithmSize.algorithmId")?;
        if algorithms.iter().any(|a| a.alg_id == alg_id) {
            return Err(EventLogError::Invalid {
                field: "TCG_EfiSpecIdEventAlgorithmSize.algorithmId",
                offset: alg_offset,
                reason: "algorithm listed twice",
            });
        }
        let size_offset = r.offset();
        let digest_size = r.u16("TCG_EfiSpecIdEventAlgorithmSize.digestSize")?;
        let invalid_size = |reason| EventLogError::Invalid {
            field: "TCG_EfiSpecIdEventAlgorithmSize.digestSize",
            offset: size_offset,
            reason,
        };
        if digest_size == 0 {
            return Err(invalid_size("digest size 0"));
        }
        if usize::from(digest_size) > MAX_DIGEST_SIZE {
            return Err(EventLogError::Oversized {
                field: "TCG_EfiSpecIdEventAlgorithmSize.digestSize",
                offset: size_offset,
                size: digest_size.into(),
                max: MAX_DIGEST_SIZE as u64,
            });
        }
        if HashAlg::from_alg_id(alg_id).is_some_and(|h| h.digest_len() != usize::from(digest_size)) {
            return Err(invalid_size("wrong digest size for the algorithm"));
        }
        algorithms.push(AlgorithmSize { alg_id, digest_size });
    }
    let vendor_size = r.u8("TCG_EfiSpecIdEvent.vendorInfoSize")?;
    let vendor_info = r.take(vendor_size.into(), "TCG_EfiSpecIdEvent.vendorInfo")?.to_vec();
    if r.remaining() != 0 {
        return Err(EventLogError::Invalid {
            field: "TCG_EfiSpecIdEvent",
            offset: r.offset(),
            reason: "trailing bytes after vendorInfo",
        });
    }
    Ok(SpecId {
        platform_class,
        spec_version_minor,
        spec_version_major,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info,
    })
}

/// A StartupLocality event (PFP §9.4.5.3) is "StartupLocality\0" and one locality byte (0, 3, or 4 for an
/// H-CRTM), logged to PCR 0 at most once and before anything extends PCR 0 (it gives PCR 0's initial value).
fn check_startup_locality(event: &Event, seen: &mut bool, pcr0_extended: bool) -> Result<(), EventLogError> {
    if event.event_type != EV_NO_ACTION || !event.data.starts_with(STARTUP_LOCALITY_SIGNATURE) {
        return Ok(());
    }
    let invalid = |reason| Err(EventLogError::Invalid { field: "StartupLocality", offset: event.offset, reason });
    if event.pcr != 0 {
        return invalid("StartupLocality event not logged to PCR 0");
    }
    let [locality] = event.data[STARTUP_LOCALITY_SIGNATURE.len()..] else {
        return invalid("StartupLocality event data is not 17 bytes");
    };
    if !matches!(locality, 0 | 3 | 4) {
        return invalid("StartupLocality locality is not 0, 3 or 4");
    }
    if *seen {
        return invalid("second StartupLocality event");
    }
    if pcr0_extended {
        return invalid("StartupLocality event after PCR 0 was extended");
    }
    *seen = true;
    Ok(())
}
