-- hookline schema, version 5 (SQLite dialect; keep in step with migrations/postgres/0005_tag_heads.sql).
-- Registry-native events (issue 14): where each tag of each registry source points, as
-- hookline last saw it, so a tagged push can say which digest it replaced. Advanced in the
-- transaction that stores the push (a tag delete removes the row); never pruned: one row per
-- live tag, however old.

CREATE TABLE tag_heads (
    source     TEXT NOT NULL,    -- the registry token's name, as events.source
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,    -- the manifest (or index) the tag points to
    event_id   TEXT NOT NULL,    -- the push that set it
    updated_at BIGINT NOT NULL,  -- when hookline stored that push, Unix ms
    PRIMARY KEY (source, repository, tag)
);
