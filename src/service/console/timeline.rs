//! The audit timeline's reads (docs/design.md §17): newest first, filtered, a page at a time. A page reads the
//! log backwards in chunks and stops at a page of matches or a scan budget, whichever comes first, so its cost
//! is bounded however long the log is; the next page starts below the last entry it read.

use crate::audit::{canonical_entry, leaf_hash, AuditEntry, MerkleLog};
use crate::store::{Store, StoreError};

/// Entries read from the store per step.
pub const CHUNK: u64 = 1000;
/// Matches shown per page.
pub const PAGE: usize = 50;
/// Entries one page may read before it stops (a rare filter then offers to scan further).
pub const SCAN_BUDGET: u64 = 20_000;

/// What the timeline shows; every field is optional and they all must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// An event (`token.deny`), or an event family with a trailing dot (`token.`).
    pub kind: Option<String>,
    pub code: Option<String>,
    pub host: Option<String>,
    pub principal: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<u64>,
    /// Unix seconds, exclusive.
    pub until: Option<u64>,
    /// Only entries with a denial code.
    pub denials_only: bool,
}

impl Filter {
    pub fn matches(&self, e: &AuditEntry) -> bool {
        let kind =
            self.kind.as_deref().is_none_or(|k| if k.ends_with('.') { e.event.starts_with(k) } else { e.event == k });
        let opt = |want: &Option<String>, have: &Option<String>| {
            want.as_deref().is_none_or(|w| have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        kind && opt(&self.code, &e.code)
            && opt(&self.host, &e.host_id)
            && opt(&self.principal, &e.principal)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && (!self.denials_only || e.code.is_some())
    }
}

/// One page of the timeline.
#[derive(Debug, Default)]
pub struct Page {
    /// Newest first.
    pub entries: Vec<(u64, AuditEntry)>,
    /// Where the next (older) page starts: entries below this index are not read yet.
    pub next_before: Option<u64>,
    /// Entries this page read.
    pub scanned: u64,
    /// The log's length when read.
    pub len: u64,
}

/// What the timeline reads of the log: a store, or in tests a counting wrapper.
pub trait Log {
    fn entries(&self) -> Result<u64, StoreError>;
    fn read(&self, from: u64, n: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError>;
}

impl Log for dyn Store + '_ {
    fn entries(&self) -> Result<u64, StoreError> {
        self.audit_len()
    }

    fn read(&self, from: u64, n: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.audit(from, n)
    }
}

/// Up to `page` entries matching `f`, newest first, among the entries below `before` (all of them if None),
/// reading at most about `budget` entries.
pub fn scan(
    s: &(impl Log + ?Sized),
    f: &Filter,
    before: Option<u64>,
    page: usize,
    budget: u64,
) -> Result<Page, StoreError> {
    let len = s.entries()?;
    let mut cursor = before.unwrap_or(len).min(len);
    let mut out = Page { len, ..Page::default() };
    'chunks: while cursor > 0 && out.entries.len() < page && out.scanned < budget {
        let from = cursor.saturating_sub(CHUNK);
        let batch = s.read(from, usize::try_from(cursor - from).unwrap_or(usize::MAX))?;
        for (index, entry) in batch.into_iter().rev() {
            if index >= cursor {
                continue;
            }
            cursor = index;
            out.scanned += 1;
            if f.matches(&entry) {
                out.entries.push((index, entry));
                if out.entries.len() == page {
                    break 'chunks;
                }
            }
        }
        cursor = cursor.min(from);
    }
    out.next_before = (cursor > 0).then_some(cursor);
    Ok(out)
}

/// Entries read per step while the audit page verifies the whole log against the checkpoint.
const VERIFY_BATCH: usize = 10_000;

/// The Merkle tree over the first `size` stored entries, read in batches (never all at once).
pub fn recompute(s: &dyn Store, size: u64) -> Result<Result<MerkleLog, String>, StoreError> {
    let mut log = MerkleLog::new();
    Ok(extend(s, &mut log, size)?.map(|()| log))
}

/// Pushes stored entries `log.size()..size` onto `log`, read in batches; Err(why) if the store lacks one.
pub fn extend(s: &dyn Store, log: &mut MerkleLog, size: u64) -> Result<Result<(), String>, StoreError> {
    while log.size() < size {
        let batch = s.audit(log.size(), VERIFY_BATCH)?;
        if batch.is_empty() {
            return Ok(Err(format!("the store has {} entries, the checkpoint {size}", log.size())));
        }
        for (index, entry) in batch {
            if index >= size {
                break;
            }
            if index != log.size() {
                return Ok(Err(format!("entry {} is missing", log.size())));
            }
            log.push(leaf_hash(&canonical_entry(&entry, index)));
        }
    }
    Ok(Ok(()))
}

/// The audit page's re-read of the log, kept between page loads (per process): the whole log is read back at
/// most every [`FULL_REREAD_SECS`]; in between only what was appended since is read and added.
#[derive(Default)]
pub struct Reread {
    last: std::sync::Mutex<Option<(MerkleLog, u64)>>,
}

/// How often the audit page reads the whole log back (a 100,000-entry log takes ~0.8 s, docs/performance.md).
pub const FULL_REREAD_SECS: u64 = 300;

impl Reread {
    /// The previous re-read and when it read the whole log, if that was under [`FULL_REREAD_SECS`] before
    /// `now` and not past `size` (taken out: a concurrent page load reads anew).
    pub fn take(&self, now: u64, size: u64) -> Option<(MerkleLog, u64)> {
        let mut last = self.last.lock().ok()?;
        // A clock that went back does not stretch the interval: only `at <= now < at + interval` reuses.
        last.take().filter(|(log, at)| now >= *at && now - *at < FULL_REREAD_SECS && log.size() <= size)
    }

    pub fn keep(&self, log: MerkleLog, full_at: u64) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((log, full_at));
        }
    }
}

/// The newest `n` entries (at most), oldest first: what the overview counts.
pub fn newest(s: &dyn Store, n: u64) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
    let len = s.audit_len()?;
    let from = len.saturating_sub(n);
    s.audit(from, usize::try_from(len - from).unwrap_or(usize::MAX))
}

/// Decisions per hour over the last `hours` hours before `now`: (hour start, allowed, denied), oldest first.
/// A denial is an entry with a code.
pub fn per_hour(entries: &[(u64, AuditEntry)], now: u64, hours: u64) -> Vec<(u64, u64, u64)> {
    let end = now - now % 3600 + 3600;
    let start = end.saturating_sub(hours * 3600);
    let mut buckets: Vec<(u64, u64, u64)> = (0..hours).map(|h| (start + h * 3600, 0, 0)).collect();
    for (_, e) in entries {
        if e.time < start || e.time >= end {
            continue;
        }
        let Ok(i) = usize::try_from((e.time - start) / 3600) else { continue };
        if let Some(b) = buckets.get_mut(i) {
            if e.code.is_some() {
                b.2 += 1;
            } else {
                b.1 += 1;
            }
        }
    }
    buckets
}

/// Denials by code, most frequent first.
pub fn denials_by_code(entries: &[(u64, AuditEntry)]) -> Vec<(String, u64)> {
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for (_, e) in entries {
        if let Some(code) = &e.code {
            *counts.entry(code.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().map(|(c, n)| (c.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A time filter's value: unix seconds, or UTC `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS`
/// (a trailing `Z` allowed; what a datetime-local input sends).
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, clock) = s.split_once('T').unwrap_or((s, "00:00"));
    let num = |p: &str, len: usize| {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u64>().ok()).flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let last = usize::try_from(m).ok().and_then(|m| month_days.get(m.checked_sub(1)?)).copied().unwrap_or(0);
    if d.next().is_some() || !(1970..=9999).contains(&y) || !(1..=last).contains(&day) {
        return None;
    }
    let mut c = clock.split(':');
    let (h, min) = (num(c.next()?, 2)?, num(c.next()?, 2)?);
    let sec = match c.next() {
        Some(p) => num(p, 2)?,
        None => 0,
    };
    if c.next().is_some() || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), for y >= 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::audit::leaf_hash;
    use crate::store::SledStore;

    fn entry(i: u64) -> AuditEntry {
        let e = AuditEntry::new(1_000 + i, if i % 10 == 0 { "token.deny" } else { "token.issue" }, format!("e{i}"))
            .host(if i % 2 == 0 { "sha256:aa" } else { "sha256:bb" });
        if i % 10 == 0 {
            e.code("policy_mismatch")
        } else {
            e
        }
    }

    /// A store with `n` entries, appended in batches through an import (one durable write).
    fn store_with(n: u64) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let mut dump = s.export().unwrap();
        dump.audit = (0..n).map(|i| (i, entry(i))).collect();
        dump.counters.audit_next = n;
        s.import(&dump).unwrap();
        (dir, s)
    }

    /// Counts the entries reads return.
    struct Counting<'a> {
        inner: &'a SledStore,
        read: AtomicU64,
    }

    impl Log for Counting<'_> {
        fn entries(&self) -> Result<u64, StoreError> {
            self.inner.audit_len()
        }

        fn read(&self, from: u64, n: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
            let v = self.inner.audit(from, n)?;
            self.read.fetch_add(v.len() as u64, Ordering::Relaxed);
            Ok(v)
        }
    }

    impl Counting<'_> {
        fn scan(&self, f: &Filter, before: Option<u64>, budget: u64) -> Page {
            scan(self, f, before, PAGE, budget).unwrap()
        }
    }

    #[test]
    fn a_page_of_a_100_000_entry_log_reads_one_chunk_and_the_cursor_walks_back() {
        let (_dir, store) = store_with(100_000);
        let c = Counting { inner: &store, read: AtomicU64::new(0) };
        let first = c.scan(&Filter::default(), None, SCAN_BUDGET);
        assert_eq!(first.len, 100_000);
        let indices: Vec<u64> = first.entries.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, (99_950..100_000).rev().collect::<Vec<_>>(), "the newest 50, newest first");
        assert_eq!(first.next_before, Some(99_950));
        assert!(c.read.load(Ordering::Relaxed) <= CHUNK, "read {} entries", c.read.load(Ordering::Relaxed));
        let second = c.scan(&Filter::default(), first.next_before, SCAN_BUDGET);
        assert_eq!(second.entries.first().map(|e| e.0), Some(99_949));
        assert_eq!(second.entries.last().map(|e| e.0), Some(99_900));
        // The oldest page ends the walk.
        let last = c.scan(&Filter::default(), Some(30), SCAN_BUDGET);
        assert_eq!(last.entries.len(), 30);
        assert_eq!(last.next_before, None);
    }

    #[test]
    fn a_rare_filter_stops_at_the_budget_and_offers_the_rest() {
        let (_dir, store) = store_with(100_000);
        let c = Counting { inner: &store, read: AtomicU64::new(0) };
        let f = Filter { host: Some("sha256:none".into()), ..Filter::default() };
        let p = c.scan(&f, None, SCAN_BUDGET);
        assert!(p.entries.is_empty());
        assert_eq!(p.scanned, SCAN_BUDGET);
        assert_eq!(p.next_before, Some(100_000 - SCAN_BUDGET), "the next page goes on below what was read");
        assert!(c.read.load(Ordering::Relaxed) <= SCAN_BUDGET + CHUNK);
    }

    #[test]
    fn filters_combine() {
        let (_dir, store) = store_with(1_000);
        let f = Filter {
            kind: Some("token.".into()),
            code: Some("POLICY_MISMATCH".into()),
            host: Some("sha256:aa".into()),
            since: Some(1_500),
            until: Some(1_600),
            ..Filter::default()
        };
        let p = scan(&store as &dyn Store, &f, None, PAGE, SCAN_BUDGET).unwrap();
        let indices: Vec<u64> = p.entries.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![590, 580, 570, 560, 550, 540, 530, 520, 510, 500]);
        assert!(scan(&store as &dyn Store, &Filter { kind: Some("token".into()), ..f }, None, PAGE, SCAN_BUDGET)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn decisions_are_counted_by_hour_and_denials_by_code() {
        let entries: Vec<(u64, AuditEntry)> = (0..20).map(|i| (i, entry(i))).collect();
        let hours = per_hour(&entries, 1_100, 2);
        assert_eq!(hours, vec![(0, 18, 2), (3600, 0, 0)]);
        assert_eq!(denials_by_code(&entries), vec![("policy_mismatch".to_owned(), 2)]);
    }

    #[test]
    fn a_reread_is_reused_only_within_its_interval_and_never_past_the_checkpoint() {
        let back = Reread::default();
        let mut log = MerkleLog::new();
        log.push(leaf_hash(b"entry 0"));
        back.keep(log, 1_000);
        assert!(back.take(999, 5).is_none(), "a clock that went back reads the whole log again");
        let r = Reread::default();
        let one = || {
            let mut log = MerkleLog::new();
            log.push(leaf_hash(b"entry 0"));
            log
        };
        r.keep(one(), 1_000);
        assert!(r.take(1_000 + FULL_REREAD_SECS, 5).is_none(), "too old: the whole log is read again");
        r.keep(one(), 1_000);
        assert!(r.take(1_010, 0).is_none(), "a tree larger than the checkpoint is not reused");
        r.keep(one(), 1_000);
        assert_eq!(r.take(1_010, 5).map(|(log, at)| (log.size(), at)), Some((1, 1_000)));
        assert!(r.take(1_010, 5).is_none(), "taken: a concurrent page reads anew");
    }

    #[test]
    fn extend_reads_only_what_is_missing() {
        let (_dir, store) = store_with(2_500);
        let s: &dyn Store = &store;
        let whole = recompute(s, 2_500).unwrap().unwrap();
        let mut part = recompute(s, 1_000).unwrap().unwrap();
        extend(s, &mut part, 2_500).unwrap().unwrap();
        assert_eq!(part.root(), whole.root());
        assert!(extend(s, &mut part, 3_000).unwrap().is_err(), "the store lacks entries 2,500..3,000");
    }

    #[test]
    fn times_parse_strictly() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("2026-11-28"), Some(1_795_824_000));
        assert_eq!(parse_time("2026-11-28T19:05"), Some(1_795_824_000 + 19 * 3600 + 300));
        assert_eq!(parse_time("2026-11-28T19:05:07Z"), Some(1_795_824_000 + 19 * 3600 + 307));
        assert_eq!(parse_time("2028-02-29"), Some(1_835_395_200), "a leap day");
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-29",
            "2026-02-31",
            "2026-04-31",
            "2026-00-10",
            "2026-11-28T25:00",
            "2026-11-28T19",
            "1969-01-01",
            "2026-11-28T19:05:07+01:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
