//! Everything that talks SQL: the store handle, its statements and the
//! schema. No other module writes SQL.

mod admin;
mod filter;
mod queries;
mod schema;
mod steps;

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::JobTable;

pub(crate) use queries::{Claimed, Due, Transition, Unreadable};
pub use schema::{ddl, migrate, schema_problems, validate_schema};
pub(crate) use schema::{inspect, SchemaInfo};

/// A handle on the jobs table: the pool, the quoted names and the statement
/// texts, built once. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    pool: PgPool,
    table: JobTable,
    /// `"schema"."table"`.
    quoted: String,
    /// The step-list registry beside the table, quoted.
    steps_table: String,
    channel: String,
    sql: queries::Statements,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store on `table`; `info` says which optional columns exist.
    pub(crate) fn new(pool: PgPool, table: JobTable, info: SchemaInfo) -> Self {
        let quoted = quote_table(&table);
        let channel = notify_channel(&table);
        let sql = queries::Statements::new(&quoted, info);
        let steps_table = format!(
            "{}.{}",
            quote_identifier(table.schema()),
            quote_identifier(&schema::registry_name(&table))
        );
        let inner = StoreInner {
            pool,
            table,
            quoted,
            steps_table,
            channel,
            sql,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The `LISTEN`/`NOTIFY` channel of this table.
    pub(crate) fn channel(&self) -> &str {
        &self.inner.channel
    }
}

/// Quotes an identifier for SQL: wrapped in double quotes, inner quotes
/// doubled. Names are validated as plain by [`JobTable::new`]; quoting keeps
/// their case and makes any name safe regardless.
/// Whether `error` says the database could not be reached, or is shutting
/// down or starting up, as opposed to an answer about the statement
/// (missing privileges, a bad value), which retrying will not change.
pub(crate) fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // Class 08: connection exceptions; 57P01 to 57P03: an
        // administrator's shutdown, a crash shutdown, and "cannot connect
        // now" while the server starts.
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_table(table: &JobTable) -> String {
    format!(
        "{}.{}",
        quote_identifier(table.schema()),
        quote_identifier(table.table())
    )
}

/// The notification channel of a table: `ssproc_` and a stable 64-bit FNV-1a
/// hash of `schema.table`, so that it stays below PostgreSQL's 63-byte limit
/// for any pair of names.
fn notify_channel(table: &JobTable) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in table
        .schema()
        .bytes()
        .chain([b'.'])
        .chain(table.table().bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ssproc_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn channel_is_stable_and_short() {
        let channel = notify_channel(&JobTable::default());
        assert_eq!(channel, notify_channel(&JobTable::default()));
        assert_eq!(channel.len(), "ssproc_".len() + 16);
        let other = JobTable::new("public", "other_jobs").unwrap();
        assert_ne!(channel, notify_channel(&other));
    }
}
