//! `POST /realtime/v1/api/send`: the server side of rooms (the design's BroadcastToRoom
//! and SendToUser) for trusted callers holding the service-role key.
//!
//! Body: `{"topic": "room1", "event": "…", "payload": {…}}` for a room, or
//! `{"user_id": "<uuid>", "event": "…", "payload": {…}}` for every channel of one user.
//! Answers 202 once the message is handed to every instance. Rust code in the backend
//! calls [`super::Hub::broadcast_to_room`] and [`super::Hub::send_to_user`] directly.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
pub struct SendRequest {
    topic: Option<String>,
    user_id: Option<uuid::Uuid>,
    event: String,
    #[serde(default)]
    payload: Value,
}

pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<SendRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("apikey").and_then(|v| v.to_str().ok()))
        .ok_or_else(|| ApiError::Auth("Missing service role key".into()))?;
    let identity = state
        .auth
        .realtime_identity(token)
        .await
        .map_err(|_| ApiError::Auth("Invalid service role key".into()))?;
    if !identity.service_role {
        return Err(ApiError::Authz("The service role key is required".into()));
    }
    let hub = &state.realtime;
    match (request.topic, request.user_id) {
        (Some(topic), None) => {
            hub.broadcast_to_room(&topic_name(&topic), &request.event, request.payload)
                .await;
        }
        (None, Some(user)) => {
            hub.send_to_user(user, &request.event, request.payload)
                .await
        }
        _ => {
            return Err(ApiError::Validation(
                "Give exactly one of topic and user_id".into(),
            ));
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))))
}

/// The channel topic clients join: supabase-js prefixes `realtime:` to the room name.
fn topic_name(room: &str) -> String {
    if room.starts_with("realtime:") {
        room.to_owned()
    } else {
        format!("realtime:{room}")
    }
}
