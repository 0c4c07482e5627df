//! Host tags are the operator's (docs/design.md §5): policies select hosts by tag, so a host never chooses
//! its own. An admin gives an attester principal the set of tags it confers; at enrollment the host's tags
//! are that set, or a subset the host asks for; a re-enrollment keeps the tags recorded; only an admin
//! changes them later (`hosts tag`). Every change is audited with the admin's name.

use runtrust_attestation::DenialCode;
use serde_json::{json, Value};

use super::auth::Caller;
use super::{denial_from, Denial, DenialReason};
use crate::model::HostRecord;

/// At most this many tags on a principal or a host.
pub const MAX_TAGS: usize = 64;

/// Tags as given (by an admin, or asked for by a host): well formed, at most [`MAX_TAGS`], repeats dropped
/// (the first occurrence keeps its place).
pub fn normalize(tags: &[String]) -> Result<Vec<String>, Denial> {
    if tags.len() > MAX_TAGS || !tags.iter().all(|t| crate::policy::valid_tag(t)) {
        return Err(Denial::bad_request(format!(
            "tags are at most {MAX_TAGS}, each 1-128 printable ASCII characters without spaces (e.g. role=web)"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// Who confers tags on an enrolling host, and which. Today the attester principal's set, given by the admin
/// that made it; a join token (docs/design.md §5, planned) will be the other source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conferral {
    pub tags: Vec<String>,
    /// The admin that conferred them (absent for principals made before conferral existed).
    pub by: Option<String>,
    /// What carries them, for messages: `principal NAME`.
    pub source: String,
}

impl Conferral {
    /// The conferral of an attester principal.
    pub fn of_principal(caller: &Caller) -> Self {
        let p = &caller.0;
        Conferral { tags: p.tags.clone(), by: p.created_by.clone(), source: format!("principal {:?}", p.name) }
    }
}

/// Why an enrolling host cannot have the tags it asked for (`authorization_missing`).
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("tag {tag:?} is not conferred by {carrier} (it confers [{}]); an admin confers tags \
             (runtrust principal add NAME --role attester --tag T)", conferred.join(", "))]
    NotConferred { tag: String, carrier: String, conferred: Vec<String> },
    #[error("host {host} is enrolled with tags [{}]; a re-enrollment keeps them (ask for none, or for exactly \
             these); an admin changes them (runtrust hosts tag)", recorded.join(", "))]
    Recorded { host: String, recorded: Vec<String> },
}

impl DenialReason for TagError {
    fn code(&self) -> DenialCode {
        DenialCode::AuthorizationMissing
    }

    /// Authenticated, but not allowed.
    fn status(&self) -> Option<axum::http::StatusCode> {
        Some(axum::http::StatusCode::FORBIDDEN)
    }

    fn diagnostics(&self) -> Value {
        match self {
            TagError::NotConferred { tag, conferred, .. } => json!({ "tag": tag, "conferred": conferred }),
            TagError::Recorded { recorded, .. } => json!({ "recorded": recorded }),
        }
    }
}

denial_from!(TagError);

/// The tags an enrolling host gets. A new host: the conferred set, or the subset `asked` names. A host
/// enrolled before (`recorded`): its tags as recorded, whatever was conferred since; asking for others is
/// refused rather than ignored, so that nobody is told "nothing changed" about tags that did not.
pub fn enrollment_tags(
    conferral: &Conferral,
    asked: &[String],
    recorded: Option<&HostRecord>,
) -> Result<Vec<String>, TagError> {
    if let Some(host) = recorded {
        let same = asked.iter().all(|t| host.tags.contains(t)) && host.tags.iter().all(|t| asked.contains(t));
        if asked.is_empty() || same {
            return Ok(host.tags.clone());
        }
        return Err(TagError::Recorded { host: host.host_id.to_string(), recorded: host.tags.clone() });
    }
    if let Some(tag) = asked.iter().find(|t| !conferral.tags.contains(t)) {
        return Err(TagError::NotConferred {
            tag: tag.clone(),
            carrier: conferral.source.clone(),
            conferred: conferral.tags.clone(),
        });
    }
    Ok(if asked.is_empty() { conferral.tags.clone() } else { asked.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn conferral(tags: &[&str]) -> Conferral {
        Conferral { tags: strings(tags), by: Some("admin".into()), source: "principal \"web-01\"".into() }
    }

    fn recorded(tags: &[&str]) -> HostRecord {
        HostRecord {
            host_id: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
            ek_public: vec![],
            ek_certificate_sha256: None,
            ak_public: vec![],
            ak_name: "00".into(),
            tags: strings(tags),
            enrolled_at: 0,
            updated_at: 0,
            first_clock: Default::default(),
            last_clock: Default::default(),
            enrolled_by: "web-01".into(),
            last_attested: None,
        }
    }

    #[test]
    fn a_new_host_gets_the_conferred_set_or_a_subset() {
        let c = conferral(&["role=web", "dc=1"]);
        assert_eq!(enrollment_tags(&c, &[], None).unwrap(), strings(&["role=web", "dc=1"]));
        assert_eq!(enrollment_tags(&c, &strings(&["dc=1"]), None).unwrap(), strings(&["dc=1"]));
        assert!(enrollment_tags(&conferral(&[]), &[], None).unwrap().is_empty(), "nothing conferred: no tags");
    }

    /// Issue 11 finding 1: a host asking for a tag it was not given is refused with authorization_missing.
    #[test]
    fn an_unconferred_tag_is_authorization_missing() {
        let e = enrollment_tags(&conferral(&["role=web"]), &strings(&["role=db"]), None).unwrap_err();
        assert_eq!(e.code(), DenialCode::AuthorizationMissing);
        assert!(e.to_string().contains("role=db") && e.to_string().contains("web-01"), "{e}");
        assert_eq!(e.diagnostics()["conferred"], json!(["role=web"]));
        assert!(enrollment_tags(&conferral(&[]), &strings(&["role=web"]), None).is_err(), "none conferred");
    }

    /// Issue 11 finding 1: re-enrolling never moves a host into other tags, even ones conferred since.
    #[test]
    fn a_re_enrollment_keeps_the_recorded_tags() {
        let host = recorded(&["role=web"]);
        let c = conferral(&["role=web", "role=db"]);
        assert_eq!(enrollment_tags(&c, &[], Some(&host)).unwrap(), strings(&["role=web"]));
        assert_eq!(enrollment_tags(&c, &strings(&["role=web"]), Some(&host)).unwrap(), strings(&["role=web"]));
        let e = enrollment_tags(&c, &strings(&["role=db"]), Some(&host)).unwrap_err();
        assert_eq!(e.code(), DenialCode::AuthorizationMissing);
        assert!(e.to_string().contains("hosts tag"), "{e}");
        assert!(enrollment_tags(&c, &strings(&["role=web", "role=db"]), Some(&host)).is_err(), "nor more");
        // An admin's choice outside the conferred set stays too.
        let admin_set = recorded(&["role=db"]);
        assert_eq!(enrollment_tags(&conferral(&["role=web"]), &[], Some(&admin_set)).unwrap(), strings(&["role=db"]));
    }

    #[test]
    fn tags_are_bounded_well_formed_and_deduplicated() {
        assert_eq!(normalize(&strings(&["a=1", "b", "a=1"])).unwrap(), strings(&["a=1", "b"]));
        assert!(normalize(&strings(&["has space"])).is_err());
        assert!(normalize(&strings(&[""])).is_err());
        assert!(normalize(&vec!["t".to_owned(); MAX_TAGS + 1]).is_err());
    }
}
