//! The offline grace (docs/design.md §15): a gateway given `--offline-grace D` keeps the service's signed
//! revocation feed (`GET /v1/revocations`, every page) in its state dir and refreshes it while the service
//! answers. When the service does not answer, a token runs only if the kept feed verifies with the issuer
//! keys, was signed less than D ago, and revokes nothing on the token's path; single-use and delegated
//! tokens always need the service. Anything else is a denial; nothing is recorded at the service.

use std::path::{Path, PathBuf};

use runtrust_attestation::DenialCode;

use crate::api::{routes, RevocationFeed, SignedFeed};
use crate::client::{Client, ClientError};
use crate::model::RevocationKind;
use crate::token::{verify_detached, Claims, KeySet};

/// The feed's pages, in the state dir.
pub const FEED_CACHE: &str = "revocations.feed.json";
/// Pages fetched per refresh at most (1000 revocations each).
const MAX_PAGES: usize = 1000;
/// Largest feed cache read back.
const MAX_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// A gateway's offline grace: how old the kept feed may be, and where it is kept.
#[derive(Clone, Debug)]
pub struct OfflineGrace {
    pub grace_secs: i64,
    pub state_dir: PathBuf,
}

/// Why a token does not run under the offline grace.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("no revocation feed is kept in {0} yet (it is fetched while the service answers)")]
    NoFeed(PathBuf),
    #[error("the kept revocation feed {path}: {detail}")]
    BadCache { path: PathBuf, detail: String },
    #[error("the kept revocation feed does not verify with the issuer keys: {0}")]
    FeedSignature(String),
    #[error("the kept revocation feed is {age} s old, more than the offline grace of {grace} s")]
    Stale { age: i64, grace: i64 },
    #[error("a single-use token is spent at the service: it never runs offline")]
    SingleUse,
    #[error("a delegated token's ancestry is checked at the service: it never runs offline")]
    Delegated,
    #[error("revoked, per the kept feed (seq {seq}, {kind} {target}): {reason}")]
    Revoked { seq: u64, kind: &'static str, target: String, reason: String },
}

impl OfflineError {
    pub fn code(&self) -> DenialCode {
        match self {
            OfflineError::Revoked { .. } => DenialCode::Revoked,
            OfflineError::FeedSignature(_) => DenialCode::SignatureInvalid,
            _ => DenialCode::VerifierUnavailable,
        }
    }
}

/// The kept pages, oldest first.
pub fn load(state_dir: &Path) -> Result<Vec<SignedFeed>, OfflineError> {
    let path = state_dir.join(FEED_CACHE);
    let bad = |detail: String| OfflineError::BadCache { path: path.clone(), detail };
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OfflineError::NoFeed(state_dir.into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    if meta.len() > MAX_CACHE_BYTES {
        return Err(bad(format!("{} bytes, more than {MAX_CACHE_BYTES}", meta.len())));
    }
    let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

/// Brings the kept feed up to date while the service answers: the pages kept so far (the feed is
/// append-only: a revocation's entry never changes), then every page from where they end, the last of which
/// (the "tip", possibly empty) says how recent the whole is. A cache that cannot be read starts over.
pub fn refresh(client: &Client, state_dir: &Path) -> Result<(), ClientError> {
    let mut pages: Vec<SignedFeed> = load(state_dir).unwrap_or_default();
    pages.retain(|p| parse(p).is_some_and(|f| !f.revocations.is_empty()));
    let mut since = pages.last().and_then(parse).map_or(0, |f| f.next);
    for _ in 0..MAX_PAGES {
        let page: SignedFeed = client.get(&format!("{}?since={since}", routes::REVOCATIONS))?;
        let next = parse(&page).map_or(since, |f| f.next);
        pages.push(page);
        if next == since {
            break;
        }
        since = next;
    }
    let bytes = serde_json::to_vec(&pages).unwrap_or_default();
    if let Err(e) = crate::fsutil::write_private(&state_dir.join(FEED_CACHE), &bytes) {
        tracing::warn!("could not keep the revocation feed in {}: {e}", state_dir.display());
    }
    Ok(())
}

fn parse(page: &SignedFeed) -> Option<RevocationFeed> {
    serde_json::from_slice(&page.payload).ok()
}

/// The age, in seconds at `now`, of the kept feed (its last page), if it is kept and readable.
pub fn age(state_dir: &Path, now: i64) -> Option<i64> {
    let time = load(state_dir).ok()?.last().and_then(parse)?.time;
    i64::try_from(time).ok().map(|t| now.saturating_sub(t))
}

/// Whether `claims` may run offline at `now` per the kept `pages`: every page verifies with `keys` and names
/// `issuer`, they run from seq 0 without a gap, the last was signed within `grace_secs`, and no revocation reaches the token (itself, its
/// host unless lifted after it was issued, its policy version).
pub fn appraise(
    pages: &[SignedFeed],
    keys: &KeySet,
    issuer: &str,
    claims: &Claims,
    now: i64,
    grace_secs: i64,
) -> Result<(), OfflineError> {
    if claims.single_use {
        return Err(OfflineError::SingleUse);
    }
    if claims.parent_cti.is_some() {
        return Err(OfflineError::Delegated);
    }
    // Every page verifies and names the issuer; together they run from seq 0 without a gap.
    let mut feeds = Vec::with_capacity(pages.len());
    let mut expected = 0u64;
    for p in pages {
        verify_detached(&p.signature, &p.payload, keys).map_err(|e| OfflineError::FeedSignature(e.to_string()))?;
        let feed: RevocationFeed =
            serde_json::from_slice(&p.payload).map_err(|e| OfflineError::FeedSignature(e.to_string()))?;
        if feed.issuer != issuer {
            return Err(OfflineError::FeedSignature(format!("the feed is {:?}'s, not {issuer:?}'s", feed.issuer)));
        }
        if feed.since != expected || feed.revocations.iter().enumerate().any(|(i, r)| r.seq != expected + i as u64) {
            return Err(OfflineError::FeedSignature(format!("the kept pages have a gap at seq {expected}")));
        }
        expected = feed.next;
        feeds.push(feed);
    }
    // The last page was fetched last: it vouches for the whole as of its time.
    let Some(signed) = feeds.last().map(|f| f.time) else {
        return Err(OfflineError::FeedSignature("the kept feed has no page".into()));
    };
    let age = now.saturating_sub(i64::try_from(signed).unwrap_or(i64::MAX));
    if age > grace_secs {
        return Err(OfflineError::Stale { age, grace: grace_secs });
    }
    let cti = hex::encode(&claims.cti);
    let policy_hash = hex::encode(&claims.policy_hash);
    let all: Vec<_> = feeds.iter().flat_map(|f| f.revocations.iter()).collect();
    for r in &all {
        let reaches = match r.kind {
            RevocationKind::Token => r.target == cti || r.tokens.contains(&cti),
            RevocationKind::Policy => r.policy_hash.as_deref() == Some(policy_hash.as_str()) || r.tokens.contains(&cti),
            RevocationKind::Host => {
                // A lift lets in tokens issued after it; earlier ones stay revoked (docs/design.md §11).
                let lift = all.iter().find(|l| l.kind == RevocationKind::Unrevoke && l.lifts == Some(r.seq));
                let lifted_before_issue = lift.is_some_and(|l| i64::try_from(l.time).is_ok_and(|t| t < claims.iat));
                (r.target == claims.sub && !lifted_before_issue) || r.tokens.contains(&cti)
            }
            RevocationKind::Unrevoke => false,
        };
        if reaches {
            return Err(OfflineError::Revoked {
                seq: r.seq,
                kind: r.kind.name(),
                target: r.target.clone(),
                reason: r.reason.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;
    use crate::api::RevocationView;
    use crate::token::{IssuerKey, SigningAlg};

    const NOW: i64 = 1_800_000_000;

    fn key() -> IssuerKey {
        IssuerKey::generate(SigningAlg::EdDsa, &SystemRandom::new()).unwrap().0
    }

    /// A page from seq `since`, with `revocations` numbered from there.
    fn page_from(key: &IssuerKey, issuer: &str, time: i64, since: u64, revocations: Vec<RevocationView>) -> SignedFeed {
        let next = since + revocations.len() as u64;
        let feed = RevocationFeed { issuer: issuer.into(), since, next, time: time as u64, revocations };
        let payload = serde_json::to_vec(&feed).unwrap();
        let signature = key.sign_detached(&payload, &SystemRandom::new()).unwrap();
        SignedFeed { payload, signature }
    }

    fn page(key: &IssuerKey, issuer: &str, time: i64, revocations: Vec<RevocationView>) -> SignedFeed {
        page_from(key, issuer, time, 0, revocations)
    }

    fn rev(seq: u64, kind: RevocationKind, target: &str, time: i64) -> RevocationView {
        RevocationView {
            seq,
            kind,
            target: target.into(),
            policy_hash: None,
            reason: "r".into(),
            time: time as u64,
            by: "admin".into(),
            tokens: vec![],
            audit_index: 0,
            lifts: None,
        }
    }

    fn claims() -> Claims {
        let mut c = crate::gateway::tests::claims_for_tests();
        c.cti = vec![0xaa; 16];
        c.sub = "sha256:host".into();
        c.policy_hash = vec![0xbb; 32];
        c.iat = NOW - 100;
        c.single_use = false;
        c.parent_cti = None;
        c
    }

    fn check(pages: &[SignedFeed], keys: &KeySet, c: &Claims) -> Result<(), OfflineError> {
        appraise(pages, keys, "svc", c, NOW, 600)
    }

    #[test]
    fn a_fresh_feed_that_revokes_nothing_of_the_token_allows_it() {
        let k = key();
        let keys = KeySet::new(vec![k.public()]).unwrap();
        let other = rev(0, RevocationKind::Token, &"cc".repeat(16), NOW - 50);
        assert!(check(&[page(&k, "svc", NOW - 30, vec![other])], &keys, &claims()).is_ok());
    }

    #[test]
    fn stale_unsigned_foreign_or_missing_feeds_are_refused() {
        let (k, stranger) = (key(), key());
        let keys = KeySet::new(vec![k.public()]).unwrap();
        let e = check(&[page(&k, "svc", NOW - 601, vec![])], &keys, &claims()).unwrap_err();
        assert!(matches!(e, OfflineError::Stale { age: 601, grace: 600 }), "{e}");
        assert_eq!(e.code(), DenialCode::VerifierUnavailable);
        let e = check(&[page(&stranger, "svc", NOW, vec![])], &keys, &claims()).unwrap_err();
        assert_eq!(e.code(), DenialCode::SignatureInvalid, "{e}");
        let e = check(&[page(&k, "other", NOW, vec![])], &keys, &claims()).unwrap_err();
        assert_eq!(e.code(), DenialCode::SignatureInvalid, "{e}");
        let mut tampered = page(&k, "svc", NOW, vec![]);
        tampered.payload = serde_json::to_vec(&RevocationFeed {
            issuer: "svc".into(),
            since: 0,
            next: 0,
            time: (NOW + 1) as u64,
            revocations: vec![],
        })
        .unwrap();
        assert_eq!(check(&[tampered], &keys, &claims()).unwrap_err().code(), DenialCode::SignatureInvalid);
        assert!(check(&[], &keys, &claims()).is_err(), "no page");
        // The last page vouches for the whole; pages must run from seq 0 without a gap.
        let old = rev(0, RevocationKind::Token, &"cc".repeat(16), NOW - 900);
        let pages = [page(&k, "svc", NOW - 700, vec![old.clone()]), page_from(&k, "svc", NOW, 1, vec![])];
        assert!(check(&pages, &keys, &claims()).is_ok());
        let pages = [page(&k, "svc", NOW, vec![old]), page_from(&k, "svc", NOW - 700, 1, vec![])];
        assert!(matches!(check(&pages, &keys, &claims()), Err(OfflineError::Stale { .. })));
        let gap = [page_from(&k, "svc", NOW, 1, vec![rev(1, RevocationKind::Token, "x", NOW)])];
        assert_eq!(check(&gap, &keys, &claims()).unwrap_err().code(), DenialCode::SignatureInvalid, "seq 0 missing");
    }

    #[test]
    fn single_use_and_delegated_tokens_need_the_service() {
        let k = key();
        let keys = KeySet::new(vec![k.public()]).unwrap();
        let pages = [page(&k, "svc", NOW, vec![])];
        let mut c = claims();
        c.single_use = true;
        assert!(matches!(check(&pages, &keys, &c), Err(OfflineError::SingleUse)));
        let mut c = claims();
        c.parent_cti = Some(vec![1; 16]);
        assert!(matches!(check(&pages, &keys, &c), Err(OfflineError::Delegated)));
    }

    #[test]
    fn the_token_its_host_and_its_policy_are_each_checked() {
        let k = key();
        let keys = KeySet::new(vec![k.public()]).unwrap();
        let c = claims();
        let revoked = |r: RevocationView| check(&[page(&k, "svc", NOW, vec![r])], &keys, &c);
        let e = revoked(rev(0, RevocationKind::Token, &"aa".repeat(16), NOW - 10)).unwrap_err();
        assert_eq!(e.code(), DenialCode::Revoked);
        let mut cascade = rev(0, RevocationKind::Token, &"dd".repeat(16), NOW - 10);
        cascade.tokens = vec!["aa".repeat(16)];
        assert!(revoked(cascade).is_err(), "a descendant of a revoked token");
        assert!(revoked(rev(0, RevocationKind::Host, "sha256:host", NOW - 10)).is_err());
        let mut policy = rev(0, RevocationKind::Policy, "web", NOW - 10);
        policy.policy_hash = Some("bb".repeat(32));
        assert!(revoked(policy).is_err());
        assert!(revoked(rev(0, RevocationKind::Host, "sha256:other", NOW - 10)).is_ok());
    }

    #[test]
    fn a_lifted_host_lets_in_only_tokens_issued_after_the_lift() {
        let k = key();
        let keys = KeySet::new(vec![k.public()]).unwrap();
        let host = rev(0, RevocationKind::Host, "sha256:host", NOW - 500);
        let mut lift = rev(1, RevocationKind::Unrevoke, "sha256:host", NOW - 300);
        lift.lifts = Some(0);
        let pages = [page(&k, "svc", NOW, vec![host, lift])];
        let mut c = claims();
        c.iat = NOW - 100;
        assert!(check(&pages, &keys, &c).is_ok(), "issued after the lift");
        c.iat = NOW - 400;
        assert!(check(&pages, &keys, &c).is_err(), "issued before the lift: stays revoked");
    }
}
