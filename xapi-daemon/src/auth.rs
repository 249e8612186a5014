//! Local password authentication of `root` for the embedded default (PAM replaces it when
//! installed): the password is stored only as an argon2 hash in the state directory.
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::Mutex;
use rand::Rng;

/// Verifies the root password against the stored hash.
pub struct Auth {
    hash: String,
    /// A keyed digest of the last password that verified, so repeated logins skip argon2.
    /// In memory only; the key is random per process.
    verified: Mutex<Option<u64>>,
    keys: std::collections::hash_map::RandomState,
}

/// What happened to the root password at start-up.
pub enum PasswordSetup {
    /// A stored hash was used as it is.
    Existing,
    /// `XAPI_ROOT_PASSWORD` was hashed and stored.
    FromEnvironment,
    /// A new password was generated; print it once.
    Generated(String),
}

impl Auth {
    /// Loads or creates `<state>/root-password.argon2`.
    pub fn setup(
        state_dir: &Path,
        from_env: Option<&str>,
    ) -> std::io::Result<(Auth, PasswordSetup)> {
        let path = hash_path(state_dir);
        let stored = std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_owned());
        let (hash, setup) = match (from_env, stored) {
            (Some(pw), Some(h)) if verify_hash(&h, pw) => (h, PasswordSetup::Existing),
            (Some(pw), _) => (write_hash(&path, pw)?, PasswordSetup::FromEnvironment),
            (None, Some(h)) if PasswordHash::new(&h).is_ok() => (h, PasswordSetup::Existing),
            (None, _) => {
                let pw = generate_password();
                (write_hash(&path, &pw)?, PasswordSetup::Generated(pw))
            }
        };
        Ok((
            Auth {
                hash,
                verified: Mutex::new(None),
                keys: Default::default(),
            },
            setup,
        ))
    }

    /// Whether `password` is root's.
    pub fn check_root(&self, password: &str) -> bool {
        let digest = self.digest(password);
        if *self.verified.lock() == Some(digest) {
            return true;
        }
        let ok = verify_hash(&self.hash, password);
        if ok {
            *self.verified.lock() = Some(digest);
        }
        ok
    }

    fn digest(&self, password: &str) -> u64 {
        self.keys.hash_one(password)
    }
}

fn hash_path(state_dir: &Path) -> PathBuf {
    state_dir.join("root-password.argon2")
}

fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn write_hash(path: &Path, password: &str) -> std::io::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .to_string();
    crate::files::write_private(path, hash.as_bytes())?;
    Ok(hash)
}

fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_verifies_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, setup) = Auth::setup(dir.path(), None).unwrap();
        let PasswordSetup::Generated(pw) = setup else {
            panic!("expected a generated password")
        };
        assert!(auth.check_root(&pw));
        assert!(!auth.check_root("wrong"));
        let (again, setup) = Auth::setup(dir.path(), None).unwrap();
        assert!(matches!(setup, PasswordSetup::Existing));
        assert!(again.check_root(&pw));
    }

    #[test]
    fn environment_password_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        Auth::setup(dir.path(), Some("first")).unwrap();
        let (auth, _) = Auth::setup(dir.path(), Some("second")).unwrap();
        assert!(auth.check_root("second"));
        assert!(!auth.check_root("first"));
        let stored = std::fs::read_to_string(dir.path().join("root-password.argon2")).unwrap();
        assert!(
            !stored.contains("second"),
            "the password itself is never stored"
        );
    }
}
