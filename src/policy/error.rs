//! Policy errors. Each names the file and, when known, the line and column it is about, in the GNU
//! `file:line:column: message` form editors and CI annotators jump to (`web.toml:12:5: pcrs.sha256.7: …`).

use std::fmt;
use std::ops::Range;

use runtrust_attestation::DenialCode;

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Where byte `offset` of `text` is (clamped to the text, and back to a character boundary).
    pub fn at(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            column: before.get(line_start..).unwrap_or_default().chars().count() + 1,
        }
    }
}

/// A file, and the position in it when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub position: Option<Position>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}", self.file, p.line, p.column),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: the policy is {size} bytes; the limit is {max}")]
    TooLarge { file: String, size: u64, max: usize },
    #[error("{at}: not UTF-8")]
    NotUtf8 { at: Location },
    /// TOML syntax, and the format's structure as the decoder checks it: unknown or missing fields, types,
    /// PCR banks and indices, empty tables.
    #[error("{at}: {message}")]
    Toml { at: Location, message: String },
    /// A value the decoder accepted but the policy format does not (`field` is its dotted path).
    #[error("{at}: {field}: {message}")]
    Invalid { at: Location, field: String, message: String },
}

impl PolicyError {
    /// A policy that cannot be read is a policy that does not match; reading the file is our own fault.
    pub fn code(&self) -> DenialCode {
        match self {
            PolicyError::Io { .. } => DenialCode::InternalError,
            _ => DenialCode::PolicyMismatch,
        }
    }

    /// Where the error is, when it is about a place in the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::NotUtf8 { at } | PolicyError::Toml { at, .. } | PolicyError::Invalid { at, .. } => Some(at),
            PolicyError::Io { .. } | PolicyError::TooLarge { .. } => None,
        }
    }
}

/// The policy text being parsed, to turn byte spans into locations.
pub(super) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn at(&self, span: Option<Range<usize>>) -> Location {
        Location { file: self.file.to_owned(), position: span.map(|s| Position::at(self.text, s.start)) }
    }

    pub fn invalid(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid { at: self.at(Some(span)), field: field.into(), message: message.into() }
    }

    /// A decoder error, on one line (toml puts "expected …" on a line of its own).
    pub fn toml(&self, e: &toml::de::Error) -> PolicyError {
        let message = e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join(": ");
        PolicyError::Toml { at: self.at(e.span()), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let text = "ab\nçd = 1\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(text, 3), Position { line: 2, column: 1 });
        // "ç" is two bytes: byte 5 is the third character of line 2.
        assert_eq!(Position::at(text, 5), Position { line: 2, column: 2 });
        assert_eq!(Position::at(text, 4), Position { line: 2, column: 1 }, "inside a character: its start");
        assert_eq!(Position::at(text, 1000), Position { line: 3, column: 1 }, "clamped to the end");
    }

    #[test]
    fn locations_display_as_file_line_column() {
        let at = Location { file: "web.toml".into(), position: Some(Position { line: 12, column: 5 }) };
        assert_eq!(at.to_string(), "web.toml:12:5");
        assert_eq!(Location { file: "web.toml".into(), position: None }.to_string(), "web.toml");
    }
}
