//! The HTTP API's routes (docs/api.md), grouped by resource; paths come from [`crate::api::routes`].
//! Routes whose denials are decisions sit behind the audit layer ([`super::audited`]).

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::audited::{self, Audited};
use runtrust_attestation::DenialCode;

use super::{
    admin, audit_route, challenge, console, ek_anchors, enroll, execution, hosts, issue, join_tokens, keys, lineage,
    metrics, policies, rebaseline, revocation, AppState, Denial,
};
use crate::api::routes as r;

/// Every route, with its body limit and audit layer.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    // `strangers`: whether refusals of unauthenticated requests are recorded as decisions too. Off everywhere
    // (docs/design.md §16): a stranger costs no durable write; /metrics counts them.
    let audited = |event: &'static str, strangers: bool, routes: Router<AppState>| {
        routes.route_layer(from_fn_with_state(Audited { state: state.clone(), event, strangers }, audited::layer))
    };
    let enrollment = audited(
        "enroll.deny",
        false,
        Router::new().route(r::ENROLL, post(enroll::start)).route(r::ENROLL_ACTIVATE, post(enroll::activate)),
    );
    let challenges = audited("challenge.deny", false, Router::new().route(r::CHALLENGE, post(challenge::challenge)));
    // A token request may carry an event log (base64url: 4/3 of MAX_EVENT_LOG_BYTES) besides the quote.
    let token_limit = limit + crate::api::MAX_EVENT_LOG_BYTES / 3 * 4 + 4;
    let tokens = audited(
        "token.deny",
        false,
        Router::new().route(r::TOKENS, post(issue::token).layer(DefaultBodyLimit::max(token_limit))),
    );
    let executions = audited("exec.deny", false, Router::new().route(r::EXECUTIONS, post(execution::start)))
        .route(r::EXECUTION_END, post(execution::end));
    let policy = audited("policy.deny", false, Router::new().route(r::POLICIES, post(policies::apply)))
        .route(r::POLICIES, get(policies::list));
    let revocations = audited("revoke.deny", false, Router::new().route(r::REVOCATIONS, post(revocation::revoke)))
        .route(r::REVOCATIONS, get(revocation::feed));
    // Tag changes and lifts decide which hosts policies select and trust (docs/design.md §5, §11).
    let host_changes = Router::new()
        .route(r::HOST_TAGS, post(hosts::tag))
        .route(r::HOST_UNREVOKE, post(hosts::unrevoke))
        .route(r::HOST_REMOVE, post(hosts::remove));
    let host_changes = audited("host.deny", false, host_changes);
    // Which EK certificates are trusted, and which keys verify tokens (docs/design.md §5, §11).
    let trust_changes = Router::new()
        .route(r::EK_ANCHORS, post(ek_anchors::add))
        .route(r::EK_ANCHOR, delete(ek_anchors::remove))
        .route(r::KEY_RETIRE, post(keys::retire));
    let trust_changes = audited("trust.deny", false, trust_changes);
    let admin = Router::new()
        .route(r::HOSTS, get(hosts::list))
        .route(r::HOST, get(hosts::show))
        .route(r::HOST_REBASELINE, post(rebaseline::rebaseline))
        .route(r::PRINCIPALS, get(admin::list_principals).post(admin::add_principal))
        .route(r::PRINCIPAL, delete(admin::remove_principal))
        .route(r::PRINCIPAL_ROTATE, post(admin::rotate_principal))
        .route(r::JOIN_TOKENS, get(join_tokens::list).post(join_tokens::create))
        .route(r::JOIN_TOKEN, delete(join_tokens::revoke))
        .route(r::KEYS, get(keys::keys))
        .route(r::KEYS_ROTATE, post(keys::rotate))
        .route(r::EK_ANCHORS, get(ek_anchors::list))
        .route(r::CONSOLE_LINKS, post(console::create_link));
    let audit = Router::new()
        .route(r::AUDIT, get(audit_route::audit))
        .route(r::AUDIT_CHECKPOINT, get(audit_route::checkpoint))
        .route(r::AUDIT_PROVE, get(audit_route::prove))
        .route(r::AUDIT_CONSISTENCY, get(audit_route::consistency))
        .route(r::LINEAGE, get(lineage::lineage));
    Router::new()
        .route(r::HEALTHZ, get(healthz))
        .route(r::READYZ, get(readyz))
        .route(r::METRICS, get(metrics::metrics))
        .merge(enrollment)
        .merge(challenges)
        .merge(tokens)
        .merge(executions)
        .merge(policy)
        .merge(revocations)
        .merge(host_changes)
        .merge(trust_changes)
        .merge(admin)
        .merge(audit)
        .merge(console::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn(access_log))
        .with_state(state)
}

/// The access log (docs/design.md §16): one line per request at target `runtrust::access`, with the route
/// template (never a credential, a token or a query string), the status and the time taken.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or("(unmatched)", |p| p.as_str()).to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "runtrust::access", %method, route, status = response.status().as_u16(), ms, "request");
    response
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "service_id": state.config.service_id }))
}

/// Readiness (docs/design.md §16): 503 while the store does not take durable writes; a failed store is
/// given a recovery attempt first. `/healthz` stays liveness only.
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Denial> {
    if let Err(e) = state.store.recover().await {
        tracing::debug!("not ready: {e}");
        return Err(Denial::new(DenialCode::VerifierUnavailable, "not ready: the store does not take durable writes"));
    }
    Ok(Json(serde_json::json!({ "status": "ready", "service_id": state.config.service_id })))
}

async fn not_found() -> Denial {
    Denial::not_found("no such route (the API lives under /v1, see docs/api.md)")
}
