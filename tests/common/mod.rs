//! What the integration tests share: the database, a per-test schema, the
//! scripted processes, and waits with deadlines.

// Each test module uses a different part of this.
#![allow(dead_code)]

pub mod cli;
pub mod harness;
pub mod logs;
pub mod postgres;
pub mod scripted;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// One test's database: a fresh schema holding a migrated `jobs` table.
pub struct TestDb {
    /// A pool whose connections carry the test's name as
    /// `application_name`, so a test can terminate exactly its own.
    pub pool: sqlx::PgPool,
    /// `<schema>.jobs`.
    pub table: ssproc::JobTable,
    /// The schema, named for the test.
    pub schema: String,
    /// The database URL.
    pub url: String,
}

/// A fresh schema named `name` (dropped first if a previous run left it)
/// with the jobs table migrated into it.
pub async fn test_db(name: &str) -> TestDb {
    let url = postgres::database_url().await;
    let options = PgConnectOptions::from_str(&url)
        .expect("DATABASE_URL parses")
        .application_name(name);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    ))
    .execute(&pool)
    .await
    .expect("create the test schema");
    let table = ssproc::JobTable::new(name, "jobs").expect("test names are plain identifiers");
    ssproc::migrate(&pool, &table)
        .await
        .expect("migrate the test table");
    TestDb {
        pool,
        table,
        schema: name.to_owned(),
        url,
    }
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` once
/// `deadline` has passed.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
