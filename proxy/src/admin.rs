//! The admin API, on its own port: health and the route table in force.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{Value, json};

use crate::routing::RouteTable;

/// Serves the admin API until the gateway shuts down.
#[derive(Debug)]
pub struct AdminService {
    addr: SocketAddr,
    routes: Arc<RouteTable>,
}

impl AdminService {
    pub fn new(addr: SocketAddr, routes: Arc<RouteTable>) -> Self {
        Self { addr, routes }
    }
}

/// The admin router, exposed for tests.
pub fn router(routes: Arc<RouteTable>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/routes", get(list_routes))
        .with_state(routes)
}

async fn list_routes(State(routes): State<Arc<RouteTable>>) -> Json<Value> {
    let routes: Vec<Value> = routes
        .routes()
        .iter()
        .map(|route| {
            let percent = match route.phase {
                studyflow_flags::Phase::Canary(percent) => Some(percent),
                _ => None,
            };
            json!({
                "name": route.name,
                "path": route.path.to_string(),
                "methods": route.methods,
                "phase": route.phase.name(),
                "percent": percent,
                "blocked": route.blocked,
            })
        })
        .collect();
    Json(json!({ "routes": routes }))
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(self.addr).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(addr = %self.addr, %error, "admin API cannot listen");
                return;
            }
        };
        tracing::info!(addr = %self.addr, "admin API listening");
        let app = router(Arc::clone(&self.routes));
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "admin API stopped");
        }
    }
}
