//! PEM certificate bundles (RFC 7468), read whatever their line layout.
//!
//! Real bundles are often made with `cat *.pem`: files without a final newline put a BEGIN line right after the
//! previous END line, some files have CRLF line ends or trailing blanks. So encapsulation boundaries are found
//! anywhere in the text, not only at line starts, and blanks (space, tab, CR, LF) are allowed anywhere in the
//! base64. Nothing is skipped silently: every `-----BEGIN` starts a block that must be well formed, a
//! `-----END` outside a block is an error, and the base64 must be canonical (RFC 4648 §4, §3.5). Text between
//! blocks is ignored (RFC 7468 §2). RFC 1421 headers inside a block are refused.

use super::{MAX_ANCHORS, MAX_CERT_LEN};

const BEGIN: &[u8] = b"-----BEGIN";
const END: &[u8] = b"-----END";
const DASHES: &[u8] = b"-----";
/// The label of an X.509 certificate block (RFC 7468 §5.1).
pub(super) const CERTIFICATE: &str = "CERTIFICATE";
/// Longest label read (RFC 7468 sets none; the longest it defines is 27 bytes).
const MAX_LABEL_LEN: usize = 64;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The DER of every `CERTIFICATE` block of `input`, in order. Errors name the block (1-based).
pub(super) fn certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let begin = find(rest, BEGIN);
        // An END with no BEGIN before it: a damaged bundle, not explanatory text.
        if let Some(end) = find(rest, END) {
            if begin.is_none_or(|b| end < b) {
                return Err(format!("an END line without a BEGIN line after block {}", out.len()));
            }
        }
        let Some(begin) = begin else {
            return Ok(out);
        };
        let n = out.len() + 1;
        if n > MAX_ANCHORS {
            return Err(format!("more than {MAX_ANCHORS} blocks"));
        }
        let after_begin = rest.get(begin + BEGIN.len()..).unwrap_or_default();
        let (label, body) = boundary_label(after_begin).ok_or_else(|| format!("block {n}: malformed BEGIN line"))?;
        if label != CERTIFICATE.as_bytes() {
            return Err(format!("block {n} is {:?}, not {CERTIFICATE}", String::from_utf8_lossy(label)));
        }
        // The body ends at the first run of dashes, which must be this block's END line.
        let body_len = find(body, DASHES).ok_or_else(|| format!("block {n}: no END line"))?;
        let (base64, tail) = body.split_at(body_len);
        let after_end =
            tail.strip_prefix(END).ok_or_else(|| format!("block {n}: no END line before the next block"))?;
        let (end_label, after) = boundary_label(after_end).ok_or_else(|| format!("block {n}: malformed END line"))?;
        if end_label != label {
            return Err(format!(
                "block {n}: END label {:?} differs from the BEGIN label",
                String::from_utf8_lossy(end_label)
            ));
        }
        // More dashes: the next BEGIN line run into this END line (`cat`), or a damaged END line.
        if after.first() == Some(&b'-') && !after.starts_with(BEGIN) {
            return Err(format!("block {n}: malformed END line"));
        }
        out.push(decode_base64(base64).map_err(|e| format!("block {n}: {e}"))?);
        rest = after;
    }
}

/// After `-----BEGIN` or `-----END`: one space, a label (RFC 7468 §3: printable ASCII, hyphens and spaces only
/// between other characters), five dashes. Returns the label and what follows the dashes.
fn boundary_label(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let input = input.strip_prefix(b" ")?;
    let len = find(input.get(..input.len().min(MAX_LABEL_LEN + DASHES.len()))?, DASHES)?;
    let (label, rest) = input.split_at(len);
    let labelchar = |b: &u8| matches!(b, 0x21..=0x2c | 0x2e..=0x7e);
    let well_formed = label.iter().all(|&b| labelchar(&b) || b == b'-' || b == b' ')
        && label.first().is_none_or(labelchar)
        && label.last().is_none_or(labelchar)
        && !label.windows(2).any(|w| matches!(w, [a, b] if !labelchar(a) && !labelchar(b)));
    let rest = rest.strip_prefix(DASHES)?;
    well_formed.then_some((label, rest))
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Standard base64 (RFC 4648 §4) with blanks anywhere: padded to a multiple of 4, `=` only at the end, unused
/// bits zero (canonical, §3.5), at most [`MAX_CERT_LEN`] bytes decoded.
fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    let chars: Vec<u8> = text.iter().copied().filter(|&b| !is_blank(b)).collect();
    if chars.is_empty() {
        return Err("empty".to_owned());
    }
    if chars.len() / 4 * 3 > MAX_CERT_LEN {
        return Err(format!("more than {MAX_CERT_LEN} bytes"));
    }
    let pad = chars.iter().rev().take_while(|&&c| c == b'=').count();
    let data = chars.get(..chars.len() - pad).unwrap_or_default();
    if let Some(&bad) = data.iter().find(|&&c| base64_value(c).is_none()) {
        return Err(if bad == b'=' {
            "base64 padding before the end".to_owned()
        } else {
            format!("{:?} is not a base64 character", char::from(bad))
        });
    }
    if chars.len() % 4 != 0 {
        return Err("base64 length is not a multiple of 4".to_owned());
    }
    if pad > 2 {
        return Err("too much base64 padding".to_owned());
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in data {
        acc = (acc << 6) | u32::from(base64_value(c).unwrap_or(0));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err("base64 is not canonical (nonzero unused bits)".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64(b"TWFu").unwrap(), b"Man");
        assert_eq!(decode_base64(b"TW E=\r\n").unwrap(), b"Ma");
        assert_eq!(decode_base64(b"TQ==").unwrap(), b"M");
        for bad in [&b""[..], b"TWF", b"TQ=", b"TR==", b"T===", b"TQ==TWFu", b"TW-u", b"TWFu====", b"TQ=a"] {
            assert!(decode_base64(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn labels() {
        assert_eq!(boundary_label(b" CERTIFICATE-----\n"), Some((&b"CERTIFICATE"[..], &b"\n"[..])));
        assert_eq!(boundary_label(b" X509 CRL-----"), Some((&b"X509 CRL"[..], &b""[..])));
        assert_eq!(boundary_label(b" RSA-PSS-----"), Some((&b"RSA-PSS"[..], &b""[..])));
        for bad in [&b"CERTIFICATE-----"[..], b" CERTIFICATE----", b" CERTIFICATE -----", b" A  B-----", b" A -----"] {
            assert_eq!(boundary_label(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn layouts() {
        let one = "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----";
        let run_in = format!("{one}{one}{one}\n");
        assert_eq!(certificates(run_in.as_bytes()).unwrap(), vec![b"Man".to_vec(); 3]);
        let crlf = format!("text\r\n{} \t\r\n\r\nmore text\r\n{one}", one.replace('\n', " \r\n"));
        assert_eq!(certificates(crlf.as_bytes()).unwrap(), vec![b"Man".to_vec(); 2]);
        assert_eq!(certificates(b"no blocks\n").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn damaged_bundles_are_refused_whole() {
        let one = "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n";
        for (bad, expect) in [
            (format!("{one}-----END CERTIFICATE-----\n"), "an END line without a BEGIN line after block 1"),
            (format!("{one}-----BEGIN CERTIFICATE-----\nTWFu\n"), "block 2: no END line"),
            (format!("-----BEGIN CERTIFICATE-----\nTWFu\n{one}"), "block 1: no END line before the next block"),
            (
                one.replace("END CERTIFICATE", "END X509 CRL"),
                "block 1: END label \"X509 CRL\" differs from the BEGIN label",
            ),
            (one.replace("BEGIN CERTIFICATE-----", "BEGIN CERTIFICATE----"), "block 1: malformed BEGIN line"),
            (one.replace("END CERTIFICATE-----", "END CERTIFICATE"), "block 1: malformed END line"),
            (one.replace("TWFu", "Proc-Type: 4,ENCRYPTED\n\nTWFu"), "block 1: '-' is not a base64 character"),
            (one.replace("CERTIFICATE-----\n", "CERTIFICATE------\n"), "block 1: malformed END line"),
            (one.replace("TWFu", "Proc:Type"), "block 1: ':' is not a base64 character"),
            (one.replace("TWFu", "TR=="), "block 1: base64 is not canonical (nonzero unused bits)"),
            (one.replace("TWFu", ""), "block 1: empty"),
            (one.replace("CERTIFICATE", "PRIVATE KEY"), "block 1 is \"PRIVATE KEY\", not CERTIFICATE"),
        ] {
            assert_eq!(certificates(bad.as_bytes()).unwrap_err(), expect, "{bad:?}");
        }
        let big = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----", "A".repeat(30_000));
        assert_eq!(certificates(big.as_bytes()).unwrap_err(), "block 1: more than 16384 bytes");
    }
}
