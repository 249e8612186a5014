//! Local password authentication of `root` for the embedded default (PAM replaces it when
//! installed): the password is stored only as an argon2 hash in the state directory.
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::Mutex;
use rand::Rng;

use crate::config::AuthMode;

/// Checks passwords: root's against the stored hash, or everyone's through PAM.
pub struct Auth {
    mode: AuthMode,
    pam_service: String,
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
    /// Loads or creates `<state>/root-password.argon2`; `mode` picks how logins are checked.
    pub fn setup(
        state_dir: &Path,
        from_env: Option<&str>,
        mode: AuthMode,
        pam_service: &str,
    ) -> std::io::Result<(Auth, PasswordSetup)> {
        if mode == AuthMode::Pam && !cfg!(feature = "pam") {
            return Err(std::io::Error::other(
                "auth = pam needs a build with the `pam` feature",
            ));
        }
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
        let auth = Auth {
            mode,
            pam_service: pam_service.to_owned(),
            hash,
            verified: Mutex::new(None),
            keys: Default::default(),
        };
        Ok((auth, setup))
    }

    /// Whether `user` may log in with `password` (blocking: PAM may take its time).
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.mode {
            AuthMode::Local => user == "root" && self.check_root(password),
            AuthMode::Pam => pam_check(&self.pam_service, user, password),
        }
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

#[cfg(feature = "pam")]
fn pam_check(service: &str, user: &str, password: &str) -> bool {
    let mut client = match pam::Client::with_password(service) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(service, error = %e, "cannot start PAM");
            return false;
        }
    };
    client.conversation_mut().set_credentials(user, password);
    client.authenticate().is_ok()
}

#[cfg(not(feature = "pam"))]
fn pam_check(_: &str, _: &str, _: &str) -> bool {
    false
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
        let (auth, setup) = Auth::setup(dir.path(), None, AuthMode::Local, "xapi").unwrap();
        let PasswordSetup::Generated(pw) = setup else {
            panic!("expected a generated password")
        };
        assert!(auth.check_root(&pw));
        assert!(!auth.check_root("wrong"));
        let (again, setup) = Auth::setup(dir.path(), None, AuthMode::Local, "xapi").unwrap();
        assert!(matches!(setup, PasswordSetup::Existing));
        assert!(again.check_root(&pw));
    }

    #[test]
    fn environment_password_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        Auth::setup(dir.path(), Some("first"), AuthMode::Local, "xapi").unwrap();
        let (auth, _) = Auth::setup(dir.path(), Some("second"), AuthMode::Local, "xapi").unwrap();
        assert!(auth.check_root("second"));
        assert!(!auth.check_root("first"));
        let stored = std::fs::read_to_string(dir.path().join("root-password.argon2")).unwrap();
        assert!(
            !stored.contains("second"),
            "the password itself is never stored"
        );
    }
}
