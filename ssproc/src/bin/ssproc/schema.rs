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

/// Validates the table. One problem is the error; several are listed on
/// stdout, one a line, before the error that counts them.
pub(crate) async fn check(pool: &PgPool, table: &JobTable) -> Result<String, CliError> {
    let name = table.display_name();
    let problems = ssproc::schema_problems(pool, table).await;
    match problems.as_slice() {
        [] => Ok(format!(
            "{name}: every column, key and index ssproc needs is in place\n"
        )),
        [only] => Err(CliError::from_error(None, only)),
        many => {
            for problem in many {
                println!("{problem}");
            }
            Err(CliError::new(format!("{} problems in {name}", many.len())))
        }
    }
}
