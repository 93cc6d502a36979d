//! Signatures on outgoing deliveries: Standard Webhooks and the GitHub-style header.
//!
//! Pure functions over bytes: decode a `whsec_…` secret into its key, sign
//! `"{msg_id}.{timestamp}.{body}"` with HMAC-SHA256, and build the `webhook-signature`
//! header (one `v1,…` entry per valid key, current first); [`sign_message`] adds them to
//! a rendered message, whatever transport carries it. No I/O and no clock: the
//! dispatcher passes the timestamp in. Secret values never reach an error or a log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::payload::Message;
use crate::secret::{Secret, hex};

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Standard base64 that accepts secrets with or without `=` padding, as pasted by people.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret cannot be used. Deliberately carries no part of the secret (not even the
/// base64 decoder's error, which quotes the offending byte and its position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Nothing after the prefix.
    #[error("secret is empty")]
    Empty,
    /// The part after `whsec_` is not standard base64.
    #[error("secret is not valid base64 after the `whsec_` prefix")]
    NotBase64,
}

/// The key bytes of a `whsec_<base64>` secret. A bare base64 secret (no prefix) is accepted
/// too, as the official `standardwebhooks` libraries do.
pub fn secret_key(secret: &Secret) -> Result<Vec<u8>, SecretError> {
    let value = secret.expose();
    let encoded = value.strip_prefix(SECRET_PREFIX).unwrap_or(value);
    if encoded.is_empty() {
        return Err(SecretError::Empty);
    }
    let key = LENIENT
        .decode(encoded)
        .map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

/// HMAC-SHA256 of `parts`, concatenated, under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC is defined for keys of any length (long ones are hashed first), so this
    // constructor cannot fail; the `Result` is only part of the generic `KeyInit` trait.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `v1,<base64>`: the Standard Webhooks signature of one message under one key.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        key,
        &[msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The `webhook-signature` header value: one signature per key (current first), separated
/// by a single space, so a receiver holding either the old or the new secret during a
/// rotation's grace period verifies the delivery.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Signs `message` as delivery `msg_id` at `timestamp` (Unix seconds): appends the
/// GitHub-style header when the webhook names one (`github`: its name and secret), then
/// the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and `webhook-signature`.
pub fn sign_message(
    message: &mut Message,
    keys: &[Vec<u8>],
    msg_id: &str,
    timestamp: i64,
    github: Option<(&str, &Secret)>,
) {
    let signature = signature_header(keys, msg_id, timestamp, &message.body);
    if let Some((name, secret)) = github {
        let value = github_signature(secret, &message.body);
        message.headers.push((name.to_owned(), value));
    }
    message.headers.extend([
        ("webhook-id".to_owned(), msg_id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature),
    ]);
}

/// A new secret: `whsec_` + standard base64 of 32 random bytes.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// GitHub-style `sha256=<lowercase hex HMAC-SHA256(secret, body)>`. The key is the secret
/// string exactly as given (not base64-decoded), as GitHub and Flux's generic-hmac receiver
/// expect.
pub fn github_signature(secret: &Secret, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex(&hmac_sha256(secret.expose().as_bytes(), &[body]))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key(s: &str) -> Vec<u8> {
        secret_key(&Secret::new(s)).expect("test secret decodes")
    }

    #[test]
    fn standard_webhooks_test_vector() {
        let key = key(VECTOR_SECRET);
        assert_eq!(key.len(), 24);
        assert_eq!(sign(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
    }

    #[test]
    fn bare_and_unpadded_secrets_decode_like_prefixed_ones() {
        assert_eq!(key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), key(VECTOR_SECRET));
        // 5 bytes encode to 8 characters with one `=`; both spellings are the same key.
        assert_eq!(key("whsec_aGVsbG8="), b"hello");
        assert_eq!(key("whsec_aGVsbG8"), b"hello");
    }

    #[test]
    fn several_keys_give_space_separated_signatures_current_first() {
        let current = key(VECTOR_SECRET);
        let old = b"an older key that is still in its grace period".to_vec();
        let header = signature_header(
            &[current.clone(), old.clone()],
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
        );
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], VECTOR_SIG);
        assert_eq!(parts[1], sign(&old, VECTOR_ID, VECTOR_TS, VECTOR_BODY));
        assert_ne!(parts[0], parts[1]);
        assert!(!header.contains("  ") && !header.ends_with(' '));
    }

    #[test]
    fn one_key_header_is_the_signature_and_no_keys_is_empty() {
        let k = key(VECTOR_SECRET);
        assert_eq!(
            signature_header(std::slice::from_ref(&k), VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIG
        );
        assert_eq!(signature_header(&[], VECTOR_ID, VECTOR_TS, VECTOR_BODY), "");
    }

    #[test]
    fn signature_covers_id_timestamp_and_body() {
        let k = key(VECTOR_SECRET);
        assert_ne!(sign(&k, "msg_other", VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
        assert_ne!(sign(&k, VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY), VECTOR_SIG);
        assert_ne!(sign(&k, VECTOR_ID, VECTOR_TS, b"{}"), VECTOR_SIG);
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        for (value, want) in [
            ("whsec_", SecretError::Empty),
            ("", SecretError::Empty),
            ("whsec_not*base64!", SecretError::NotBase64),
            ("whsec_a", SecretError::NotBase64),
        ] {
            let err = secret_key(&Secret::new(value)).expect_err(value);
            assert_eq!(err, want, "{value}");
        }
        let err = secret_key(&Secret::new("whsec_sup3r$ecret")).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("sup3r"), "{shown}");
    }

    #[test]
    fn generated_secrets_decode_to_32_random_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(key(a.expose()).len(), 32);
        assert_eq!(key(b.expose()).len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn github_signature_matches_known_value() {
        // GitHub's documented example ("Validating webhook deliveries"), independently
        // recomputed with Python's hmac module.
        let secret = Secret::new("It's a Secret to Everybody");
        assert_eq!(
            github_signature(&secret, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn github_signature_keys_with_the_whole_secret_string() {
        // A whsec_ secret is used verbatim, prefix included, not base64-decoded.
        let secret = Secret::new(VECTOR_SECRET);
        let expected = format!(
            "sha256={}",
            hex(&hmac_sha256(VECTOR_SECRET.as_bytes(), &[VECTOR_BODY]))
        );
        assert_eq!(github_signature(&secret, VECTOR_BODY), expected);
        let decoded = format!(
            "sha256={}",
            hex(&hmac_sha256(&key(VECTOR_SECRET), &[VECTOR_BODY]))
        );
        assert_ne!(github_signature(&secret, VECTOR_BODY), decoded);
    }
}
