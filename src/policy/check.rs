//! PCR values against a policy's acceptable values (docs/design.md §2 step 4, "PCR values against policy"), and
//! the diagnostics a `pcr_mismatch` denial carries (docs/design.md §8: index, expected values, actual value).

use std::fmt;

use runtrust_attestation::{DenialCode, HashAlg, PcrValues};
use serde::Serialize;

/// One constrained PCR whose value is missing or not acceptable. Serialized verbatim into the
/// problem+json `diagnostics`: `{"bank": "sha256", "index": 7, "acceptable": ["<hex>"], "actual": "<hex>"|null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PcrDiagnostic {
    pub bank: String,
    pub index: u8,
    /// Lowercase hex, in the policy's order.
    pub acceptable: Vec<String>,
    /// Lowercase hex; None when the values do not include this PCR.
    pub actual: Option<String>,
}

/// Every constrained PCR that failed, banks as in [`super::Policy::selection`], indices ascending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PcrMismatch {
    pub mismatches: Vec<PcrDiagnostic>,
}

impl PcrMismatch {
    pub fn code(&self) -> DenialCode {
        DenialCode::PcrMismatch
    }
}

impl fmt::Display for PcrMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, d) in self.mismatches.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            let values = if d.acceptable.len() == 1 { "value" } else { "values" };
            match &d.actual {
                Some(actual) => write!(
                    f,
                    "{} PCR {} is {actual}, not the policy's acceptable {values} ({})",
                    d.bank,
                    d.index,
                    d.acceptable.join(", ")
                )?,
                None => write!(f, "{} PCR {} is missing from the PCR values", d.bank, d.index)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for PcrMismatch {}

/// Checks every constrained PCR; `constraints` yields them in diagnostic order.
pub(super) fn check<'a>(
    constraints: impl Iterator<Item = (HashAlg, u8, &'a [Vec<u8>])>,
    values: &PcrValues,
) -> Result<(), PcrMismatch> {
    let mut mismatches = Vec::new();
    for (bank, index, acceptable) in constraints {
        let actual = values.get(bank, index);
        // PCR values are public: a plain comparison is fine.
        if actual.is_some_and(|a| acceptable.iter().any(|v| v.as_slice() == a)) {
            continue;
        }
        mismatches.push(PcrDiagnostic {
            bank: bank.name().to_owned(),
            index,
            acceptable: acceptable.iter().map(hex::encode).collect(),
            actual: actual.map(hex::encode),
        });
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(PcrMismatch { mismatches })
    }
}
