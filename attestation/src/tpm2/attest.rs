//! TPMS_ATTEST (Part 2 §10.12.12) for quotes, with TPMS_CLOCK_INFO (§10.11.1) and TPMS_QUOTE_INFO (§10.12.4).

use super::pcr::PcrSelection;
use super::wire::{ParseError, Reader};

/// TPM_GENERATED_VALUE (Part 2 §6.2): "\xffTCG", set only on structures the TPM itself produced.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE (Part 2 §6.9).
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// sizeof(TPMU_NAME): a TPMT_HA with a SHA-512 digest.
const MAX_NAME: usize = 2 + 64;
/// sizeof(TPMT_HA), the bound on TPM2B_DATA.
const MAX_DATA: usize = 2 + 64;
/// sizeof(TPMU_HA), the bound on TPM2B_DIGEST.
const MAX_DIGEST: usize = 64;

/// TPMS_CLOCK_INFO (Part 2 §10.11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since it was manufactured (or last TPM2_Clear).
    pub clock: u64,
    /// TPM Resets since the last TPM2_Clear.
    pub reset_count: u32,
    /// TPM Restarts / Resumes since the last TPM Reset.
    pub restart_count: u32,
    /// NO when `clock` may have been reported before and then lost (e.g. on an orderly-shutdown failure).
    pub safe: bool,
}

/// TPMS_QUOTE_INFO (Part 2 §10.12.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteInfo {
    pub pcr_select: PcrSelection,
    pub pcr_digest: Vec<u8>,
}

/// A parsed TPMS_ATTEST whose `type` is TPM_ST_ATTEST_QUOTE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    pub magic: u32,
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    pub quote: QuoteInfo,
}

impl Attest {
    /// Parses a quote's TPMS_ATTEST; any other attestation type, or trailing bytes, is an error.
    pub fn parse_quote(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("TPMS_ATTEST.magic")?;
        let type_offset = r.offset();
        let attest_type = r.u16("TPMS_ATTEST.type")?;
        if attest_type != TPM_ST_ATTEST_QUOTE {
            return Err(ParseError::Invalid {
                field: "TPMS_ATTEST.type",
                offset: type_offset,
                reason: "not TPM_ST_ATTEST_QUOTE",
            });
        }
        let qualified_signer = r.tpm2b("TPMS_ATTEST.qualifiedSigner", MAX_NAME)?.to_vec();
        let extra_data = r.tpm2b("TPMS_ATTEST.extraData", MAX_DATA)?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("TPMS_CLOCK_INFO.clock")?,
            reset_count: r.u32("TPMS_CLOCK_INFO.resetCount")?,
            restart_count: r.u32("TPMS_CLOCK_INFO.restartCount")?,
            safe: r.yes_no("TPMS_CLOCK_INFO.safe")?,
        };
        let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
        let pcr_select = PcrSelection::parse(&mut r)?;
        let pcr_digest = r.tpm2b("TPMS_QUOTE_INFO.pcrDigest", MAX_DIGEST)?.to_vec();
        r.finish("TPMS_ATTEST")?;
        Ok(Self {
            magic,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            quote: QuoteInfo { pcr_select, pcr_digest },
        })
    }
}
