//! Scopes (docs/design.md §9): `/`-separated names; a pattern may end in `*` (`deploy/web/*`). A scope is within a
//! pattern when it equals it, or the pattern ends in `*` and the scope extends its prefix.

/// Why a scope or pattern is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {scope:?}: {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: &'static str,
}

/// Checks a scope or pattern: 1-256 chars of [A-Za-z0-9._-] in `/`-separated non-empty segments; `*` only
/// as the whole last segment of a pattern.
pub fn validate(s: &str, pattern: bool) -> Result<(), ScopeError> {
    let err = |reason| Err(ScopeError { scope: shown(s), reason });
    if s.is_empty() || s.len() > 256 {
        return err("must be 1-256 characters");
    }
    let segments: Vec<&str> = s.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if *seg == "*" {
            if !(pattern && last) {
                return err("`*` may only end a pattern, as a whole segment");
            }
            continue;
        }
        if seg.is_empty() {
            return err("empty segment");
        }
        if *seg == "." || *seg == ".." {
            // "deploy/web/../db" must not count as within "deploy/web/*".
            return err("`.` and `..` are not segments");
        }
        if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return err("segments are [A-Za-z0-9._-]");
        }
    }
    Ok(())
}

/// Most of a refused scope an error repeats: errors end up in audit entries, and the input is a stranger's.
const SHOWN: usize = 64;

/// `s`, or its first [`SHOWN`] bytes (on a character boundary) and its length.
fn shown(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_owned();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Whether `scope` (itself possibly a pattern) is equal to or narrower than `pattern`.
pub fn within(scope: &str, pattern: &str) -> bool {
    if scope == pattern {
        return true;
    }
    match pattern.strip_suffix('*') {
        // "deploy/*" covers "deploy/web" and "deploy/web/*", not "deploy" nor "deployx".
        Some(prefix) => scope.len() > prefix.len() && scope.starts_with(prefix) && scope != format!("{prefix}*"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_rules() {
        assert!(within("deploy/web/api", "deploy/web/*"));
        assert!(within("deploy/web/*", "deploy/*"));
        assert!(within("deploy/web", "deploy/web"));
        assert!(within("a", "*"));
        assert!(!within("deploy/web", "deploy/web/*"), "the pattern's own prefix is not inside it");
        assert!(!within("deploy/webx", "deploy/web"));
        assert!(!within("deploy/*", "deploy/web/*"), "broader");
        assert!(!within("deploy/*", "deploy/*x"));
        assert!(!within("ops/x", "deploy/*"));
        assert!(within("deploy/*", "deploy/*"));
    }

    #[test]
    fn validation() {
        assert!(validate("deploy/web/*", true).is_ok());
        assert!(validate("deploy/web/*", false).is_err());
        for bad in ["", "a//b", "a/*/b", "a b", "/a", "a/", "de*ploy", "deploy/web/../db", "./a"] {
            assert!(validate(bad, true).is_err(), "{bad}");
        }
        // A refusal repeats at most the first 64 bytes of what it refuses (issue 11 finding 7).
        let huge = format!("deploy/{}", "é".repeat(250_000));
        let e = validate(&huge, true).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
        assert!(e.scope.ends_with("(500007 bytes)"), "{}", e.scope);
        assert_eq!(validate("a b", true).unwrap_err().scope, "a b");
    }
}
