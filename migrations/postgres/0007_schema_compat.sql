-- Rolling upgrades: which schema versions a database keeps compatible.
--
-- Every migration from this one on adds its row here: `oldest_reader` is the oldest schema
-- version whose hookline may keep running on a database migrated this far. A migration
-- that only adds (a table, an index, a column with a default) keeps the version before it;
-- one that renames, drops or changes the meaning of what older code reads keeps only
-- itself. A hookline that finds the database newer than itself runs on it, and stays ready,
-- if every newer migration keeps its version; otherwise it refuses, saying which one does
-- not (`store/migrations.rs`).
CREATE TABLE schema_compat (
    version        BIGINT PRIMARY KEY,
    oldest_reader  BIGINT NOT NULL
);
-- This migration only adds the table: version 6 could run on it (though version 6 does not
-- read this table, so it refuses any newer schema; from version 7 on the rule holds).
INSERT INTO schema_compat (version, oldest_reader) VALUES (7, 6);
