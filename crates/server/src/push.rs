//! `POST /api/v1/reports`: another system hands a report in (IntelMQ's webinput collector
//! does the same). The body is the report as it would be on disk: CSV, JSON, a list, gzip
//! or zip, or a whole mail message; `?feed=` names the feed (else detected) and `?name=` or
//! `Content-Disposition`'s filename names the file. The raw body is archived, then ingested
//! through the same pipeline as every other way in: rejects kept, duplicates merged, the
//! same report twice stored once. Analysts' and admins' tokens may push.

use crate::Shared;
use crate::api::{ApiError, ApiResult};
use crate::auth::Principal;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// What a push is ingested with: the same registry, tables and limits as the CLI.
pub struct Intake {
    pub registry: botwatch_feeds::registry::Registry,
    pub ipdb: Arc<botwatch_enrich::IpDb>,
    pub families: botwatch_model::FamilyTable,
    pub limits: botwatch_feeds::input::Limits,
    /// Pushed bodies are kept under `DIR/push/<day>/` before parsing.
    pub archive_dir: PathBuf,
    /// With `[nats]`: pushed reports are published for the workers instead of stored here.
    pub publish: Option<Arc<dyn botwatch_intake::pipeline::Publish + Send>>,
}

#[derive(Debug, Deserialize)]
pub struct PushQuery {
    pub feed: Option<String>,
    pub name: Option<String>,
}

/// The largest body a push may carry (it is held in memory while archived and parsed).
pub const MAX_BODY: usize = 256 << 20;

pub async fn push(
    State(st): State<Shared>,
    p: Principal,
    Query(q): Query<PushQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    p.require_all()?;
    let Some(intake) = st.deps.intake.clone() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "this server takes no reports"));
    };
    if st.deps.db.read_only() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the store is served read-only"));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body: send the report as the request body"));
    }
    if let Some(f) = &q.feed
        && intake.registry.get(f).is_err()
    {
        return Err(ApiError::bad_request(format!("unknown feed {f:?} (see GET /api/v1/feeds)")));
    }
    let name = q
        .name
        .clone()
        .or_else(|| {
            headers
                .get(axum::http::header::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .and_then(botwatch_intake::disposition_file_name)
        })
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or("").to_string())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "push".into());
    let now = st.deps.clock.now();
    let who = p.name.clone();
    let delivered = st
        .deps
        .db
        .run(move |s| {
            let archived = botwatch_intake::archive(&intake.archive_dir, "push", &name, &body, now)?;
            let ing = botwatch_intake::pipeline::Ingestor {
                registry: &intake.registry,
                ipdb: &intake.ipdb,
                families: &intake.families,
                limits: intake.limits,
                publish: intake.publish.as_deref().map(|p| p as &dyn botwatch_intake::pipeline::Publish),
            };
            let origin = botwatch_intake::Origin {
                feed: q.feed.as_deref(),
                source: format!("push by {who}"),
                observed: now,
                archive: Some(archived.path.display().to_string()),
            };
            match botwatch_intake::ingest_bytes(&ing, s, &name, body, &origin) {
                Ok(d) => Ok(Ok(d)),
                Err(e) if botwatch_intake::is_store_error(&e) => Err(e),
                Err(e) => Ok(Err(format!("{e:#}"))),
            }
        })
        .await?;
    match delivered {
        Ok(d) if d.reports.is_empty() => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no report could be read: {}", d.unreadable.join("; ")),
        )),
        Ok(d) => {
            let code = if d.new_reports() > 0 { StatusCode::CREATED } else { StatusCode::OK };
            let body = serde_json::json!({
                "reports": d.reports,
                "new_reports": d.new_reports(),
                "events": d.events(),
                // With [nats]: handed to the stream for the workers, whose stores count the
                // events (not stored, nor counted, here).
                "published": d.reports.iter().filter(|r| r.published.is_some()).count(),
                "unreadable": d.unreadable,
                "skipped": d.skipped,
            });
            Ok((code, Json(body)).into_response())
        }
        Err(e) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
    }
}
