//! Signed checkpoints: the issuer's commitment to the log's size and root at a time, in the shape of a
//! C2SP transparency-log checkpoint (c2sp.org/tlog-checkpoint) wrapped in a signed note
//! (c2sp.org/signed-note):
//!
//! ```text
//! runtrust.example/audit                         ← origin (the service id)
//! 8                                              ← tree size, decimal
//! XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=   ← root hash, standard base64 (RFC 4648 §4), padded
//! time 1700000000                                ← the one extension line: Unix seconds
//!                                                ← blank line
//! — runtrust.example/audit <base64 COSE_Sign1>   ← one or more signature lines
//! ```
//!
//! The body is the first four lines, each ending in `\n`. Unlike a plain signed note, the signature is not
//! `keyhash ‖ Ed25519 sig` but a detached COSE_Sign1 (`IssuerKey::sign_detached`, RFC 9052 §4.1) over the
//! body bytes: it names its issuer key by kid and works for Ed25519 and ES256 alike, so it verifies against
//! the same `KeySet` as tokens. The line's name is informative; the kid inside decides.
//!
//! Parsing is strict and bounded: the text is at most [`MAX_CHECKPOINT_BYTES`], lines end in `\n` only,
//! numbers are canonical decimals, base64 is canonical, and the text re-encodes to itself.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SecureRandom;

use super::merkle::Hash;
use super::AuditError;
use crate::token::{verify_detached, IssuerKey, KeySet, TokenError};

/// Bound on a checkpoint's text.
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;
/// Bound on the number of signature lines.
pub const MAX_SIGNATURES: usize = 8;
/// Bound on an origin or signer name (bytes).
pub const MAX_NAME_LEN: usize = 255;
/// C2SP signed-note: a signature line starts with an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";
const TIME_PREFIX: &str = "time ";

/// What a checkpoint commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (the service id): printable ASCII, no spaces, 1–255 bytes.
    pub origin: String,
    pub tree_size: u64,
    /// RFC 9162 MTH of the first `tree_size` entries.
    pub root: Hash,
    /// When it was signed, Unix seconds.
    pub time: u64,
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSignature {
    /// The signer's name as written on the line (the service signs with its origin).
    pub name: String,
    /// A detached COSE_Sign1 over the checkpoint body.
    pub cose: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signatures: Vec<CheckpointSignature>,
}

fn format_err(msg: impl Into<String>) -> AuditError {
    AuditError::CheckpointFormat(msg.into())
}

/// A note name: printable ASCII without spaces (C2SP signed-note key names exclude whitespace and `+`;
/// origins may hold `+`, so only whitespace and controls are refused here).
fn check_name(what: &str, name: &str) -> Result<(), AuditError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format_err(format!("{what} must be 1 to {MAX_NAME_LEN} bytes")));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format_err(format!("{what} {name:?} must be printable ASCII without spaces")));
    }
    Ok(())
}

/// A canonical decimal: digits only, no leading zero (but "0"), fits in u64.
fn parse_decimal(what: &str, s: &str) -> Result<u64, AuditError> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(format_err(format!("{what} {s:?} is not a canonical decimal")));
    }
    s.parse().map_err(|_| format_err(format!("{what} {s:?} is out of range")))
}

/// Canonical, padded standard base64 (the decoder is lenient about trailing bits; re-encoding is not).
fn parse_base64(what: &str, s: &str) -> Result<Vec<u8>, AuditError> {
    let bytes = STANDARD.decode(s).map_err(|e| format_err(format!("{what}: not base64: {e}")))?;
    if STANDARD.encode(&bytes) != s {
        return Err(format_err(format!("{what}: not canonical base64")));
    }
    Ok(bytes)
}

impl Checkpoint {
    /// The signed bytes: origin, size, root and time lines, each ending in `\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n{TIME_PREFIX}{}\n", self.origin, self.tree_size, STANDARD.encode(self.root), self.time)
    }

    /// Parses a body exactly as [`Checkpoint::body`] writes it.
    pub fn from_body(body: &str) -> Result<Self, AuditError> {
        let Some(content) = body.strip_suffix('\n') else { return Err(format_err("body does not end in a newline")) };
        let lines: Vec<&str> = content.split('\n').collect();
        let [origin, size, root, time] = lines[..] else {
            return Err(format_err(format!("body has {} lines, 4 expected", lines.len())));
        };
        check_name("origin", origin)?;
        let tree_size = parse_decimal("tree size", size)?;
        let root: Hash = parse_base64("root hash", root)?
            .try_into()
            .map_err(|v: Vec<u8>| format_err(format!("root hash is {} bytes, 32 expected", v.len())))?;
        let Some(time) = time.strip_prefix(TIME_PREFIX) else {
            return Err(format_err(format!("line 4 must be \"{TIME_PREFIX}<unix seconds>\"")));
        };
        let time = parse_decimal("time", time)?;
        Ok(Checkpoint { origin: origin.to_owned(), tree_size, root, time })
    }

    /// Signs the body with the issuer key; the signature line is named after the origin.
    pub fn sign(&self, key: &IssuerKey, rng: &dyn SecureRandom) -> Result<SignedCheckpoint, AuditError> {
        check_name("origin", &self.origin)?;
        let cose = key.sign_detached(self.body().as_bytes(), rng).map_err(AuditError::Signing)?;
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            signatures: vec![CheckpointSignature { name: self.origin.clone(), cose }],
        })
    }
}

impl SignedCheckpoint {
    /// The note: body, a blank line, the signature lines.
    pub fn to_text(&self) -> String {
        let mut text = self.checkpoint.body();
        text.push('\n');
        for sig in &self.signatures {
            text.push_str(SIG_PREFIX);
            text.push_str(&sig.name);
            text.push(' ');
            text.push_str(&STANDARD.encode(&sig.cose));
            text.push('\n');
        }
        text
    }

    /// Parses a note strictly (see the module comment). The signatures are not checked: see
    /// [`SignedCheckpoint::verify`].
    pub fn from_text(text: &str) -> Result<Self, AuditError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(format_err(format!("{} bytes, more than {MAX_CHECKPOINT_BYTES}", text.len())));
        }
        if text.contains('\r') {
            return Err(format_err("lines must end in \\n only"));
        }
        let Some(split) = text.find("\n\n") else { return Err(format_err("no blank line before the signatures")) };
        let (body, sigs) = (&text[..=split], &text[split + 2..]);
        let checkpoint = Checkpoint::from_body(body)?;
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(format_err("signature lines do not end in a newline"));
        };
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(format_err(format!("more than {MAX_SIGNATURES} signature lines")));
            }
            let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
                return Err(format_err("a signature line must start with \"\u{2014} \""));
            };
            let Some((name, sig)) = rest.split_once(' ') else {
                return Err(format_err("a signature line must be \"\u{2014} <name> <base64>\""));
            };
            check_name("signer name", name)?;
            let cose = parse_base64("signature", sig)?;
            signatures.push(CheckpointSignature { name: name.to_owned(), cose });
        }
        let signed = SignedCheckpoint { checkpoint, signatures };
        // Belt and braces: the only accepted text is the one this type writes.
        if signed.to_text() != text {
            return Err(format_err("not in canonical form"));
        }
        Ok(signed)
    }

    /// Verifies the signatures with the key set, signed-note style: lines by keys outside the set are
    /// ignored, a line by a key in the set must verify, and at least one must. Returns the kids that
    /// signed.
    pub fn verify(&self, keys: &KeySet) -> Result<Vec<Vec<u8>>, AuditError> {
        let body = self.checkpoint.body();
        let mut kids = Vec::new();
        for sig in &self.signatures {
            match verify_detached(&sig.cose, body.as_bytes(), keys) {
                Ok(kid) => kids.push(kid),
                Err(TokenError::UnknownKid(_)) => {}
                Err(e) => return Err(AuditError::BadSignature(format!("line by {:?}: {e}", sig.name))),
            }
        }
        if kids.is_empty() {
            return Err(AuditError::BadSignature("no signature by a key of the key set".into()));
        }
        Ok(kids)
    }
}
