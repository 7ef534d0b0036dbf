//! Structural validation of the jobs table (BEHAVIOUR.md scenario 23).

use ssproc::{JobTable, SchemaError};

use crate::common::test_db;

/// The reference README's DDL, verbatim but for the table and index names.
fn reference_ddl(schema: &str, table: &str) -> String {
    format!(
        "CREATE TABLE {schema}.{table} (
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
created_ts TIMESTAMPTZ NOT NULL DEFAULT NOW(),
start_after_ts TIMESTAMPTZ NOT NULL DEFAULT NOW(),
started_ts TIMESTAMPTZ,
end_ts TIMESTAMPTZ,
last_update_ts TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_{table}_open ON {schema}.{table} (process_id, status, start_after_ts, goroutine_lease_expire_ts);
CREATE INDEX idx_{table}_cleanup ON {schema}.{table} (process_id, status, end_ts);"
    )
}

/// Creates the reference table `table`, applies `change`, and validates.
async fn validate_changed(
    db: &crate::common::TestDb,
    table: &str,
    change: &str,
) -> Result<(), SchemaError> {
    let schema = &db.schema;
    sqlx::raw_sql(&reference_ddl(schema, table))
        .execute(&db.pool)
        .await
        .unwrap();
    if !change.is_empty() {
        let change = change
            .replace("{t}", &format!("{schema}.{table}"))
            .replace("{s}", schema)
            .replace("{n}", table);
        sqlx::raw_sql(&change).execute(&db.pool).await.unwrap();
    }
    ssproc::validate_schema(&db.pool, &JobTable::new(schema, table).unwrap()).await
}

#[tokio::test]
async fn reference_ddl_and_shipped_ddl_pass() {
    let db = test_db("schema_pass").await;
    validate_changed(&db, "reference", "").await.unwrap();
    let extras = "ALTER TABLE {t} ADD COLUMN tenant TEXT;
        CREATE INDEX extra_{n} ON {t} (created_ts);
        ALTER INDEX {s}.idx_{n}_open RENAME TO whatever_{n}";
    validate_changed(&db, "with_extras", extras).await.unwrap();
    // The shipped DDL, applied twice.
    let table = JobTable::new(&db.schema, "shipped").unwrap();
    ssproc::migrate(&db.pool, &table).await.unwrap();
    ssproc::migrate(&db.pool, &table).await.unwrap();
    ssproc::validate_schema(&db.pool, &table).await.unwrap();
}

/// `migrate` over a table made by the reference DDL adds the listing index
/// the reference lacks, once; the table validates before and after.
#[tokio::test]
async fn migrate_adds_the_listing_index_to_a_reference_table() {
    let db = test_db("schema_listing_index").await;
    validate_changed(&db, "reference", "").await.unwrap();
    let table = JobTable::new(&db.schema, "reference").unwrap();
    let listing = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
        )
        .bind(&db.schema)
        .bind("reference_created_idx")
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    assert!(listing().await.is_empty());
    for _ in 0..2 {
        ssproc::migrate(&db.pool, &table).await.unwrap();
        let found = listing().await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].ends_with("USING btree (created_ts, job_id, process_id, status)"),
            "{found:?}"
        );
        ssproc::validate_schema(&db.pool, &table).await.unwrap();
    }
}

#[tokio::test]
async fn every_deviation_is_its_typed_error() {
    let db = test_db("schema_deviations").await;
    let schema = db.schema.clone();
    let absent = JobTable::new(&schema, "absent").unwrap();
    let error = ssproc::validate_schema(&db.pool, &absent)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SchemaError::MissingTable { table } if *table == format!("{schema}.absent"))
    );

    let cases: &[(&str, &str, &str)] = &[
        (
            "no_exec_count",
            "ALTER TABLE {t} DROP COLUMN exec_count",
            "column exec_count is missing (expected INT NOT NULL DEFAULT 0)",
        ),
        (
            "bigint_step",
            "ALTER TABLE {t} ALTER COLUMN next_subprocess TYPE BIGINT",
            "column next_subprocess has type bigint, expected INT NOT NULL DEFAULT 0",
        ),
        (
            "naive_created",
            "ALTER TABLE {t} ALTER COLUMN created_ts TYPE TIMESTAMP",
            "column created_ts has type timestamp without time zone, expected TIMESTAMPTZ NOT NULL",
        ),
        (
            "nullable_data",
            "ALTER TABLE {t} ALTER COLUMN job_data DROP NOT NULL",
            "column job_data is nullable, expected NOT NULL",
        ),
        (
            "short_token",
            "ALTER TABLE {t} ALTER COLUMN goroutine_id TYPE VARCHAR(100)",
            "column goroutine_id holds 100 characters, expected at least 512",
        ),
        (
            "no_status_default",
            "ALTER TABLE {t} ALTER COLUMN status DROP DEFAULT",
            "column status has default none, expected 'ready'",
        ),
        (
            "wrong_run_type_default",
            "ALTER TABLE {t} ALTER COLUMN run_type SET DEFAULT 'compensation'",
            "column run_type has default 'compensation'::character varying, expected 'normal'",
        ),
        (
            "no_primary_key",
            "ALTER TABLE {t} DROP CONSTRAINT {n}_pkey",
            "primary key is none, expected (job_id)",
        ),
        (
            "wide_primary_key",
            "ALTER TABLE {t} DROP CONSTRAINT {n}_pkey; ALTER TABLE {t} ADD PRIMARY KEY (job_id, process_id)",
            "primary key is (job_id, process_id), expected (job_id)",
        ),
        (
            "no_open_index",
            "DROP INDEX {s}.idx_{n}_open",
            "no index on (process_id, status, start_after_ts, ...)",
        ),
        (
            "no_cleanup_index",
            "DROP INDEX {s}.idx_{n}_cleanup",
            "no index on (process_id, status, end_ts)",
        ),
        (
            "text_failure",
            "ALTER TABLE {t} ADD COLUMN last_failure TEXT",
            "column last_failure has type text, expected JSONB",
        ),
    ];
    for (table, change, message) in cases {
        let error = validate_changed(&db, table, change).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("table {schema}.{table}: {message}"),
            "{table}"
        );
    }
}

#[tokio::test]
async fn an_executor_refuses_to_start_on_a_bad_table() {
    let db = test_db("schema_start").await;
    sqlx::raw_sql(&format!(
        "ALTER TABLE {}.jobs DROP COLUMN comp_count",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let script = crate::common::scripted::Script::succeed();
    let process = crate::common::scripted::Single::new(&script);
    let config = crate::common::harness::fast_config();
    let executor =
        ssproc::Executor::new(db.pool.clone(), db.table.clone(), process, config).unwrap();
    let error = executor.start().await.unwrap_err();
    assert!(
        matches!(
            error,
            ssproc::StartError::Schema(SchemaError::MissingColumn {
                column: "comp_count",
                ..
            })
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn every_problem_of_a_table_is_listed_in_order() {
    let db = test_db("schema_all_problems").await;
    let changes = "ALTER TABLE {t} DROP COLUMN exec_count;
        ALTER TABLE {t} ALTER COLUMN status DROP DEFAULT;
        DROP INDEX {s}.idx_{n}_cleanup";
    let first = validate_changed(&db, "broken", changes).await.unwrap_err();
    let table = JobTable::new(&db.schema, "broken").unwrap();
    let problems: Vec<String> = ssproc::schema_problems(&db.pool, &table)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    let prefix = format!("table {}.broken: ", db.schema);
    assert_eq!(
        problems,
        [
            format!("{prefix}column status has default none, expected 'ready'"),
            format!("{prefix}column exec_count is missing (expected INT NOT NULL DEFAULT 0)"),
            format!("{prefix}no index on (process_id, status, end_ts)"),
        ]
    );
    assert_eq!(first.to_string(), problems[0]);
    let fine = JobTable::new(&db.schema, "jobs").unwrap();
    assert!(ssproc::schema_problems(&db.pool, &fine).await.is_empty());
}

/// A table made from the reference DDL alone (no `last_failure` column, no
/// step-list table) runs jobs to the end, compensation included; failures
/// then read as none.
#[tokio::test]
async fn jobs_run_on_a_table_from_the_reference_ddl_alone() {
    use std::time::Duration;

    use crate::common::harness::with;
    use crate::common::scripted::{Act, Saga, Script, Trail};

    let db = test_db("schema_reference_runs").await;
    sqlx::raw_sql(&reference_ddl(&db.schema, "bare"))
        .execute(&db.pool)
        .await
        .unwrap();
    let table = JobTable::new(&db.schema, "bare").unwrap();
    let script = Script::new(|call| match (call.job_id.as_str(), call.step) {
        ("fails", 1) if call.run_type == ssproc::RunType::Normal => Act::Fail,
        _ => Act::Succeed,
    });
    let config = with(|c| c.max_exec_count = 2);
    let handle = ssproc::Executor::new(db.pool.clone(), table.clone(), Saga::new(&script), config)
        .unwrap()
        .start()
        .await
        .unwrap();
    let client = ssproc::Client::<Saga>::new(db.pool.clone(), table.clone());
    client.register(&Trail::new("runs")).await.unwrap();
    client.register(&Trail::new("fails")).await.unwrap();
    let done =
        crate::common::harness::wait_terminal(&client, "runs", Duration::from_secs(20)).await;
    let compensated =
        crate::common::harness::wait_terminal(&client, "fails", Duration::from_secs(20)).await;
    handle.shutdown().await;

    assert_eq!(done.status, ssproc::JobStatus::Done);
    assert_eq!(done.data::<Trail>().unwrap().trail, ["s0", "s1", "s2"]);
    assert_eq!(compensated.status, ssproc::JobStatus::Compensated);
    assert_eq!((compensated.exec_count, compensated.next_step), (2, -1));
    assert_eq!(script.compensations("fails"), [1, 0]);
    assert!(
        compensated.last_failure.is_none(),
        "no column to keep it in"
    );
    let processes_table: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{}.bare_processes", db.schema))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(processes_table, None, "the executor created no table");
}
