//! Replay (PFP §9.2: PCR_new = H(PCR_old || digest)) and comparison with quoted PCR values.

use std::collections::BTreeSet;
use std::fmt;

use crate::denial::DenialCode;
use crate::tpm2::{HashAlg, PcrValues};

use super::{Event, EventLog};

/// What replaying a log yields: per bank, every PCR that an event extends (and PCR 0 when a StartupLocality
/// event sets its initial value). PCRs the log does not touch keep their initial value, see [`Replayed::value`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// The banks the log carries and runtrust can compute.
    pub banks: Vec<HashAlg>,
    /// bank → PCR index → replayed value.
    pub pcrs: PcrValues,
    startup_locality: Option<u8>,
}

impl Replayed {
    /// The value the log implies for `pcr` in `bank`: replayed, or its initial value when the log does not
    /// touch it; None when the log has no digests in `bank`.
    pub fn value(&self, bank: HashAlg, pcr: u8) -> Option<Vec<u8>> {
        if !self.banks.contains(&bank) {
            return None;
        }
        Some(match self.pcrs.get(bank, pcr) {
            Some(v) => v.to_vec(),
            None => initial_value(bank, pcr, self.startup_locality),
        })
    }
}

/// PCR values start at zero after TPM2_Startup(CLEAR); PCR 0's last byte is the startup locality when the
/// log records one (PFP §9.4.5.3, "StartupLocality"; TPM 2.0 Part 1 §34.3 for locality 3 and 4).
fn initial_value(bank: HashAlg, pcr: u8, startup_locality: Option<u8>) -> Vec<u8> {
    let mut v = vec![0u8; bank.digest_len()];
    if let (0, Some(locality), Some(last)) = (pcr, startup_locality, v.last_mut()) {
        *last = locality;
    }
    v
}

fn extend(bank: HashAlg, pcr: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut ctx = bank.context();
    ctx.update(pcr);
    ctx.update(digest);
    ctx.finish().as_ref().to_vec()
}

/// Why a quoted PCR disagrees with the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MismatchKind {
    /// The log has no digests in this bank.
    BankMissing,
    /// A prefix of this PCR's events reproduces the quoted value: the log has events the TPM never saw
    /// after `last_agreeing_event` (None: the quoted value is the PCR's initial value).
    ExtraEvents { last_agreeing_event: Option<usize> },
    /// No prefix reproduces the quoted value: an event was altered, removed or never logged somewhere up to
    /// `last_event`, the last event extending this PCR (None: the log never extends it).
    Diverged { last_event: Option<usize> },
}

/// One quoted PCR the log does not reproduce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrMismatch {
    pub bank: HashAlg,
    pub pcr: u8,
    pub quoted: Vec<u8>,
    /// What the whole log replays to (empty for [`MismatchKind::BankMissing`]).
    pub replayed: Vec<u8>,
    pub kind: MismatchKind,
}

impl fmt::Display for PcrMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} PCR {}: ", self.bank, self.pcr)?;
        match &self.kind {
            MismatchKind::BankMissing => write!(f, "the log has no {} digests", self.bank),
            MismatchKind::ExtraEvents { last_agreeing_event: Some(i) } => {
                write!(f, "quoted value matches the log up to event {i}; the events after it were not measured")
            }
            MismatchKind::ExtraEvents { last_agreeing_event: None } => {
                write!(f, "quoted value is the initial value; the log's events for it were not measured")
            }
            MismatchKind::Diverged { last_event: Some(i) } => write!(
                f,
                "replayed {} (last event {i}) but quoted {}",
                hex::encode(&self.replayed),
                hex::encode(&self.quoted)
            ),
            MismatchKind::Diverged { last_event: None } => {
                write!(f, "the log never extends it but quoted {}", hex::encode(&self.quoted))
            }
        }
    }
}

/// The log does not reproduce one or more quoted PCRs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the event log does not reproduce the quoted PCRs: {}", list(.mismatches))]
pub struct ReplayMismatch {
    /// In quoted order: banks by algorithm, PCRs ascending.
    pub mismatches: Vec<PcrMismatch>,
}

fn list(mismatches: &[PcrMismatch]) -> String {
    mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ReplayMismatch {
    pub fn code(&self) -> DenialCode {
        DenialCode::EventLogMismatch
    }
}

impl EventLog {
    /// Recomputes every PCR of every bank the log carries (algorithms runtrust does not know are skipped).
    /// EV_NO_ACTION events are not extended (PFP §9.4.5).
    pub fn replay(&self) -> Replayed {
        let banks = self.banks();
        let startup_locality = self.startup_locality();
        let mut pcrs = PcrValues::new();
        for &bank in &banks {
            let touched: BTreeSet<u8> =
                self.extending(bank, None).filter_map(|(e, _)| u8::try_from(e.pcr).ok()).collect();
            let locality_pcr = startup_locality.map(|_| 0u8);
            for pcr in touched.into_iter().chain(locality_pcr) {
                let mut value = initial_value(bank, pcr, startup_locality);
                for (_, digest) in self.extending(bank, Some(pcr)) {
                    value = extend(bank, &value, digest);
                }
                // Cannot fail: the parser bounds extended events' PCR indices to 0-31 (only EV_NO_ACTION may
                // have none), and digests come in the bank's size.
                let _ = pcrs.insert(bank, pcr, value);
            }
        }
        Replayed { banks, pcrs, startup_locality }
    }

    /// Every PCR in `quoted` must equal the replayed log. For each one that does not, says whether the log
    /// merely runs past the quoted value (and after which event) or diverges from it.
    ///
    /// A quoted PCR the log never extends must hold its initial value: restrict `quoted` to the PCRs the
    /// log is meant to explain (e.g. not PCR 10 when IMA measures into it).
    pub fn check_against(&self, quoted: &PcrValues) -> Result<(), ReplayMismatch> {
        let replayed = self.replay();
        let mut mismatches = Vec::new();
        for (bank, pcr, quoted_value) in quoted.iter() {
            let Some(value) = replayed.value(bank, pcr) else {
                mismatches.push(PcrMismatch {
                    bank,
                    pcr,
                    quoted: quoted_value.to_vec(),
                    replayed: Vec::new(),
                    kind: MismatchKind::BankMissing,
                });
                continue;
            };
            if value == quoted_value {
                continue;
            }
            mismatches.push(PcrMismatch {
                bank,
                pcr,
                quoted: quoted_value.to_vec(),
                replayed: value,
                kind: self.diagnose(bank, pcr, quoted_value, replayed.startup_locality),
            });
        }
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(ReplayMismatch { mismatches })
        }
    }

    /// Replays `pcr` event by event, looking for a prefix that reproduces `quoted`.
    fn diagnose(&self, bank: HashAlg, pcr: u8, quoted: &[u8], startup_locality: Option<u8>) -> MismatchKind {
        let mut value = initial_value(bank, pcr, startup_locality);
        if value == quoted {
            return MismatchKind::ExtraEvents { last_agreeing_event: None };
        }
        let mut last_event = None;
        for (event, digest) in self.extending(bank, Some(pcr)) {
            value = extend(bank, &value, digest);
            if value == quoted {
                return MismatchKind::ExtraEvents { last_agreeing_event: Some(event.index) };
            }
            last_event = Some(event.index);
        }
        MismatchKind::Diverged { last_event }
    }

    /// Extended events (optionally only those of `pcr`) with their `bank` digest.
    fn extending(&self, bank: HashAlg, pcr: Option<u8>) -> impl Iterator<Item = (&Event, &[u8])> + '_ {
        self.events
            .iter()
            .filter(move |e| e.is_extended() && pcr.is_none_or(|p| e.pcr == u32::from(p)))
            .filter_map(move |e| Some((e, e.digest(bank)?)))
    }
}
