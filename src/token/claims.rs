//! The token's payload: a CWT claims map (RFC 8392 §3, §7.1) with EAT claims (RFC 9711 §4) and runtrust's
//! private claims (docs/design.md §7). Decoding is strict: integer keys from [`label::claim`] only, each once,
//! each of its one type, the required ones present, and the map deterministically encoded (RFC 8949
//! §4.2.1) — exactly as [`Claims::to_payload`] writes it.

use runtrust_attestation::tpm2::{HashAlg, PcrSelection, PublicKey, SigScheme};

use super::cbor::{self, Cbor, IntMap};
use super::cnf::ConfirmationKey;
use super::labels::{self as label, claim};
use super::TokenError;

/// The eat_profile of every runtrust execution token (RFC 9711 §4.3.2, a URI).
pub const EAT_PROFILE: &str = "https://runtrust.dev/eat/execution-token/v1";
/// cti and parent cti length.
pub const CTI_LEN: usize = 16;
/// Policy hash length (SHA-256).
pub const POLICY_HASH_LEN: usize = 32;
/// eat_nonce length bounds (RFC 9711 §4.1).
pub const EAT_NONCE_MIN: usize = 8;
pub const EAT_NONCE_MAX: usize = 64;
/// Bound on iss, sub, aud, initiator and policy id.
pub const MAX_TEXT: usize = 1024;
/// Latest NumericDate accepted, 9999-12-31T23:59:59Z (so every time has an RFC 3339 form).
pub const MAX_TIME: i64 = 253_402_300_799;
/// Bound on the PCR selection text.
const MAX_SELECTION: usize = 512;

/// Every claim of an execution token (docs/design.md §7, `docs/token.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// iss (1): the service id.
    pub iss: String,
    /// sub (2): the host id (`sha256:<hex>`).
    pub sub: String,
    /// aud (3): the gateway / audience.
    pub aud: String,
    /// exp (4), nbf (5), iat (6): integer seconds since the Unix epoch.
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// cti (7): 16 random bytes.
    pub cti: Vec<u8>,
    /// cnf (8): the host's AK.
    pub cnf: ConfirmationKey,
    /// eat_nonce (10): the nonce the issuing quote was made over.
    pub eat_nonce: Vec<u8>,
    /// eat_profile (265): always [`EAT_PROFILE`].
    pub eat_profile: String,
    /// -70001: the scope or scope pattern granted.
    pub scope: String,
    /// -70002: the principal that asked for the token.
    pub initiator: String,
    /// -70003: the policy that allowed it.
    pub policy_id: String,
    /// -70004: SHA-256 of the policy's bytes.
    pub policy_hash: Vec<u8>,
    /// -70005: the PCR bank appraised (`sha256`).
    pub pcr_bank: String,
    /// -70006: the signed PCR selection, canonical tpm2-tools form (`sha256:0,1,2`).
    pub pcr_selection: String,
    /// -70007: the quote's pcrDigest.
    pub pcr_digest: Vec<u8>,
    /// -70008: the parent's cti; None for a root token.
    pub parent_cti: Option<Vec<u8>>,
    /// -70009: 0 for a root token, parent's + 1 for a delegated one.
    pub delegation_depth: u32,
    /// -70010: the issuance's audit log index, when known at signing time.
    pub audit_index: Option<u64>,
    /// -70011: whether the token authorizes one execution only.
    pub single_use: bool,
}

/// Every claim key, for the strict decoder.
const KNOWN: [i64; 21] = [
    claim::ISS,
    claim::SUB,
    claim::AUD,
    claim::EXP,
    claim::NBF,
    claim::IAT,
    claim::CTI,
    claim::CNF,
    claim::EAT_NONCE,
    claim::EAT_PROFILE,
    claim::SCOPE,
    claim::INITIATOR,
    claim::POLICY_ID,
    claim::POLICY_HASH,
    claim::PCR_BANK,
    claim::PCR_SELECTION,
    claim::PCR_DIGEST,
    claim::PARENT_CTI,
    claim::DELEGATION_DEPTH,
    claim::AUDIT_INDEX,
    claim::SINGLE_USE,
];

fn bad(claim: &'static str, reason: impl Into<String>) -> TokenError {
    TokenError::Claim { claim, reason: reason.into() }
}

impl Claims {
    /// The AK a fresh quote must be signed by, as
    /// [`runtrust_attestation::quote::verify_quote_with_key`] takes it.
    pub fn ak_key(&self) -> (&PublicKey, Option<SigScheme>) {
        (self.cnf.public_key(), self.cnf.scheme())
    }

    pub fn is_root(&self) -> bool {
        self.parent_cti.is_none()
    }

    /// The rules every token obeys; the issuer checks them before signing and the verifier after decoding.
    pub fn validate(&self) -> Result<(), TokenError> {
        for (name, v) in [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("aud", &self.aud),
            ("initiator", &self.initiator),
            ("policy_id", &self.policy_id),
        ] {
            check_text(name, v)?;
        }
        for (name, t) in [("exp", self.exp), ("nbf", self.nbf), ("iat", self.iat)] {
            if !(0..=MAX_TIME).contains(&t) {
                return Err(bad(name, format!("{t} is outside 0..={MAX_TIME}")));
            }
        }
        if self.nbf >= self.exp {
            return Err(bad("nbf", "must be before exp"));
        }
        if self.iat > self.exp {
            return Err(bad("iat", "must not be after exp"));
        }
        check_len("cti", &self.cti, CTI_LEN..=CTI_LEN)?;
        check_len("eat_nonce", &self.eat_nonce, EAT_NONCE_MIN..=EAT_NONCE_MAX)?;
        if self.eat_profile != EAT_PROFILE {
            return Err(bad("eat_profile", format!("{:?} is not {EAT_PROFILE}", self.eat_profile)));
        }
        crate::scope::validate(&self.scope, true).map_err(|e| bad("scope", e.to_string()))?;
        check_len("policy_hash", &self.policy_hash, POLICY_HASH_LEN..=POLICY_HASH_LEN)?;
        let bank: HashAlg = self.pcr_bank.parse().map_err(|e: String| bad("pcr_bank", e))?;
        if bank.name() != self.pcr_bank {
            return Err(bad("pcr_bank", format!("write {:?} as {:?}", self.pcr_bank, bank.name())));
        }
        if self.pcr_selection.len() > MAX_SELECTION {
            return Err(bad("pcr_selection", "too long"));
        }
        let selection: PcrSelection = self.pcr_selection.parse().map_err(|e: String| bad("pcr_selection", e))?;
        if selection.to_string() != self.pcr_selection {
            return Err(bad("pcr_selection", format!("not in canonical form {selection}")));
        }
        if !selection.banks().iter().any(|b| b.hash == bank) {
            return Err(bad("pcr_selection", format!("does not select bank {bank}")));
        }
        if ![20, 32, 48, 64].contains(&self.pcr_digest.len()) {
            return Err(bad("pcr_digest", format!("{} bytes is no digest length", self.pcr_digest.len())));
        }
        match &self.parent_cti {
            Some(p) => {
                check_len("parent_cti", p, CTI_LEN..=CTI_LEN)?;
                if *p == self.cti {
                    return Err(bad("parent_cti", "a token cannot be its own parent"));
                }
                if self.delegation_depth == 0 {
                    return Err(bad("delegation_depth", "0 for a delegated token"));
                }
            }
            None if self.delegation_depth != 0 => {
                return Err(bad("delegation_depth", "must be 0 for a root token (no parent_cti)"));
            }
            None => {}
        }
        Ok(())
    }

    pub(crate) fn to_cbor(&self) -> Cbor {
        let text = |s: &str| Cbor::Text(s.to_owned());
        let mut m = vec![
            (claim::ISS, text(&self.iss)),
            (claim::SUB, text(&self.sub)),
            (claim::AUD, text(&self.aud)),
            (claim::EXP, Cbor::Int(self.exp)),
            (claim::NBF, Cbor::Int(self.nbf)),
            (claim::IAT, Cbor::Int(self.iat)),
            (claim::CTI, Cbor::Bytes(self.cti.clone())),
            (claim::CNF, Cbor::Map(vec![(label::CNF_COSE_KEY, self.cnf.to_cose())])),
            (claim::EAT_NONCE, Cbor::Bytes(self.eat_nonce.clone())),
            (claim::EAT_PROFILE, text(&self.eat_profile)),
            (claim::SCOPE, text(&self.scope)),
            (claim::INITIATOR, text(&self.initiator)),
            (claim::POLICY_ID, text(&self.policy_id)),
            (claim::POLICY_HASH, Cbor::Bytes(self.policy_hash.clone())),
            (claim::PCR_BANK, text(&self.pcr_bank)),
            (claim::PCR_SELECTION, text(&self.pcr_selection)),
            (claim::PCR_DIGEST, Cbor::Bytes(self.pcr_digest.clone())),
            (claim::DELEGATION_DEPTH, Cbor::Uint(u64::from(self.delegation_depth))),
            (claim::SINGLE_USE, Cbor::Bool(self.single_use)),
        ];
        if let Some(p) = &self.parent_cti {
            m.push((claim::PARENT_CTI, Cbor::Bytes(p.clone())));
        }
        if let Some(i) = self.audit_index {
            m.push((claim::AUDIT_INDEX, Cbor::Uint(i)));
        }
        Cbor::Map(m)
    }

    /// The deterministically encoded claims map (the COSE_Sign1 payload).
    pub fn to_payload(&self) -> Vec<u8> {
        cbor::encode(&self.to_cbor())
    }

    /// Decodes and validates a payload. Unknown claim keys are refused: a claim this verifier cannot
    /// interpret could be one that restricts the token.
    pub fn from_payload(payload: &[u8]) -> Result<Self, TokenError> {
        let value = cbor::decode(payload).map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        let mut m = IntMap::new(value, "claims map", &KNOWN).map_err(TokenError::Malformed)?;
        let mut req = |key: i64, name: &'static str| m.require(key, "claims map").map_err(|e| bad(name, e));
        let text = |v, name: &'static str| cbor::to_text(v, name).map_err(|e| bad(name, e));
        let bytes = |v, name: &'static str| cbor::to_bytes(v, name).map_err(|e| bad(name, e));
        let time = |v, name: &'static str| cbor::to_i64(v, name).map_err(|e| bad(name, e));

        let iss = text(req(claim::ISS, "iss")?, "iss")?;
        let sub = text(req(claim::SUB, "sub")?, "sub")?;
        let aud = text(req(claim::AUD, "aud")?, "aud")?;
        let exp = time(req(claim::EXP, "exp")?, "exp")?;
        let nbf = time(req(claim::NBF, "nbf")?, "nbf")?;
        let iat = time(req(claim::IAT, "iat")?, "iat")?;
        let cti = bytes(req(claim::CTI, "cti")?, "cti")?;
        let cnf_map = req(claim::CNF, "cnf")?;
        let eat_nonce = bytes(req(claim::EAT_NONCE, "eat_nonce")?, "eat_nonce")?;
        let eat_profile = text(req(claim::EAT_PROFILE, "eat_profile")?, "eat_profile")?;
        let scope = text(req(claim::SCOPE, "scope")?, "scope")?;
        let initiator = text(req(claim::INITIATOR, "initiator")?, "initiator")?;
        let policy_id = text(req(claim::POLICY_ID, "policy_id")?, "policy_id")?;
        let policy_hash = bytes(req(claim::POLICY_HASH, "policy_hash")?, "policy_hash")?;
        let pcr_bank = text(req(claim::PCR_BANK, "pcr_bank")?, "pcr_bank")?;
        let pcr_selection = text(req(claim::PCR_SELECTION, "pcr_selection")?, "pcr_selection")?;
        let pcr_digest = bytes(req(claim::PCR_DIGEST, "pcr_digest")?, "pcr_digest")?;
        let depth = cbor::to_u64(req(claim::DELEGATION_DEPTH, "delegation_depth")?, "delegation_depth")
            .map_err(|e| bad("delegation_depth", e))?;
        let single_use =
            cbor::to_bool(req(claim::SINGLE_USE, "single_use")?, "single_use").map_err(|e| bad("single_use", e))?;
        let parent_cti = m.take(claim::PARENT_CTI).map(|v| bytes(v, "parent_cti")).transpose()?;
        let audit_index = m
            .take(claim::AUDIT_INDEX)
            .map(|v| cbor::to_u64(v, "audit_index").map_err(|e| bad("audit_index", e)))
            .transpose()?;

        // cnf = {1: COSE_Key} (RFC 8747 §3.2); other confirmation methods are not used by runtrust.
        let mut cnf = IntMap::new(cnf_map, "cnf", &[label::CNF_COSE_KEY]).map_err(|e| bad("cnf", e))?;
        let cose_key = cnf.require(label::CNF_COSE_KEY, "cnf").map_err(|e| bad("cnf", e))?;
        let cnf = ConfirmationKey::from_cose_value(cose_key).map_err(|e| bad("cnf", e))?;

        let claims = Claims {
            iss,
            sub,
            aud,
            exp,
            nbf,
            iat,
            cti,
            cnf,
            eat_nonce,
            eat_profile,
            scope,
            initiator,
            policy_id,
            policy_hash,
            pcr_bank,
            pcr_selection,
            pcr_digest,
            parent_cti,
            delegation_depth: u32::try_from(depth).map_err(|_| bad("delegation_depth", "more than 2^32 - 1"))?,
            audit_index,
            single_use,
        };
        claims.validate()?;
        // One token, one encoding: anything else (indefinite lengths, long-form integers, other key order)
        // is not what runtrust signs.
        if claims.to_payload() != payload {
            return Err(TokenError::Malformed("claims are not deterministically encoded (RFC 8949 §4.2.1)".into()));
        }
        Ok(claims)
    }
}

fn check_text(name: &'static str, s: &str) -> Result<(), TokenError> {
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(bad(name, format!("must be 1-{MAX_TEXT} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(name, "contains control characters"));
    }
    Ok(())
}

fn check_len(name: &'static str, b: &[u8], range: std::ops::RangeInclusive<usize>) -> Result<(), TokenError> {
    if !range.contains(&b.len()) {
        return Err(bad(name, format!("{} bytes, expected {}-{}", b.len(), range.start(), range.end())));
    }
    Ok(())
}
