//! The console's HTML (docs/design.md §17): escaping and the page frame. Every value that comes from the store
//! or a request goes through [`esc`]; pages carry no script and no inline style (the CSP forbids both).

use std::fmt::Write;

use crate::token::rfc3339_unix;

/// `s` escaped for HTML text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query value or a path segment (RFC 3986 §2.3: only unreserved bytes stay).
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A time as RFC 3339 UTC, in a `<time>` element.
pub fn time(t: u64) -> String {
    let s = rfc3339_unix(t);
    format!("<time datetime=\"{s}\">{s}</time>")
}

/// A link to a host's page, showing a shortened id (the whole id in its title).
pub fn host_link(host_id: &str) -> String {
    format!(
        "<a class=\"id\" href=\"/console/hosts/{}\" title=\"{}\">{}</a>",
        url_part(host_id),
        esc(host_id),
        esc(&short(host_id))
    )
}

/// A link to a token's page (its lineage).
pub fn token_link(cti: &str) -> String {
    format!(
        "<a class=\"id\" href=\"/console/tokens/{}\" title=\"{}\">{}</a>",
        url_part(cti),
        esc(cti),
        esc(&short(cti))
    )
}

/// The first 12 significant characters of an id (after a `sha256:` prefix), with an ellipsis.
pub fn short(id: &str) -> String {
    let (prefix, rest) = id.split_once(':').map_or(("", id), |(p, r)| (p, r));
    let cut: String = rest.chars().take(12).collect();
    let ellipsis = if rest.chars().count() > 12 { "…" } else { "" };
    if prefix.is_empty() {
        format!("{cut}{ellipsis}")
    } else {
        format!("{prefix}:{cut}{ellipsis}")
    }
}

/// A status badge (class `badge <status>`).
pub fn badge(status: &str) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", esc(status))
}

/// The whole page: `who` is the signed-in principal (None on the sign-in pages).
pub fn page(title: &str, who: Option<&str>, body: &str) -> String {
    let nav = match who {
        Some(name) => format!(
            "<nav><a href=\"/console/\">Overview</a><a href=\"/console/audit\">Audit timeline</a>\
             <span class=\"who\">signed in as {}</span>\
             <form method=\"post\" action=\"/console/signout\"><button type=\"submit\">Sign out</button></form></nav>",
            esc(name)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · runtrust</title><link rel=\"stylesheet\" href=\"/console/console.css\"></head>\
         <body><header><span class=\"brand\">runtrust</span>{nav}</header><main>\n<h1>{}</h1>\n{body}\n</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;"
        );
        let p = page("<b>", Some("<i>"), "");
        assert!(!p.contains("<b>") && !p.contains("<i>"), "{p}");
    }

    #[test]
    fn url_parts_keep_only_unreserved_bytes() {
        assert_eq!(url_part("sha256:ab/../x y?z=1&"), "sha256:ab%2F..%2Fx%20y%3Fz%3D1%26");
    }

    #[test]
    fn ids_are_shortened_after_their_prefix() {
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab…");
        assert_eq!(short("abc"), "abc");
    }
}
