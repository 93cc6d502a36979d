//! Webhooks: a subscriber's destination, filters, format and limits (`Webhook`), the
//! payload options it chooses, its signing secrets, and which webhooks a listing returns.
//! Plain data; how a `webhooks` row becomes a `Webhook` is `rows.rs`.

use std::collections::BTreeMap;

use crate::secret::Secret;

/// A webhook: where to send which events, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Public id (`wh_…`).
    pub id: String,
    /// The tenant: a repository path prefix such as `acme`.
    pub namespace: String,
    /// A name for people.
    pub name: String,
    /// Destination URL, query string kept verbatim.
    pub url: String,
    /// Event type names this webhook wants; empty means every non-blob type.
    pub event_types: Vec<String>,
    /// Repository globs; empty means every repository in the namespace.
    pub repositories: Vec<String>,
    /// Tag globs; empty means any tag (and events without a tag).
    pub tags: Vec<String>,
    /// Payload format name.
    pub format: String,
    /// Custom headers sent verbatim.
    pub headers: BTreeMap<String, String>,
    /// Names of the custom headers whose values are not secret (the API shows them);
    /// every other value is shown redacted.
    pub plain_headers: Vec<String>,
    /// The client certificate (PEM chain) presented to the receiver, and its private key
    /// (mutual TLS); both or neither.
    pub client_identity: Option<ClientIdentity>,
    /// OAuth 2.0 client credentials: hookline fetches a bearer token for each request.
    pub oauth: Option<OAuthClient>,
    /// Name of an extra GitHub-style signature header (`X-Hub-Signature-256`), if any.
    pub signature_header: Option<String>,
    /// Format-specific choices (dockerhub `repo_name`, harbor deletes).
    pub payload_options: PayloadOptions,
    /// Deliver in event order per repository:tag.
    pub ordered: bool,
    /// The owner's ceiling on requests in flight (None: the dispatcher's own caps).
    pub max_concurrency: Option<i64>,
    /// The owner's ceiling on deliveries per second, in thousandths (None: no limit).
    pub rate_limit_milli: Option<i64>,
    /// False once disabled by a person or by hookline.
    pub enabled: bool,
    /// Why hookline disabled it.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts, for auto-disable.
    pub failing_since: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// The formats that post to a chat service, whose URL is the credential that posts to the
/// channel (`dispatch::payload::Format::is_chat` reads this list).
pub const CHAT_FORMATS: [&str; 5] = ["slack", "msteams", "discord", "googlechat", "mattermost"];

/// Whether a webhook of `format` to `url` has a URL that is a credential (see
/// [`Webhook::url_is_credential`]).
pub fn url_is_credential(format: &str, url: &str) -> bool {
    CHAT_FORMATS.contains(&format)
        || reqwest::Url::parse(url).is_ok_and(|url| url.password().is_some())
}

impl Webhook {
    /// Whether its URL is a credential, and so sealed at rest: a chat webhook's URL (whoever
    /// has it can post to the channel) or a URL with a password in it (a broker's).
    pub fn url_is_credential(&self) -> bool {
        url_is_credential(&self.format, &self.url)
    }

    /// An enabled webhook with no filters (every non-blob event of its namespace), the
    /// `hookline` format and no custom headers; callers set what differs.
    pub fn new(
        id: impl Into<String>,
        namespace: impl Into<String>,
        url: impl Into<String>,
        now: i64,
    ) -> Webhook {
        Webhook {
            id: id.into(),
            namespace: namespace.into(),
            name: String::new(),
            url: url.into(),
            event_types: Vec::new(),
            repositories: Vec::new(),
            tags: Vec::new(),
            format: "hookline".into(),
            headers: BTreeMap::new(),
            plain_headers: Vec::new(),
            client_identity: None,
            oauth: None,
            signature_header: None,
            payload_options: PayloadOptions::default(),
            ordered: false,
            max_concurrency: None,
            rate_limit_milli: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A client certificate a webhook presents to its receiver (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain, PEM (public: the API shows it).
    pub certificate: String,
    /// Its private key, PEM: a secret, sealed at rest and never shown.
    pub key: Secret,
}

/// OAuth 2.0 client credentials (RFC 6749 §4.4) a webhook fetches its bearer token with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OAuthClient {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret: sealed at rest, never shown.
    #[serde(skip)]
    pub client_secret: Secret,
    /// The scopes asked for (none: the endpoint's default).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Choices a webhook makes about its payload format, stored as JSON. Options of other
/// formats than the webhook's are kept but have no effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadOptions {
    /// dockerhub: whether `repository.repo_name` starts with the registry host
    /// (`reg.example.com:5000/team/app`). None: yes, unless the registry is Docker Hub
    /// itself; Keel and Kargo match images by host, so a bare name would not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_host_in_repo_name: Option<bool>,
    /// harbor: deliver deletes too, as `DELETE_ARTIFACT`. Off by default because Harbor
    /// receivers (Argo CD Image Updater, Kargo) answer 400 to anything but `PUSH_ARTIFACT`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub harbor_deletes: bool,
    /// Chat formats: a link shown with each message, as a URL template whose
    /// `{repository}`, `{tag}`, … are filled from the event (`payload::chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_link: Option<String>,
    /// Chat formats: text leading each message, verbatim: a mention (`<!here>`,
    /// `@channel`, `<@&role>`) or a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_mention: Option<String>,
    /// Template format: the body's template (`payload::template`), in Jinja syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Template format: the body's content type; None means `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_content_type: Option<String>,
}

/// Which webhooks [`Webhooks::list_webhooks`](crate::store::Webhooks::list_webhooks) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookQuery {
    /// Only webhooks whose namespace is this one or lies below it (`acme` holds `acme`
    /// and `acme/tools`, not `acmecorp`). None: every namespace. This is how a tenant's
    /// visibility reaches SQL, so it compares path segments, never `LIKE` patterns.
    pub within: Option<String>,
    /// Only enabled (true) or disabled (false) webhooks.
    pub enabled: Option<bool>,
    /// Only names containing this text, ignoring ASCII case.
    pub name_contains: Option<String>,
    /// Only URLs containing this text.
    pub url_contains: Option<String>,
    /// Formats whose URL is a credential (chat webhooks): `url_contains` never matches
    /// theirs, nor any URL with credentials (`@`) when this is set, so a search cannot
    /// guess a credential one character at a time.
    pub secret_url_formats: Vec<String>,
    /// Only ids after this one: the keyset cursor of pagination.
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// A signing secret of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    /// Id of this secret.
    pub id: String,
    /// `whsec_<base64>`.
    pub secret: Secret,
    /// When it was created.
    pub created_at: i64,
    /// None for the current secret; for a rotated-out one, the end of its grace period.
    pub expires_at: Option<i64>,
}

/// A webhook with the secrets it signs with right now (current first).
#[derive(Debug, Clone)]
pub struct WebhookWithSecrets {
    /// The webhook.
    pub webhook: Webhook,
    /// Valid secrets, current first.
    pub secrets: Vec<WebhookSecret>,
}
