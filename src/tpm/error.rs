use std::path::PathBuf;

use runtrust_attestation::DenialCode;

/// Why a TPM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("cannot reach the TPM at {tcti:?}: {source}\n  hint: {hint}")]
    Unreachable { tcti: String, hint: String, source: tss_esapi::Error },
    #[error("invalid TCTI {tcti:?}: {reason} (examples: device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321)")]
    BadTcti { tcti: String, reason: String },
    #[error("TPM command {command} failed: {source}")]
    Command { command: &'static str, source: tss_esapi::Error },
    #[error("TPM command {command} still answered {code} after {attempts} tries with backoff: the TPM is busy or running its self-test; try again shortly")]
    Busy { command: &'static str, code: &'static str, attempts: u32, source: tss_esapi::Error },
    #[error("TPM command {command} refused: the TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT)\n  hint: too many failed authorizations, or power losses while a DA-protected key was in use (runtrust now creates AKs with noDA; an older AK in the state dir is DA-protected). The TPM lets one through again after TPM2_PT_LOCKOUT_INTERVAL (`tpm2_getcap properties-variable`); with the lockout authorization, `tpm2_dictionarylockout --clear-lockout` ends it at once")]
    Lockout { command: &'static str, source: tss_esapi::Error },
    #[error("persistent handle {handle:#010x} holds an object that is not this TPM's EK ({reason}); runtrust leaves it alone: if it is not needed, `tpm2_evictcontrol -C o -c {handle:#010x}` removes it")]
    EkHandleTaken { handle: u32, reason: String },
    #[error("the EK created from the TCG template is not the key of the EK certificate in NV ({reason}); runtrust does not persist it")]
    EkNotCertified { reason: String },
    #[error("cannot persist the EK at {handle:#010x}: {source}\n  hint: TPM2_EvictControl needs the owner hierarchy's authorization, which runtrust gives as empty; with an owner password, `tpm2_createek -G {alg} -c {handle:#010x} -w OWNER_PASSWORD` persists it")]
    PersistEk { handle: u32, alg: &'static str, source: tss_esapi::Error },
    #[error("the TPM returned a structure runtrust cannot use ({what}): {detail}")]
    Unexpected { what: &'static str, detail: String },
    #[error("PCR bank {bank} is not active on this TPM (active banks: {active})")]
    BankNotActive { bank: HashAlg, active: String },
    #[error("the PCRs kept changing while quoting ({attempts} attempts); try again when the system is idle")]
    PcrsUnstable { attempts: u32 },
    #[error("nonce is {len} bytes; a TPM2B_DATA qualifying nonce holds 1 to 64")]
    BadNonce { len: usize },
    #[error("the AK in {dir} belongs to a different TPM (its EK Name differs); use another --state-dir or remove {dir}/ak-*")]
    ForeignAk { dir: PathBuf },
    #[error("state directory {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
    #[error("AK blob {path} is corrupt: {detail}")]
    CorruptAk { path: PathBuf, detail: String },
    /// The host agent (docs/design.md §14) answered, but not with what was asked; `unavailable` when it
    /// reports that it cannot reach the TPM, or went away mid-request.
    #[error("host agent {socket}: {detail}")]
    Agent { socket: PathBuf, detail: String, unavailable: bool },
}

use runtrust_attestation::HashAlg;

impl TpmError {
    /// A TPM that cannot be reached, or stays busy, is "unavailable" (exit code 4); everything else is an error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TpmError::Unreachable { .. } | TpmError::Busy { .. } | TpmError::Agent { unavailable: true, .. })
    }

    pub fn code(&self) -> DenialCode {
        if self.is_unavailable() {
            DenialCode::VerifierUnavailable
        } else {
            DenialCode::InternalError
        }
    }
}
