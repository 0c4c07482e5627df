//! The dependency rule of docs/design.md §3, checked on the source: each top-level module of `src/` uses
//! only the modules below it, nothing below `cli` knows clap, and the module graph has no cycle.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use (besides `runtrust-attestation` and itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("scope", &[]),
    ("fsutil", &[]),
    ("principal", &["model"]),
    ("token", &["model", "scope"]),
    ("policy", &["model", "scope"]),
    ("audit", &["model", "token"]),
    ("store", &["model", "audit"]),
    ("tpm", &["model", "fsutil"]),
    ("config", &["model", "store", "token", "fsutil"]),
    ("api", &["model", "audit"]),
    ("client", &["api", "model", "tpm", "token", "fsutil"]),
    ("gateway", &["api", "client", "model", "token", "tpm", "fsutil"]),
    // The host agent (docs/design.md §14) sits beside service, gateway and client under cli.
    ("agent", &["api", "model", "tpm"]),
    ("service", &["api", "audit", "config", "fsutil", "model", "policy", "principal", "scope", "store", "token"]),
    (
        "cli",
        &[
            "agent",
            "api",
            "audit",
            "client",
            "config",
            "fsutil",
            "gateway",
            "model",
            "policy",
            "principal",
            "scope",
            "service",
            "store",
            "token",
            "tpm",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/service/issue/mod.rs` → `service`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules a file's code names: `crate::m::…` and `use crate::{m, n::…}`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.insert(name);
        }
    }
    out
}

/// Code without `//` comments (a comment may name any module).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(m) = module_of(&src, &f) else { continue };
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let deps = graph.entry(m.clone()).or_default();
        // `store_conformance!` is the store's own macro, exported at the crate root.
        deps.extend(uses(&text).into_iter().filter(|d| *d != m && d != "store_conformance"));
    }
    graph
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let mut violations = Vec::new();
    for (module, deps) in graph() {
        let Some(ok) = allowed.get(module.as_str()) else {
            violations.push(format!("{module}: a new top-level module; add it to ALLOWED with its layer"));
            continue;
        };
        for d in deps.iter().filter(|d| !ok.contains(d.as_str())) {
            violations.push(format!("{module} uses {d}"));
        }
    }
    assert!(violations.is_empty(), "docs/design.md §3 dependency rule broken:\n{}", violations.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    // Kahn's algorithm: every module is removed once nothing it uses is left.
    let mut left: BTreeMap<&String, BTreeSet<&String>> =
        graph.iter().map(|(m, d)| (m, d.iter().filter(|x| graph.contains_key(*x)).collect())).collect();
    while let Some(free) = left.iter().find(|(_, d)| d.is_empty()).map(|(m, _)| (*m).clone()) {
        left.remove(&free);
        for d in left.values_mut() {
            d.remove(&free);
        }
    }
    assert!(left.is_empty(), "modules on a cycle: {:?}", left.keys().collect::<Vec<_>>());
}

#[test]
fn only_cli_knows_clap_and_only_cli_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in files {
        let Some(m) = module_of(&src, &f) else { continue };
        // Tests may print what they wrote.
        if m == "cli" || f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).unwrap());
        for needle in ["clap::", "println!", "eprintln!", "print!(", "std::process::exit"] {
            if text.contains(needle) {
                found.push(format!("{}: {needle}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "below cli: {found:#?}");
}

#[test]
fn the_checker_sees_grouped_and_plain_uses() {
    let text = "use crate::{api::routes, model};\nfn f() { crate::store::open(); }\n";
    let got: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(got, ["api", "model", "store"]);
    assert!(uses(&code("// crate::cli is named in a comment\n")).is_empty());
}
