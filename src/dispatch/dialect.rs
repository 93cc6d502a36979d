//! How a chat service's answers read, beyond HTTP's own status codes.
//!
//! Chat services say more than a status: Slack answers `no_service` when a webhook URL was
//! revoked, Discord a JSON `retry_after` more precise than its header, Mattermost an error
//! id. [`Dialect::outcome`] starts from HTTP's reading (`client::outcome`) and refines it
//! from the answer's body: the vendor's own words go into the reason, an answer that says
//! the URL no longer exists disables the webhook (as 410 does), and a vendor's wait
//! replaces the header's. A 2xx is success in every dialect (Teams Workflows answers 202).

use std::time::Duration;

use super::client;
use super::payload::Format;
use super::transport::Outcome;

/// Whose answers these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Any HTTP receiver: the status code says it all.
    #[default]
    Http,
    /// Slack incoming webhooks: a plain-text error code in the body.
    Slack,
    /// Microsoft Teams Workflows: `{"error": {"code", "message"}}`.
    MsTeams,
    /// Discord: `{"code", "message"}`, and `retry_after` (seconds) on 429.
    Discord,
    /// Google Chat: Google's `{"error": {"code", "message", "status"}}`.
    GoogleChat,
    /// Mattermost: `{"id", "message", "status_code"}`.
    Mattermost,
}

/// The longest vendor text quoted in a reason.
const SAID_MAX: usize = 200;

/// Slack codes that mean the webhook URL no longer works (Slack: "Handling errors" of
/// incoming webhooks): nothing sent to it can ever arrive.
const SLACK_GONE: [&str; 6] = [
    "no_service",
    "no_team",
    "team_disabled",
    "channel_is_archived",
    "no_active_hooks",
    "invalid_token",
];
/// Discord's JSON error codes for a webhook that is gone: Unknown Webhook, Invalid
/// Webhook Token.
const DISCORD_GONE: [i64; 2] = [10015, 50027];
/// Mattermost's error id for a hook id it does not know (deleted, or never existed).
const MATTERMOST_GONE: &str = "web.incoming_webhook.invalid.app_error";
/// Longest wait a Discord body may ask for: beyond it, the schedule decides.
const DISCORD_WAIT_MAX: Duration = Duration::from_secs(3600);

impl Dialect {
    /// The dialect a webhook's answers are read in.
    pub fn of(format: Format) -> Dialect {
        match format {
            Format::Slack => Dialect::Slack,
            Format::MsTeams => Dialect::MsTeams,
            Format::Discord => Dialect::Discord,
            Format::GoogleChat => Dialect::GoogleChat,
            Format::Mattermost => Dialect::Mattermost,
            _ => Dialect::Http,
        }
    }

    fn vendor(self) -> &'static str {
        match self {
            Dialect::Http => "the receiver",
            Dialect::Slack => "Slack",
            Dialect::MsTeams => "Teams",
            Dialect::Discord => "Discord",
            Dialect::GoogleChat => "Google Chat",
            Dialect::Mattermost => "Mattermost",
        }
    }

    /// What an answer means: HTTP's reading, refined by what the vendor said in `body`.
    pub fn outcome(self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
        let generic = client::outcome(status, retry_after);
        if self == Dialect::Http {
            return generic;
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        match generic {
            Outcome::Retry {
                class,
                subject,
                retry_after,
            } => {
                // Discord's body gives the wait to the millisecond; its header rounds it.
                let asked = json
                    .as_ref()
                    .filter(|_| self == Dialect::Discord && status == 429)
                    .and_then(|v| v["retry_after"].as_f64())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s).min(DISCORD_WAIT_MAX));
                Outcome::Retry {
                    class,
                    subject,
                    retry_after: asked.max(retry_after),
                }
            }
            Outcome::Rejected { reason, disable } => {
                let Some((said, gone)) = self.said(body, json.as_ref()) else {
                    return Outcome::Rejected { reason, disable };
                };
                let vendor = self.vendor();
                if gone || disable.is_some() {
                    Outcome::Rejected {
                        reason: format!(
                            "{vendor} answered HTTP {status} {said}: the webhook URL no longer works, so the webhook is disabled; give it a new URL from {vendor} and re-enable it"
                        ),
                        disable: Some(format!(
                            "{vendor} answered {said}: the webhook URL no longer works"
                        )),
                    }
                } else {
                    Outcome::Rejected {
                        reason: format!(
                            "{vendor} answered HTTP {status} {said}, which is final: fix the webhook and redeliver"
                        ),
                        disable: None,
                    }
                }
            }
            other => other,
        }
    }

    /// The vendor's words in an error answer, quoted, and whether they say the webhook URL
    /// is gone for good. None when the body says nothing this dialect reads.
    fn said(self, body: &[u8], json: Option<&serde_json::Value>) -> Option<(String, bool)> {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let (said, gone) = match self {
            Dialect::Http => return None,
            Dialect::Slack => {
                let code = String::from_utf8_lossy(body).trim().to_owned();
                let gone = SLACK_GONE.contains(&code.as_str());
                (code, gone)
            }
            Dialect::Discord => {
                let v = json?;
                let code = v["code"].as_i64();
                let message = text(&v["message"])?;
                let said = match code {
                    Some(code) => format!("{message} (code {code})"),
                    None => message,
                };
                (said, code.is_some_and(|c| DISCORD_GONE.contains(&c)))
            }
            Dialect::MsTeams | Dialect::GoogleChat => {
                let error = &json?["error"];
                let message = text(&error["message"]).unwrap_or_default();
                let code = text(&error["status"])
                    .or_else(|| text(&error["code"]))
                    .unwrap_or_default();
                (format!("{code}: {message}"), false)
            }
            Dialect::Mattermost => {
                let v = json?;
                let id = text(&v["id"]).unwrap_or_default();
                let message = text(&v["message"]).unwrap_or_default();
                let gone = id == MATTERMOST_GONE;
                (format!("{message} ({id})"), gone)
            }
        };
        let said = said.trim_matches([' ', ':']).to_owned();
        (!said.is_empty() && said != "()").then(|| {
            let clipped = super::payload::clip(&said, SAID_MAX);
            (format!("`{clipped}`"), gone)
        })
    }
}

#[cfg(test)]
mod tests;
