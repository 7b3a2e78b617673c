//! Secrets: a `Secret` string that never prints, and encryption at rest of mail and SMTP
//! passwords with a key file kept apart from the database.
//!
//! Owns: the key file (`postroom.key` in the data dir, or `POSTROOM_KEY_FILE`; 32 random
//! bytes, mode 0600, created on first need) and the sealed format
//! `v1 | 12-byte nonce | ChaCha20-Poly1305 ciphertext+tag`.
//! Must not: log, print or `Debug`-format a secret in clear, or store a key in the store.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the key file inside the data dir.
pub const KEY_FILE: &str = "postroom.key";
const SEALED_V1: u8 = 1;

/// A secret string (a password). Prints as `***` in `Display` and `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The clear text, for the one place that must send it (a login command).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The key file is missing, unreadable, or does not open a sealed secret.
#[derive(Debug)]
pub enum SecretError {
    KeyFile { path: PathBuf, detail: String },
    Open { what: String },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::KeyFile { path, detail } => write!(
                f,
                "the key file {} cannot be used: {detail}. It holds the key for stored passwords; restore it from your backup, or re-enter the passwords",
                path.display()
            ),
            SecretError::Open { what } => write!(
                f,
                "the stored password of {what} cannot be decrypted with this key file (a different {KEY_FILE}?). Enter the password again"
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// The key that seals stored passwords.
pub struct Keyring {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(***)")
    }
}

/// Where the key file is for a data dir.
pub fn key_path(data: &Path) -> PathBuf {
    match std::env::var_os("POSTROOM_KEY_FILE").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => data.join(KEY_FILE),
    }
}

impl Keyring {
    /// Loads the key file, creating it (0600) with a fresh random key if it is missing.
    pub fn load_or_create(path: &Path) -> Result<Keyring, SecretError> {
        let err = |detail: String| SecretError::KeyFile {
            path: path.to_owned(),
            detail,
        };
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rng.fill(&mut key)
                    .map_err(|_| err("the system random generator failed".into()))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
                f.write_all(&key)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                log::info!(
                    "created the key file {} for stored passwords; back it up with the data",
                    path.display()
                );
                key.to_vec()
            }
            Err(e) => return Err(err(e.to_string())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path)
                && m.permissions().mode() & 0o077 != 0
            {
                log::warn!(
                    "the key file {} is readable by others; fixing its mode to 0600",
                    path.display()
                );
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
        if bytes.len() != 32 {
            return Err(err(format!("it has {} bytes, a key has 32", bytes.len())));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| err("not a valid key".into()))?;
        Ok(Keyring {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    /// Encrypts a secret; `context` (e.g. `account:support`) is bound to the ciphertext so
    /// a sealed password cannot be moved to another record.
    pub fn seal(&self, secret: &Secret, context: &str) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce).map_err(|_| SecretError::Open {
            what: context.into(),
        })?;
        let mut data = secret.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Open {
                what: context.into(),
            })?;
        let mut out = Vec::with_capacity(1 + 12 + data.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Decrypts what `seal` made with the same context.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Secret, SecretError> {
        let bad = || SecretError::Open {
            what: context.into(),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(bad)?;
        if version != SEALED_V1 || rest.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = rest.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = ct.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| bad())?;
        String::from_utf8(clear.to_vec())
            .map(Secret)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let k = Keyring::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let sealed = k.seal(&Secret::new("pässwörd"), "account:support").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"p\xc3\xa4s"));
        assert_eq!(
            k.open(&sealed, "account:support").unwrap().expose(),
            "pässwörd"
        );
        assert!(k.open(&sealed, "account:other").is_err());
        // The same key file opens it again after a restart.
        let again = Keyring::load_or_create(&path).unwrap();
        assert_eq!(
            again.open(&sealed, "account:support").unwrap().expose(),
            "pässwörd"
        );
        // Another key does not.
        let other = Keyring::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open(&sealed, "account:support").is_err());
    }
}
