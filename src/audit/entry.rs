//! The canonical bytes of an audit entry, the `entry` a leaf hashes (RFC 9162 §2.1.1: `H(0x00 ‖ entry)`).
//!
//! Form: one JSON object, no whitespace, object keys sorted by their UTF-8 bytes at every depth, strings
//! escaped minimally (`\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00xx` lowercase; everything else,
//! including non-ASCII, as UTF-8), integers in decimal:
//!
//! ```text
//! {"entry":{<the entry's serde JSON fields>},"index":<n>,"v":1}
//! ```
//!
//! The entry's fields are exactly those of its serde JSON form (absent options are `null`; `diagnostics`
//! is omitted when null), so an exported line (`audit tail --json`) re-encodes to the same bytes. The index
//! is inside the hashed bytes: moving an entry to another position changes its leaf hash. `v` names this
//! encoding; any change to it is a new version.

use serde_json::Value;

use super::AuditEntry;
use super::AuditError;

/// The version of this encoding (the `v` member).
pub const ENTRY_ENCODING_VERSION: u64 = 1;

/// The canonical bytes of entry `index` (see the module comment).
pub fn canonical_entry(entry: &AuditEntry, index: u64) -> Vec<u8> {
    // Destructured so that a field added to AuditEntry does not compile until it is encoded here.
    let AuditEntry { time, event, principal, host_id, code, detail, cti, diagnostics } = entry;
    let opt = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
    let mut fields = vec![
        ("code", opt(code)),
        ("cti", opt(cti)),
        ("detail", Value::String(detail.clone())),
        ("event", Value::String(event.clone())),
        ("host_id", opt(host_id)),
        ("principal", opt(principal)),
        ("time", Value::from(*time)),
    ];
    if !diagnostics.is_null() {
        fields.push(("diagnostics", diagnostics.clone()));
    }
    let inner = Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let outer = Value::Object(
        [
            ("entry".to_owned(), inner),
            ("index".to_owned(), Value::from(index)),
            ("v".to_owned(), Value::from(ENTRY_ENCODING_VERSION)),
        ]
        .into_iter()
        .collect(),
    );
    let mut out = Vec::with_capacity(256);
    write_value(&outer, &mut out);
    out
}

/// One line of an export (`runtrust audit tail --json`): the entry's serde JSON fields and its `index`,
/// in the canonical form above (sorted keys, no whitespace). Strict: [`parse_export_line`] accepts only
/// this exact form, so no byte of an exported entry can change unnoticed.
pub fn export_line(entry: &AuditEntry, index: u64) -> String {
    let mut v = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("index".to_owned(), Value::from(index));
    }
    let mut out = Vec::with_capacity(256);
    write_value(&v, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Bound on an export line (an entry with large diagnostics stays well below it).
pub const MAX_EXPORT_LINE: usize = 256 * 1024;

/// Reads one export line back: its index and entry. The line must be exactly [`export_line`]'s bytes for
/// that entry (so an entry with an added, dropped or re-spelled member is refused, not silently re-hashed).
pub fn parse_export_line(line: &str) -> Result<(u64, AuditEntry), AuditError> {
    let bad = |why: String| AuditError::ExportFormat(why);
    if line.len() > MAX_EXPORT_LINE {
        return Err(bad(format!("line of {} bytes exceeds {MAX_EXPORT_LINE}", line.len())));
    }
    let mut v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let index = v
        .as_object_mut()
        .and_then(|m| m.remove("index"))
        .and_then(|i| i.as_u64())
        .ok_or_else(|| bad("no index".into()))?;
    let entry: AuditEntry = serde_json::from_value(v).map_err(|e| bad(format!("not an audit entry: {e}")))?;
    if export_line(&entry, index) != line {
        return Err(bad(format!("entry {index} is not in canonical form (altered?)")));
    }
    Ok((index, entry))
}

/// Canonical JSON of a value: sorted keys regardless of how `serde_json::Map` orders them (the
/// `preserve_order` feature may be on anywhere in the build).
fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // Integers in decimal; a float (only possible inside free-form diagnostics) as serde_json prints it.
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            // UTF-8 continuation and lead bytes are copied as they are: the output stays valid UTF-8.
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditEntry {
        AuditEntry {
            time: 1_700_000_000,
            event: "token.deny".into(),
            principal: Some("p-1".into()),
            host_id: Some("sha256:ab".into()),
            code: Some("pcr_mismatch".into()),
            detail: "PCR 7 \"differs\"\n\u{1}é".into(),
            cti: None,
            diagnostics: serde_json::json!({"z": [1, true, null], "a": {"y": "x", "b": -2}}),
        }
    }

    #[test]
    fn golden_bytes() {
        let got = String::from_utf8(canonical_entry(&sample(), 42)).unwrap();
        let want = concat!(
            r#"{"entry":{"code":"pcr_mismatch","cti":null,"detail":"PCR 7 \"differs\"\n\u0001é","#,
            r#""diagnostics":{"a":{"b":-2,"y":"x"},"z":[1,true,null]},"event":"token.deny","#,
            r#""host_id":"sha256:ab","principal":"p-1","time":1700000000},"index":42,"v":1}"#
        );
        assert_eq!(got, want);
        // And it is JSON whose value is the entry's own serde form.
        let parsed: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(parsed["entry"], serde_json::to_value(sample()).unwrap());
    }

    #[test]
    fn null_diagnostics_are_omitted_like_serde_does() {
        let mut e = sample();
        e.diagnostics = Value::Null;
        let got = String::from_utf8(canonical_entry(&e, 0)).unwrap();
        assert!(!got.contains("diagnostics"), "{got}");
        let parsed: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(parsed["entry"], serde_json::to_value(&e).unwrap());
    }

    #[test]
    fn index_and_every_field_change_the_bytes() {
        let base = canonical_entry(&sample(), 42);
        assert_ne!(base, canonical_entry(&sample(), 43));
        let mut e = sample();
        e.time += 1;
        assert_ne!(base, canonical_entry(&e, 42));
        let mut e = sample();
        e.cti = Some(String::new());
        assert_ne!(base, canonical_entry(&e, 42));
        let mut e = sample();
        e.diagnostics["a"]["b"] = Value::from(2);
        assert_ne!(base, canonical_entry(&e, 42));
    }

    #[test]
    fn export_lines_are_strict() {
        let line = export_line(&sample(), 9);
        assert_eq!(parse_export_line(&line).unwrap(), (9, sample()));
        let spaced = line.replacen(':', ": ", 1);
        assert!(parse_export_line(&spaced).is_err(), "whitespace is an alteration");
        let extra = line.replacen('{', r#"{"a":1,"#, 1);
        assert!(parse_export_line(&extra).is_err(), "an added member is refused");
        assert!(parse_export_line(&line.replace("\"index\":9,", "")).is_err(), "no index");
        assert!(parse_export_line(&line.replace("p-1", "p-2")).is_ok(), "a changed value parses (the root catches it)");
    }

    #[test]
    fn export_round_trip_is_stable() {
        // An entry read back from its exported JSON encodes to the same bytes.
        let e = sample();
        let line = serde_json::to_string(&e).unwrap();
        let back: AuditEntry = serde_json::from_str(&line).unwrap();
        assert_eq!(canonical_entry(&back, 7), canonical_entry(&e, 7));
    }
}
