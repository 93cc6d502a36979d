use super::*;
use crate::dispatch::transport::RetryClass;

fn rejected(outcome: Outcome) -> (String, Option<String>) {
    match outcome {
        Outcome::Rejected { reason, disable } => (reason, disable),
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn plain_http_reads_only_the_status() {
    assert_eq!(
        Dialect::Http.outcome(404, None, b"no_service"),
        client::outcome(404, None)
    );
    assert_eq!(Dialect::of(Format::Hookline), Dialect::Http);
    assert_eq!(Dialect::of(Format::Slack), Dialect::Slack);
}

#[test]
fn success_is_any_2xx_in_every_dialect() {
    for dialect in [
        Dialect::Slack,
        Dialect::MsTeams,
        Dialect::Discord,
        Dialect::GoogleChat,
        Dialect::Mattermost,
    ] {
        assert_eq!(dialect.outcome(200, None, b"ok"), Outcome::Delivered);
        assert_eq!(dialect.outcome(202, None, b""), Outcome::Delivered, "Teams");
        assert_eq!(
            dialect.outcome(204, None, b""),
            Outcome::Delivered,
            "Discord"
        );
    }
}

#[test]
fn slack_codes_are_quoted_and_a_revoked_url_disables() {
    let (reason, disable) = rejected(Dialect::Slack.outcome(400, None, b"invalid_payload"));
    assert_eq!(
        reason,
        "Slack answered HTTP 400 `invalid_payload`, which is final: fix the webhook and redeliver"
    );
    assert_eq!(disable, None);
    for (status, code) in [
        (404, "no_service"),
        (410, "channel_is_archived"),
        (403, "team_disabled"),
    ] {
        let (reason, disable) = rejected(Dialect::Slack.outcome(status, None, code.as_bytes()));
        assert!(reason.contains(&format!("`{code}`")), "{reason}");
        assert!(reason.contains("the webhook is disabled"), "{reason}");
        assert_eq!(
            disable.as_deref(),
            Some(format!("Slack answered `{code}`: the webhook URL no longer works").as_str())
        );
    }
    // An empty body leaves HTTP's reading.
    assert_eq!(
        Dialect::Slack.outcome(403, None, b""),
        client::outcome(403, None)
    );
}

#[test]
fn discord_waits_as_its_body_says() {
    let body =
        br#"{"message": "You are being rate limited.", "retry_after": 1.337, "global": false}"#;
    let Outcome::Retry {
        class, retry_after, ..
    } = Dialect::Discord.outcome(429, Some(Duration::from_secs(1)), body)
    else {
        panic!("429 is retried");
    };
    assert_eq!(class, RetryClass::Throttled);
    assert_eq!(retry_after, Some(Duration::from_millis(1337)));
    // The longer of the two, and never more than an hour from a body.
    let far = br#"{"retry_after": 1e12}"#;
    let Outcome::Retry { retry_after, .. } = Dialect::Discord.outcome(429, None, far) else {
        panic!("429 is retried");
    };
    assert_eq!(retry_after, Some(DISCORD_WAIT_MAX));
    let Outcome::Retry { retry_after, .. } =
        Dialect::Discord.outcome(429, Some(Duration::from_secs(5)), b"not json")
    else {
        panic!("429 is retried");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(5)));
}

#[test]
fn discord_unknown_webhook_disables_and_other_errors_are_quoted() {
    let (reason, disable) = rejected(Dialect::Discord.outcome(
        404,
        None,
        br#"{"message": "Unknown Webhook", "code": 10015}"#,
    ));
    assert!(
        reason.contains("`Unknown Webhook (code 10015)`"),
        "{reason}"
    );
    assert!(disable.is_some());
    let (reason, disable) = rejected(Dialect::Discord.outcome(
        400,
        None,
        br#"{"message": "Invalid Form Body", "code": 50035, "errors": {}}"#,
    ));
    assert!(
        reason.starts_with(
            "Discord answered HTTP 400 `Invalid Form Body (code 50035)`, which is final"
        ),
        "{reason}"
    );
    assert_eq!(disable, None);
}

#[test]
fn teams_google_and_mattermost_errors_are_quoted() {
    let (reason, _) = rejected(Dialect::MsTeams.outcome(
        400,
        None,
        br#"{"error": {"code": "TriggerInputSchemaMismatch", "message": "The input body does not match"}}"#,
    ));
    assert!(
        reason.contains("`TriggerInputSchemaMismatch: The input body does not match`"),
        "{reason}"
    );
    let (reason, _) = rejected(Dialect::GoogleChat.outcome(
        400,
        None,
        br#"{"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}}"#,
    ));
    assert!(
        reason.contains("`INVALID_ARGUMENT: Invalid JSON payload`"),
        "{reason}"
    );
    let (reason, disable) = rejected(Dialect::Mattermost.outcome(
        400,
        None,
        br#"{"id": "web.incoming_webhook.invalid.app_error", "message": "Invalid webhook.", "status_code": 400}"#,
    ));
    assert!(
        reason.contains("`Invalid webhook. (web.incoming_webhook.invalid.app_error)`"),
        "{reason}"
    );
    assert!(disable.is_some());
}

#[test]
fn a_vendor_cannot_flood_the_reason() {
    let long = "x".repeat(10_000);
    let (reason, _) = rejected(Dialect::Slack.outcome(400, None, long.as_bytes()));
    assert!(reason.len() < 400, "{}", reason.len());
}
