//! `migrate` and `check`: the jobs table itself.

use sqlx::PgPool;
use ssproc::JobTable;

use crate::error::CliError;

/// Creates the table and its indexes where missing.
pub(crate) async fn migrate(pool: &PgPool, table: &JobTable) -> Result<String, CliError> {
    let name = table.display_name();
    ssproc::migrate(pool, table).await.map_err(|error| {
        CliError::from_error(Some(&format!("could not migrate {name}")), &error)
    })?;
    Ok(format!("{name}: table and indexes are in place\n"))
}

/// Validates the table; its first problem is the error.
pub(crate) async fn check(pool: &PgPool, table: &JobTable) -> Result<String, CliError> {
    let name = table.display_name();
    ssproc::validate_schema(pool, table)
        .await
        .map_err(|error| CliError::from_error(None, &error))?;
    Ok(format!(
        "{name}: every column, key and index ssproc needs is in place\n"
    ))
}
