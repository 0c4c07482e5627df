//! `GET /metrics` (docs/design.md §16): counters in the Prometheus text format (version 0.0.4), with no
//! credential and no secrets. Decisions of the audited routes by route, outcome and code; refusals that are
//! counted here instead of being written to the audit log (unauthenticated requests, throttled principals);
//! the audit log's size; the store's readiness; connections and their timeouts.
//!
//! Label values come from fixed sets (matched route templates, denial codes, outcomes), so the number of
//! series stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{blocking, AppState};

/// Connection counters, shared with the connection guard ([`super::conn`]).
#[derive(Default)]
pub struct Connections {
    pub open: AtomicU64,
    /// Closed on arrival: the connection cap was reached.
    pub refused: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub idle_timeouts: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route, outcome, code) → answers.
    decisions: Mutex<BTreeMap<(String, &'static str, String), u64>>,
    /// route → refusals before authentication.
    unauthenticated: Mutex<BTreeMap<String, u64>>,
    /// route → requests refused unevaluated because their principal was over its denial rate.
    throttled: Mutex<BTreeMap<String, u64>>,
    pub connections: Arc<Connections>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_insert(0) += 1;
    }
}

impl Metrics {
    /// An answer of an audited route: `outcome` is `allow` or `deny` (`code` empty for an allow).
    pub fn decision(&self, route: &str, outcome: &'static str, code: &str) {
        bump(&self.decisions, (route.to_owned(), outcome, code.to_owned()));
    }

    pub fn unauthenticated(&self, route: &str) {
        bump(&self.unauthenticated, route.to_owned());
    }

    pub fn throttled(&self, route: &str) {
        bump(&self.throttled, route.to_owned());
    }

    /// Refusals before authentication on `route` so far.
    pub fn unauthenticated_count(&self, route: &str) -> u64 {
        self.unauthenticated.lock().ok().and_then(|m| m.get(route).copied()).unwrap_or(0)
    }

    /// Requests refused unevaluated (throttled) on `route` so far.
    pub fn throttled_count(&self, route: &str) -> u64 {
        self.throttled.lock().ok().and_then(|m| m.get(route).copied()).unwrap_or(0)
    }

    /// The exposition text; `audit_entries` is None when the store cannot say.
    /// `store`: the durable audit entries and the store's physical flushes, when the store answered.
    pub fn render(&self, store: Option<(u64, u64)>, store_ready: bool, store_failures: u64) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "runtrust_decisions_total",
            "counter",
            "Answers of audited routes by route, outcome and code.",
        );
        if let Ok(m) = self.decisions.lock() {
            for ((route, outcome, code), n) in m.iter() {
                let labels = [("route", route.as_str()), ("outcome", outcome), ("code", code.as_str())];
                sample(&mut out, "runtrust_decisions_total", &labels, *n);
            }
        }
        let per_route = [
            (
                &self.unauthenticated,
                "runtrust_unauthenticated_total",
                "Requests refused before authentication (counted here, not written to the audit log).",
            ),
            (
                &self.throttled,
                "runtrust_throttled_total",
                "Requests refused unevaluated: their principal exceeded limits.audited_denials_per_minute.",
            ),
        ];
        for (map, name, help) in per_route {
            family(&mut out, name, "counter", help);
            if let Ok(m) = map.lock() {
                for (route, n) in m.iter() {
                    sample(&mut out, name, &[("route", route.as_str())], *n);
                }
            }
        }
        if let Some((entries, flushes)) = store {
            family(&mut out, "runtrust_audit_entries", "gauge", "Durable entries in the audit log.");
            sample(&mut out, "runtrust_audit_entries", &[], entries);
            family(
                &mut out,
                "runtrust_store_flushes_total",
                "counter",
                "Physical flushes (sled) or commits (PostgreSQL) by this process; group commit makes them fewer \
                 than durable writes.",
            );
            sample(&mut out, "runtrust_store_flushes_total", &[], flushes);
        }
        family(&mut out, "runtrust_store_ready", "gauge", "1 while the store takes durable writes (GET /readyz).");
        sample(&mut out, "runtrust_store_ready", &[], u64::from(store_ready));
        family(&mut out, "runtrust_store_failures_total", "counter", "Store operations that failed.");
        sample(&mut out, "runtrust_store_failures_total", &[], store_failures);
        let c = &self.connections;
        family(&mut out, "runtrust_connections_open", "gauge", "Connections held now.");
        sample(&mut out, "runtrust_connections_open", &[], c.open.load(Ordering::Relaxed));
        family(
            &mut out,
            "runtrust_connections_refused_total",
            "counter",
            "Connections closed on arrival at limits.max_connections.",
        );
        sample(&mut out, "runtrust_connections_refused_total", &[], c.refused.load(Ordering::Relaxed));
        let name = "runtrust_connections_timed_out_total";
        family(&mut out, name, "counter", "Connections closed by a timeout of [limits], by phase.");
        for (phase, n) in [
            ("handshake", &c.handshake_timeouts),
            ("headers", &c.header_timeouts),
            ("body", &c.body_timeouts),
            ("idle", &c.idle_timeouts),
        ] {
            sample(&mut out, name, &[("phase", phase)], n.load(Ordering::Relaxed));
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let _ = write!(out, "{{{}}}", inner.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// Label values: backslash, double quote and newline escaped (exposition format 0.0.4).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let store =
        if state.store.is_ready() { blocking(&state, |s| Ok((s.audit_len()?, s.flushes()))).await.ok() } else { None };
    let text = state.metrics.render(store, state.store.is_ready(), state.store.failures());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_text() {
        let m = Metrics::default();
        m.decision("/v1/tokens", "deny", "authorization_missing");
        m.decision("/v1/tokens", "deny", "authorization_missing");
        m.unauthenticated("/v1/tokens");
        m.connections.idle_timeouts.fetch_add(3, Ordering::Relaxed);
        let text = m.render(Some((7, 3)), true, 0);
        for line in [
            "runtrust_decisions_total{route=\"/v1/tokens\",outcome=\"deny\",code=\"authorization_missing\"} 2",
            "runtrust_unauthenticated_total{route=\"/v1/tokens\"} 1",
            "runtrust_audit_entries 7",
            "runtrust_store_flushes_total 3",
            "runtrust_store_ready 1",
            "runtrust_connections_timed_out_total{phase=\"idle\"} 3",
            "# TYPE runtrust_decisions_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
