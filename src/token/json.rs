//! Claims as JSON for `runtrust token inspect --json`: every claim by name, byte strings as lowercase hex,
//! times as integer seconds plus an RFC 3339 UTC form (`exp_rfc3339`, …).

use serde_json::{json, Value};

use super::claims::Claims;

pub fn claims_json(c: &Claims) -> Value {
    json!({
        "iss": c.iss,
        "sub": c.sub,
        "aud": c.aud,
        "exp": c.exp,
        "exp_rfc3339": rfc3339(c.exp),
        "nbf": c.nbf,
        "nbf_rfc3339": rfc3339(c.nbf),
        "iat": c.iat,
        "iat_rfc3339": rfc3339(c.iat),
        "cti": hex::encode(&c.cti),
        "cnf": c.cnf.to_json(),
        "eat_nonce": hex::encode(&c.eat_nonce),
        "eat_profile": c.eat_profile,
        "scope": c.scope,
        "initiator": c.initiator,
        "policy_id": c.policy_id,
        "policy_hash": hex::encode(&c.policy_hash),
        "pcr_bank": c.pcr_bank,
        "pcr_selection": c.pcr_selection,
        "pcr_digest": hex::encode(&c.pcr_digest),
        "parent_cti": c.parent_cti.as_ref().map(hex::encode),
        "delegation_depth": c.delegation_depth,
        "audit_index": c.audit_index,
        "single_use": c.single_use,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (RFC 3339 §5.6; proleptic Gregorian calendar). Exact for the
/// range claims may hold (0 ..= 9999-12-31T23:59:59Z).
/// [`rfc3339`] of an unsigned Unix time (records keep u64); one beyond i64 is shown as the integer.
pub fn rfc3339_unix(t: u64) -> String {
    i64::try_from(t).map_or_else(|_| t.to_string(), rfc3339)
}

pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date: H. Hinnant, "chrono-Compatible Low-Level Date Algorithms".
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3_600, secs % 3_600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        for (t, s) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (951_868_799, "2000-02-29T23:59:59Z"),
            (951_868_800, "2000-03-01T00:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(t), s, "{t}");
        }
    }
}
