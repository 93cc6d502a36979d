//! The arguments of `hookline webhooks …`: one struct or variant per subcommand, each
//! option documented where it is declared (that text is `--help`), and the parsers of
//! the values clap cannot parse alone (event types, payload formats, `NAME=VALUE`).
//!
//! Only the shape of a value is checked here; every rule about a webhook is the
//! server's, so the CLI and other clients can never disagree.

use clap::{ArgGroup, Args, Subcommand};

use crate::api::convert::{event_type_to_proto, format_to_proto};
use crate::api::proto;
use crate::cli::Output;
use crate::config::HumanDuration;
use crate::dispatch::payload::Format;
use crate::event::EventType;
use crate::secret::Secret;

#[derive(Debug, Subcommand)]
pub(super) enum WebhooksCommand {
    /// Register a webhook and print its signing secret (shown this once).
    Create(Box<CreateArgs>),
    /// List webhooks: every page, or one page with --page-size.
    List(ListArgs),
    /// Show one webhook.
    Get {
        /// The webhook's id (`wh_…`).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Change a webhook: only the options given change.
    Update(Box<UpdateArgs>),
    /// Delete a webhook and its secrets; its pending deliveries are not sent.
    Delete {
        /// The webhook's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Make a new signing secret current and print it; the old one stays valid for --grace.
    RotateSecret {
        /// The webhook's id.
        id: String,
        /// How long the previous secret stays valid (default 24h, at most 30d).
        #[arg(long)]
        grace: Option<HumanDuration>,
        /// The new secret (`whsec_…`); generated when not given.
        #[arg(long)]
        secret: Option<Secret>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show what the webhook would send for an event, without sending it: a sample of
    /// --event-type (default image.pushed), or a stored event with --event.
    Preview {
        /// The webhook's id.
        id: String,
        /// A stored event's id (`evt_…`) to render.
        #[arg(long, value_name = "EVENT_ID", conflicts_with = "event_type")]
        event: Option<String>,
        /// The sample event's type.
        #[arg(long, value_name = "TYPE", value_parser = parse_event_type)]
        event_type: Option<i32>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Send a `ping` event to the webhook through the normal delivery path.
    Test {
        /// The webhook's id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// A name for people.
    #[arg(long)]
    pub(super) name: String,
    /// Where deliveries go: an http(s) URL, or a bus: nats://host/SUBJECT,
    /// redis://host/DB?stream=KEY (docs/destinations.md).
    #[arg(long)]
    pub(super) url: String,
    /// Namespace (repository prefix); defaults to the token's. Admin tokens must give one ("" = every repository).
    #[arg(long)]
    pub(super) namespace: Option<String>,
    /// Event type to deliver, repeatable (default: every type but the blob events,
    /// manifest.pushed and the owner notices, which come only when named). A webhook given
    /// the notices (webhook.failing, webhook.circuit_opened, webhook.disabled,
    /// webhook.recovered, delivery.failed) hears about the webhooks of its namespace.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub(super) event_types: Vec<i32>,
    /// Repository glob inside the namespace, repeatable (`acme/*`, `acme/tools/**`).
    #[arg(long = "repository", value_name = "GLOB")]
    pub(super) repositories: Vec<String>,
    /// Tag glob, repeatable (`v*`); when given, only tagged events whose tag matches.
    #[arg(long = "tag", value_name = "GLOB")]
    pub(super) tags: Vec<String>,
    /// Payload format: hookline (default), cloudevents, dockerhub, harbor, distribution,
    /// slack, msteams, discord, googlechat, mattermost, template (the default with
    /// --preset or --template-file).
    #[arg(long, value_parser = parse_format)]
    pub(super) format: Option<i32>,
    /// Custom header sent with every delivery, repeatable. Its value is a secret: sealed,
    /// and shown as `…redacted` (a receiver's token, often).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub(super) headers: Vec<(String, String)>,
    /// A custom header whose value is not secret, shown back as it is; repeatable.
    #[arg(long = "plain-header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub(super) plain_headers: Vec<(String, String)>,
    /// Deliver one repository:tag's events one at a time, in order.
    #[arg(long)]
    pub(super) ordered: bool,
    /// Also sign GitHub-style in this header (`X-Signature`, `X-Hub-Signature-256`): `sha256=<hex>`.
    #[arg(long, value_name = "NAME")]
    pub(super) signature_header: Option<String>,
    /// dockerhub format: whether `repo_name` starts with the registry host (default: yes, unless Docker Hub).
    #[arg(long, value_name = "BOOL")]
    pub(super) include_host_in_repo_name: Option<bool>,
    /// harbor format: deliver deletes too, as DELETE_ARTIFACT.
    #[arg(long)]
    pub(super) harbor_deletes: bool,
    #[command(flatten)]
    pub(super) chat: ChatArgs,
    #[command(flatten)]
    pub(super) template: TemplateArgs,
    #[command(flatten)]
    pub(super) client_cert: ClientCertArgs,
    #[command(flatten)]
    pub(super) oauth: OAuthArgs,
    /// At most this many requests in flight to it at once (a ceiling for its adaptive window).
    #[arg(long, value_name = "N")]
    pub(super) max_concurrency: Option<i32>,
    /// At most this many deliveries per second to it (0.5: one every two seconds).
    #[arg(long, value_name = "PER_SECOND")]
    pub(super) rate_limit: Option<f64>,
    /// Create it disabled.
    #[arg(long)]
    pub(super) disabled: bool,
    /// Signing secret (`whsec_…`); generated when not given.
    #[arg(long)]
    pub(super) secret: Option<Secret>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(super) output: Output,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only this namespace and those below it.
    #[arg(long)]
    pub(super) namespace: Option<String>,
    /// Only enabled (true) or disabled (false) webhooks.
    #[arg(long, value_name = "BOOL")]
    pub(super) enabled: Option<bool>,
    /// Only names containing this text.
    #[arg(long)]
    pub(super) name_contains: Option<String>,
    /// Only URLs containing this text.
    #[arg(long)]
    pub(super) url_contains: Option<String>,
    /// Fetch one page of this size (1–500) and print the next page's token.
    #[arg(long)]
    pub(super) page_size: Option<i32>,
    /// Continue from this page token.
    #[arg(long)]
    pub(super) page_token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(super) output: Output,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("state").args(["enable", "disable"])))]
pub(super) struct UpdateArgs {
    /// The webhook's id.
    pub(super) id: String,
    /// New name.
    #[arg(long)]
    pub(super) name: Option<String>,
    /// New URL.
    #[arg(long)]
    pub(super) url: Option<String>,
    /// Replace the event types, repeatable.
    #[arg(long = "event-type", value_name = "TYPE", value_parser = parse_event_type)]
    pub(super) event_types: Vec<i32>,
    /// Clear the event types (every non-blob type).
    #[arg(long, conflicts_with = "event_types")]
    pub(super) no_event_types: bool,
    /// Replace the repository globs, repeatable.
    #[arg(long = "repository", value_name = "GLOB")]
    pub(super) repositories: Vec<String>,
    /// Clear the repository globs (the whole namespace).
    #[arg(long, conflicts_with = "repositories")]
    pub(super) no_repositories: bool,
    /// Replace the tag globs, repeatable.
    #[arg(long = "tag", value_name = "GLOB")]
    pub(super) tags: Vec<String>,
    /// Clear the tag globs (any tag or none).
    #[arg(long, conflicts_with = "tags")]
    pub(super) no_tags: bool,
    /// New payload format (see `create --help`).
    #[arg(long, value_parser = parse_format)]
    pub(super) format: Option<i32>,
    /// Replace the custom headers, repeatable (values secret: shown redacted).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub(super) headers: Vec<(String, String)>,
    /// With --header: a custom header whose value is not secret, shown back; repeatable.
    #[arg(long = "plain-header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub(super) plain_headers: Vec<(String, String)>,
    /// Remove every custom header.
    #[arg(long, conflicts_with_all = ["headers", "plain_headers"])]
    pub(super) no_headers: bool,
    /// Ordered delivery on or off.
    #[arg(long, value_name = "BOOL")]
    pub(super) ordered: Option<bool>,
    /// Also sign GitHub-style in this header (`X-Signature`, `X-Hub-Signature-256`).
    #[arg(long, value_name = "NAME")]
    pub(super) signature_header: Option<String>,
    /// Stop sending the GitHub-style signature header.
    #[arg(long, conflicts_with = "signature_header")]
    pub(super) no_signature_header: bool,
    /// dockerhub format: whether `repo_name` starts with the registry host.
    #[arg(long, value_name = "BOOL")]
    pub(super) include_host_in_repo_name: Option<bool>,
    /// harbor format: deliver deletes too (true) or pushes only (false).
    #[arg(long, value_name = "BOOL")]
    pub(super) harbor_deletes: Option<bool>,
    #[command(flatten)]
    pub(super) chat: ChatArgs,
    #[command(flatten)]
    pub(super) template: TemplateArgs,
    #[command(flatten)]
    pub(super) client_cert: ClientCertArgs,
    /// Stop presenting a client certificate.
    #[arg(long, conflicts_with_all = ["client_cert", "client_key"])]
    pub(super) no_client_cert: bool,
    #[command(flatten)]
    pub(super) oauth: OAuthArgs,
    /// Stop sending an OAuth bearer token.
    #[arg(long, conflicts_with_all = ["oauth_token_url", "oauth_client_id", "oauth_client_secret_file", "oauth_scope"])]
    pub(super) no_oauth: bool,
    /// At most this many requests in flight to it at once.
    #[arg(long, value_name = "N")]
    pub(super) max_concurrency: Option<i32>,
    /// Remove the ceiling on requests in flight (the adaptive window decides alone).
    #[arg(long, conflicts_with = "max_concurrency")]
    pub(super) no_max_concurrency: bool,
    /// At most this many deliveries per second to it.
    #[arg(long, value_name = "PER_SECOND")]
    pub(super) rate_limit: Option<f64>,
    /// Remove the rate limit.
    #[arg(long, conflicts_with = "rate_limit")]
    pub(super) no_rate_limit: bool,
    /// Enable (clears the reason hookline disabled it for).
    #[arg(long)]
    pub(super) enable: bool,
    /// Disable.
    #[arg(long)]
    pub(super) disable: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(super) output: Output,
}

pub(in crate::cli) fn parse_event_type(name: &str) -> Result<i32, String> {
    EventType::parse(name)
        .map(|kind| event_type_to_proto(kind) as i32)
        .ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown event type; known: {}", known.join(", "))
        })
}

/// The chat formats' options, the same for create and update.
#[derive(Debug, Args)]
pub(super) struct ChatArgs {
    /// Chat formats: a link shown with each message, a URL template such as
    /// `https://registry.example/ui/{repository}/tags/{tag}` ("" removes it).
    #[arg(long, value_name = "URL_TEMPLATE")]
    pub(super) chat_link: Option<String>,
    /// Chat formats: text leading each message, e.g. `<!here>` (Slack), `@channel`
    /// (Mattermost) ("" removes it).
    #[arg(long, value_name = "TEXT")]
    pub(super) chat_mention: Option<String>,
}

/// The template format's options, the same for create and update.
#[derive(Debug, Args)]
pub(super) struct TemplateArgs {
    /// A ready template for a CI system: github-dispatch, gitlab-trigger, tekton,
    /// argo-events, jenkins-generic (docs/templates.md).
    #[arg(long, value_name = "NAME")]
    pub(super) preset: Option<String>,
    /// The body's template (Jinja syntax) from this file, or `-` for stdin.
    #[arg(long, value_name = "PATH")]
    pub(super) template_file: Option<std::path::PathBuf>,
    /// The template's content type (default application/json).
    #[arg(long, value_name = "TYPE")]
    pub(super) content_type: Option<String>,
}

impl TemplateArgs {
    /// Whether any template option was given.
    pub(super) fn any(&self) -> bool {
        self.preset.is_some() || self.template_file.is_some() || self.content_type.is_some()
    }

    /// The template's text, read from its file (or stdin).
    pub(super) fn read(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        let Some(path) = &self.template_file else {
            return Ok(None);
        };
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the template from stdin")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the template file {}", path.display()))?
        };
        Ok(Some(text))
    }
}

/// Mutual TLS: the client certificate presented to the receiver, the same for create and
/// update (where giving both again rotates it).
#[derive(Debug, Args)]
pub(super) struct ClientCertArgs {
    /// The client certificate chain (PEM) to present to the https receiver.
    #[arg(long, value_name = "PATH", requires = "client_key")]
    pub(super) client_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM), sent once and sealed; never shown again.
    #[arg(long, value_name = "PATH", requires = "client_cert")]
    pub(super) client_key: Option<std::path::PathBuf>,
}

impl ClientCertArgs {
    /// The certificate and key, read from their files, if given.
    pub(super) fn read(&self) -> anyhow::Result<Option<(String, String)>> {
        use anyhow::Context;
        let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) else {
            return Ok(None);
        };
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the client {what} {}", path.display()))
        };
        Ok(Some((read(cert, "certificate")?, read(key, "key")?)))
    }
}

/// OAuth 2.0 client credentials, the same for create and update (where all are given
/// anew, the secret included).
#[derive(Debug, Args)]
pub(super) struct OAuthArgs {
    /// The token endpoint hookline gets a bearer token from (client credentials grant).
    #[arg(long, value_name = "URL", requires_all = ["oauth_client_id", "oauth_client_secret_file"])]
    pub(super) oauth_token_url: Option<String>,
    /// The OAuth client id.
    #[arg(long, value_name = "ID", requires = "oauth_token_url")]
    pub(super) oauth_client_id: Option<String>,
    /// A file holding the client secret (one line; sealed, never shown again).
    #[arg(long, value_name = "PATH", requires = "oauth_token_url")]
    pub(super) oauth_client_secret_file: Option<std::path::PathBuf>,
    /// A scope to ask for (repeat for several).
    #[arg(
        long = "oauth-scope",
        value_name = "SCOPE",
        requires = "oauth_token_url"
    )]
    pub(super) oauth_scope: Vec<String>,
}

impl OAuthArgs {
    /// The credentials, the secret read from its file, if given.
    pub(super) fn read(&self) -> anyhow::Result<Option<proto::OAuthClientCredentials>> {
        use anyhow::Context;
        let (Some(token_url), Some(path)) = (&self.oauth_token_url, &self.oauth_client_secret_file)
        else {
            return Ok(None);
        };
        let secret = std::fs::read_to_string(path)
            .with_context(|| format!("reading the OAuth client secret {}", path.display()))?;
        Ok(Some(proto::OAuthClientCredentials {
            token_url: token_url.clone(),
            client_id: self.oauth_client_id.clone().unwrap_or_default(),
            client_secret: secret.trim_end_matches(['\r', '\n']).to_owned(),
            scopes: self.oauth_scope.clone(),
        }))
    }
}

fn parse_format(name: &str) -> Result<i32, String> {
    let known = Format::ALL.map(Format::as_str);
    known
        .contains(&name)
        .then(|| format_to_proto(name) as i32)
        .ok_or_else(|| format!("unknown format; known: {}", known.join(", ")))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| "expected NAME=VALUE".to_owned())
}
