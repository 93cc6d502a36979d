//! A distribution token service for a registry with `auth: token:` (`registry.rs`).
//!
//! `GET /token?service=…&scope=…` with basic credentials answers `{"token": …}`: a JWT
//! (ES256, its certificate in `x5c`, chained to the `rootcertbundle` the registry trusts)
//! granting the requested actions to the one known user. Wrong or missing credentials get
//! 401. Every issued token and every request's scopes are recorded, so tests can look for
//! the tokens where they must not be (logs) and see what hookline asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::Engine;
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::registry::TokenAuth;

const SERVICE: &str = "hookline-test-registry";
const ISSUER: &str = "hookline-test-issuer";

/// A running token service. Stops when dropped.
pub struct TokenIssuer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Issuer>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    user: String,
    password: String,
}

struct Issuer {
    user: String,
    password: String,
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    /// Every token handed out.
    issued: Mutex<Vec<String>>,
    /// The scopes of each request that got a token.
    scopes: Mutex<Vec<String>>,
}

impl TokenIssuer {
    /// A token service on 127.0.0.1 accepting `user` with `password`.
    pub async fn start(user: &str, password: &str) -> TokenIssuer {
        let key = KeyPair::generate().expect("issuer key (ECDSA P-256)");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "hookline test token issuer");
        let cert = params.self_signed(&key).expect("issuer certificate");
        let dir = tempfile::tempdir().expect("issuer dir");
        std::fs::write(dir.path().join("root.pem"), cert.pem()).expect("write root.pem");
        let signing = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .expect("ring reads the rcgen key");
        let state = Arc::new(Issuer {
            user: user.into(),
            password: password.into(),
            key: signing,
            cert_der: cert.der().to_vec(),
            issued: Mutex::new(Vec::new()),
            scopes: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind issuer");
        let addr = listener.local_addr().expect("issuer addr");
        let app = axum::Router::new()
            .route("/token", get(token))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenIssuer {
            addr,
            state,
            task,
            dir,
            user: user.into(),
            password: password.into(),
        }
    }

    /// The registry settings that make it trust this service.
    pub fn registry_auth(&self) -> TokenAuth {
        TokenAuth {
            realm: format!("http://{}/token", self.addr),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            rootcertbundle: self.dir.path().join("root.pem"),
            push_creds: format!("{}:{}", self.user, self.password),
        }
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().expect("issued").clone()
    }

    /// The scopes of every request that got a token.
    pub fn scopes(&self) -> Vec<String> {
        self.state.scopes.lock().expect("scopes").clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn token(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<String, StatusCode> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", issuer.user, issuer.password))
    );
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given != expected {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let url = reqwest::Url::parse(&format!(
        "http://issuer/token?{}",
        query.unwrap_or_default()
    ))
    .map_err(|_| StatusCode::BAD_REQUEST)?;
    let scopes: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .collect();
    // `repository:acme/app:pull,push`: the type, the name, the actions.
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({
        "typ": "JWT", "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&issuer.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": issuer.user, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{:032x}", rand::random::<u128>()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = issuer
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let jwt = format!("{signing_input}.{}", b64(signature.as_ref()));
    issuer.issued.lock().expect("issued").push(jwt.clone());
    issuer.scopes.lock().expect("scopes").extend(scopes);
    Ok(serde_json::json!({"token": jwt, "expires_in": 300}).to_string())
}
