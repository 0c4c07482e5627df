//! The console's pages (docs/design.md §17), rendered on the server from the same store reads as the API:
//! overview, host, token (lineage tree) and audit timeline. Each read is bounded.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use serde::Deserialize;

use super::html::{badge, esc, host_link, page, short, time, token_link, url_part};
use super::timeline::{self, Filter};
use super::{ConsoleError, Session};
use crate::api::{ExecutionView, HostView, Lineage, LineageNode};
use crate::audit::{AuditEntry, MerkleLog};
use crate::model::{HostId, HostRecord};
use crate::service::audit_log::sign_checkpoint;
use crate::service::{blocking, hosts, lineage, AppState, Path, Query};
use crate::store::StoreError;
use crate::token::KeySet;

/// Hosts the overview lists.
const MAX_HOSTS: usize = 1000;
/// Newest entries the overview counts.
const OVERVIEW_ENTRIES: u64 = 10_000;
/// Tokens a host page lists.
const HOST_TOKENS: usize = 200;
/// Newest entries a host page searches for its denials, and how many it shows.
const HOST_DENIAL_SCAN: u64 = 20_000;
const HOST_DENIALS: usize = 20;

/// `GET /console/`.
pub async fn overview(State(state): State<AppState>, session: Session) -> Result<Html<String>, ConsoleError> {
    let now = state.clock.now_unix();
    let (hosts, total, entries) = blocking(&state, |s| {
        let all = s.hosts()?;
        let total = all.len();
        let views = all
            .iter()
            .take(MAX_HOSTS)
            .map(|h| Ok((hosts::view(s, h)?, h.clone())))
            .collect::<Result<Vec<(HostView, HostRecord)>, StoreError>>()?;
        Ok((views, total, timeline::newest(s, OVERVIEW_ENTRIES)?))
    })
    .await?;
    let mut b = String::new();
    let _ = write!(b, "<section><h2>Hosts <span class=\"count\">{total}</span></h2>");
    if hosts.is_empty() {
        b.push_str("<p class=\"empty\">No host is enrolled yet: <code>runtrust enroll</code> on a host.</p>");
    } else {
        b.push_str(
            "<table class=\"hosts\"><thead><tr><th>Host</th><th>State</th><th>Tags</th>\
             <th>Last accepted PCR state</th><th>Enrolled</th></tr></thead><tbody>",
        );
        for (v, h) in &hosts {
            let state = if v.revoked { badge("revoked") } else { badge("trusted") };
            let tags: String = v.tags.iter().map(|t| format!("<span class=\"tag\">{}</span>", esc(t))).collect();
            let attested = match &h.last_attested {
                Some(a) => format!(
                    "<span class=\"digest\" title=\"{}\">{}</span> PCRs {} · {}",
                    esc(&a.pcr_digest),
                    esc(&short(&a.pcr_digest)),
                    esc(&a.pcr_selection.to_string()),
                    time(a.time)
                ),
                None => "<span class=\"empty\">none yet</span>".into(),
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{state}</td><td>{tags}</td><td>{attested}</td><td>{}</td></tr>",
                host_link(&v.host_id),
                time(v.enrolled_at)
            );
        }
        b.push_str("</tbody></table>");
        if total > hosts.len() {
            let _ = write!(
                b,
                "<p class=\"note\">{} more hosts: <code>runtrust hosts list</code>.</p>",
                total - hosts.len()
            );
        }
    }
    b.push_str("</section>");
    decisions(&mut b, &entries, now);
    Ok(Html(page("Overview", Some(&session.name), &b)))
}

/// The overview's decisions: allowed and denied per hour over the last day, as bars (SVG, no script), and
/// denials by code.
fn decisions(b: &mut String, entries: &[(u64, AuditEntry)], now: u64) {
    let hours = timeline::per_hour(entries, now, 24);
    let max = hours.iter().map(|h| h.1 + h.2).max().unwrap_or(0).max(1);
    let (allowed, denied): (u64, u64) = hours.iter().fold((0, 0), |a, h| (a.0 + h.1, a.1 + h.2));
    let _ = write!(
        b,
        "<section><h2>Decisions, last 24 hours</h2><p class=\"legend\"><span class=\"key allow\"></span>{allowed} \
         allowed <span class=\"key deny\"></span>{denied} denied (of the newest {} audit entries)</p>",
        entries.len()
    );
    b.push_str("<svg class=\"chart\" viewBox=\"0 0 480 120\" role=\"img\" aria-label=\"decisions per hour\">");
    for (i, (start, ok, no)) in hours.iter().enumerate() {
        let x = i * 20 + 2;
        let h_ok = ok * 100 / max;
        let h_no = no * 100 / max;
        let _ = write!(
            b,
            "<g><title>{}: {ok} allowed, {no} denied</title>\
             <rect class=\"allow\" x=\"{x}\" y=\"{}\" width=\"16\" height=\"{h_ok}\"/>\
             <rect class=\"deny\" x=\"{x}\" y=\"{}\" width=\"16\" height=\"{h_no}\"/></g>",
            crate::token::rfc3339_unix(*start),
            100 - h_ok,
            100 - h_ok - h_no,
        );
    }
    b.push_str("<line class=\"axis\" x1=\"0\" y1=\"100\" x2=\"480\" y2=\"100\"/></svg>");
    let codes = timeline::denials_by_code(entries);
    if codes.is_empty() {
        b.push_str("<p class=\"empty\">No denials among them.</p>");
    } else {
        b.push_str("<table class=\"codes\"><thead><tr><th>Denial code</th><th>Count</th></tr></thead><tbody>");
        for (code, n) in codes {
            let _ = write!(
                b,
                "<tr><td><a class=\"code\" href=\"/console/audit?code={}\">{}</a></td><td>{n}</td></tr>",
                url_part(&code),
                esc(&code)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
}

/// `GET /console/hosts/{host_id}`.
pub async fn host(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let id: HostId = raw.parse().map_err(|_| ConsoleError::bad_request("a host id is sha256:<64 hex digits>"))?;
    let now = state.clock.now_unix();
    let key = id.to_string();
    let found = blocking(&state, move |s| {
        let Some(h) = s.host(&key)? else { return Ok(None) };
        let view = hosts::view(s, &h)?;
        let mut tokens = Vec::new();
        for cti in s.tokens_by_host(&key, HOST_TOKENS)? {
            if let Some(t) = s.token(&cti)? {
                tokens.push(lineage::node(s, &t, now)?);
            }
        }
        let f = Filter { host: Some(key.clone()), denials_only: true, ..Filter::default() };
        let denials = timeline::scan(s, &f, None, HOST_DENIALS, HOST_DENIAL_SCAN)?.entries;
        Ok(Some((h, view, tokens, denials)))
    })
    .await?;
    let (h, v, tokens, denials) = found.ok_or_else(|| ConsoleError::not_found(format!("no host {raw} is enrolled")))?;
    let mut b = String::new();
    let _ = write!(
        b,
        "<dl class=\"facts\"><dt>Host id</dt><dd class=\"id\">{}</dd><dt>State</dt><dd>{}</dd><dt>Tags</dt><dd>{}</dd>\
         <dt>AK name</dt><dd class=\"id\">{}</dd><dt>EK certificate SHA-256</dt><dd class=\"id\">{}</dd>\
         <dt>Enrolled</dt><dd>{} by {}</dd><dt>Last accepted PCR state</dt><dd>{}</dd>\
         <dt>TPM clock (last quote)</dt><dd>resetCount {} · restartCount {} · safe {}</dd></dl>",
        esc(&v.host_id),
        if v.revoked { badge("revoked") } else { badge("trusted") },
        esc(&v.tags.join(", ")),
        esc(&v.ak_name),
        esc(v.ek_certificate_sha256.as_deref().unwrap_or("(none: an EK without a certificate)")),
        time(v.enrolled_at),
        esc(&v.enrolled_by),
        h.last_attested.as_ref().map_or("none yet".into(), |a| format!(
            "<span class=\"id\">{}</span> (PCRs {}) under policy version {} at {}",
            esc(&a.pcr_digest),
            esc(&a.pcr_selection.to_string()),
            esc(&short(&a.policy_hash)),
            time(a.time)
        )),
        h.last_clock.reset_count,
        h.last_clock.restart_count,
        if h.last_clock.safe { "yes" } else { "no" },
    );
    b.push_str("<section><h2>Revocations</h2>");
    match (&v.revocation, &v.lifted) {
        (None, None) => b.push_str("<p class=\"empty\">Never revoked.</p>"),
        (r, l) => {
            b.push_str("<ul class=\"plain\">");
            if let Some(r) = r {
                let _ = write!(
                    b,
                    "<li>{} by {} at {}: {}</li>",
                    badge("revoked"),
                    esc(&r.by),
                    time(r.time),
                    esc(&r.reason)
                );
            }
            if let Some(l) = l {
                let _ =
                    write!(b, "<li>{} by {} at {}: {}</li>", badge("lifted"), esc(&l.by), time(l.time), esc(&l.reason));
            }
            b.push_str("</ul>");
        }
    }
    b.push_str("</section>");
    let _ = write!(b, "<section><h2>Tokens <span class=\"count\">{}</span></h2>", tokens.len());
    if tokens.is_empty() {
        b.push_str("<p class=\"empty\">No token was issued to this host.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th>Token</th><th>Status</th><th>Scope</th><th>Audience</th><th>Issued</th>\
             <th>Executions</th></tr></thead><tbody>",
        );
        for t in &tokens {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                token_link(&t.cti),
                badge(t.status.name()),
                esc(&t.scope),
                esc(&t.audience),
                time(t.issued_at),
                executions_inline(&t.executions)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
    b.push_str("<section><h2>Recent denials</h2>");
    if denials.is_empty() {
        let _ = write!(b, "<p class=\"empty\">None among the newest {HOST_DENIAL_SCAN} audit entries.</p>");
    } else {
        for (i, e) in &denials {
            entry_card(&mut b, *i, e);
        }
    }
    let _ = write!(
        b,
        "<p><a href=\"/console/audit?host={}\">All of this host's audit entries</a></p></section>",
        url_part(&v.host_id)
    );
    Ok(Html(page(&format!("Host {}", short(&v.host_id)), Some(&session.name), &b)))
}

fn executions_inline(execs: &[ExecutionView]) -> String {
    if execs.is_empty() {
        return "—".into();
    }
    execs.iter().map(execution_text).collect::<Vec<_>>().join("<br>")
}

fn execution_text(e: &ExecutionView) -> String {
    let end = match &e.end {
        None => "<span class=\"badge running\">running or not reported</span>".to_owned(),
        Some(end) => match (end.exit_code, end.signal) {
            (Some(c), _) => format!(
                "<span class=\"badge {}\">exit {c}</span> after {} ms",
                if c == 0 { "ok" } else { "failed" },
                end.duration_ms
            ),
            (None, Some(sig)) => {
                format!("<span class=\"badge failed\">signal {sig}</span> after {} ms", end.duration_ms)
            }
            _ => "ended".to_owned(),
        },
    };
    format!("{} by {} at {}: {end}", esc(&e.scope), esc(&e.gateway), time(e.started_at))
}

/// `GET /console/tokens/{cti}`: the lineage tree.
pub async fn token(
    State(state): State<AppState>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let cti = raw.to_ascii_lowercase();
    if cti.is_empty() || cti.len() > 128 || !cti.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConsoleError::bad_request("a token id (cti) is hex"));
    }
    let now = state.clock.now_unix();
    let c2 = cti.clone();
    let found = blocking(&state, move |s| lineage::build(s, &c2, now)).await?;
    let l: Lineage = found.ok_or_else(|| ConsoleError::not_found(format!("no token {cti} was issued here")))?;
    let mut b = String::new();
    if !l.ancestors.is_empty() {
        b.push_str("<section><h2>Ancestry</h2><ol class=\"ancestry\">");
        for a in &l.ancestors {
            let _ = write!(b, "<li>{}</li>", node_line(a));
        }
        b.push_str("</ol></section>");
    }
    b.push_str("<section><h2>Token and descendants</h2><ul class=\"tree\">");
    tree(&mut b, &l.token);
    b.push_str("</ul>");
    if l.truncated {
        b.push_str("<p class=\"note\">More descendants than one page shows: <code>runtrust lineage</code>.</p>");
    }
    b.push_str("</section>");
    Ok(Html(page(&format!("Token {}", short(&l.cti)), Some(&session.name), &b)))
}

fn node_line(n: &LineageNode) -> String {
    let mut out = format!(
        "<span class=\"node {}\">{} {} <span class=\"scope\">{}</span> for {} · host {} · depth {} · issued {} · \
         expires {}",
        n.status.name(),
        token_link(&n.cti),
        badge(n.status.name()),
        esc(&n.scope),
        esc(&n.audience),
        host_link(n.host_id.as_ref()),
        n.depth,
        time(n.issued_at),
        time(n.expires_at)
    );
    if let Some(r) = &n.revoked {
        let _ = write!(
            out,
            "<span class=\"revoked-via\">revoked via {} by {} at {}: {}</span>",
            esc(&r.via),
            esc(&r.by),
            time(r.time),
            esc(&r.reason)
        );
    }
    out.push_str("</span>");
    out
}

/// A node and its children as nested lists (drawn as a tree by the stylesheet), executions under each.
fn tree(b: &mut String, n: &LineageNode) {
    let _ = write!(b, "<li data-cti=\"{}\">{}", esc(&n.cti), node_line(n));
    if !n.executions.is_empty() {
        b.push_str("<ul class=\"executions\">");
        for e in &n.executions {
            let _ = write!(b, "<li class=\"execution\">▸ {}</li>", execution_text(e));
        }
        b.push_str("</ul>");
    }
    if let Some(children) = n.children.as_deref().filter(|c| !c.is_empty()) {
        b.push_str("<ul>");
        for c in children {
            tree(b, c);
        }
        b.push_str("</ul>");
    }
    b.push_str("</li>");
}

/// The audit page's query: filters and the cursor.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    kind: Option<String>,
    code: Option<String>,
    host: Option<String>,
    principal: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// A checkbox: only entries with a denial code.
    denials: Option<String>,
    before: Option<u64>,
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter, ConsoleError> {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let when = |v: &Option<String>, name: &str| match text(v) {
            None => Ok(None),
            Some(s) => timeline::parse_time(&s).map(Some).ok_or_else(|| {
                ConsoleError::bad_request(format!("{name}: unix seconds or a UTC time as 2026-11-28T19:05"))
            }),
        };
        let f = Filter {
            kind: text(&self.kind),
            code: text(&self.code),
            host: text(&self.host),
            principal: text(&self.principal),
            since: when(&self.since, "since")?,
            until: when(&self.until, "until")?,
            denials_only: self.denials.as_deref().is_some_and(|v| !v.is_empty()),
        };
        for v in [&f.kind, &f.code, &f.host, &f.principal].into_iter().flatten() {
            if v.len() > 256 {
                return Err(ConsoleError::bad_request("a filter value is at most 256 bytes"));
            }
        }
        Ok(f)
    }

    /// This query's link with another cursor.
    fn with_before(&self, before: u64) -> String {
        let mut q = String::new();
        for (k, v) in [
            ("kind", &self.kind),
            ("code", &self.code),
            ("host", &self.host),
            ("principal", &self.principal),
            ("since", &self.since),
            ("until", &self.until),
            ("denials", &self.denials),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(q, "{k}={}&", url_part(v));
            }
        }
        format!("/console/audit?{q}before={before}")
    }
}

/// What the audit page says of the log's integrity.
struct Integrity {
    checkpoint: String,
    verdict: Result<String, String>,
}

/// `GET /console/audit`.
pub async fn audit(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, ConsoleError> {
    let f = q.filter()?;
    let before = q.before;
    let f2 = f.clone();
    let found =
        blocking(&state, move |s| timeline::scan(s, &f2, before, timeline::PAGE, timeline::SCAN_BUDGET)).await?;
    // The first page also verifies the whole log against a fresh signed checkpoint; later pages link back to it.
    let integrity = if before.is_none() { Some(integrity(&state).await?) } else { None };
    let mut b = String::new();
    filter_form(&mut b, &q);
    if let Some(i) = &integrity {
        let verdict = match &i.verdict {
            Ok(ok) => format!("<p class=\"verdict ok\">✔ {}</p>", esc(ok)),
            Err(bad) => format!("<p class=\"verdict bad\">✘ {}</p>", esc(bad)),
        };
        let _ = write!(
            b,
            "<section class=\"checkpoint\"><h2>Latest signed checkpoint</h2>{verdict}<pre>{}</pre></section>",
            esc(&i.checkpoint)
        );
    } else {
        b.push_str("<p><a href=\"/console/audit\">Newest entries, checkpoint and verification</a></p>");
    }
    let _ = write!(
        b,
        "<section><h2>Entries</h2><p class=\"note\">{} shown, newest first; {} read of {} in the log.</p>",
        found.entries.len(),
        found.scanned,
        found.len
    );
    if found.entries.is_empty() {
        b.push_str("<p class=\"empty\">No entry matches in this range.</p>");
    }
    for (i, e) in &found.entries {
        entry_card(&mut b, *i, e);
    }
    if let Some(next) = found.next_before {
        let _ = write!(
            b,
            "<p class=\"pager\"><a rel=\"next\" href=\"{}\">Older entries (below index {next})</a></p>",
            esc(&q.with_before(next))
        );
    }
    b.push_str("</section>");
    Ok(Html(page("Audit timeline", Some(&session.name), &b)))
}

fn filter_form(b: &mut String, q: &AuditQuery) {
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let _ = write!(
        b,
        "<form class=\"filters\" method=\"get\" action=\"/console/audit\">\
         <label>Kind <input name=\"kind\" value=\"{}\" placeholder=\"token.deny or token.\"></label>\
         <label>Code <input name=\"code\" value=\"{}\" placeholder=\"pcr_mismatch\"></label>\
         <label>Host <input name=\"host\" value=\"{}\" placeholder=\"sha256:…\"></label>\
         <label>Principal <input name=\"principal\" value=\"{}\"></label>\
         <label>Since <input name=\"since\" value=\"{}\" placeholder=\"2026-11-28T00:00\"></label>\
         <label>Until <input name=\"until\" value=\"{}\" placeholder=\"UTC or unix seconds\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"denials\" value=\"on\"{}> denials only</label>\
         <button type=\"submit\">Filter</button></form>",
        v(&q.kind),
        v(&q.code),
        v(&q.host),
        v(&q.principal),
        v(&q.since),
        v(&q.until),
        if q.denials.as_deref().is_some_and(|v| !v.is_empty()) { " checked" } else { "" }
    );
}

/// One audit entry, with its diagnostics (a PCR mismatch's expected and quoted values) folded under it.
fn entry_card(b: &mut String, index: u64, e: &AuditEntry) {
    let class = if e.code.is_some() { "entry deny" } else { "entry allow" };
    let _ = write!(
        b,
        "<article class=\"{class}\" id=\"entry-{index}\"><header><span class=\"index\">#{index}</span> {} \
         <span class=\"event\">{}</span>",
        time(e.time),
        esc(&e.event)
    );
    if let Some(code) = &e.code {
        let _ = write!(b, " <span class=\"code\">{}</span>", esc(code));
    }
    if let Some(p) = &e.principal {
        let _ = write!(b, " by <span class=\"principal\">{}</span>", esc(p));
    }
    if let Some(h) = &e.host_id {
        let _ = write!(b, " · host {}", host_link(h));
    }
    if let Some(c) = &e.cti {
        let _ = write!(b, " · token {}", token_link(c));
    }
    let _ = write!(b, "</header><p class=\"detail\">{}</p>", esc(&e.detail));
    if !e.diagnostics.is_null() {
        let pretty = serde_json::to_string_pretty(&e.diagnostics).unwrap_or_default();
        let _ = write!(b, "<details><summary>Diagnostics</summary><pre>{}</pre></details>", esc(&pretty));
    }
    b.push_str("</article>");
}

/// Signs a checkpoint over the log as it is, then checks it against the stored entries read back and hashed
/// into the RFC 9162 tree (§2.1), and its signature against the service's keys. The whole log is read back at
/// most every [`timeline::FULL_REREAD_SECS`]; in between, the previous read plus what was appended since.
async fn integrity(state: &AppState) -> Result<Integrity, ConsoleError> {
    let tree = state.audit_tree.clone();
    let view = blocking(state, move |s| tree.view(s, |_, _| Ok(()))).await?;
    let signed = sign_checkpoint(state, view.size, view.root)?;
    let (size, now) = (view.size, state.clock.now_unix());
    let previous = state.console_reread.take(now, size);
    let reread = blocking(state, move |s| {
        let (mut log, full_at) = previous.unwrap_or_else(|| (MerkleLog::new(), now));
        Ok(timeline::extend(s, &mut log, size)?.map(|()| (log, full_at)))
    })
    .await?;
    let keys = {
        let issuer = state.issuer.read().map_err(|_| crate::service::Fault::Poisoned("issuer keys"))?;
        KeySet::new(issuer.iter().map(|(_, k)| k.public()).collect())
    };
    let verdict = match (reread, keys) {
        (Err(e), _) => Err(format!("the log does not reproduce the checkpoint: {e}")),
        (_, Err(e)) => Err(format!("no key to check the checkpoint's signature: {e}")),
        (Ok((log, full_at)), Ok(keys)) => {
            let root = log.root_at(size).ok();
            match signed.verify(&keys) {
                Err(e) => Err(format!("the checkpoint's signature does not verify: {e}")),
                Ok(_) if root != Some(signed.checkpoint.root) => {
                    Err(format!("the {size} stored entries do not hash to the checkpoint's root"))
                }
                Ok(_) => {
                    state.console_reread.keep(log, full_at);
                    Ok(format!(
                        "all {size} entries, read back from the store, hash to this checkpoint's root, and its \
                         signature verifies with the service's key (the whole log read back at {}, newer entries \
                         since)",
                        crate::token::rfc3339_unix(full_at)
                    ))
                }
            }
        }
    };
    Ok(Integrity { checkpoint: signed.to_text(), verdict })
}
