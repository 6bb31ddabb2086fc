//! Shared application state handed to every handler.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::{BackendConfig, ShadowProviderMode};
use crate::cors::AllowedOrigins;
use crate::functions::encryption::Cipher;
use crate::metrics::Metrics;
use crate::providers::chain::AiRouter;
use crate::providers::keys::{ProviderKeys, Refresher};
use crate::providers::{CallContext, ProviderClient};
use crate::rate_limit::AiRateLimiter;
use crate::redis_client::RedisClient;
use crate::security_audit::SecurityAudit;
use crate::shadow::ShadowMarker;
use crate::store::RequestDb;
use crate::vault::Vault;
use crate::{Error, Result, db};

/// Cheap to clone: everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<BackendConfig>,
    pub db: PgPool,
    pub redis: RedisClient,
    pub origins: Arc<AllowedOrigins>,
    pub metrics: Arc<Metrics>,
    /// The legacy functions' provider client (exact legacy calls).
    pub providers: ProviderClient,
    /// Provider chains with fallback, retries, breakers and streaming.
    pub ai: AiRouter,
    /// Provider keys: the vault's, else the configured ones.
    pub keys: ProviderKeys,
    /// Security events (failed auth, rate limits, vault access).
    pub audit: SecurityAudit,
    pub auth: Authenticator,
    /// Revoked sessions, shared through Redis (the authenticator reads them too).
    pub revocations: crate::sessions::Revocations,
    pub rate_limiter: AiRateLimiter,
    /// Realtime rooms of this instance.
    pub realtime: crate::realtime::Hub,
    /// The encryption key, derived on first use (PBKDF2 is deliberately slow).
    pub cipher: Arc<tokio::sync::OnceCell<Option<Arc<Cipher>>>>,
    /// Tells the gateway's shadow copies (dry runs) from other requests.
    pub shadow: ShadowMarker,
    /// The data API's view of the database schema.
    pub schema: crate::rest::SchemaCache,
    /// The provider messages of the AI functions (templates, checked at start).
    pub prompts: Arc<crate::prompts::Prompts>,
    /// The sentence-embedding model of `semantic-search`, or why there is none.
    pub embeddings: crate::embedding::Embeddings,
    /// What `live` shadow provider calls may cost.
    shadow_budget: Arc<crate::providers::budget::ShadowBudget>,
}

impl AppState {
    /// Connects to Postgres (lazily, so a database outage does not stop start-up) and
    /// prepares the Redis and provider clients.
    pub fn new(config: BackendConfig) -> Result<Self> {
        let metrics = Arc::new(Metrics::new()?);
        let db = db::pool(&config)?;
        let redis = RedisClient::new(&config, metrics.clone())?;
        let origins = AllowedOrigins::from_list(&config.server.allowed_origins);
        let keys = ProviderKeys::new(&config);
        let providers = ProviderClient::new(&config, keys.clone(), metrics.clone())?;
        let ai = AiRouter::new(&config, keys.clone(), providers.clone(), metrics.clone())?;
        let audit = SecurityAudit::new(db.clone(), metrics.clone());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let revocations =
            crate::sessions::Revocations::new(redis.clone(), config.auth.token_lifetime_secs);
        let auth = Authenticator::new(&config, http).with_revocations(revocations.clone());
        let prompts = crate::prompts::Prompts::load(config.prompts.dir.as_deref())
            .map_err(|why| Error::Config(format!("prompts: {why}")))?;
        Ok(Self {
            prompts: Arc::new(prompts),
            embeddings: crate::embedding::Embeddings::from_config(
                config.embedding.model_dir.as_deref(),
                config.embedding.max_batch,
            ),
            rate_limiter: AiRateLimiter::new(redis.clone()),
            realtime: crate::realtime::Hub::new(&config, redis.clone()),
            db,
            redis,
            origins: Arc::new(origins),
            metrics,
            providers,
            ai,
            keys,
            audit,
            auth,
            revocations,
            cipher: Arc::default(),
            shadow: ShadowMarker::new(config.shadow.secret.clone()),
            schema: crate::rest::SchemaCache::default(),
            shadow_budget: Arc::new(crate::providers::budget::ShadowBudget::new(
                config.shadow.live_per_minute,
                config.shadow.live_per_day,
            )),
            config: Arc::new(config),
        })
    }

    /// Opens the key vault when `VAULT_MASTER_KEY` is set, loads the provider keys from it
    /// and keeps them fresh in the background (every `VAULT_REFRESH_SECS`). A vault that
    /// cannot be opened (wrong master key, database down) is logged and recorded; the
    /// configured keys are used meanwhile. Returns the refresh task, if one runs.
    pub async fn open_vault(&self) -> Option<tokio::task::JoinHandle<()>> {
        let key = self.config.vault.master_key()?.clone();
        let vault = match Vault::open(
            self.db.clone(),
            key,
            self.audit.clone(),
            self.metrics.clone(),
        )
        .await
        {
            Ok(vault) => vault,
            Err(error) => {
                tracing::error!(%error, "the key vault could not be opened; using the configured provider keys");
                return None;
            }
        };
        let mut refresher = Refresher::new(vault, self.keys.clone());
        refresher.once().await;
        let every = Duration::from_secs(self.config.vault.refresh_secs);
        Some(tokio::spawn(refresher.run(every)))
    }

    /// The database handle of one request: a rolled-back transaction for a dry run.
    pub async fn request_db(&self, dry_run: bool) -> Result<RequestDb, sqlx::Error> {
        if dry_run {
            RequestDb::dry_run(&self.db).await
        } else {
            Ok(RequestDb::live(&self.db))
        }
    }

    /// How `function` calls providers for this request: a dry run skips the call in
    /// `skip` mode, and in `live` mode once the function's shadow budget is spent.
    pub fn provider_context(&self, function: &'static str, dry_run: bool) -> CallContext {
        let skip = dry_run
            && match self.config.shadow_mode(function) {
                ShadowProviderMode::Skip => true,
                ShadowProviderMode::Live => !self
                    .shadow_budget
                    .take(function, chrono::Utc::now().timestamp()),
            };
        CallContext { function, skip }
    }
}
