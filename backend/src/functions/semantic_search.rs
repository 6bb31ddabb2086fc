//! `semantic-search`: `{query}` → `{embedding: [384 numbers]}`, the all-MiniLM-L6-v2
//! sentence embedding ([`crate::embedding`]). No authentication and no CORS headers,
//! as the legacy. Any method is served the same way.
//!
//! The legacy has no error handling: a body that is not JSON or a `query` that is not
//! a string throws, and Supabase's runtime answers its 500 `WORKER_ERROR`; the backend
//! answers the same. Two answers are the backend's own (intentional fixes): 503 when no
//! model is loaded (`EMBEDDING_MODEL_DIR`), and 413 for a query longer than
//! `EMBEDDING_MAX_QUERY_CHARS` (the model reads 256 tokens; tokenising megabytes of text
//! to drop them would only cost CPU).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Invocation, any_method};
use crate::AppState;
use crate::cors::Cors;
use crate::embedding::Embeddings;
use crate::js::json::parse_body;

const NAME: &str = "semantic-search";

pub fn router() -> Router<AppState> {
    any_method(NAME, handle)
}

/// What Supabase's edge runtime answers when a function throws.
fn worker_error() -> Response {
    Cors::none().json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"code": "WORKER_ERROR", "message": "Function exited due to an error (please check logs)"}),
    )
}

async fn handle(State(state): State<AppState>, invocation: Invocation) -> Response {
    let embedder = match &state.embeddings {
        Embeddings::Ready(embedder) => embedder,
        Embeddings::Unavailable(why) => {
            return Cors::none().json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("semantic-search is unavailable: {why}")}),
            );
        }
    };
    // `const { query } = await req.json()`, then the model throws on a non-string.
    let query = match parse_body(&invocation.body) {
        Ok(Value::Object(mut fields)) => match fields.shift_remove("query") {
            Some(Value::String(query)) => query,
            _ => return worker_error(),
        },
        _ => return worker_error(),
    };
    let limit = state.config.embedding.max_query_chars;
    if query.chars().count() > limit {
        return Cors::none().json(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": format!("query is too long: at most {limit} characters")}),
        );
    }
    match embedder.embed(query).await {
        Ok(embedding) => Cors::none().json(StatusCode::OK, json!({"embedding": embedding})),
        Err(error) => {
            tracing::error!(%error, "semantic-search failed");
            worker_error()
        }
    }
}
