//! The Merkle audit log's costs: hashing one entry (canonical bytes + RFC 9162 leaf), appending to the tree,
//! an inclusion proof, and what `runtrust audit verify` does with a whole log (recompute and check).
//!
//! cargo bench -p runtrust --bench audit

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use runtrust::audit::AuditEntry;
use runtrust::audit::{canonical_entry, leaf_hash, verify_log, Checkpoint, MerkleLog};

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new(1_800_000_000, "token.issue", format!("scope deploy/web/api for gw-1 under policy web ({i})"))
        .by("web-01")
        .host("sha256:cd493940bc811f4851d41e2296c39d8f9f5ea1ead5ec87659dc1260d55009bda")
        .cti("9375ffa53622f9087f2fdd67ff81d12f")
        .diagnostics(serde_json::json!({
            "policy_hash": "5a3aa9e6eb2d1ab51ea6987099eba11e2db9cb43b21d25c83d912a2bc21bd2c4",
            "pcr_selection": "sha256:0,1,2,3,4,5,6,7,16",
            "exp": 1_795_311_388u64,
        }))
}

fn bench(c: &mut Criterion) {
    let e = entry(1);
    c.bench_function("audit/leaf (canonical entry + leaf hash)", |b| {
        b.iter(|| leaf_hash(&canonical_entry(black_box(&e), 42)))
    });
    let leaves: Vec<_> = (0..100_000).map(|i| leaf_hash(&canonical_entry(&entry(i), i))).collect();
    c.bench_function("audit/push onto a 100k tree", |b| {
        b.iter_batched(|| MerkleLog::from_leaves(&leaves), |mut log| log.push(leaves[0]), BatchSize::LargeInput)
    });
    let log = MerkleLog::from_leaves(&leaves);
    c.bench_function("audit/inclusion proof in a 100k tree", |b| {
        b.iter(|| log.inclusion_proof(black_box(54_321), 100_000))
    });
    let entries: Vec<(u64, AuditEntry)> = (0..10_000).map(|i| (i, entry(i))).collect();
    let mut tree = MerkleLog::new();
    for (i, e) in &entries {
        tree.push(leaf_hash(&canonical_entry(e, *i)));
    }
    let cp = Checkpoint { origin: "runtrust".into(), tree_size: 10_000, root: tree.root(), time: 0 };
    c.bench_function("audit/verify_log of 10k entries", |b| {
        b.iter_batched(
            || entries.clone(),
            |es| verify_log(es, &cp, None, true).map(|r| r.entries),
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
