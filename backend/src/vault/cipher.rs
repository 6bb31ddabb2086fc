//! The master key and AES-256-GCM sealing of one secret.
//!
//! Each secret is sealed with a fresh random 96-bit nonce, and with associated data
//! naming the provider and the key version, so a ciphertext copied onto another row or
//! relabelled with another version fails to open instead of decrypting as the wrong key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Length of an AES-256 key.
pub const KEY_BYTES: usize = 32;
/// Length of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;

/// A master key with its version. Never prints its bytes.
#[derive(Clone)]
pub struct MasterKey {
    version: u32,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A secret sealed under a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub version: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A plaintext could not be sealed (too long).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the secret could not be encrypted")]
pub struct SealError;

/// A ciphertext did not open: another key, another row, or altered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ciphertext does not open with this key")]
pub struct OpenError;

impl MasterKey {
    /// `text` is base64 (standard alphabet) of exactly 32 bytes. The error never quotes it.
    pub fn from_base64(text: &SecretString, version: u32) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.expose_secret().trim())
            .map_err(|_| "is not base64".to_owned())?;
        if bytes.len() != KEY_BYTES {
            return Err(format!(
                "must be {KEY_BYTES} bytes (base64 of 32 random bytes), not {}",
                bytes.len()
            ));
        }
        if version == 0 {
            return Err("key version must be at least 1".into());
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| "bad key length".to_owned())?;
        Ok(Self { version, cipher })
    }

    /// A fresh random key, base64-encoded (what `vault generate-key` prints).
    pub fn generate_base64() -> SecretString {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let text = STANDARD.encode(bytes);
        bytes.fill(0);
        SecretString::from(text)
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Seals `plaintext` for `label` (the provider, or the key check). Fails only for
    /// inputs over 64 GiB.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(label, self.version);
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        Ok(Sealed {
            version: self.version,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens what [`MasterKey::seal`] sealed for `label` under this key's version.
    pub fn open(&self, label: &str, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        if sealed.version != self.version {
            return Err(OpenError);
        }
        let nonce: [u8; NONCE_BYTES] = sealed.nonce.as_slice().try_into().map_err(|_| OpenError)?;
        let aad = associated_data(label, sealed.version);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }
}

fn associated_data(label: &str, version: u32) -> String {
    format!("studyflow-vault/v1/{label}/{version}")
}

/// What may be shown of a secret: `sha256:` and the first 16 hex digits of its digest.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: u32) -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64(), version).expect("valid key")
    }

    #[test]
    fn seals_and_opens_only_with_the_same_key_label_and_version() {
        let key = key(1);
        let sealed = key.seal("openai", b"sk-secret").expect("sealed");
        assert_eq!(sealed.version, 1);
        assert_ne!(sealed.ciphertext, b"sk-secret");
        assert_eq!(key.open("openai", &sealed).expect("opens"), b"sk-secret");
        assert_eq!(key.open("gemini", &sealed), Err(OpenError), "another row");
        let mut relabelled = sealed.clone();
        relabelled.version = 2;
        assert_eq!(key.open("openai", &relabelled), Err(OpenError));
        let other = self::key(1);
        assert_eq!(other.open("openai", &sealed), Err(OpenError), "another key");
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(key.open("openai", &altered), Err(OpenError));
        let nonce = |k: &MasterKey| k.seal("openai", b"x").expect("sealed").nonce;
        assert_ne!(nonce(&key), nonce(&key), "a fresh nonce each time");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_never_print() {
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        let error = MasterKey::from_base64(&short, 1).expect_err("too short");
        assert!(error.contains("32 bytes"), "{error}");
        assert!(MasterKey::from_base64(&SecretString::from("%%%"), 1).is_err());
        let text = SecretString::from(STANDARD.encode([7u8; 32]));
        let key = MasterKey::from_base64(&text, 3).expect("valid");
        let printed = format!("{key:?}");
        assert!(
            printed.contains("version: 3") && !printed.contains("BwcH"),
            "{printed}"
        );
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("abc"), "sha256:ba7816bf8f01cfea");
        assert_eq!(fingerprint("abc").len(), 23);
    }
}
