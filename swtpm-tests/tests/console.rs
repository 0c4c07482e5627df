//! Issue 15 in a real browser (headless Debian Chromium over WebDriver): a service with quickstart-like
//! activity on swtpm (an enrolled host, a token that ran a command, two delegated children of which one is
//! revoked, a PCR-mismatch denial); sign-in through `runtrust console`'s one-time link; each page shows what
//! it must; the cookie's flags; a used link is refused; signing out ends the session. Screenshots are saved
//! under target/console-screenshots/ (or $RUNTRUST_ARTIFACTS) for a person to look at.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use swtpm_tests::webdriver::Browser;
use swtpm_tests::{Run, Service, SwTpm};

struct Fx {
    svc: Service,
    tpm: SwTpm,
    cred: PathBuf,
    host_id: String,
    dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Self {
        let tpm = SwTpm::start();
        let svc = Service::start(&[tpm.ca_root(), tpm.ca_intermediate()]);
        let cred = svc.add_attester("web-01", &["env=test"]);
        let r = svc.client(Some(&tpm), Some(&cred), &["--json", "enroll", "--tag", "env=test"]);
        assert_eq!(r.code, 0, "enroll: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let host_id = v["host_id"].as_str().unwrap().to_owned();
        let fx = Fx { svc, tpm, cred, host_id, dir: tempfile::tempdir().unwrap() };
        let r =
            fx.host(&["policy", "capture", "--id", "web", "--pcrs", "0-7", "--tag", "env=test", "--scope", "deploy/*"]);
        assert_eq!(r.code, 0, "capture: {r:?}");
        let text = r.stdout.split("[token]").next().unwrap().to_owned() + "[token]\nmax_delegation_depth = 2\n";
        let policy = fx.path("policy.toml");
        std::fs::write(&policy, text).unwrap();
        let r = fx.admin(&["policy", "apply", policy.to_str().unwrap()]);
        assert_eq!(r.code, 0, "apply: {r:?}");
        fx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn host(&self, args: &[&str]) -> Run {
        self.svc.client(Some(&self.tpm), Some(&self.cred), args)
    }

    fn admin(&self, args: &[&str]) -> Run {
        self.svc.client(None, Some(&self.svc.admin_credential()), args)
    }

    /// A token that must be issued; returns its file and cti.
    fn token(&self, name: &str, scope: &str, extra: &[&str]) -> (PathBuf, String) {
        let out = self.path(name);
        let mut args = vec!["token", "request", "--scope", scope, "--audience", "gw", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = self.host(&args);
        assert_eq!(r.code, 0, "token request: {r:?}");
        let r = self.svc.client(None, None, &["--json", "token", "inspect", out.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        (out, v["cti"].as_str().unwrap().to_owned())
    }

    /// `runtrust console` as the admin: the link.
    fn link(&self) -> String {
        let r = self.admin(&["--json", "console"]);
        assert_eq!(r.code, 0, "console: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["url"].as_str().unwrap().to_owned()
    }
}

fn shots() -> PathBuf {
    std::env::var_os("RUNTRUST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots"))
}

#[test]
fn the_console_in_a_real_browser() {
    let fx = Fx::new();
    // Activity: a token that ran a command; two delegated children, one revoked; then a PCR changes and a
    // request is denied pcr_mismatch.
    let (parent, parent_cti) = fx.token("parent.token", "deploy/*", &[]);
    let marker = fx.path("ran");
    let r = fx.host(&[
        "exec",
        "--token",
        parent.to_str().unwrap(),
        "--scope",
        "deploy/app",
        "--audience",
        "gw",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "exec: {r:?}");
    let (_, kept_cti) = fx.token("kept.token", "deploy/app/*", &["--parent", parent.to_str().unwrap()]);
    let (_, revoked_cti) = fx.token("revoked.token", "deploy/db/*", &["--parent", parent.to_str().unwrap()]);
    let r = fx.admin(&["revoke", "token", &revoked_cti, "--reason", "console test: leaked"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fx.host(&["tpm", "extend", "--pcr", "7", "--data", "an unexpected boot component"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = fx.host(&["token", "request", "--scope", "deploy/app", "--audience", "gw", "--out", "/dev/null"]);
    assert!(r.code == 3 && r.stderr.contains("pcr_mismatch"), "{r:?}");

    let b = Browser::start();
    let base = fx.svc.url().to_owned();
    let out = shots();

    // Without a session: the sign-in page, which says how to get a link.
    b.goto(&format!("{base}/console/"));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    assert!(b.text().contains("runtrust console"), "{}", b.text());

    // Sign in through the link: opening it shows a button; clicking it spends the link.
    let link = fx.link();
    b.goto(&link);
    b.screenshot(&out.join("0-signin.png"));
    b.click("#signin");
    assert!(b.url().ends_with("/console/"), "{}", b.url());
    let cookies = b.cookies();
    let session = cookies.iter().find(|c| c["name"] == "runtrust_console").unwrap_or_else(|| panic!("{cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");

    // Overview: the host, its state and tags, its last accepted PCR state; decisions with denials by code.
    let text = b.text();
    assert!(text.contains("signed in as admin") && text.contains("trusted") && text.contains("env=test"), "{text}");
    assert!(b.source().contains(&fx.host_id), "the host id is on the overview");
    assert!(text.contains("pcr_mismatch"), "denials by code: {text}");
    assert!(b.find("svg.chart rect.deny").is_some(), "the decisions chart");
    b.screenshot(&out.join("1-overview.png"));

    // Host: its tokens, the execution under one, and the PCR-mismatch denial with its diagnostics.
    b.click(&format!("a[title=\"{}\"]", fx.host_id));
    assert!(b.url().contains("/console/hosts/"), "{}", b.url());
    let text = b.text();
    let source = b.source();
    for cti in [&parent_cti, &kept_cti, &revoked_cti] {
        assert!(source.contains(cti.as_str()), "token {cti} on the host page");
    }
    assert!(text.contains("exit 0") && text.contains("pcr_mismatch"), "{text}");
    assert!(source.contains("Diagnostics"), "the denial's diagnostics are there to unfold");
    b.screenshot(&out.join("2-host.png"));

    // Token: the lineage tree, the revoked child marked with why, the execution with its exit code.
    b.goto(&format!("{base}/console/tokens/{parent_cti}"));
    let nodes = b.find_all("ul.tree li[data-cti]");
    assert_eq!(nodes.len(), 3, "the parent and its two children");
    let revoked = b.find(&format!("li[data-cti=\"{revoked_cti}\"] > .node.revoked")).expect("the revoked child");
    assert!(b.element_text(&revoked).contains("console test: leaked"), "{}", b.element_text(&revoked));
    assert!(b.find(&format!("li[data-cti=\"{kept_cti}\"] > .node.active")).is_some(), "the other child is active");
    let parent_node = b.find(&format!("li[data-cti=\"{parent_cti}\"] > ul.executions")).expect("executions");
    assert!(b.element_text(&parent_node).contains("exit 0"), "{}", b.element_text(&parent_node));
    b.screenshot(&out.join("3-token.png"));

    // Audit timeline: the checkpoint verifies; filtering by kind through the form shows the denial.
    b.goto(&format!("{base}/console/audit"));
    let text = b.text();
    assert!(text.contains("hash to this checkpoint's root"), "{text}");
    b.type_into("input[name=kind]", "token.deny");
    b.click("form.filters button");
    assert!(b.url().contains("kind=token.deny"), "{}", b.url());
    let entries = b.find_all("article.entry");
    assert!(!entries.is_empty(), "the denial is listed");
    for e in &entries {
        let t = b.element_text(e);
        assert!(t.contains("token.deny") && t.contains("pcr_mismatch"), "only denials: {t}");
    }
    b.screenshot(&out.join("4-audit.png"));

    // The used link is refused.
    b.goto(&link);
    b.click("#signin");
    assert!(b.text().contains("used already"), "{}", b.text());

    // Signing out ends the session in this browser.
    b.goto(&format!("{base}/console/"));
    b.click("nav form button");
    b.goto(&format!("{base}/console/audit"));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    eprintln!("console screenshots: {}", out.display());
}
