//! Where the keys that seal stored secrets come from (`seal.rs`): `secret_key_file`,
//! `HOOKLINE_SECRET_KEY`, or, on SQLite with neither, `hookline.key` beside the database,
//! made on first use. PostgreSQL has no such default: its replicas must share one key, so
//! a key the operator made is required.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ConfigError;
use crate::seal::{Keyring, generate};
use crate::secret::Secret;

/// The name of the key file made beside a SQLite database.
pub const DEFAULT_KEY_FILE: &str = "hookline.key";

/// Where the sealing keys come from, once resolved.
#[derive(Debug, Clone)]
pub enum SecretKeys {
    /// The operator gave them (a file or the environment).
    Given(Arc<Keyring>),
    /// None given: `hookline.key` beside a SQLite database, made on first use.
    BesideDatabase,
}

/// How to make a key file, for messages that ask for one.
pub const HOW_TO_MAKE_ONE: &str = "make one with `hookline keys generate > hookline.key` (chmod 600, back it up apart from the database) and pass --secret-key-file hookline.key (or HOOKLINE_SECRET_KEY)";

/// The keys of `secret_key_file` or `secret_key`; refusing both at once, or one that
/// holds no valid key (the message names the option, never a key).
pub(super) fn resolve(
    file: Option<&Path>,
    inline: Option<&Secret>,
) -> Result<SecretKeys, ConfigError> {
    let invalid = |option, reason: String| ConfigError::Invalid { option, reason };
    match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(
            "secret_key_file/secret_key",
            "both are set: give the keys one way".into(),
        )),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "secret_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let keys = Keyring::parse(&text)
                .map_err(|e| invalid("secret_key_file", format!("{}: {e}", path.display())))?;
            Ok(SecretKeys::Given(Arc::new(keys)))
        }
        (None, Some(keys)) => {
            let keys = Keyring::parse(keys.expose()).map_err(|e| invalid("secret_key", e))?;
            Ok(SecretKeys::Given(Arc::new(keys)))
        }
        (None, None) => Ok(SecretKeys::BesideDatabase),
    }
}

/// The keys for the database `db`, and the key file if this call made it. With no key
/// given: on SQLite the key file beside the database, made (mode 0600) if absent; on
/// PostgreSQL an error that says how to make one.
pub fn keyring_for(keys: &SecretKeys, db: &str) -> Result<(Arc<Keyring>, Option<PathBuf>), String> {
    if let SecretKeys::Given(keys) = keys {
        return Ok((keys.clone(), None));
    }
    let Some(path) = db.strip_prefix("sqlite://") else {
        return Err(format!(
            "PostgreSQL needs a secret key shared by every replica to seal stored secrets: {HOW_TO_MAKE_ONE}"
        ));
    };
    let path = Path::new(path.split('?').next().unwrap_or_default());
    let file = path
        .parent()
        .unwrap_or(Path::new(""))
        .join(DEFAULT_KEY_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => Keyring::parse(&text)
            .map(|keys| (Arc::new(keys), None))
            .map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let made = make_key_file(&file)
                .map_err(|e| format!("cannot make the key file {}: {e}", file.display()))?;
            Ok((Arc::new(made), Some(file)))
        }
        Err(e) => Err(format!("cannot read the key file {}: {e}", file.display())),
    }
}

/// Writes a new key to `file`, which must not exist, readable by its owner only.
fn make_key_file(file: &Path) -> std::io::Result<Keyring> {
    let key = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file)?;
    writeln!(
        out,
        "# hookline's secret keys, newest first: back this file up apart from the database.\n{key}"
    )?;
    out.sync_all()?;
    Keyring::parse(&key).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_database_gets_its_key_file_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("hookline.db").display());
        let (first, made) = keyring_for(&SecretKeys::BesideDatabase, &db).expect("made");
        let file = made.expect("a new file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, made) = keyring_for(&SecretKeys::BesideDatabase, &db).expect("read");
        assert!(made.is_none());
        assert_eq!(first.ids(), again.ids());
        let error = keyring_for(&SecretKeys::BesideDatabase, "postgres://db/x").unwrap_err();
        assert!(error.contains("hookline keys generate"), "{error}");
    }

    #[test]
    fn keys_come_one_way() {
        let key = Secret::new(generate());
        assert!(matches!(
            resolve(None, Some(&key)),
            Ok(SecretKeys::Given(_))
        ));
        assert!(resolve(Some(Path::new("/nonexistent")), Some(&key)).is_err());
        let error = resolve(None, Some(&Secret::new("short"))).unwrap_err();
        assert!(!error.to_string().contains("short"), "{error}");
    }
}
