//! Realtime: Supabase-compatible WebSocket channels (study rooms, presence, live row
//! changes) at `/realtime/v1/websocket`, for the unmodified `@supabase/realtime-js`.
//!
//! - [`protocol`]: Phoenix frames, serializer 1.0.0 and 2.0.0.
//! - [`socket`]: one client connection (join, heartbeat, leave, tokens, limits).
//! - [`hub`]: rooms, broadcast and presence across instances through Redis, and the
//!   server-side API ([`Hub::broadcast_to_room`], [`Hub::send_to_user`]).
//! - [`changes`]: `postgres_changes` from triggers and `LISTEN/NOTIFY`, owner-filtered.
//! - [`api`]: the HTTP form of the server-side API, for the service role.
//!
//! [`spawn_background`] starts the Redis subscriber and the change listener; `serve`
//! does it, and closes every socket with a close frame on shutdown.

pub mod api;
pub mod changes;
pub mod hub;
pub mod protocol;
pub mod socket;

use axum::Router;
use axum::routing::{get, post};
use tokio::task::JoinHandle;

pub use hub::Hub;

use crate::AppState;

/// The WebSocket endpoint and the server-side send API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/realtime/v1/websocket", get(socket::upgrade))
        .route("/realtime/v1/api/send", post(api::send))
}

/// Starts the cross-instance bus, the liveness renewal and the Postgres change
/// listener; abort the handles to stop them.
pub fn spawn_background(state: &AppState) -> Vec<JoinHandle<()>> {
    let tables = state.config.realtime.tables.clone();
    let hub = state.realtime.clone();
    vec![
        tokio::spawn(state.realtime.clone().run_bus()),
        tokio::spawn(state.realtime.clone().keep_alive()),
        tokio::spawn(changes::listen(state.db.clone(), tables, move |change| {
            hub.deliver_change(change)
        })),
    ]
}
