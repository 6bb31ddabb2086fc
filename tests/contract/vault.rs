//! The provider key vault against Postgres: a round trip with only fingerprints shown, a
//! wrong master key refused, a rotation under concurrent reads with no failed read,
//! provider calls using the vault's keys before the configured ones, the security
//! events of vault access, and nothing secret in the logs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use studyflow_backend::metrics::Metrics;
use studyflow_backend::providers::Provider;
use studyflow_backend::providers::keys::KeySource;
use studyflow_backend::security_audit::SecurityAudit;
use studyflow_backend::vault::{MasterKey, Vault, VaultError, fingerprint, list_rows};

use crate::support::TestApp;

/// A fresh master key: its base64 text and the key.
fn new_key(version: u32) -> (SecretString, MasterKey) {
    let text = MasterKey::generate_base64();
    let key = MasterKey::from_base64(&text, version).expect("valid key");
    (text, key)
}

async fn open(app: &TestApp, key: &MasterKey) -> Result<Vault, VaultError> {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let audit = SecurityAudit::new(app.db.clone(), metrics.clone());
    Vault::open(app.db.clone(), key.clone(), audit, metrics).await
}

#[tokio::test]
async fn keys_round_trip_and_only_fingerprints_are_shown() {
    let app = TestApp::start("vault_roundtrip").await;
    let (_, key) = new_key(1);
    let vault = open(&app, &key).await.expect("opens");
    let secret = "sk-roundtrip-0123456789abcdef";
    let info = vault
        .put(Provider::OpenAi, &SecretString::from(secret))
        .await
        .expect("stored");
    assert_eq!(info.provider, "openai");
    assert_eq!(info.key_version, 1);
    assert_eq!(info.fingerprint, fingerprint(secret));
    assert!(!info.fingerprint.contains(secret));

    let read = vault
        .get(Provider::OpenAi)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read.expose_secret(), secret);
    assert!(vault.get(Provider::Gemini).await.expect("read").is_none());

    // What is stored is ciphertext: the key's bytes appear nowhere in the row.
    let stored: Vec<u8> = sqlx::query_scalar(
        "select ciphertext || nonce || convert_to(fingerprint, 'UTF8') from studyflow_vault.provider_secrets",
    )
    .fetch_one(&app.db)
    .await
    .expect("row");
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Replacing a key changes its fingerprint; listings never carry the key.
    vault
        .put(
            Provider::OpenAi,
            &SecretString::from("sk-replaced-key-9876543210"),
        )
        .await
        .expect("replaced");
    let listed = list_rows(&app.db).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].fingerprint,
        fingerprint("sk-replaced-key-9876543210")
    );
    assert!(!format!("{listed:?}").contains("sk-replaced"));

    let writes = app.audit_rows("vault_write", 2).await;
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0]["details"]["fingerprint"], fingerprint(secret));
    assert!(!writes[0].to_string().contains(secret));
    app.finish().await;
}

#[tokio::test]
async fn a_wrong_master_key_is_refused() {
    let app = TestApp::start("vault_wrong_key").await;
    let (_, right) = new_key(1);
    let vault = open(&app, &right).await.expect("opens");
    vault
        .put(Provider::Gemini, &SecretString::from("gemini-secret-key"))
        .await
        .expect("stored");

    let (_, wrong) = new_key(1);
    let refused = open(&app, &wrong).await.expect_err("refused");
    assert!(
        matches!(refused, VaultError::WrongMasterKey { version: 1 }),
        "{refused}"
    );
    let rejected = app.audit_rows("vault_key_rejected", 1).await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["severity"], "high");

    // A key version the vault does not know opens, but reads nothing it cannot.
    let (_, unknown) = new_key(7);
    let other = open(&app, &unknown)
        .await
        .expect("an unknown version opens");
    assert!(matches!(
        other.load_all().await,
        Err(VaultError::KeyVersion {
            found: 1,
            have: 7,
            ..
        })
    ));

    // An altered ciphertext does not decrypt.
    sqlx::query(
        "update studyflow_vault.provider_secrets set ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)",
    )
    .execute(&app.db)
    .await
    .expect("tamper");
    assert!(matches!(
        vault.load_all().await,
        Err(VaultError::Tampered { .. })
    ));
    app.finish().await;
}

/// One read: when it started and ended, and whether it returned every value.
type Read = (Instant, Instant, Result<(), String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_concurrent_reads_never_fails_a_read() {
    let app = TestApp::start("vault_rotation").await;
    let (_, old) = new_key(1);
    let vault = open(&app, &old).await.expect("opens");
    let mut expected = BTreeMap::new();
    for n in 0..120 {
        let name = format!("secret-{n:03}");
        let value = format!("value-{n}-{}", uuid::Uuid::new_v4());
        vault
            .put_named(&name, &SecretString::from(value.clone()))
            .await
            .expect("stored");
        expected.insert(name, value);
    }
    let expected = Arc::new(expected);

    // Readers on the old key (the servers not yet given the new one) read all along.
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Read>>> = Arc::default();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (vault, expected, stop, log) =
                (vault.clone(), expected.clone(), stop.clone(), log.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = match vault.read_all().await {
                        Ok(read) => {
                            let read: BTreeMap<String, String> = read
                                .into_iter()
                                .map(|(k, v)| (k, v.expose_secret().to_owned()))
                                .collect();
                            if read == *expected {
                                Ok(())
                            } else {
                                Err("a read returned other values".into())
                            }
                        }
                        Err(error) => Err(error.to_string()),
                    };
                    if let Ok(mut log) = log.lock() {
                        log.push((started, Instant::now(), result));
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, new) = new_key(2);
    let rotation_started = Instant::now();
    let rotation = vault.rotate(&new).await.expect("rotated");
    let rotation_ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader");
    }
    assert_eq!((rotation.from, rotation.to, rotation.rotated), (1, 2, 120));

    let log = log.lock().expect("log").clone();
    let failed: Vec<&String> = log
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().err())
        .collect();
    assert!(failed.is_empty(), "failed reads: {failed:?}");
    let during = log
        .iter()
        .filter(|(start, end, _)| *start >= rotation_started && *end <= rotation_ended)
        .count();
    println!(
        "{} reads, {during} of them during the rotation ({:?})",
        log.len(),
        rotation_ended - rotation_started
    );
    assert!(during > 0, "no read ran while the rotation did");

    // The new key reads everything; both keys read until the rotation is finished.
    let newer = open(&app, &new).await.expect("opens");
    let read = newer.read_all().await.expect("new key reads");
    assert_eq!(read.len(), 120);
    assert!(
        list_rows(&app.db)
            .await
            .expect("list")
            .iter()
            .all(|row| row.key_version == 2 && row.previous_key_version == Some(1))
    );
    // Resuming is harmless.
    let again = vault.rotate(&new).await.expect("resumed");
    assert_eq!((again.rotated, again.already), (0, 120));
    // The old key cannot write any more: servers on the new key could not read it.
    assert!(matches!(
        vault.put_named("late", &SecretString::from("x")).await,
        Err(VaultError::StaleKey { have: 1, newest: 2 })
    ));

    assert_eq!(newer.finish_rotation().await.expect("finished"), 120);
    assert!(matches!(
        vault.read_all().await,
        Err(VaultError::KeyVersion { have: 1, .. })
    ));
    assert_eq!(newer.read_all().await.expect("reads").len(), 120);
    for event in [
        "vault_rotation_started",
        "vault_rotation_completed",
        "vault_rotation_finished",
    ] {
        assert!(!app.audit_rows(event, 1).await.is_empty(), "{event}");
    }
    app.finish().await;
}

#[tokio::test]
async fn provider_calls_use_the_vault_key_before_the_configured_one() {
    let (text, key) = new_key(1);
    let app = TestApp::start_with("vault_providers", |c| {
        c.providers.openai.api_key = None;
        c.vault
            .set_master_key(Some(text.clone()))
            .expect("master key");
        c.vault.refresh_secs = 1;
    })
    .await;
    let vault = open(&app, &key).await.expect("opens");
    vault
        .put(Provider::OpenAi, &SecretString::from("sk-from-the-vault-1"))
        .await
        .expect("stored");
    let refresh = app.state.open_vault().await.expect("the vault is read");

    let (loaded, source) = app.state.keys.lookup(Provider::OpenAi).expect("a key");
    assert_eq!(
        (loaded.expose_secret(), source),
        ("sk-from-the-vault-1", KeySource::Vault)
    );
    let (_, source) = app.state.keys.lookup(Provider::DeepSeek).expect("a key");
    assert_eq!(
        source,
        KeySource::Config,
        "not in the vault: the configured key"
    );

    // ai-proxy's OpenAI call works with the vault's key alone.
    let answer = app.ai_proxy_completion("openai", "Hello").await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // A new key in the vault reaches the running backend at its next refresh.
    vault
        .put(Provider::OpenAi, &SecretString::from("sk-from-the-vault-2"))
        .await
        .expect("replaced");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = app.state.keys.get(Provider::OpenAi).expect("a key");
        if current.expose_secret() == "sk-from-the-vault-2" {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh never picked it up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads = app.audit_rows("vault_read", 2).await;
    assert_eq!(reads.len(), 2, "the first read and the change");
    assert_eq!(
        reads[1]["details"]["fingerprints"]["openai"],
        fingerprint("sk-from-the-vault-2")
    );
    refresh.abort();
    app.finish().await;
}

/// Captures every log line of the test (current-thread runtime: every task of the test
/// logs on this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn nothing_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (text, key) = new_key(1);
    let app = TestApp::start_with("vault_logs", |c| {
        c.providers.gemini.api_key = None;
        c.vault
            .set_master_key(Some(text.clone()))
            .expect("master key");
    })
    .await;
    let secrets = [
        ("gemini", "AIza-gemini-secret-value-42"),
        ("openai", "sk-openai-secret-value-42"),
    ];
    let vault = open(&app, &key).await.expect("opens");
    for (provider, secret) in secrets {
        let provider = Provider::parse(provider).expect("provider");
        vault
            .put(provider, &SecretString::from(secret))
            .await
            .expect("stored");
    }
    let refresh = app.state.open_vault().await.expect("opened");
    // Calls that carry the keys: Gemini's legacy call puts it in the URL's query.
    for provider in ["gemini", "openai"] {
        let answer = app.ai_proxy_completion(provider, "Hi").await;
        assert_eq!(answer.status, 200, "{provider}: {}", answer.text);
    }
    // A failing call (the URL is in reqwest's error), a rotation, a wrong key.
    let answer = app.ai_proxy_completion("gemini", "Hi [[fake:drop]]").await;
    assert_eq!(answer.status, 500);
    let (new_text, new) = new_key(2);
    vault.rotate(&new).await.expect("rotated");
    let (_, wrong) = new_key(1);
    assert!(open(&app, &wrong).await.is_err());
    let _ = app.audit_rows("vault_key_rejected", 1).await;
    refresh.abort();
    app.finish().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(
        logs.contains(&fingerprint(secrets[0].1)),
        "vault reads are logged (by fingerprint)"
    );
    for (_, secret) in secrets {
        assert!(!logs.contains(secret), "a provider key is in the logs");
    }
    for master in [text.expose_secret(), new_text.expose_secret()] {
        assert!(!logs.contains(master), "a master key is in the logs");
    }
}
