//! The encrypted credentials store: broker secrets at rest, readable only
//! with the operator's passphrase.
//!
//! File (JSON, mode 0600): format version, Argon2id parameters and salt, a
//! passphrase verifier, the AES-256-GCM nonce and the ciphertext. Argon2id
//! turns the passphrase into 64 bytes: the first 32 are the encryption key,
//! the SHA-256 of the last 32 is the verifier. So a wrong passphrase is told
//! apart from a damaged or tampered file, and the header (parameters, salt,
//! verifier) is authenticated as the cipher's associated data: changing any
//! byte of the file is detected.
//!
//! Secrets are zeroised when dropped and never printed: `Debug` shows them
//! masked.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no credentials file at {0}: create it with `stratbox credentials set capital`")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("wrong passphrase for {0}")]
    WrongPassphrase(PathBuf),
    #[error("{path} has been damaged or tampered with ({why}); it cannot be trusted")]
    Tampered { path: PathBuf, why: String },
    #[error("{path} has format {found}, this build reads format {FORMAT}")]
    Format { path: PathBuf, found: u32 },
    #[error("the passphrase must be at least 12 characters")]
    WeakPassphrase,
}

/// Secrets of the Capital.com API.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct CapitalCredentials {
    pub api_key: String,
    pub identifier: String,
    pub password: String,
}

fn mask(s: &str) -> String {
    if s.is_empty() { "(empty)".into() } else { format!("*** ({} chars)", s.chars().count()) }
}

impl std::fmt::Debug for CapitalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapitalCredentials")
            .field("api_key", &mask(&self.api_key))
            .field("identifier", &mask(&self.identifier))
            .field("password", &mask(&self.password))
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Kdf {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    format: u32,
    kdf: Kdf,
    verifier: String,
    nonce: String,
    ciphertext: String,
}

impl Envelope {
    /// What the cipher authenticates besides the ciphertext.
    fn associated_data(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.format, &self.kdf, &self.verifier)).expect("serialisable")
    }
}

/// The most work a credentials file may ask of the key derivation: the file
/// is read before it is authenticated, so its costs are an attacker's word.
const MAX_M_COST_KIB: u32 = 1 << 20; // 1 GiB
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

/// Key and verifier from the passphrase.
fn derive(passphrase: &str, kdf: &Kdf) -> Result<(Zeroizing<[u8; 32]>, String), String> {
    if kdf.m_cost_kib > MAX_M_COST_KIB || kdf.t_cost > MAX_T_COST || kdf.p_cost > MAX_P_COST {
        return Err(format!(
            "argon2 costs m={} KiB, t={}, p={} are past what this host accepts (m <= {MAX_M_COST_KIB}, t <= {MAX_T_COST}, p <= {MAX_P_COST})",
            kdf.m_cost_kib, kdf.t_cost, kdf.p_cost
        ));
    }
    let salt = hex::decode(&kdf.salt).map_err(|e| format!("salt: {e}"))?;
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(64)).map_err(|e| format!("argon2 parameters: {e}"))?;
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|e| format!("argon2: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&out[..32]);
    Ok((key, hex::encode(Sha256::digest(&out[32..]))))
}

/// The credentials file of a data directory.
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts and writes `creds` (mode 0600, atomically).
    pub fn save(&self, passphrase: &str, creds: &CapitalCredentials) -> Result<(), CredentialsError> {
        if passphrase.chars().count() < 12 {
            return Err(CredentialsError::WeakPassphrase);
        }
        let io = |source| CredentialsError::Io { path: self.path.clone(), source };
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        // OWASP's Argon2id guidance: 19 MiB, 2 passes, 1 lane (and more is fine).
        let kdf = Kdf { algorithm: "argon2id".into(), m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1, salt: hex::encode(salt) };
        let (key, verifier) = derive(passphrase, &kdf).map_err(|why| CredentialsError::Tampered { path: self.path.clone(), why })?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_ref()));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut envelope = Envelope { format: FORMAT, kdf, verifier, nonce: hex::encode(nonce), ciphertext: String::new() };
        let plain = Zeroizing::new(serde_json::to_vec(creds).expect("serialisable"));
        let aad = envelope.associated_data();
        let sealed = cipher.encrypt(&nonce, Payload { msg: &plain, aad: &aad }).expect("AES-GCM encryption does not fail");
        envelope.ciphertext = hex::encode(sealed);
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            stratbox_contract::util::create_private_dir(parent).map_err(io)?;
        }
        stratbox_contract::util::write_atomic(&self.path, &serde_json::to_vec_pretty(&envelope).expect("serialisable"), true).map_err(io)
    }

    /// Decrypts the credentials.
    pub fn load(&self, passphrase: &str) -> Result<CapitalCredentials, CredentialsError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CredentialsError::Missing(self.path.clone())),
            Err(source) => return Err(CredentialsError::Io { path: self.path.clone(), source }),
        };
        let tampered = |why: String| CredentialsError::Tampered { path: self.path.clone(), why };
        let envelope: Envelope = serde_json::from_slice(&text).map_err(|e| tampered(format!("not a credentials file: {e}")))?;
        if envelope.format != FORMAT {
            return Err(CredentialsError::Format { path: self.path.clone(), found: envelope.format });
        }
        if envelope.kdf.algorithm != "argon2id" {
            return Err(tampered(format!("unknown key derivation `{}`", envelope.kdf.algorithm)));
        }
        let (key, verifier) = derive(passphrase, &envelope.kdf).map_err(tampered)?;
        if verifier != envelope.verifier {
            return Err(CredentialsError::WrongPassphrase(self.path.clone()));
        }
        let nonce = hex::decode(&envelope.nonce).ok().filter(|n| n.len() == 12).ok_or_else(|| tampered("bad nonce".into()))?;
        let sealed = hex::decode(&envelope.ciphertext).map_err(|e| tampered(format!("ciphertext: {e}")))?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_ref()));
        let aad = envelope.associated_data();
        let plain = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad: &aad })
                .map_err(|_| tampered("authentication failed".into()))?,
        );
        serde_json::from_slice(&plain).map_err(|e| tampered(format!("contents: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> CapitalCredentials {
        CapitalCredentials { api_key: "KEY-123456".into(), identifier: "trader@example.com".into(), password: "hunter2-but-longer".into() }
    }

    #[test]
    fn round_trip_wrong_passphrase_and_tampering_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path().join("credentials.json"));
        assert!(matches!(store.load("x"), Err(CredentialsError::Missing(_))));
        assert!(matches!(store.save("short", &creds()), Err(CredentialsError::WeakPassphrase)));
        store.save("correct horse battery staple", &creds()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(store.path()).unwrap();
        for secret in ["KEY-123456", "trader@example.com", "hunter2"] {
            assert!(!text.contains(secret), "the file holds no secret in clear");
        }
        assert_eq!(store.load("correct horse battery staple").unwrap(), creds());
        let e = store.load("incorrect horse battery staple").unwrap_err();
        assert!(matches!(e, CredentialsError::WrongPassphrase(_)), "{e}");
        assert!(e.to_string().starts_with("wrong passphrase for"));

        // Flip one hex digit of the ciphertext, then of the salt: both detected.
        let mut env: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ct = env["ciphertext"].as_str().unwrap().to_owned();
        env["ciphertext"] = format!("{}{}", if ct.starts_with('0') { '1' } else { '0' }, &ct[1..]).into();
        std::fs::write(store.path(), env.to_string()).unwrap();
        let e = store.load("correct horse battery staple").unwrap_err();
        assert!(matches!(e, CredentialsError::Tampered { .. }), "{e}");
        let mut env: serde_json::Value = serde_json::from_str(&text).unwrap();
        env["nonce"] = "00".repeat(12).into();
        std::fs::write(store.path(), env.to_string()).unwrap();
        assert!(matches!(store.load("correct horse battery staple"), Err(CredentialsError::Tampered { .. })));

        // Costs are read before the file is authenticated: a tampered file asking for
        // 4 TiB of memory is refused before any is allocated.
        let mut env: serde_json::Value = serde_json::from_str(&text).unwrap();
        env["kdf"]["m_cost_kib"] = u32::MAX.into();
        std::fs::write(store.path(), env.to_string()).unwrap();
        let e = store.load("correct horse battery staple").unwrap_err();
        assert!(matches!(&e, CredentialsError::Tampered { why, .. } if why.contains("past what this host accepts")), "{e}");
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!("{:?}", creds());
        assert!(!shown.contains("KEY-123456") && !shown.contains("hunter2") && !shown.contains("trader@"), "{shown}");
        assert!(shown.contains("*** (10 chars)"));
    }
}
