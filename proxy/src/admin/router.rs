//! Everything the admin port serves: the JSON API and the console, on one router.

use axum::Router;

use super::{AdminState, api, console};

/// The admin port's routes, with `state` shared by every handler.
pub(crate) fn router(state: AdminState) -> Router {
    api::router().merge(console::router()).with_state(state)
}
