//! A fast upstream for benchmarks: a small JSON document, a body sink and an event stream.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// About 200 bytes of JSON, like a typical StudyFlow answer.
const SMALL_JSON: &str = r#"{"valid":true,"message":"Email validation successful","task":{"id":"5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01","title":"Read chapter 4","status":"todo","priority":"medium","tags":["physics","exam"]}}"#;

pub fn router() -> Router {
    Router::new()
        .route(
            "/bench/json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], SMALL_JSON) }),
        )
        .route("/bench/upload", post(upload))
        .route("/bench/sse", get(sse))
}

async fn upload(body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"received":{}}}"#, body.len()),
    )
        .into_response()
}

/// Twenty events, 5 ms apart.
async fn sse() -> Response {
    let stream = futures_util::stream::unfold(0u32, |n| async move {
        if n == 20 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("data: {{\"n\":{n}}}\n\n"))),
            n + 1,
        ))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Serves the benchmark upstream until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}
