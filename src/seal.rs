//! Secrets sealed at rest: every stored credential (webhook signing secrets, custom header
//! values, credential URLs, registry passwords) is kept in the database as
//! `sealed:v1:KEYID:BASE64`, an AEAD ciphertext under the operator's key.
//!
//! [`Keyring`] holds the operator's keys, newest first: the newest seals, every one opens,
//! so a rotation lists the new key first and the old ones after it until `hookline keys
//! rewrap` has re-sealed everything. ChaCha20-Poly1305 (ring) with a random 96-bit nonce
//! per value; the associated data is where the value lives (`table.column:row id`), so a
//! ciphertext copied into another row or column does not open. A key's id is derived from
//! the key itself, so nobody has to name keys, and a value names the key it needs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// What every sealed value starts with.
pub const PREFIX: &str = "sealed:v1:";

/// A key's length: 32 random bytes.
pub const KEY_LEN: usize = 32;

/// One key and its id.
struct Key {
    id: String,
    key: LessSafeKey,
}

/// The operator's keys, newest first. Empty: nothing can be sealed or opened.
#[derive(Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids())
            .finish()
    }
}

/// Why a value could not be sealed or opened; it never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The keyring is empty.
    #[error(
        "no secret key is configured: set secret_key_file (or HOOKLINE_SECRET_KEY) to a file of base64 keys made with `hookline keys generate`"
    )]
    NoKey,
    /// A value names a key the keyring lacks.
    #[error(
        "a stored secret is sealed under key {missing}, which is not among the configured keys ({have}): add that key to secret_key_file (after the newest)"
    )]
    MissingKey {
        /// The key id the value needs.
        missing: String,
        /// The key ids there are.
        have: String,
    },
    /// A value does not open under its key: altered, or moved to another place.
    #[error("a stored secret sealed under key {key_id} does not open: it was altered or moved")]
    Corrupt {
        /// The key it names.
        key_id: String,
    },
}

impl Keyring {
    /// A keyring of these keys, newest first.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring {
            keys: keys
                .iter()
                .map(|raw| Key {
                    id: key_id(raw),
                    key: LessSafeKey::new(
                        UnboundKey::new(&CHACHA20_POLY1305, raw).expect("a 32-byte key"),
                    ),
                })
                .collect(),
        }
    }

    /// Keys as written in a key file or `HOOKLINE_SECRET_KEY`: base64 keys separated by
    /// lines or commas, newest first; blank lines and `#` comments are skipped. The error
    /// says which one is wrong (by position, never by value).
    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        let entries = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (i, entry) in entries.enumerate() {
            let raw = STANDARD
                .decode(entry)
                .ok()
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .ok_or(format!(
                    "key {} is not {KEY_LEN} bytes in base64 (make one with `hookline keys generate`)",
                    i + 1
                ))?;
            keys.push(raw);
        }
        if keys.is_empty() {
            return Err("holds no key (make one with `hookline keys generate`)".into());
        }
        Ok(Keyring::new(&keys))
    }

    /// Whether it has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys' ids, newest first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that seals.
    pub fn current(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// `plain` sealed under the newest key, for the place `place` (`table.column:id`).
    pub fn seal(&self, place: &str, plain: &str) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::NoKey)?;
        let mut sealed = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Corrupt {
                key_id: key.id.clone(),
            })?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, STANDARD.encode(bytes)))
    }

    /// The value `stored` at `place` holds: opened if sealed, as it is if not (a value
    /// stored before sealing, until `keys rewrap` or the start-up seals it).
    pub fn open(&self, place: &str, stored: &str) -> Result<String, SealError> {
        let Some((key_id, body)) = split(stored) else {
            return Ok(stored.to_owned());
        };
        let key = self.key(key_id)?;
        let corrupt = || SealError::Corrupt {
            key_id: key_id.to_owned(),
        };
        let bytes = STANDARD.decode(body).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut sealed)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }

    /// Whether `stored` needs sealing anew: plaintext, or sealed under an older key. A
    /// value under a key this keyring lacks is an error.
    pub fn stale(&self, stored: &str) -> Result<bool, SealError> {
        match split(stored) {
            None => Ok(true),
            Some((key_id, _)) => {
                self.key(key_id)?;
                Ok(Some(key_id) != self.current())
            }
        }
    }

    fn key(&self, id: &str) -> Result<&Key, SealError> {
        if self.keys.is_empty() {
            return Err(SealError::NoKey);
        }
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::MissingKey {
                missing: id.to_owned(),
                have: self.ids().join(", "),
            })
    }
}

/// Where a value lives, as its associated data: `table.column:row id`.
pub fn place(column: &str, id: &str) -> String {
    format!("{column}:{id}")
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// A sealed value's key id and ciphertext.
fn split(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

/// A key's id: the first 4 bytes of a SHA-256 over it, in hex, after `k`. It names the
/// key without revealing it.
pub fn key_id(raw: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"hookline secret key id\0")
        .chain_update(raw)
        .finalize();
    format!("k{}", crate::secret::hex(&digest[..4]))
}

/// A new random key, in base64 (a line of a key file).
pub fn generate() -> String {
    let mut raw = [0u8; KEY_LEN];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(keys: &[&str]) -> Keyring {
        Keyring::parse(&keys.join("\n")).expect("keys")
    }

    #[test]
    fn seals_opens_and_binds_the_place() {
        let keys = ring_of(&[&generate()]);
        let sealed = keys
            .seal("webhooks.headers:wh_1", "{\"X\":\"tok\"}")
            .unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("tok"));
        assert_ne!(
            sealed,
            keys.seal("webhooks.headers:wh_1", "{\"X\":\"tok\"}")
                .unwrap()
        );
        assert_eq!(
            keys.open("webhooks.headers:wh_1", &sealed).unwrap(),
            "{\"X\":\"tok\"}"
        );
        assert!(matches!(
            keys.open("webhooks.headers:wh_2", &sealed),
            Err(SealError::Corrupt { .. })
        ));
        let at = sealed.len() / 2 + 10;
        let flipped = if &sealed[at..=at] == "A" { "B" } else { "A" };
        let mut altered = sealed.clone();
        altered.replace_range(at..=at, flipped);
        assert!(keys.open("webhooks.headers:wh_1", &altered).is_err());
        assert_eq!(keys.open("x:1", "plain").unwrap(), "plain");
    }

    #[test]
    fn older_keys_open_and_the_newest_seals() {
        let (old, new) = (generate(), generate());
        let before = ring_of(&[&old]);
        let sealed = before.seal("t.c:1", "s3cret").unwrap();
        let rotated = ring_of(&[&new, &old]);
        assert_eq!(rotated.open("t.c:1", &sealed).unwrap(), "s3cret");
        assert!(rotated.stale(&sealed).unwrap());
        let resealed = rotated.seal("t.c:1", "s3cret").unwrap();
        assert!(!rotated.stale(&resealed).unwrap());
        assert!(rotated.stale("plaintext").unwrap());
        let missing = ring_of(&[&new]).open("t.c:1", &sealed).unwrap_err();
        let old_id = before.current().unwrap().to_owned();
        assert!(missing.to_string().contains(&old_id), "{missing}");
        assert_eq!(
            Keyring::default().seal("t.c:1", "x").unwrap_err(),
            SealError::NoKey
        );
    }

    #[test]
    fn key_files_are_read_and_their_errors_name_no_key() {
        let (a, b) = (generate(), generate());
        let text = format!("# hookline keys, newest first\n{a}\n\n{b} # the old one\n");
        assert_eq!(Keyring::parse(&text).unwrap().ids().len(), 2);
        assert_eq!(Keyring::parse(&format!("{a},{b}")).unwrap().ids().len(), 2);
        let error = Keyring::parse(&format!("{a}\nnot-a-key")).unwrap_err();
        assert!(error.contains("key 2"), "{error}");
        assert!(Keyring::parse("# nothing\n").is_err());
    }
}
