//! PEM (RFC 7468) in its strict form: only blank lines between blocks, base64 body lines, matching
//! labels. Used for issuer public keys (`PUBLIC KEY`, RFC 7468 §13) and private keys (`PRIVATE KEY`, §10).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::TokenError;

/// Bound on a PEM document (64 key blocks is far below it).
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// One block, body wrapped at 64 columns (RFC 7468 §2).
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every block of `text`, each of which must carry `label`.
pub fn decode_all(text: &str, label: &str) -> Result<Vec<Vec<u8>>, TokenError> {
    let err = |m: String| Err(TokenError::Key(format!("PEM: {m}")));
    if text.len() > MAX_PEM_BYTES {
        return err(format!("more than {MAX_PEM_BYTES} bytes"));
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let n = n + 1;
        match body.as_mut() {
            None if line.is_empty() => {}
            None if line == begin => body = Some(String::new()),
            None if line.starts_with("-----BEGIN ") => return err(format!("line {n}: expected {begin}")),
            None => return err(format!("line {n}: text outside a PEM block")),
            Some(b) if line == end => {
                let der = STANDARD.decode(b.as_bytes()).map_err(|e| TokenError::Key(format!("PEM: line {n}: {e}")))?;
                if der.is_empty() {
                    return err(format!("line {n}: empty block"));
                }
                blocks.push(der);
                body = None;
            }
            Some(_) if line.starts_with("-----") => return err(format!("line {n}: expected {end}")),
            Some(b) => b.push_str(line),
        }
    }
    if body.is_some() {
        return err(format!("missing {end}"));
    }
    Ok(blocks)
}

/// Exactly one block of `text`.
pub fn decode_one(text: &str, label: &str) -> Result<Vec<u8>, TokenError> {
    let mut blocks = decode_all(text, label)?;
    match (blocks.pop(), blocks.is_empty()) {
        (Some(der), true) => Ok(der),
        (None, _) => Err(TokenError::Key(format!("PEM: no {label} block"))),
        (Some(_), false) => Err(TokenError::Key(format!("PEM: more than one {label} block"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrapping() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("PUBLIC KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_one(&pem, "PUBLIC KEY").unwrap(), der);
        let two = format!("{pem}\n{pem}");
        assert_eq!(decode_all(&two, "PUBLIC KEY").unwrap().len(), 2);
        assert!(decode_one(&two, "PUBLIC KEY").is_err());
        assert_eq!(decode_one(&pem.replace('\n', "\r\n"), "PUBLIC KEY").unwrap(), der);
    }

    #[test]
    fn strict() {
        let pem = encode("PUBLIC KEY", b"abc");
        for bad in [
            format!("hello\n{pem}"),
            pem.replace("END PUBLIC KEY", "END PRIVATE KEY"),
            pem.replace("-----END PUBLIC KEY-----\n", ""),
            pem.replace("YWJj", "YW!j"),
            encode("PRIVATE KEY", b"abc"),
            String::new(),
        ] {
            assert!(decode_one(&bad, "PUBLIC KEY").is_err(), "{bad}");
        }
    }
}
