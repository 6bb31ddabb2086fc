//! Contract tests of the backend: each function served in-process against a fresh
//! migrated Postgres database, the real Redis and the fake AI providers, covering every
//! status and message of `legacy-contract.md`; plus access-token verification, shadow dry
//! runs (only with the shared secret) and the operational endpoints; the AI provider layer
//! (wire formats, fallback, retries, breakers), the streaming tutor, the key vault,
//! security events and the client address they record; the backend and the diff store
//! sharing one database; the data API (`/rest/v1`) and its row-level security.

mod ai_providers;
mod ai_proxy;
mod ai_proxy_secure;
mod ai_study_analytics;
mod ai_study_recommendations;
mod ai_tutor_professional;
mod ai_tutor_stream;
mod auth;
mod auth_validation;
mod client_address;
mod data_api;
mod dry_run;
mod encryption;
mod migrate;
mod operational;
mod row_level_security;
mod security_events;
mod security_monitor;
mod semantic_search;
mod sessions;
mod shared_database;
mod support;
mod vault;
