//! Issue 11 findings 1, 2 and 12 in-process: every admin change (principals, issuer keys, host tags, lifting
//! a host's revocation) is durable with its audit entry naming the admin; only admins make them; a lift
//! keeps the host's earlier tokens revoked. A real sled store and the injected clock; no TPM, no HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use runtrust_attestation::ClockInfo;

use super::auth::Caller;
use super::revocation::{host_revoked, why_revoked};
use super::{admin, hosts, keys, AppState, Denial};
use crate::api::NewPrincipal;
use crate::audit::AuditEntry;
use crate::config::{IssuerKeyFile, ServiceConfig};
use crate::model::{AttestedState, HostRecord, ManualClock, Principal, Revocation, RevocationKind, Role, TokenRecord};
use crate::store::{Store, StoreConfig};
use crate::token::{IssuerKey, SigningAlg};

const T0: u64 = 1_800_000_000;

struct Fx {
    state: AppState,
    store: Arc<dyn Store>,
    admin: Caller,
    attester: Caller,
    host: HostRecord,
    _dir: tempfile::TempDir,
}

fn principal(name: &str, role: Role, tags: &[&str]) -> Principal {
    Principal {
        id: format!("{:0>16}", name.len()),
        name: name.into(),
        role,
        secret_sha256: String::new(),
        created_at: T0,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        created_by: Some("admin".into()),
        join: None,
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

impl Fx {
    /// A service with an admin, an attester conferring `role=web`, and its host enrolled with that tag.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let store = crate::store::open(&StoreConfig::Sled { path: dir.path().join("store") }).unwrap();
        let (key, pkcs8) = IssuerKey::generate(SigningAlg::EdDsa, &ring::rand::SystemRandom::new()).unwrap();
        std::fs::write(dir.path().join("keys/issuer-1.pk8"), pkcs8).unwrap();
        let text = "service_id = \"test\"\nlisten = \"127.0.0.1:0\"\n[tls]\nca = \"x\"\ncert = \"x\"\nkey = \"x\"\n\
                    [issuer]\nkeys = [{ path = \"keys/issuer-1.pk8\", alg = \"eddsa\" }]\n";
        std::fs::write(dir.path().join(crate::config::CONFIG_FILE), text).unwrap();
        let config: ServiceConfig = toml::from_str(text).unwrap();
        let issuer = vec![(IssuerKeyFile { path: PathBuf::from("keys/issuer-1.pk8"), alg: SigningAlg::EdDsa }, key)];
        let clock = Arc::new(ManualClock::at(T0));
        let state = AppState::with_store_and_clock(config, dir.path().into(), store.clone(), issuer, clock).unwrap();
        let (admin, attester) =
            (principal("admin", Role::Admin, &[]), principal("web-01", Role::Attester, &["role=web"]));
        for p in [&admin, &attester] {
            store.add_principal(p, &AuditEntry::new(T0, "principal.add", "")).unwrap();
        }
        let host = HostRecord {
            host_id: format!("sha256:{}", "cd".repeat(32)).parse().unwrap(),
            ek_public: vec![],
            ek_certificate_sha256: None,
            ak_public: vec![],
            ak_name: "00".into(),
            tags: vec!["role=web".into()],
            enrolled_at: T0,
            updated_at: T0,
            first_clock: ClockInfo::default(),
            last_clock: ClockInfo::default(),
            last_attested: None,
            enrolled_by: attester.name.clone(),
        };
        store.enroll_host(&host, &attester.id, &AuditEntry::new(T0, "enroll.allow", "")).unwrap();
        Fx { state, store, admin: Caller(admin), attester: Caller(attester), host, _dir: dir }
    }

    /// The entries appended by `f`, which must succeed.
    fn appended<T>(&self, f: impl std::future::Future<Output = Result<T, Denial>>) -> (T, Vec<AuditEntry>) {
        let before = self.store.audit_len().unwrap();
        let out = run(f).unwrap_or_else(|d| panic!("denied: {} {}", d.code, d.detail));
        let entries = self.store.audit(before, 100).unwrap().into_iter().map(|(_, e)| e).collect();
        (out, entries)
    }

    /// `f` is refused with `code`, and nothing is appended.
    fn refused<T: std::fmt::Debug>(
        &self,
        f: impl std::future::Future<Output = Result<T, Denial>>,
        code: &str,
    ) -> Denial {
        let before = self.store.audit_len().unwrap();
        let d = run(f).expect_err("must be refused");
        assert_eq!(d.code, code, "{}", d.detail);
        assert_eq!(self.store.audit_len().unwrap(), before, "a refusal changes nothing");
        d
    }

    fn token(&self, cti: &str) -> TokenRecord {
        let t = TokenRecord {
            cti: cti.into(),
            host_id: self.host.host_id.clone(),
            initiator: "web-01".into(),
            scope: "deploy/web".into(),
            audience: "gw".into(),
            policy_id: "web".into(),
            policy_hash: "ph".into(),
            parent_cti: None,
            delegation_depth: 0,
            single_use: false,
            issued_at: T0,
            expires_at: T0 + 300,
            token_sha256: None,
            audit_index: 0,
            consumed_at: None,
        };
        let attested = AttestedState {
            pcr_selection: "sha256:0".parse().unwrap(),
            pcr_digest: "00".into(),
            policy_hash: "ph".into(),
            time: T0,
        };
        let entry = AuditEntry::new(T0, "token.issue", "");
        self.store.record_issuance(&t, &entry, &self.host.host_id, &ClockInfo::default(), &attested).unwrap();
        self.store.token(cti).unwrap().unwrap()
    }
}

fn new_principal(name: &str, role: Role, tags: &[&str]) -> NewPrincipal {
    NewPrincipal { name: name.into(), role, tags: tags.iter().map(|t| (*t).to_owned()).collect() }
}

/// Finding 2: principal add and remove are audit entries naming the admin, written with the change.
#[test]
fn principal_add_and_remove_are_audited_with_the_admin() {
    let fx = Fx::new();
    let (created, log) =
        fx.appended(admin::add(&fx.state, &fx.admin, new_principal("db-01", Role::Attester, &["role=db"])));
    assert_eq!(created.tags, vec!["role=db".to_owned()]);
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].event.as_str(), log[0].principal.as_deref()), ("principal.add", Some("admin")));
    assert_eq!(log[0].diagnostics["tags"], serde_json::json!(["role=db"]));
    let stored = fx.store.principals().unwrap().into_iter().find(|p| p.name == "db-01").unwrap();
    assert_eq!((stored.tags, stored.created_by.as_deref()), (vec!["role=db".to_owned()], Some("admin")));

    let ((), log) = fx.appended(admin::remove(&fx.state, &fx.admin, "db-01"));
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].event.as_str(), log[0].principal.as_deref()), ("principal.remove", Some("admin")));

    fx.refused(admin::add(&fx.state, &fx.attester, new_principal("x", Role::Admin, &[])), "authorization_missing");
    fx.refused(admin::remove(&fx.state, &fx.admin, "db-01"), "not_found");
    fx.refused(admin::add(&fx.state, &fx.admin, new_principal("gw", Role::Gateway, &["role=web"])), "bad_request");
    fx.refused(admin::add(&fx.state, &fx.admin, new_principal("bad", Role::Attester, &["no space"])), "bad_request");
}

/// Finding 2: a key rotation is audited with the admin and the new key's kid before the key signs.
#[test]
fn keys_rotate_is_audited_with_the_admin() {
    let fx = Fx::new();
    let (kid, log) = fx.appended(keys::rotate_key(&fx.state, &fx.admin, None));
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].event.as_str(), log[0].principal.as_deref()), ("keys.rotate", Some("admin")));
    assert_eq!(log[0].diagnostics["kid"].as_str(), Some(kid.as_str()));
    assert_eq!(fx.state.issuer.read().unwrap().len(), 2);
    let on_disk = ServiceConfig::load(&fx.state.data_dir).unwrap();
    assert_eq!(on_disk.issuer.keys.len(), 2, "config.toml lists the new key");
    fx.refused(keys::rotate_key(&fx.state, &fx.attester, None), "authorization_missing");
}

/// Finding 1: only an admin changes a host's tags, and each change is audited with the admin's name.
#[test]
fn hosts_tag_replaces_the_tags_and_is_audited() {
    let fx = Fx::new();
    let id = fx.host.host_id.to_string();
    let tags = vec!["role=db".to_owned(), "dc=2".to_owned(), "role=db".to_owned()];
    let (view, log) =
        fx.appended(hosts::set_tags(&fx.state, &fx.admin, &id.to_uppercase().replace("SHA256", "sha256"), &tags));
    assert_eq!(view.tags, vec!["role=db".to_owned(), "dc=2".to_owned()], "replaced, repeats dropped");
    assert_eq!(fx.store.host(&id).unwrap().unwrap().tags, view.tags);
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].event.as_str(), log[0].principal.as_deref()), ("host.tag", Some("admin")));
    assert_eq!(log[0].host_id.as_deref(), Some(id.as_str()));

    let d = fx.refused(hosts::set_tags(&fx.state, &fx.attester, &id, &["role=db".into()]), "authorization_missing");
    assert_eq!(d.status, axum::http::StatusCode::FORBIDDEN);
    let other = format!("sha256:{}", "ee".repeat(32));
    fx.refused(hosts::set_tags(&fx.state, &fx.admin, &other, &["a".into()]), "not_found");
    fx.refused(hosts::set_tags(&fx.state, &fx.admin, "web-01", &["a".into()]), "bad_request");
    fx.refused(hosts::set_tags(&fx.state, &fx.admin, &id, &["a b".into()]), "bad_request");
    let (view, _) = fx.appended(hosts::set_tags(&fx.state, &fx.admin, &id, &[]));
    assert!(view.tags.is_empty(), "an admin may clear them");
}

/// Finding 12: a lift lets the host be issued again, keeps its earlier tokens revoked, and is audited.
#[test]
fn unrevoke_lifts_the_host_but_not_its_earlier_tokens() {
    let fx = Fx::new();
    let id = fx.host.host_id.to_string();
    let old = fx.token("01");
    fx.refused(hosts::lift(&fx.state, &fx.admin, &id, "nothing to lift"), "conflict");
    let r = Revocation {
        seq: 0,
        kind: RevocationKind::Host,
        target: id.clone(),
        policy_hash: None,
        reason: "suspect".into(),
        time: T0,
        by: "admin".into(),
        tokens: vec![],
        audit_index: 0,
        lifts: None,
    };
    let revoked = fx.store.revoke(&r, &AuditEntry::new(T0, "revoke.host", "")).unwrap();

    fx.refused(hosts::lift(&fx.state, &fx.attester, &id, "mine"), "authorization_missing");
    fx.refused(hosts::lift(&fx.state, &fx.admin, &id, "  "), "bad_request");
    let (lift, log) = fx.appended(hosts::lift(&fx.state, &fx.admin, &id, "false positive"));
    assert_eq!((lift.kind, lift.lifts, lift.by.as_str()), (RevocationKind::Unrevoke, Some(revoked.seq), "admin"));
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].event.as_str(), log[0].principal.as_deref()), ("host.unrevoke", Some("admin")));
    assert_eq!(log[0].host_id.as_deref(), Some(id.as_str()));
    assert_eq!(fx.store.revocations(0, 10).unwrap().len(), 2, "the feed is appended to, not rewritten");

    let s = fx.store.as_ref();
    assert!(host_revoked(s, &id).unwrap().is_none(), "the host may be issued tokens again");
    let why = why_revoked(s, &old).unwrap().expect("a token from before the lift stays revoked");
    assert_eq!(why.revocation.seq, revoked.seq, "explained by the revocation that was lifted");
    assert!(why.via.contains("lift"), "{}", why.via);
    let new = fx.token("02");
    assert!(why_revoked(s, &new).unwrap().is_none(), "a token issued after the lift holds");
    fx.refused(hosts::lift(&fx.state, &fx.admin, &id, "again"), "conflict");

    let view = run(hosts::set_tags(&fx.state, &fx.admin, &id, &["role=web".into()])).unwrap();
    assert!(!view.revoked);
    assert_eq!(view.lifted.map(|l| l.seq), Some(lift.seq), "hosts show tells of the lift");
}
