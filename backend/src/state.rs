//! Shared application state handed to every handler.

use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::BackendConfig;
use crate::cors::AllowedOrigins;
use crate::{Result, db};

/// Cheap to clone: everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<BackendConfig>,
    pub db: PgPool,
    pub redis: redis::Client,
    pub origins: Arc<AllowedOrigins>,
}

impl AppState {
    /// Connects to Postgres (lazily, so a database outage does not stop start-up) and
    /// prepares the Redis client.
    pub fn new(config: BackendConfig) -> Result<Self> {
        let db = db::pool(&config)?;
        let redis = redis::Client::open(config.redis_url.expose_secret())?;
        let origins = AllowedOrigins::parse(&config.allowed_origins);
        Ok(Self {
            config: Arc::new(config),
            db,
            redis,
            origins: Arc::new(origins),
        })
    }
}
