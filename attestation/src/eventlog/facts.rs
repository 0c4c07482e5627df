//! Measured-boot facts: what a log says booted (secure boot state, signature databases, boot applications,
//! kernel command lines, the debug-mode marker).
//!
//! **Trust.** A fact is only as good as the binding between the event and the PCRs. Facts are trusted only
//! from a [`VerifiedLog`], which exists only after (1) replay reproduced the quoted PCRs
//! ([`EventLog::check_against`]) and (2) every event whose digest must be H(data) was re-derived
//! ([`EventLog::verify_data_digests`]). Even then:
//!
//! - only events in PCRs that were quoted and matched count; digests only in banks that were quoted;
//! - the event type is not covered by the digest, so no fact relies on it alone: variable contents and
//!   action strings come from data-bound types (PFP Table 9: digest = H(data)); kernel command lines are
//!   re-hashed here; the debug-mode marker is recognised by its digest whatever its label; and every PCR 4
//!   event that is not a data-bound type counts as a boot application (a relabelled image still shows up);
//! - the device path of a boot application is informational: it is not covered by the digest.
//!
//! [`unverified_facts`] extracts the same from any log, for display and `policy capture` only.

use std::collections::BTreeSet;

use crate::denial::DenialCode;
use crate::tpm2::{HashAlg, PcrValues};

use super::digest::{DataDigestError, DIGEST_IS_HASH_OF_DATA};
use super::event_type::*;
use super::replay::ReplayMismatch;
use super::{Event, EventLog};

/// A UEFI GUID in its in-memory (mixed-endian) byte order (UEFI 2.9 Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual form's fields: `data1-data2-data3-data4`.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]])
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            hex::encode(&g[8..10]),
            hex::encode(&g[10..16])
        )
    }
}

/// EFI_GLOBAL_VARIABLE (UEFI 2.9 §3.3): SecureBoot, PK, KEK.
pub const EFI_GLOBAL_VARIABLE: Guid =
    Guid::new(0x8BE4_DF61, 0x93CA, 0x11D2, [0xAA, 0x0D, 0x00, 0xE0, 0x98, 0x03, 0x2B, 0x8C]);
/// EFI_IMAGE_SECURITY_DATABASE_GUID (UEFI 2.9 §32.6.1): db, dbx.
pub const EFI_IMAGE_SECURITY_DATABASE_GUID: Guid =
    Guid::new(0xD719_B2CB, 0x3D3A, 0x4596, [0xA3, 0xBC, 0xDA, 0xD0, 0x0E, 0x67, 0x65, 0x6F]);
/// EFI_CERT_SHA256_GUID (UEFI 2.9 §32.4.1): SignatureData is a 32-byte SHA-256 image hash.
pub const EFI_CERT_SHA256_GUID: Guid =
    Guid::new(0xC1C4_1626, 0x504C, 0x4092, [0xAC, 0xA9, 0x41, 0xF9, 0x36, 0x93, 0x43, 0x28]);
/// EFI_CERT_X509_GUID (UEFI 2.9 §32.4.1): SignatureData is a DER certificate.
pub const EFI_CERT_X509_GUID: Guid =
    Guid::new(0xA5C0_59A1, 0x94E4, 0x4AA7, [0x87, 0xB5, 0xAB, 0x15, 0x5C, 0x2B, 0xF0, 0x72]);

/// The EV_EFI_ACTION string logged to PCR 7 when a firmware debugger is enabled (PFP §3.3.4.8).
pub const UEFI_DEBUG_MODE: &[u8] = b"UEFI Debug Mode";
/// Most EFI_SIGNATURE_DATA entries in one variable (a dbx has a few hundred).
pub const MAX_SIGNATURES: usize = 16_384;
/// GRUB's PCR 8 strings (grub-core/commands/tpm.c and distribution variants): prefix, and whether the rest
/// is a command whose `linux`/`linuxefi` argument list is the kernel command line.
const GRUB_PREFIXES: [(&[u8], bool); 4] =
    [(b"kernel_cmdline: ", false), (b"grub_kernel_cmdline ", false), (b"grub_cmd: ", true), (b"grub_cmd ", true)];
/// The PCR GRUB measures commands and the kernel command line into.
pub const KERNEL_CMDLINE_PCR: u8 = 8;
/// The PCRs UEFI firmware measures into (PFP §3.3.4): the facts other than the command line come from them.
pub const FIRMWARE_PCRS: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// Why facts could not be extracted. Every variant names the event; all map to `event_log_mismatch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("event {index} at byte {offset}: {field}: truncated at byte {at} of the event data")]
    Truncated { index: usize, offset: usize, field: &'static str, at: usize },
    #[error("event {index} at byte {offset}: {field}: {reason} (at byte {at} of the event data)")]
    Invalid { index: usize, offset: usize, field: &'static str, at: usize, reason: &'static str },
    #[error("event {index} at byte {offset}: its {bank} digest is not the hash of the kernel command line it logs")]
    UnboundCommandLine { index: usize, offset: usize, bank: HashAlg },
}

impl FactsError {
    pub fn code(&self) -> DenialCode {
        DenialCode::EventLogMismatch
    }
}

/// Why a log could not be trusted against a quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Replay(#[from] ReplayMismatch),
    #[error(transparent)]
    DataDigest(#[from] DataDigestError),
}

impl VerifyError {
    pub fn code(&self) -> DenialCode {
        DenialCode::EventLogMismatch
    }
}

/// A log whose PCRs `pcrs` replayed to the quoted values in `banks`, and whose data-bound digests hold.
#[derive(Clone, Debug)]
pub struct VerifiedLog<'a> {
    log: &'a EventLog,
    pcrs: BTreeSet<u8>,
    banks: Vec<HashAlg>,
}

impl EventLog {
    /// Checks the log against `quoted` (which should hold only the PCRs the log is meant to explain) and
    /// re-derives data-bound digests; only then may facts be drawn from it.
    pub fn verify(&self, quoted: &PcrValues) -> Result<VerifiedLog<'_>, VerifyError> {
        self.check_against(quoted)?;
        self.verify_data_digests()?;
        let pcrs = quoted.iter().map(|(_, pcr, _)| pcr).collect();
        let mut banks: Vec<HashAlg> = quoted.iter().map(|(bank, _, _)| bank).collect();
        banks.dedup();
        Ok(VerifiedLog { log: self, pcrs, banks })
    }
}

impl VerifiedLog<'_> {
    /// The PCRs that were quoted and matched.
    pub fn pcrs(&self) -> &BTreeSet<u8> {
        &self.pcrs
    }

    /// Facts from the verified PCRs, with digests in the verified banks only.
    pub fn facts(&self) -> Result<MeasuredBootFacts, FactsError> {
        extract(self.log, &self.pcrs, &self.banks)
    }
}

/// Facts from every PCR and bank of a log that was NOT checked against a quote: for display and for
/// writing a policy from a golden host, never for a decision.
pub fn unverified_facts(log: &EventLog) -> Result<MeasuredBootFacts, FactsError> {
    let pcrs = log.events.iter().filter_map(|e| u8::try_from(e.pcr).ok()).collect();
    extract(log, &pcrs, &log.banks())
}

/// One EFI_SIGNATURE_DATA (UEFI 2.9 §32.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureData {
    pub owner: Guid,
    pub data: Vec<u8>,
}

/// One EFI_SIGNATURE_LIST (UEFI 2.9 §32.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureList {
    pub signature_type: Guid,
    pub header: Vec<u8>,
    pub signatures: Vec<SignatureData>,
}

impl SignatureList {
    /// How runtrust names each entry in policies: for EFI_CERT_SHA256 the image hash itself, for any
    /// other type the SHA-256 of SignatureData (for an X.509 certificate: its usual SHA-256 fingerprint).
    pub fn entry_ids(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.signatures.iter().map(|s| {
            if self.signature_type == EFI_CERT_SHA256_GUID {
                s.data.clone()
            } else {
                HashAlg::Sha256.digest(&s.data)
            }
        })
    }
}

/// A secure-boot signature database variable as measured (PK, KEK, db or dbx).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureDb {
    /// Whether the variable was measured at all.
    pub measured: bool,
    pub lists: Vec<SignatureList>,
}

impl SignatureDb {
    /// Entry ids ([`SignatureList::entry_ids`]) of every list.
    pub fn entry_ids(&self) -> Vec<Vec<u8>> {
        self.lists.iter().flat_map(SignatureList::entry_ids).collect()
    }

    pub fn len(&self) -> usize {
        self.lists.iter().map(|l| l.signatures.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An extended PCR 4 event that is not a data-bound type: a boot application (PFP §3.3.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootApp {
    pub index: usize,
    pub event_type: u32,
    /// The image digest (PE/COFF Authenticode hash) per verified bank.
    pub digests: Vec<(HashAlg, Vec<u8>)>,
    /// From UEFI_IMAGE_LOAD_EVENT's device path, when it has a file path node. Not covered by the digest.
    pub path: Option<String>,
}

impl BootApp {
    pub fn digest(&self, bank: HashAlg) -> Option<&[u8]> {
        self.digests.iter().find(|(b, _)| *b == bank).map(|(_, d)| d.as_slice())
    }
}

/// An EV_SEPARATOR (PFP §3.3.2.2): 4 bytes, 0 normally, 1 or 0xFFFFFFFF on a firmware error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Separator {
    pub index: usize,
    pub pcr: u8,
    pub data: Vec<u8>,
}

/// A kernel command line GRUB measured into PCR 8, its digest re-derived from the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelCmdline {
    pub index: usize,
    /// The text as GRUB logged it (the kernel path first, as in /proc/cmdline's BOOT_IMAGE).
    pub text: String,
}

/// What a log says about the boot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasuredBootFacts {
    /// The PCRs the facts were drawn from.
    pub pcrs: BTreeSet<u8>,
    /// The SecureBoot variable (UEFI 2.9 §3.3): None when never measured; Some(false) when measured as 0 or
    /// empty, or when two measurements disagree.
    pub secure_boot: Option<bool>,
    pub pk: SignatureDb,
    pub kek: SignatureDb,
    pub db: SignatureDb,
    pub dbx: SignatureDb,
    pub boot_apps: Vec<BootApp>,
    pub separators: Vec<Separator>,
    pub kernel_cmdlines: Vec<KernelCmdline>,
    /// An extended PCR 7 event whose digest is H("UEFI Debug Mode") (whatever its type) was found.
    pub debug_mode: bool,
}

fn extract(log: &EventLog, pcrs: &BTreeSet<u8>, banks: &[HashAlg]) -> Result<MeasuredBootFacts, FactsError> {
    let mut facts = MeasuredBootFacts { pcrs: pcrs.clone(), ..Default::default() };
    let trusted = |e: &Event| e.is_extended() && u8::try_from(e.pcr).is_ok_and(|p| pcrs.contains(&p));
    for event in log.events.iter().filter(|e| trusted(e)) {
        let pcr = u8::try_from(event.pcr).unwrap_or(u8::MAX);
        let data_bound = DIGEST_IS_HASH_OF_DATA.iter().any(|&(t, _)| t == event.event_type);
        if pcr == 7 && event.digests.iter().any(|d| d.hash().is_some_and(|h| h.digest(UEFI_DEBUG_MODE) == d.digest)) {
            facts.debug_mode = true;
        }
        match event.event_type {
            EV_SEPARATOR => facts.separators.push(Separator { index: event.index, pcr, data: event.data.clone() }),
            EV_EFI_VARIABLE_DRIVER_CONFIG if pcr == 7 => secure_boot_variable(event, &mut facts)?,
            EV_EFI_ACTION if pcr == 7 && event.data == UEFI_DEBUG_MODE => facts.debug_mode = true,
            EV_IPL if pcr == KERNEL_CMDLINE_PCR => {
                if let Some(text) = kernel_cmdline(event)? {
                    if !facts.kernel_cmdlines.iter().any(|c| c.text == text) {
                        facts.kernel_cmdlines.push(KernelCmdline { index: event.index, text });
                    }
                }
            }
            _ => {}
        }
        if pcr == 4 && !data_bound {
            let digests = banks.iter().filter_map(|&b| Some((b, event.digest(b)?.to_vec()))).collect();
            let path =
                if event.event_type == EV_EFI_BOOT_SERVICES_APPLICATION { image_path(&event.data) } else { None };
            facts.boot_apps.push(BootApp { index: event.index, event_type: event.event_type, digests, path });
        }
    }
    Ok(facts)
}

/// A bounded little-endian reader over one event's data; errors name the event.
struct DataReader<'a> {
    event: &'a Event,
    data: &'a [u8],
    pos: usize,
}

impl<'a> DataReader<'a> {
    fn new(event: &'a Event) -> Self {
        Self { event, data: &event.data, pos: 0 }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], FactsError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        if rest.len() < len {
            return Err(FactsError::Truncated {
                index: self.event.index,
                offset: self.event.offset,
                field,
                at: self.pos,
            });
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FactsError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, FactsError> {
        let b = self.take(8, field)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    fn guid(&mut self, field: &'static str) -> Result<Guid, FactsError> {
        let mut g = [0u8; 16];
        g.copy_from_slice(self.take(16, field)?);
        Ok(Guid(g))
    }

    fn invalid(&self, field: &'static str, at: usize, reason: &'static str) -> FactsError {
        FactsError::Invalid { index: self.event.index, offset: self.event.offset, field, at, reason }
    }

    /// A length field, which must fit in what is left of the data.
    fn len(&mut self, field: &'static str, unit: usize) -> Result<usize, FactsError> {
        let at = self.pos;
        let n = self.u64(field)?;
        let remaining = self.data.len().saturating_sub(self.pos);
        match usize::try_from(n).ok().and_then(|n| n.checked_mul(unit)) {
            Some(bytes) if bytes <= remaining => Ok(bytes),
            _ => Err(self.invalid(field, at, "larger than the event data")),
        }
    }
}

/// PFP's UEFI_VARIABLE_DATA: VariableName (GUID), UnicodeNameLength (CHAR16s), VariableDataLength,
/// UnicodeName, VariableData — exactly, no trailing bytes.
pub struct VariableData<'a> {
    pub guid: Guid,
    pub name: String,
    pub data: &'a [u8],
}

/// Parses an EV_EFI_VARIABLE_* event's data.
pub fn variable_data(event: &Event) -> Result<VariableData<'_>, FactsError> {
    let mut r = DataReader::new(event);
    let guid = r.guid("UEFI_VARIABLE_DATA.VariableName")?;
    let name_bytes = r.len("UEFI_VARIABLE_DATA.UnicodeNameLength", 2)?;
    let data_len = r.len("UEFI_VARIABLE_DATA.VariableDataLength", 1)?;
    let name_at = r.pos;
    let name = r.take(name_bytes, "UEFI_VARIABLE_DATA.UnicodeName")?;
    let units: Vec<u16> = name.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let name =
        String::from_utf16(&units).map_err(|_| r.invalid("UEFI_VARIABLE_DATA.UnicodeName", name_at, "not UTF-16"))?;
    let data = r.take(data_len, "UEFI_VARIABLE_DATA.VariableData")?;
    if r.pos != event.data.len() {
        return Err(r.invalid("UEFI_VARIABLE_DATA", r.pos, "trailing bytes after VariableData"));
    }
    Ok(VariableData { guid, name, data })
}

/// SecureBoot, PK, KEK, db, dbx (PFP §3.3.4.8: measured to PCR 7 as EV_EFI_VARIABLE_DRIVER_CONFIG).
fn secure_boot_variable(event: &Event, facts: &mut MeasuredBootFacts) -> Result<(), FactsError> {
    let var = variable_data(event)?;
    let db = match (var.guid, var.name.as_str()) {
        (EFI_GLOBAL_VARIABLE, "SecureBoot") => {
            let on = match var.data {
                [] | [0] => false,
                [1] => true,
                _ => {
                    return Err(FactsError::Invalid {
                        index: event.index,
                        offset: event.offset,
                        field: "SecureBoot",
                        at: event.data.len().saturating_sub(var.data.len()),
                        reason: "SecureBoot is neither 0 nor 1",
                    })
                }
            };
            // Two measurements that disagree: not on.
            facts.secure_boot = Some(facts.secure_boot.unwrap_or(true) && on);
            return Ok(());
        }
        (EFI_GLOBAL_VARIABLE, "PK") => &mut facts.pk,
        (EFI_GLOBAL_VARIABLE, "KEK") => &mut facts.kek,
        (EFI_IMAGE_SECURITY_DATABASE_GUID, "db") => &mut facts.db,
        (EFI_IMAGE_SECURITY_DATABASE_GUID, "dbx") => &mut facts.dbx,
        _ => return Ok(()),
    };
    let base = event.data.len() - var.data.len();
    db.measured = true;
    db.lists.extend(signature_lists(event, base)?);
    Ok(())
}

/// A sequence of EFI_SIGNATURE_LISTs (UEFI 2.9 §32.4.1) filling the variable data, which starts at byte
/// `base` of the event data.
pub fn signature_lists(event: &Event, base: usize) -> Result<Vec<SignatureList>, FactsError> {
    let mut r = DataReader { event, data: &event.data, pos: base };
    let mut lists = Vec::new();
    let mut count = 0usize;
    while r.pos < event.data.len() {
        let start = r.pos;
        let signature_type = r.guid("EFI_SIGNATURE_LIST.SignatureType")?;
        let list_size = r.u32("EFI_SIGNATURE_LIST.SignatureListSize")? as usize;
        let header_size = r.u32("EFI_SIGNATURE_LIST.SignatureHeaderSize")? as usize;
        let size_at = r.pos;
        let signature_size = r.u32("EFI_SIGNATURE_LIST.SignatureSize")? as usize;
        let end = start.checked_add(list_size).filter(|&e| e <= event.data.len());
        let Some(end) = end else {
            return Err(r.invalid("EFI_SIGNATURE_LIST.SignatureListSize", start + 16, "larger than the variable data"));
        };
        let Some(body) = list_size.checked_sub(28).and_then(|b| b.checked_sub(header_size)) else {
            return Err(r.invalid("EFI_SIGNATURE_LIST.SignatureHeaderSize", start + 20, "larger than the list"));
        };
        // EFI_SIGNATURE_DATA is the owner GUID and at least one byte of data.
        if signature_size <= 16 || body % signature_size != 0 {
            return Err(r.invalid("EFI_SIGNATURE_LIST.SignatureSize", size_at, "does not divide the list"));
        }
        if signature_type == EFI_CERT_SHA256_GUID && signature_size != 16 + 32 {
            return Err(r.invalid("EFI_SIGNATURE_LIST.SignatureSize", size_at, "not 48 for EFI_CERT_SHA256"));
        }
        count += body / signature_size;
        if count > MAX_SIGNATURES {
            return Err(r.invalid("EFI_SIGNATURE_LIST", start, "too many signatures"));
        }
        let header = r.take(header_size, "EFI_SIGNATURE_LIST.SignatureHeader")?.to_vec();
        let mut signatures = Vec::with_capacity(body / signature_size);
        while r.pos < end {
            let owner = r.guid("EFI_SIGNATURE_DATA.SignatureOwner")?;
            let data = r.take(signature_size - 16, "EFI_SIGNATURE_DATA.SignatureData")?.to_vec();
            signatures.push(SignatureData { owner, data });
        }
        lists.push(SignatureList { signature_type, header, signatures });
    }
    Ok(lists)
}

/// The kernel command line of a GRUB PCR 8 string, after checking that every digest of the event is the
/// hash of the string GRUB measured (with or without its NUL: distributions differ).
fn kernel_cmdline(event: &Event) -> Result<Option<String>, FactsError> {
    let Some((rest, is_command)) =
        GRUB_PREFIXES.iter().find_map(|&(p, cmd)| event.data.strip_prefix(p).map(|rest| (rest, cmd)))
    else {
        return Ok(None);
    };
    let text = rest.strip_suffix(b"\0").unwrap_or(rest);
    let cmdline = if is_command {
        match [&b"linux "[..], b"linuxefi "].iter().find_map(|p| text.strip_prefix(*p)) {
            Some(args) => args,
            None => return Ok(None),
        }
    } else {
        text
    };
    for d in &event.digests {
        let Some(bank) = d.hash() else { continue };
        if bank.digest(text) != d.digest && bank.digest(rest) != d.digest {
            return Err(FactsError::UnboundCommandLine { index: event.index, offset: event.offset, bank });
        }
    }
    let Ok(cmdline) = std::str::from_utf8(cmdline) else {
        return Err(FactsError::Invalid {
            index: event.index,
            offset: event.offset,
            field: "kernel command line",
            at: 0,
            reason: "not UTF-8",
        });
    };
    Ok(Some(cmdline.to_owned()))
}

/// Best effort: the file path of a UEFI_IMAGE_LOAD_EVENT (PFP: ImageLocationInMemory,
/// ImageLengthInMemory, ImageLinkTimeAddress, LengthOfDevicePath, DevicePath; UINTN is 64-bit here), from
/// its media file path nodes (UEFI 2.9 §10.3.5.4: type 4, subtype 4). Never fails; None when absent.
pub fn image_path(data: &[u8]) -> Option<String> {
    let len = usize::try_from(u64::from_le_bytes(data.get(24..32)?.try_into().ok()?)).ok()?;
    let mut path = data.get(32..32usize.checked_add(len)?)?;
    let mut out = String::new();
    while path.len() >= 4 {
        let (node_type, subtype) = (path[0], path[1]);
        let node_len = usize::from(u16::from_le_bytes([path[2], path[3]]));
        if node_len < 4 || node_len > path.len() || node_type == 0x7F {
            break;
        }
        if node_type == 4 && subtype == 4 {
            let units: Vec<u16> = path[4..node_len]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            let part = String::from_utf16_lossy(&units);
            if !out.is_empty() && !out.ends_with('\\') && !part.starts_with('\\') {
                out.push('\\');
            }
            out.push_str(&part);
        }
        path = &path[node_len..];
    }
    (!out.is_empty()).then_some(out)
}
