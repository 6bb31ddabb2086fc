//! The provider key vault: API keys of the AI providers, stored in Postgres
//! (`studyflow_vault.provider_secrets`) encrypted with AES-256-GCM under a master key from
//! the configuration (`VAULT_MASTER_KEY`, version `VAULT_KEY_VERSION`).
//!
//! - Every ciphertext records the version of the key that sealed it; each master key
//!   version has a check value in `studyflow_vault.master_keys`, so a wrong master key is
//!   refused as such ([`VaultError::WrongMasterKey`]) instead of failing later, or worse,
//!   sealing new secrets under a key nobody else has.
//! - **Rotation** ([`Vault::rotate`], `studyflow-backend vault rotate`) re-encrypts every
//!   secret under a new master key, one row per short transaction, while keeping the
//!   ciphertext under the old key beside it: servers still running with the old key keep
//!   reading throughout. Once every server runs with the new key,
//!   [`Vault::finish_rotation`] drops the old ciphertexts and retires the old version.
//! - Keys are never logged or returned whole: listings show a fingerprint
//!   ([`cipher::fingerprint`]). Every access from the CLI, the first read of a running
//!   backend and every change it sees are security events ([`crate::security_audit`]).
//!
//! A running backend reads the vault at start and every `VAULT_REFRESH_SECS`
//! ([`crate::providers::keys::Refresher`]); provider clients use the vault's key, else
//! the configured one.

pub mod cipher;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::{PgPool, Row};

pub use cipher::{MasterKey, Sealed, fingerprint};

use crate::ai_types::Provider;
use crate::metrics::Metrics;
use crate::security_audit::{EventType, SecurityAudit, SecurityEvent};

/// The label the key check value is sealed for.
const CHECK_LABEL: &str = "master-key-check";
/// The text sealed as the check value.
const CHECK_TEXT: &[u8] = b"studyflow key vault";

/// Why a vault operation failed. Never quotes a key.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the master key given as version {version} is not the key of that version (wrong VAULT_MASTER_KEY or VAULT_KEY_VERSION)"
    )]
    WrongMasterKey { version: u32 },
    #[error(
        "{provider}'s key is sealed under master key version {found}{previous}; this master key is version {have}"
    )]
    KeyVersion {
        provider: String,
        found: u32,
        previous: String,
        have: u32,
    },
    #[error("{provider}'s key does not decrypt: the row was altered")]
    Tampered { provider: String },
    #[error(
        "master key version {have} is older than the vault's newest ({newest}): use the newest key"
    )]
    StaleKey { have: u32, newest: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A stored key, as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub provider: String,
    pub key_version: u32,
    /// Set during a rotation: the old key still reads this secret.
    pub previous_key_version: Option<u32>,
    pub fingerprint: String,
    pub updated_at: DateTime<Utc>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub from: u32,
    pub to: u32,
    pub rotated: u64,
    pub already: u64,
}

/// The vault, opened with one master key.
#[derive(Debug, Clone)]
pub struct Vault {
    pool: PgPool,
    key: MasterKey,
    audit: SecurityAudit,
    metrics: std::sync::Arc<Metrics>,
}

/// One row of `provider_secrets`.
struct StoredSecret {
    provider: String,
    current: Sealed,
    previous: Option<Sealed>,
}

fn version_of(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn sql_version(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}

impl Vault {
    /// Opens the vault with `key`. When the vault knows `key`'s version, `key` must be that
    /// version's key (else [`VaultError::WrongMasterKey`], recorded as a security event).
    /// A version the vault does not know yet is registered by the first write.
    pub async fn open(
        pool: PgPool,
        key: MasterKey,
        audit: SecurityAudit,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Self, VaultError> {
        let vault = Self {
            pool,
            key,
            audit,
            metrics,
        };
        if let Err(error) = vault.check_key(&vault.key).await {
            if matches!(error, VaultError::WrongMasterKey { .. }) {
                let event = SecurityEvent::new(
                    EventType::VaultKeyRejected,
                    json!({"key_version": vault.key.version()}),
                );
                let _ = vault.audit.write(event).await;
            }
            return Err(error);
        }
        Ok(vault)
    }

    /// The master key's version.
    pub fn key_version(&self) -> u32 {
        self.key.version()
    }

    /// Where this vault records its security events.
    pub fn audit(&self) -> &SecurityAudit {
        &self.audit
    }

    /// `Ok` when the vault has no check value for `key`'s version, or `key` opens it.
    async fn check_key(&self, key: &MasterKey) -> Result<(), VaultError> {
        let row = sqlx::query(
            "select check_nonce, check_value from studyflow_vault.master_keys where version = $1",
        )
        .bind(sql_version(key.version()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let sealed = Sealed {
            version: key.version(),
            nonce: row.try_get("check_nonce")?,
            ciphertext: row.try_get("check_value")?,
        };
        match key.open(CHECK_LABEL, &sealed) {
            Ok(text) if text == CHECK_TEXT => Ok(()),
            _ => Err(VaultError::WrongMasterKey {
                version: key.version(),
            }),
        }
    }

    /// The newest registered master key version, if any.
    async fn newest_version(&self) -> Result<Option<u32>, VaultError> {
        let newest: Option<i32> =
            sqlx::query_scalar("select max(version) from studyflow_vault.master_keys")
                .fetch_one(&self.pool)
                .await?;
        Ok(newest.map(version_of))
    }

    /// Registers `key`'s version (its check value) unless it is registered; checks it.
    async fn register(&self, key: &MasterKey) -> Result<(), VaultError> {
        let check = key
            .seal(CHECK_LABEL, CHECK_TEXT)
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        sqlx::query(
            "insert into studyflow_vault.master_keys (version, check_nonce, check_value) \
             values ($1, $2, $3) on conflict (version) do nothing",
        )
        .bind(sql_version(key.version()))
        .bind(&check.nonce)
        .bind(&check.ciphertext)
        .execute(&self.pool)
        .await?;
        // Another process may have registered the version first, with another key.
        self.check_key(key).await
    }

    /// Writes may only use the newest key: a secret sealed under an older one would be
    /// unreadable to servers already moved to the newer.
    async fn ensure_writable(&self) -> Result<(), VaultError> {
        if let Some(newest) = self.newest_version().await?
            && newest > self.key.version()
        {
            return Err(VaultError::StaleKey {
                have: self.key.version(),
                newest,
            });
        }
        self.register(&self.key).await
    }

    /// Stores (or replaces) `provider`'s key. Returns its listing.
    pub async fn put(
        &self,
        provider: Provider,
        secret: &SecretString,
    ) -> Result<SecretInfo, VaultError> {
        self.put_named(provider.label(), secret).await
    }

    /// Stores (or replaces) the secret called `name` (lower-case letters, digits, `-`,
    /// `_`). Provider keys are stored under the provider's name.
    pub async fn put_named(
        &self,
        name: &str,
        secret: &SecretString,
    ) -> Result<SecretInfo, VaultError> {
        let result = self.put_inner(name, secret).await;
        self.metrics.vault_operation("write", outcome(&result));
        result
    }

    async fn put_inner(&self, name: &str, secret: &SecretString) -> Result<SecretInfo, VaultError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(VaultError::Invalid(format!(
                "`{name}` is not a secret name"
            )));
        }
        let value = secret.expose_secret().trim();
        if value.is_empty() {
            return Err(VaultError::Invalid("the key is empty".into()));
        }
        self.ensure_writable().await?;
        let sealed = self
            .key
            .seal(name, value.as_bytes())
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        let print = fingerprint(value);
        sqlx::query(
            "insert into studyflow_vault.provider_secrets \
             (provider, key_version, nonce, ciphertext, fingerprint) values ($1, $2, $3, $4, $5) \
             on conflict (provider) do update set key_version = excluded.key_version, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             fingerprint = excluded.fingerprint, previous_key_version = null, \
             previous_nonce = null, previous_ciphertext = null, updated_at = now()",
        )
        .bind(name)
        .bind(sql_version(sealed.version))
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(&print)
        .execute(&self.pool)
        .await?;
        let _ = self
            .audit
            .write(SecurityEvent::new(
                EventType::VaultWrite,
                json!({"provider": name, "fingerprint": print, "key_version": self.key.version()}),
            ))
            .await;
        self.info(name)
            .await?
            .ok_or_else(|| VaultError::Invalid("the key vanished after it was written".into()))
    }

    /// Removes `provider`'s key; `true` when there was one.
    pub async fn remove(&self, provider: Provider) -> Result<bool, VaultError> {
        let done = sqlx::query("delete from studyflow_vault.provider_secrets where provider = $1")
            .bind(provider.label())
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        let _ = self
            .audit
            .write(SecurityEvent::new(
                EventType::VaultWrite,
                json!({"provider": provider.label(), "removed": done}),
            ))
            .await;
        Ok(done)
    }

    /// Every stored key, decrypted with this master key (the current ciphertext, or during
    /// a rotation the previous one when that is the one under this key).
    pub async fn load_all(&self) -> Result<BTreeMap<Provider, SecretString>, VaultError> {
        let result = self.load_inner().await;
        self.metrics.vault_operation("read", outcome(&result));
        result
    }

    async fn load_inner(&self) -> Result<BTreeMap<Provider, SecretString>, VaultError> {
        Ok(self
            .read_inner()
            .await?
            .into_iter()
            .filter_map(|(name, secret)| Provider::parse(&name).map(|p| (p, secret)))
            .collect())
    }

    /// Every stored secret by name, decrypted as [`Vault::load_all`] does.
    pub async fn read_all(&self) -> Result<BTreeMap<String, SecretString>, VaultError> {
        let result = self.read_inner().await;
        self.metrics.vault_operation("read", outcome(&result));
        result
    }

    async fn read_inner(&self) -> Result<BTreeMap<String, SecretString>, VaultError> {
        let mut secrets = BTreeMap::new();
        for row in self.rows().await? {
            let secret = self.open_row(&row)?;
            secrets.insert(row.provider, secret);
        }
        Ok(secrets)
    }

    /// One provider's key.
    pub async fn get(&self, provider: Provider) -> Result<Option<SecretString>, VaultError> {
        let all = self.load_all().await?;
        Ok(all.get(&provider).cloned())
    }

    fn open_row(&self, row: &StoredSecret) -> Result<SecretString, VaultError> {
        let have = self.key.version();
        let sealed = if row.current.version == have {
            &row.current
        } else if let Some(previous) = row.previous.as_ref().filter(|p| p.version == have) {
            previous
        } else {
            return Err(VaultError::KeyVersion {
                provider: row.provider.clone(),
                found: row.current.version,
                previous: row
                    .previous
                    .as_ref()
                    .map(|p| format!(" (and {})", p.version))
                    .unwrap_or_default(),
                have,
            });
        };
        let plain = self
            .key
            .open(&row.provider, sealed)
            .map_err(|_| VaultError::Tampered {
                provider: row.provider.clone(),
            })?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| VaultError::Tampered {
                provider: row.provider.clone(),
            })
    }

    async fn rows(&self) -> Result<Vec<StoredSecret>, VaultError> {
        let rows = sqlx::query(
            "select provider, key_version, nonce, ciphertext, previous_key_version, \
             previous_nonce, previous_ciphertext from studyflow_vault.provider_secrets \
             order by provider",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(parse_row).collect()
    }

    async fn info(&self, provider: &str) -> Result<Option<SecretInfo>, VaultError> {
        Ok(list_rows(&self.pool)
            .await?
            .into_iter()
            .find(|i| i.provider == provider))
    }

    /// Re-encrypts every secret under `new`, keeping the ciphertext under this key
    /// beside it so servers still on this key keep reading. Idempotent: run it again
    /// after an interruption and it carries on.
    pub async fn rotate(&self, new: &MasterKey) -> Result<Rotation, VaultError> {
        let result = self.rotate_inner(new).await;
        self.metrics.vault_operation("rotate", outcome(&result));
        result
    }

    async fn rotate_inner(&self, new: &MasterKey) -> Result<Rotation, VaultError> {
        let (from, to) = (self.key.version(), new.version());
        if to <= from {
            return Err(VaultError::Invalid(format!(
                "the new key's version ({to}) must be higher than the current one ({from})"
            )));
        }
        // This key must be the newest or the one being rotated to already be registered
        // (a rotation that is resumed).
        if let Some(newest) = self.newest_version().await?
            && newest > from
            && newest != to
        {
            return Err(VaultError::StaleKey { have: from, newest });
        }
        self.register(new).await?;
        let _ = self
            .audit
            .write(SecurityEvent::new(
                EventType::VaultRotationStarted,
                json!({"from_version": from, "to_version": to}),
            ))
            .await;
        let providers: Vec<String> = sqlx::query_scalar(
            "select provider from studyflow_vault.provider_secrets order by provider",
        )
        .fetch_all(&self.pool)
        .await?;
        let (mut rotated, mut already) = (0, 0);
        for provider in providers {
            if self.rotate_row(&provider, new).await? {
                rotated += 1;
            } else {
                already += 1;
            }
        }
        let _ = self
            .audit
            .write(SecurityEvent::new(
                EventType::VaultRotationCompleted,
                json!({"from_version": from, "to_version": to, "rotated": rotated, "already_rotated": already}),
            ))
            .await;
        Ok(Rotation {
            from,
            to,
            rotated,
            already,
        })
    }

    /// One row under `new`, in its own short transaction; `false` when it already was.
    async fn rotate_row(&self, provider: &str, new: &MasterKey) -> Result<bool, VaultError> {
        let mut transaction = self.pool.begin().await?;
        let row = sqlx::query(
            "select provider, key_version, nonce, ciphertext, previous_key_version, \
             previous_nonce, previous_ciphertext from studyflow_vault.provider_secrets \
             where provider = $1 for update",
        )
        .bind(provider)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row.as_ref().map(parse_row).transpose()? else {
            // Removed meanwhile.
            return Ok(false);
        };
        if row.current.version == new.version() {
            return Ok(false);
        }
        let plain = self.open_row(&row)?;
        // What this (old) key reads: kept beside the new ciphertext.
        let kept = if row.current.version == self.key.version() {
            row.current.clone()
        } else {
            row.previous.clone().unwrap_or_else(|| row.current.clone())
        };
        let sealed = new
            .seal(provider, plain.expose_secret().as_bytes())
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
        sqlx::query(
            "update studyflow_vault.provider_secrets set key_version = $2, nonce = $3, \
             ciphertext = $4, previous_key_version = $5, previous_nonce = $6, \
             previous_ciphertext = $7, updated_at = now() where provider = $1",
        )
        .bind(provider)
        .bind(sql_version(sealed.version))
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .bind(sql_version(kept.version))
        .bind(&kept.nonce)
        .bind(&kept.ciphertext)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Ends a rotation, run with the new key once every server has it: drops the old
    /// ciphertexts and retires older key versions. Refuses while a secret is still under
    /// an older key only.
    pub async fn finish_rotation(&self) -> Result<u64, VaultError> {
        let result = self.finish_inner().await;
        self.metrics.vault_operation("finish", outcome(&result));
        result
    }

    async fn finish_inner(&self) -> Result<u64, VaultError> {
        let version = sql_version(self.key.version());
        if let Some(newest) = self.newest_version().await?
            && newest > self.key.version()
        {
            return Err(VaultError::StaleKey {
                have: self.key.version(),
                newest,
            });
        }
        let behind: i64 = sqlx::query_scalar(
            "select count(*) from studyflow_vault.provider_secrets where key_version <> $1",
        )
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        if behind > 0 {
            return Err(VaultError::Invalid(format!(
                "{behind} key(s) are not under master key version {version} yet: run `vault rotate` first"
            )));
        }
        let cleared = sqlx::query(
            "update studyflow_vault.provider_secrets set previous_key_version = null, \
             previous_nonce = null, previous_ciphertext = null, updated_at = now() \
             where previous_key_version is not null",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query(
            "update studyflow_vault.master_keys set retired_at = now() \
             where version < $1 and retired_at is null",
        )
        .bind(version)
        .execute(&self.pool)
        .await?;
        let _ = self
            .audit
            .write(SecurityEvent::new(
                EventType::VaultRotationFinished,
                json!({"key_version": version, "previous_ciphertexts_dropped": cleared}),
            ))
            .await;
        Ok(cleared)
    }
}

fn outcome<T>(result: &Result<T, VaultError>) -> &'static str {
    if result.is_ok() { "ok" } else { "error" }
}

fn parse_row(row: &sqlx::postgres::PgRow) -> Result<StoredSecret, VaultError> {
    let previous = match row.try_get::<Option<i32>, _>("previous_key_version")? {
        Some(version) => Some(Sealed {
            version: version_of(version),
            nonce: row
                .try_get::<Option<Vec<u8>>, _>("previous_nonce")?
                .unwrap_or_default(),
            ciphertext: row
                .try_get::<Option<Vec<u8>>, _>("previous_ciphertext")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredSecret {
        provider: row.try_get("provider")?,
        current: Sealed {
            version: version_of(row.try_get("key_version")?),
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        previous,
    })
}

/// Every stored key's listing (no master key needed: nothing is decrypted).
pub async fn list_rows(pool: &PgPool) -> Result<Vec<SecretInfo>, VaultError> {
    let rows = sqlx::query(
        "select provider, key_version, previous_key_version, fingerprint, updated_at \
         from studyflow_vault.provider_secrets order by provider",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SecretInfo {
                provider: row.try_get("provider")?,
                key_version: version_of(row.try_get("key_version")?),
                previous_key_version: row
                    .try_get::<Option<i32>, _>("previous_key_version")?
                    .map(version_of),
                fingerprint: row.try_get("fingerprint")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}
