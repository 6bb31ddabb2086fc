//! `/health` says the process runs; `/ready` says whether it can serve: the database is
//! required, Redis only degrades the service when it is away (the rate limit then runs
//! in-process), and so does a missing embedding model (only `semantic-search` needs
//! it; the check says why it is missing).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (database, redis) = tokio::join!(
        async {
            tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("select 1").execute(&state.db))
                .await
                .is_ok_and(|r| r.is_ok())
        },
        state.redis.ping()
    );
    let embedding = state.embeddings.unavailable();
    let (status, word) = match (database, redis && embedding.is_none()) {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let check = |ok: bool| if ok { "ok" } else { "down" };
    let embedding = embedding.map_or_else(|| "ok".to_owned(), |why| format!("unavailable: {why}"));
    (
        status,
        Json(json!({"status": word, "checks": {
            "database": check(database),
            "redis": check(redis),
            "embedding": embedding,
        }})),
    )
}
