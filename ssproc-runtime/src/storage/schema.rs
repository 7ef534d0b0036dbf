//! The jobs table's DDL and its structural validation.

use sqlx::{PgPool, Row};

use super::{quote_identifier, quote_table};
use crate::config::JobTable;
use crate::error::SchemaError;

/// What validation learned about optional parts of the table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SchemaInfo {
    /// The table has the `last_failure JSONB` column, so failures are stored.
    pub(crate) last_failure: bool,
}

/// The SQL that creates the jobs table and its indexes, idempotently.
///
/// The table is the reference shape (the Go library's README) plus one
/// nullable column, `last_failure JSONB`, which holds why the last attempt
/// failed. Beside it, a small `<table>_processes` table records the step
/// names each process last started with, so that executors can refuse a
/// step list that would move open jobs.
///
/// Claims read the `(process_id, status, start_after_ts,
/// goroutine_lease_expire_ts)` index that validation requires: the ready
/// jobs of a process form one range of it however many jobs have finished,
/// and the lease column lets the claim pass over leased jobs without
/// reading their rows.
///
/// Besides the two indexes validation requires, it creates one that
/// validation does not ask for, since a table made by the reference DDL
/// works without it, only slower: `<table>_created_idx` on `(created_ts,
/// job_id, process_id, status)` serves listings, which sort newest first by
/// `(created_ts, job_id)`: a page or a cursor batch reads the index from
/// where it starts instead of sorting every matching row. Filters on process
/// and status are checked on its entries, so the rows of jobs that do not
/// match are never read. Its columns never change after registration except
/// `status`, which the other indexes hold already, so it makes no update
/// lose PostgreSQL's heap-only (HOT) path; its cost is one more index entry
/// per insert and per update that is not HOT anyway (claims and step
/// commits change the lease and status columns, so none is).
///
/// Every statement uses `IF NOT EXISTS`, so running it again is harmless
/// and adds what a table made by the reference DDL lacks. Indexes are
/// matched by name: one created beforehand under the same name is kept.
///
/// ```
/// # use ssproc_runtime as ssproc;
/// let sql = ssproc::ddl(&ssproc::JobTable::default());
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"public\".\"ssproc_jobs\""));
/// ```
pub fn ddl(table: &JobTable) -> String {
    let schema = quote_identifier(table.schema());
    let quoted = quote_table(table);
    let open_index = quote_identifier(&index_name(table, "open"));
    let cleanup_index = quote_identifier(&index_name(table, "cleanup"));
    let created_index = quote_identifier(&index_name(table, "created"));
    let registry = format!("{schema}.{}", quote_identifier(&registry_name(table)));
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {quoted} (
    job_id TEXT PRIMARY KEY,
    job_data TEXT NOT NULL,
    process_id TEXT NOT NULL,
    goroutine_id VARCHAR(512) NOT NULL DEFAULT '',
    goroutine_heart_beat_ts TIMESTAMPTZ,
    goroutine_lease_expire_ts TIMESTAMPTZ,
    status VARCHAR(64) NOT NULL DEFAULT 'ready',
    next_subprocess INT NOT NULL DEFAULT 0,
    run_type VARCHAR(64) NOT NULL DEFAULT 'normal',
    goroutine_ids TEXT[] NOT NULL DEFAULT '{{}}',
    exec_count INT NOT NULL DEFAULT 0,
    comp_count INT NOT NULL DEFAULT 0,
    created_ts TIMESTAMPTZ NOT NULL DEFAULT now(),
    start_after_ts TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_ts TIMESTAMPTZ,
    end_ts TIMESTAMPTZ,
    last_update_ts TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_failure JSONB
);

ALTER TABLE {quoted} ADD COLUMN IF NOT EXISTS last_failure JSONB;

CREATE INDEX IF NOT EXISTS {open_index}
    ON {quoted} (process_id, status, start_after_ts, goroutine_lease_expire_ts);

CREATE INDEX IF NOT EXISTS {cleanup_index}
    ON {quoted} (process_id, status, end_ts);


CREATE INDEX IF NOT EXISTS {created_index}
    ON {quoted} (created_ts, job_id, process_id, status);

CREATE TABLE IF NOT EXISTS {registry} (
    process_id TEXT PRIMARY KEY,
    steps TEXT[] NOT NULL,
    updated_ts TIMESTAMPTZ NOT NULL DEFAULT now()
);
"
    )
}

/// Index names are `<table>_<suffix>_idx`.
fn index_name(table: &JobTable, suffix: &str) -> String {
    derived_name(table, &format!("{suffix}_idx"))
}

/// The step-list registry table: `<table>_processes`.
pub(crate) fn registry_name(table: &JobTable) -> String {
    derived_name(table, "processes")
}

/// `<table>_<suffix>`, or a hash of the table in its place when the name
/// would pass PostgreSQL's 63-byte limit and be truncated into a collision.
fn derived_name(table: &JobTable, suffix: &str) -> String {
    let name = format!("{}_{suffix}", table.table());
    if name.len() <= 63 {
        return name;
    }
    let channel = super::notify_channel(table);
    format!("{channel}_{suffix}")
}

/// Creates the jobs table and its indexes when they do not exist.
///
/// Runs [`ddl`] in one transaction under an advisory lock, so that executors
/// starting together do not race each other.
///
/// On a large table that lacks an index of [`ddl`], building it blocks
/// writes to the table until it is built. To avoid that, create it first
/// with `CREATE INDEX CONCURRENTLY` under the name [`ddl`] gives it; then
/// `migrate` finds it and leaves it alone.
///
/// # Errors
///
/// The database error when a statement fails, for example for lack of
/// privileges.
pub async fn migrate(pool: &PgPool, table: &JobTable) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("ssproc.migrate.{}", table.display_name()))
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(&ddl(table)).execute(&mut *tx).await?;
    tx.commit().await
}

/// The kinds of column the runtime reads and writes.
#[derive(Clone, Copy)]
enum Kind {
    /// `text` or `character varying`.
    Text,
    /// `integer`.
    Int,
    /// `timestamp with time zone`.
    Timestamptz,
    /// `text[]` or `character varying[]`.
    TextArray,
}

impl Kind {
    fn accepts(self, found: &str) -> bool {
        match self {
            Self::Text => found == "text" || found == "character varying",
            Self::Int => found == "integer",
            Self::Timestamptz => found == "timestamp with time zone",
            Self::TextArray => found == "text[]" || found == "character varying[]",
        }
    }
}

struct ColumnSpec {
    name: &'static str,
    kind: Kind,
    /// The expected type, as messages show it.
    expected: &'static str,
    not_null: bool,
    /// Shortest `character varying(n)` that holds what the runtime writes.
    min_len: Option<i32>,
    /// A default the runtime's insert relies on, without its cast.
    default: Option<&'static str>,
}

const fn column(
    name: &'static str,
    kind: Kind,
    expected: &'static str,
    not_null: bool,
) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        expected,
        not_null,
        min_len: None,
        default: None,
    }
}

/// The required columns, in DDL order: validation reports the first problem.
const COLUMNS: &[ColumnSpec] = &[
    column("job_id", Kind::Text, "TEXT", true),
    column("job_data", Kind::Text, "TEXT NOT NULL", true),
    column("process_id", Kind::Text, "TEXT NOT NULL", true),
    ColumnSpec {
        min_len: Some(512),
        default: Some("''"),
        ..column(
            "goroutine_id",
            Kind::Text,
            "VARCHAR(512) NOT NULL DEFAULT ''",
            true,
        )
    },
    column(
        "goroutine_heart_beat_ts",
        Kind::Timestamptz,
        "TIMESTAMPTZ",
        false,
    ),
    column(
        "goroutine_lease_expire_ts",
        Kind::Timestamptz,
        "TIMESTAMPTZ",
        false,
    ),
    ColumnSpec {
        min_len: Some(12),
        default: Some("'ready'"),
        ..column(
            "status",
            Kind::Text,
            "VARCHAR(64) NOT NULL DEFAULT 'ready'",
            true,
        )
    },
    ColumnSpec {
        default: Some("0"),
        ..column("next_subprocess", Kind::Int, "INT NOT NULL DEFAULT 0", true)
    },
    ColumnSpec {
        min_len: Some(12),
        default: Some("'normal'"),
        ..column(
            "run_type",
            Kind::Text,
            "VARCHAR(64) NOT NULL DEFAULT 'normal'",
            true,
        )
    },
    ColumnSpec {
        default: Some("'{}'"),
        ..column(
            "goroutine_ids",
            Kind::TextArray,
            "TEXT[] NOT NULL DEFAULT '{}'",
            true,
        )
    },
    ColumnSpec {
        default: Some("0"),
        ..column("exec_count", Kind::Int, "INT NOT NULL DEFAULT 0", true)
    },
    ColumnSpec {
        default: Some("0"),
        ..column("comp_count", Kind::Int, "INT NOT NULL DEFAULT 0", true)
    },
    column(
        "created_ts",
        Kind::Timestamptz,
        "TIMESTAMPTZ NOT NULL",
        true,
    ),
    column(
        "start_after_ts",
        Kind::Timestamptz,
        "TIMESTAMPTZ NOT NULL",
        true,
    ),
    column("started_ts", Kind::Timestamptz, "TIMESTAMPTZ", false),
    column("end_ts", Kind::Timestamptz, "TIMESTAMPTZ", false),
    column(
        "last_update_ts",
        Kind::Timestamptz,
        "TIMESTAMPTZ NOT NULL",
        true,
    ),
];

/// Leading columns of the indexes the claim and the cleanup need, and how
/// messages name them. The listing index of [`ddl`] only makes
/// things faster, so a table without them passes.
const INDEXES: &[(&[&str], &str)] = &[
    (
        &["process_id", "status", "start_after_ts"],
        "(process_id, status, start_after_ts, ...)",
    ),
    (
        &["process_id", "status", "end_ts"],
        "(process_id, status, end_ts)",
    ),
];

struct FoundColumn {
    name: String,
    type_name: String,
    /// `n` of `character varying(n)`; `None` when unbounded.
    max_len: Option<i32>,
    not_null: bool,
    default: Option<String>,
}

/// Checks that `table` has every column, key and index the runtime needs.
///
/// Extra columns and indexes are fine, and so are index names. A table made
/// by the reference README's DDL passes; it lacks `last_failure`, so failure
/// reasons are not stored in it.
///
/// # Errors
///
/// The first problem found, in this order: [`SchemaError::MissingTable`];
/// per column in DDL order [`SchemaError::MissingColumn`],
/// [`SchemaError::ColumnType`], [`SchemaError::ColumnNullable`],
/// [`SchemaError::ColumnTooShort`], [`SchemaError::ColumnDefault`]; then
/// [`SchemaError::PrimaryKey`] and [`SchemaError::MissingIndex`].
/// [`SchemaError::Database`] when the catalog could not be read.
pub async fn validate_schema(pool: &PgPool, table: &JobTable) -> Result<(), SchemaError> {
    inspect(pool, table).await.map(|_| ())
}

/// Every problem [`validate_schema`] would report, not only the first, in
/// the same order; empty when the table is fine. A table that is missing,
/// or a catalog that cannot be read, is the only problem reported.
pub async fn schema_problems(pool: &PgPool, table: &JobTable) -> Vec<SchemaError> {
    match survey(pool, table).await {
        Ok((_, problems)) => problems,
        Err(error) => vec![error],
    }
}

/// Validates the table and reports its optional columns.
pub(crate) async fn inspect(pool: &PgPool, table: &JobTable) -> Result<SchemaInfo, SchemaError> {
    let (info, problems) = survey(pool, table).await?;
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(info),
    }
}

/// Reads the table's catalog entries and lists every problem found, one per
/// column at most; `Err` when the table is missing or the catalog unreadable.
async fn survey(
    pool: &PgPool,
    table: &JobTable,
) -> Result<(SchemaInfo, Vec<SchemaError>), SchemaError> {
    let name = table.display_name();
    let database = |source| SchemaError::Database {
        table: name.clone(),
        source,
    };

    let oid: Option<sqlx::postgres::types::Oid> = sqlx::query_scalar(
        "SELECT c.oid
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1
            AND c.relname = $2
            AND c.relkind IN ('r', 'p')",
    )
    .bind(table.schema())
    .bind(table.table())
    .fetch_optional(pool)
    .await
    .map_err(database)?;
    let Some(oid) = oid else {
        return Err(SchemaError::MissingTable { table: name });
    };

    let columns = sqlx::query(
        "SELECT a.attname::text AS name,
            format_type(a.atttypid, NULL) AS type_name,
            CASE WHEN a.atttypid = 'varchar'::regtype AND a.atttypmod > 4
                THEN a.atttypmod - 4
            END AS max_len,
            a.attnotnull AS not_null,
            pg_get_expr(d.adbin, d.adrelid) AS default_expr
        FROM pg_catalog.pg_attribute a
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1
            AND a.attnum > 0
            AND NOT a.attisdropped",
    )
    .bind(oid)
    .fetch_all(pool)
    .await
    .map_err(database)?
    .into_iter()
    .map(|row| -> Result<FoundColumn, sqlx::Error> {
        Ok(FoundColumn {
            name: row.try_get("name")?,
            type_name: row.try_get("type_name")?,
            max_len: row.try_get("max_len")?,
            not_null: row.try_get("not_null")?,
            default: row.try_get("default_expr")?,
        })
    })
    .collect::<Result<Vec<_>, _>>()
    .map_err(database)?;

    let mut problems = Vec::new();
    for spec in COLUMNS {
        let found = columns.iter().find(|c| c.name == spec.name);
        problems.extend(check_column(&name, spec, found).err());
    }
    let last_failure = match columns.iter().find(|c| c.name == "last_failure") {
        None => false,
        Some(c) if c.type_name == "jsonb" => true,
        Some(c) => {
            problems.push(SchemaError::ColumnType {
                table: name.clone(),
                column: "last_failure",
                expected: "JSONB",
                found: c.type_name.clone(),
            });
            false
        }
    };

    let indexes: Vec<(bool, Vec<String>)> = sqlx::query_as(
        "SELECT i.indisprimary,
            ARRAY(
                SELECT coalesce(a.attname::text, '')
                FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                LEFT JOIN pg_catalog.pg_attribute a
                    ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                ORDER BY k.ord
            )
        FROM pg_catalog.pg_index i
        WHERE i.indrelid = $1
            AND i.indisvalid
            AND i.indpred IS NULL
        ORDER BY i.indexrelid",
    )
    .bind(oid)
    .fetch_all(pool)
    .await
    .map_err(database)?;

    let primary = indexes.iter().find(|(is_primary, _)| *is_primary);
    let found_key = match primary {
        Some((_, columns)) if columns == &["job_id"] => None,
        Some((_, columns)) => Some(format!("({})", columns.join(", "))),
        None => Some("none".to_owned()),
    };
    if let Some(found) = found_key {
        problems.push(SchemaError::PrimaryKey {
            table: name.clone(),
            found,
        });
    }
    for (leading, expected) in INDEXES {
        let led_by = |columns: &Vec<String>| columns.iter().take(leading.len()).eq(*leading);
        if !indexes.iter().any(|(_, columns)| led_by(columns)) {
            problems.push(SchemaError::MissingIndex {
                table: name.clone(),
                expected,
            });
        }
    }
    Ok((SchemaInfo { last_failure }, problems))
}

fn check_column(
    table: &str,
    spec: &ColumnSpec,
    found: Option<&FoundColumn>,
) -> Result<(), SchemaError> {
    let table = table.to_owned();
    let column = spec.name;
    let Some(found) = found else {
        return Err(SchemaError::MissingColumn {
            table,
            column,
            expected: spec.expected,
        });
    };
    if !spec.kind.accepts(&found.type_name) {
        return Err(SchemaError::ColumnType {
            table,
            column,
            expected: spec.expected,
            found: found.type_name.clone(),
        });
    }
    if spec.not_null && !found.not_null {
        return Err(SchemaError::ColumnNullable { table, column });
    }
    if let (Some(expected), Some(found)) = (spec.min_len, found.max_len) {
        if found < expected {
            return Err(SchemaError::ColumnTooShort {
                table,
                column,
                expected,
                found,
            });
        }
    }
    if let Some(expected) = spec.default {
        let found_default = found.default.as_deref().map(strip_casts);
        if found_default != Some(expected) {
            return Err(SchemaError::ColumnDefault {
                table,
                column,
                expected,
                found: found.default.clone().unwrap_or_else(|| "none".to_owned()),
            });
        }
    }
    Ok(())
}

/// `'ready'::character varying` → `'ready'`: defaults compare without casts.
fn strip_casts(expr: &str) -> &str {
    let mut expr = expr.trim();
    if let Some(inner) = expr.strip_prefix('(').and_then(|e| e.strip_suffix(')')) {
        expr = inner.trim();
    }
    match expr.rfind("::") {
        Some(at) if !expr[at..].contains('\'') => strip_casts(&expr[..at]),
        _ => expr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_are_stripped() {
        assert_eq!(strip_casts("'ready'::character varying"), "'ready'");
        assert_eq!(strip_casts("'{}'::text[]"), "'{}'");
        assert_eq!(strip_casts("0"), "0");
        assert_eq!(strip_casts("('x'::text)::character varying"), "'x'");
    }

    #[test]
    fn long_table_names_get_hashed_index_names() {
        let table = JobTable::new("public", "a".repeat(60)).unwrap();
        let name = index_name(&table, "cleanup");
        assert!(name.len() <= 63, "{name}");
        assert_ne!(name, index_name(&table, "open"));
    }

    #[test]
    fn the_listing_index_is_created_idempotently() {
        let table = JobTable::default();
        let sql = ddl(&table);
        assert!(sql.contains(
            "CREATE INDEX IF NOT EXISTS \"ssproc_jobs_created_idx\"
    ON \"public\".\"ssproc_jobs\" (created_ts, job_id, process_id, status);"
        ));
    }
}
