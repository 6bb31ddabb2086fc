//! `studyflow-backend vault …`: the operator's commands on the key vault.
//!
//! ```text
//! vault generate-key                      a fresh master key (base64), for VAULT_MASTER_KEY
//! vault put <provider> [--from-env VAR]   store a provider key (read from stdin by default)
//! vault list                              providers, key versions, fingerprints
//! vault remove <provider>                 delete a provider key
//! vault rotate --new-key-env VAR [--new-version N]
//!                                         re-encrypt every key under a new master key
//! vault finish-rotation                   with the new key: drop the old ciphertexts
//! ```
//!
//! Keys are read from stdin or a named environment variable, never from the command
//! line (which other users of the machine can see), and never printed.

use std::io::BufRead;
use std::sync::Arc;

use clap::Subcommand;
use secrecy::SecretString;
use serde_json::json;

use crate::ai_types::Provider;
use crate::config::BackendConfig;
use crate::metrics::Metrics;
use crate::security_audit::{EventType, SecurityAudit, SecurityEvent};
use crate::vault::{MasterKey, Vault, list_rows};
use crate::{Error, Result, db};

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Print a fresh random master key (base64 of 32 bytes) for VAULT_MASTER_KEY.
    GenerateKey,
    /// Store or replace a provider's API key (read from stdin unless --from-env).
    Put {
        /// openai, deepseek, anthropic (or claude), gemini.
        provider: String,
        /// Read the key from this environment variable instead of stdin.
        #[arg(long)]
        from_env: Option<String>,
    },
    /// List the stored keys: provider, key version, fingerprint; never the keys.
    List,
    /// Delete a provider's key (the configured one is used again).
    Remove { provider: String },
    /// Re-encrypt every key under a new master key, online: servers still on the current
    /// key keep reading until `finish-rotation`.
    Rotate {
        /// The environment variable holding the new master key (base64 of 32 bytes).
        #[arg(long)]
        new_key_env: String,
        /// The new key's version (default: the current VAULT_KEY_VERSION + 1).
        #[arg(long)]
        new_version: Option<u32>,
    },
    /// Run with the new key as VAULT_MASTER_KEY once every server has it: drops the
    /// ciphertexts under the old key and retires it.
    FinishRotation,
}

/// Runs `command`; what it prints goes to stdout, never a key (but `generate-key`'s).
pub async fn run(config: &BackendConfig, command: VaultCommand) -> Result<()> {
    if let VaultCommand::GenerateKey = command {
        use secrecy::ExposeSecret;
        println!("{}", MasterKey::generate_base64().expose_secret());
        return Ok(());
    }
    let metrics = Arc::new(Metrics::new()?);
    let pool = db::pool(config)?;
    db::migrate(&pool).await?;
    let audit = SecurityAudit::new(pool.clone(), metrics.clone());
    if let VaultCommand::List = command {
        let rows = list_rows(&pool).await?;
        let _ = audit
            .write(SecurityEvent::new(
                EventType::VaultList,
                json!({"count": rows.len()}),
            ))
            .await;
        if rows.is_empty() {
            println!("The vault holds no provider key.");
        }
        for row in rows {
            let previous = row
                .previous_key_version
                .map(|v| format!(" (also readable with key version {v}: rotation not finished)"))
                .unwrap_or_default();
            println!(
                "{:<10} key version {}  {}  updated {}{previous}",
                row.provider,
                row.key_version,
                row.fingerprint,
                row.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
            );
        }
        return Ok(());
    }
    let key =
        config.vault.master_key().cloned().ok_or_else(|| {
            Error::Config("VAULT_MASTER_KEY: required by this vault command".into())
        })?;
    let vault = Vault::open(pool, key, audit, metrics).await?;
    match command {
        VaultCommand::GenerateKey | VaultCommand::List => {}
        VaultCommand::Put { provider, from_env } => {
            let provider = provider_named(&provider)?;
            let secret = match from_env {
                Some(name) => {
                    std::env::var(&name).map_err(|_| Error::Config(format!("{name}: not set")))?
                }
                None => read_stdin(&format!("{} API key", provider.label()))?,
            };
            let info = vault.put(provider, &SecretString::from(secret)).await?;
            println!(
                "Stored the {} key under master key version {} ({}).",
                info.provider, info.key_version, info.fingerprint
            );
        }
        VaultCommand::Remove { provider } => {
            let provider = provider_named(&provider)?;
            if vault.remove(provider).await? {
                println!("Removed the {} key.", provider.label());
            } else {
                println!("The vault held no {} key.", provider.label());
            }
        }
        VaultCommand::Rotate {
            new_key_env,
            new_version,
        } => {
            let text = std::env::var(&new_key_env)
                .map_err(|_| Error::Config(format!("{new_key_env}: not set")))?;
            let version = new_version.unwrap_or(vault.key_version() + 1);
            let new = MasterKey::from_base64(&SecretString::from(text), version)
                .map_err(|why| Error::Config(format!("{new_key_env}: {why}")))?;
            let rotation = vault.rotate(&new).await?;
            println!(
                "Rotated {} key(s) from master key version {} to {} ({} already were).\n\
                 Servers on version {} keep reading. Next: set VAULT_MASTER_KEY to the new key \
                 and VAULT_KEY_VERSION={} on every server, then run `vault finish-rotation` \
                 with that configuration.",
                rotation.rotated,
                rotation.from,
                rotation.to,
                rotation.already,
                rotation.from,
                rotation.to
            );
        }
        VaultCommand::FinishRotation => {
            let dropped = vault.finish_rotation().await?;
            println!(
                "Rotation finished: {dropped} old ciphertext(s) dropped; only master key version {} reads the vault now.",
                vault.key_version()
            );
        }
    }
    Ok(())
}

fn provider_named(name: &str) -> Result<Provider> {
    Provider::parse(name).ok_or_else(|| {
        Error::Config(format!(
            "unknown provider `{name}` (openai, deepseek, anthropic, gemini)"
        ))
    })
}

fn read_stdin(what: &str) -> Result<String> {
    eprintln!("Reading the {what} from stdin (one line):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Config(format!("reading stdin: {e}")))?;
    Ok(line.trim().to_owned())
}
