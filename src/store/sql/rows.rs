//! Many rows as one table inside a statement, so a batch of events, deliveries or results
//! costs one statement instead of one per row.
//!
//! [`Rows`] holds the values; [`Sql::rows`] binds them and returns the table to write as
//! `FROM {table} AS r`, in the form each database reads fastest:
//! - **SQLite**: `VALUES` with every value its own parameter, bound straight into the
//!   statement. Rows as one JSON parameter cost SQLite a parse of the array, a conversion of
//!   each object and a lookup per column: half of its work per delivery (BENCHMARKS.md,
//!   run (9)). A batch past SQLite's parameter limit goes as JSON after all.
//! - **PostgreSQL**: one JSON parameter read by `jsonb_to_recordset`, one round trip
//!   however many rows, and one plan for every batch size.

use std::fmt::Write;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Dialect, Param, Sql};
use crate::store::StoreError;

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Text,
    Int,
}

/// The columns of a [`Rows`]: names (what the statement reads as `r.name`) and types.
pub(crate) type Columns = &'static [(&'static str, Column)];

/// Rows of values in [`Columns`] order, to bind with [`Sql::rows`].
#[derive(Debug)]
pub(crate) struct Rows {
    columns: Columns,
    values: Vec<Param>,
}

/// SQLite's default limit on one statement's parameters is 32 766.
const SQLITE_MAX_PARAMS: usize = 32_000;

impl Rows {
    pub(crate) fn new(columns: Columns) -> Rows {
        Rows {
            columns,
            values: Vec::new(),
        }
    }

    /// Adds a row: one value per column, in order.
    pub(crate) fn push<const N: usize>(&mut self, row: [Param; N]) {
        debug_assert_eq!(N, self.columns.len(), "one value per column");
        self.values.extend(row);
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The rows as a JSON array of objects keyed by column name.
    fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|source| StoreError::Corrupt {
            table: "a batch of rows",
            source,
        })
    }
}

impl Sql {
    /// Binds `rows` and returns them as a table for `FROM {table} AS r` (see the module
    /// comment for each database's form). The table has no rows if `rows` has none.
    pub(crate) fn rows(&mut self, dialect: Dialect, rows: Rows) -> Result<String, StoreError> {
        let names = || rows.columns.iter().map(|(name, _)| *name);
        match dialect {
            Dialect::Sqlite if rows.values.len() <= SQLITE_MAX_PARAMS => {
                if rows.is_empty() {
                    let nulls: Vec<String> = names().map(|n| format!("NULL AS {n}")).collect();
                    return Ok(format!("(SELECT {} WHERE 0)", nulls.join(", ")));
                }
                let width = rows.columns.len();
                let mut values = String::with_capacity(rows.values.len() * 8);
                self.params.reserve(rows.values.len());
                for (i, value) in rows.values.into_iter().enumerate() {
                    values.push_str(match (i % width, i == 0) {
                        (0, true) => "(",
                        (0, false) => "), (",
                        _ => ", ",
                    });
                    self.params.push(value);
                    // Into a String, which cannot fail.
                    let _ = write!(values, "${}", self.params.len());
                }
                values.push(')');
                // SQLite names a `VALUES` table's columns `column1`, `column2`, ….
                let named: Vec<String> = names()
                    .enumerate()
                    .map(|(i, n)| format!("column{} AS {n}", i + 1))
                    .collect();
                Ok(format!(
                    "(SELECT {} FROM (VALUES {values}))",
                    named.join(", ")
                ))
            }
            Dialect::Sqlite => {
                // Each object is made binary JSON once (`jsonb`), in a materialized step:
                // `json_each` hands each object back as text, which every `json_extract`
                // of it would parse again.
                let param = self.bind(rows.to_json()?);
                let fields: Vec<String> = names()
                    .map(|n| format!("json_extract(o, '$.{n}') AS {n}"))
                    .collect();
                Ok(format!(
                    "(WITH objects(o) AS MATERIALIZED (SELECT jsonb(value) FROM json_each({param})) \
                     SELECT {} FROM objects)",
                    fields.join(", ")
                ))
            }
            Dialect::Postgres => {
                let param = self.bind(rows.to_json()?);
                let fields: Vec<String> = rows
                    .columns
                    .iter()
                    .map(|(name, column)| {
                        let ty = match column {
                            Column::Text => "text",
                            Column::Int => "bigint",
                        };
                        format!("{name} {ty}")
                    })
                    .collect();
                Ok(format!(
                    "(SELECT * FROM jsonb_to_recordset({param}::jsonb) AS x({}))",
                    fields.join(", ")
                ))
            }
        }
    }
}

impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let width = self.columns.len().max(1);
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for row in self.values.chunks(width) {
            seq.serialize_element(&Row {
                columns: self.columns,
                values: row,
            })?;
        }
        seq.end()
    }
}

/// One row of a [`Rows`] as a JSON object.
struct Row<'a> {
    columns: Columns,
    values: &'a [Param],
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for ((name, _), value) in self.columns.iter().zip(self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Param::Int(v) => serializer.serialize_i64(*v),
            Param::Text(v) => serializer.serialize_str(v),
            Param::Bool(v) => serializer.serialize_bool(*v),
            Param::OptInt(v) => v.serialize(serializer),
            Param::OptText(v) => v.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: Columns = &[("id", Column::Text), ("n", Column::Int)];

    fn two() -> Rows {
        let mut rows = Rows::new(COLUMNS);
        rows.push(["a".into(), 1i64.into()]);
        rows.push([Param::OptText(None), Param::OptInt(None)]);
        rows
    }

    #[test]
    fn sqlite_binds_every_value() {
        let mut sql = Sql::new("SELECT * FROM ");
        let table = sql.rows(Dialect::Sqlite, two()).expect("rows");
        assert_eq!(
            table,
            "(SELECT column1 AS id, column2 AS n FROM (VALUES ($1, $2), ($3, $4)))"
        );
        assert_eq!(sql.params.len(), 4);
    }

    #[test]
    fn postgres_reads_one_json_parameter() {
        let mut sql = Sql::new("");
        let table = sql.rows(Dialect::Postgres, two()).expect("rows");
        assert_eq!(
            table,
            "(SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id text, n bigint))"
        );
        assert_eq!(
            sql.params,
            vec![Param::Text(
                r#"[{"id":"a","n":1},{"id":null,"n":null}]"#.into()
            )]
        );
    }

    #[test]
    fn a_batch_past_sqlites_parameter_limit_goes_as_json() {
        let mut rows = Rows::new(COLUMNS);
        for n in 0..=SQLITE_MAX_PARAMS as i64 / 2 {
            rows.push(["x".into(), n.into()]);
        }
        let mut sql = Sql::new("");
        let table = sql.rows(Dialect::Sqlite, rows).expect("rows");
        assert!(table.contains("json_each($1)"), "{table}");
        assert_eq!(sql.params.len(), 1);
    }

    #[test]
    fn no_rows_is_an_empty_table() {
        let mut sql = Sql::new("");
        let table = sql.rows(Dialect::Sqlite, Rows::new(COLUMNS)).expect("rows");
        assert_eq!(table, "(SELECT NULL AS id, NULL AS n WHERE 0)");
    }
}
