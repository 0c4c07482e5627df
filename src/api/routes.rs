//! Every route path, defined once for the service's router and the client (docs/api.md).

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const ENROLL: &str = "/v1/enroll";
pub const ENROLL_ACTIVATE: &str = "/v1/enroll/{enrollment_id}";
pub const HOSTS: &str = "/v1/hosts";
pub const HOST: &str = "/v1/hosts/{host_id}";
pub const HOST_TAGS: &str = "/v1/hosts/{host_id}/tags";
pub const HOST_UNREVOKE: &str = "/v1/hosts/{host_id}/unrevoke";
pub const HOST_REMOVE: &str = "/v1/hosts/{host_id}/remove";
pub const HOST_REBASELINE: &str = "/v1/hosts/{host_id}/rebaseline";
pub const CHALLENGE: &str = "/v1/challenge";
pub const TOKENS: &str = "/v1/tokens";
pub const KEYS: &str = "/v1/keys";
/// Response header of [`KEYS`]: the service id, which every token these keys verify carries as `iss`
/// (gateways cache it with the keys, docs/design.md §9).
pub const SERVICE_ID_HEADER: &str = "runtrust-service-id";
pub const KEYS_ROTATE: &str = "/v1/keys/rotate";
pub const POLICIES: &str = "/v1/policies";
pub const AUDIT: &str = "/v1/audit";
pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";
pub const AUDIT_PROVE: &str = "/v1/audit/prove/{cti}";
pub const AUDIT_CONSISTENCY: &str = "/v1/audit/consistency";
pub const REVOCATIONS: &str = "/v1/revocations";
pub const EXECUTIONS: &str = "/v1/executions";
pub const EXECUTION_END: &str = "/v1/executions/{cti}/{id}/end";
pub const LINEAGE: &str = "/v1/lineage/{cti}";
pub const PRINCIPALS: &str = "/v1/principals";
pub const PRINCIPAL: &str = "/v1/principals/{name}";
pub const PRINCIPAL_ROTATE: &str = "/v1/principals/{name}/rotate";
pub const EK_ANCHORS: &str = "/v1/ek-anchors";
pub const EK_ANCHOR: &str = "/v1/ek-anchors/{fingerprint}";
pub const KEY_RETIRE: &str = "/v1/keys/{kid}/retire";
pub const JOIN_TOKENS: &str = "/v1/join-tokens";
pub const JOIN_TOKEN: &str = "/v1/join-tokens/{id}";
pub const CONSOLE_LINKS: &str = "/v1/console/links";
/// The web console (docs/design.md §17): HTML pages, not API routes.
pub const CONSOLE_ROOT: &str = "/console";
pub const CONSOLE: &str = "/console/";
pub const CONSOLE_SIGNIN: &str = "/console/signin";
pub const CONSOLE_SIGNOUT: &str = "/console/signout";
pub const CONSOLE_HOST: &str = "/console/hosts/{host_id}";
pub const CONSOLE_TOKEN: &str = "/console/tokens/{cti}";
pub const CONSOLE_AUDIT: &str = "/console/audit";
pub const CONSOLE_CSS: &str = "/console/console.css";

/// A route with its `{…}` parameters filled in, in order; each value is percent-encoded as a path segment.
pub fn path(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    let mut values = values.iter();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        if let Some(v) = values.next() {
            push_segment(&mut out, v);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// RFC 3986 §3.3: unreserved characters as they are, every other byte as %XX.
fn push_segment(out: &mut String, v: &str) {
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_parameters_in_order() {
        assert_eq!(path(EXECUTION_END, &["ab", "cd"]), "/v1/executions/ab/cd/end");
        assert_eq!(path(PRINCIPAL, &["web 01/x"]), "/v1/principals/web%2001%2Fx");
        assert_eq!(path(LINEAGE, &["00ff"]), "/v1/lineage/00ff");
    }
}
