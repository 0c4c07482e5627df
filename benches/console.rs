//! The web console's audit timeline over a 100,000-entry sled store (docs/design.md §17): one page (newest 50),
//! a rare filter's page (stops at its scan budget), and the first page's full read-back verification, side by
//! side with the baseline a naive page would pay: reading the whole log.
//!
//! cargo bench -p runtrust --bench console

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use runtrust::audit::AuditEntry;
use runtrust::service::console::timeline::{recompute, scan, Filter, PAGE, SCAN_BUDGET};
use runtrust::store::{SledStore, Store};

const N: u64 = 100_000;

fn entry(i: u64) -> AuditEntry {
    let e = AuditEntry::new(1_800_000_000 + i, "token.issue", format!("scope deploy/web/api for gw-1 ({i})"))
        .by("web-01")
        .host("sha256:cd493940bc811f4851d41e2296c39d8f9f5ea1ead5ec87659dc1260d55009bda")
        .cti("9375ffa53622f9087f2fdd67ff81d12f");
    if i % 100 == 0 {
        e.code("pcr_mismatch")
    } else {
        e
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut dump = store.export().unwrap();
    dump.audit = (0..N).map(|i| (i, entry(i))).collect();
    dump.counters.audit_next = N;
    store.import(&dump).unwrap();
    let s: &dyn Store = &store;
    let all = Filter::default();
    let denials = Filter { code: Some("pcr_mismatch".into()), ..Filter::default() };
    let nobody = Filter { principal: Some("nobody".into()), ..Filter::default() };
    c.bench_function("console/timeline first page of 100k (newest 50)", |b| {
        b.iter(|| scan(s, black_box(&all), None, PAGE, SCAN_BUDGET).unwrap().entries.len())
    });
    c.bench_function("console/timeline page of denials (1 in 100) of 100k", |b| {
        b.iter(|| scan(s, black_box(&denials), None, PAGE, SCAN_BUDGET).unwrap().entries.len())
    });
    c.bench_function("console/timeline page of a filter nothing matches (stops at the budget)", |b| {
        b.iter(|| scan(s, black_box(&nobody), None, PAGE, SCAN_BUDGET).unwrap().scanned)
    });
    c.bench_function("console/timeline page in the middle (cursor 50,000)", |b| {
        b.iter(|| scan(s, black_box(&all), Some(50_000), PAGE, SCAN_BUDGET).unwrap().entries.len())
    });
    c.bench_function("console/first page's verification: read back and hash 100k", |b| {
        b.iter(|| recompute(s, N).unwrap().map(|log| log.size()))
    });
    c.bench_function("baseline/read the whole 100k log at once", |b| b.iter(|| s.audit(0, N as usize).unwrap().len()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
