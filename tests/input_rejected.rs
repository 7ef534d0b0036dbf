//! Bad input gets a clear, typed error and leaves the executor and every
//! other job untouched (BEHAVIOUR.md invariant 6): duplicate ids, NUL
//! characters, a 10 MB payload, stored data that no longer deserializes,
//! names that are not plain identifiers, and passwords in database URLs.
//!
//! Schema mismatches are in `schema_validation.rs`, invalid settings in
//! `config_validation.rs`.

use std::net::TcpListener;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use ssproc::{
    AdminError, Client, ConfigError, ExecuteError, Executor, FailureKind, JobStatus, JobTable,
    Jobs, ReadError, RegisterError, RunType, SchemaError, StartAt, StartError,
};

use crate::common::harness::{executor, fast_config, patient_config, wait_terminal, Bystanders};
use crate::common::logs::capture;
use crate::common::postgres::{private_cluster, Auth};
use crate::common::scripted::{Act, Plain, Saga, Script, Single, Trail};
use crate::common::{cli, test_db, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn duplicate_ids_leave_running_and_finished_jobs_alone() {
    let db = test_db("input_duplicate").await;
    let script = Script::new(|call| match call.job_id.as_str() {
        "running" => Act::AwaitGate,
        _ => Act::Succeed,
    });
    let process = Single::new(&script);
    let mut bystanders = Bystanders::start(&db, process, patient_config(), &["b1", "b2"]).await;
    let client = bystanders.client.clone();
    let first = Trail {
        value: 1,
        ..Trail::new("running")
    };
    client.register(&first).await.unwrap();
    wait_until(DEADLINE, "the job's step runs", || async {
        script.calls().iter().any(|call| call.job_id == "running")
    })
    .await;
    let before = client.job("running").await.unwrap().unwrap();

    let second = Trail {
        value: 2,
        ..Trail::new("running")
    };
    let error = client.register(&second).await.unwrap_err();
    assert!(
        matches!(&error, RegisterError::DuplicateJobId { job_id } if job_id == "running"),
        "{error:?}"
    );
    // Beside a new id in one batch: nothing of the batch is written.
    let batch = [Trail::new("fresh"), second.clone()];
    let error = client
        .register_many(&batch, StartAt::Now)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RegisterError::DuplicateJobId { job_id } if job_id == "running"),
        "{error:?}"
    );
    assert!(client.job("fresh").await.unwrap().is_none());
    // A finished job keeps its id.
    let error = client.register(&Trail::new("b1")).await.unwrap_err();
    assert!(
        matches!(&error, RegisterError::DuplicateJobId { job_id } if job_id == "b1"),
        "{error:?}"
    );
    let other = executor(&db, Single::new(&script), fast_config());
    let error = other.execute_and_wait(&Trail::new("b1")).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ExecuteError::Register(RegisterError::DuplicateJobId { job_id }) if job_id == "b1"
        ),
        "{error:?}"
    );

    // The running attempt never noticed.
    let during = client.job("running").await.unwrap().unwrap();
    assert_eq!(
        (&during.job_data, &during.token, &during.tokens),
        (&before.job_data, &before.token, &before.tokens)
    );
    assert_eq!(
        (during.status, during.exec_count, during.created_at),
        (JobStatus::Ready, 1, before.created_at)
    );
    script.open_gate();
    let job = wait_terminal(&client, "running", DEADLINE).await;
    assert_eq!((job.status, job.exec_count), (JobStatus::Done, 1));
    assert_eq!(job.token, before.token);
    let data: Trail = job.data().unwrap();
    assert_eq!((data.value, data.trail), (1, vec!["s0".to_owned()]));
    bystanders.assert_unaffected("duplicate ids").await;
    bystanders.stop().await;
}

#[tokio::test]
async fn nul_characters_are_stored_in_data_and_refused_in_ids() {
    let db = test_db("input_nul").await;
    let script = Script::succeed();
    let process = Plain::new(&script);
    let mut bystanders = Bystanders::start(&db, process, patient_config(), &["b1", "b2"]).await;
    let client = bystanders.client.clone();

    // In data, JSON escapes it, so any string is storable and round-trips
    // through every step.
    let data = Trail {
        trail: vec!["a\0b".to_owned(), "\0".to_owned()],
        ..Trail::new("nul_data")
    };
    client.register(&data).await.unwrap();
    let job = wait_terminal(&client, "nul_data", DEADLINE).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert!(job.job_data.contains(r"a\u0000b"), "{}", job.job_data);
    assert_eq!(
        job.data::<Trail>().unwrap().trail,
        ["a\0b", "\0", "s0", "s1", "s2"]
    );

    // In an id, stored as text as it is, it cannot be: refused by every way
    // in, before anything is written.
    let nul = "it contains a NUL character, which PostgreSQL text cannot store";
    let refused = |error: &RegisterError, id: &str, why: &str| {
        assert!(
            matches!(
                error,
                RegisterError::InvalidJobId { job_id, reason } if job_id == id && *reason == why
            ),
            "{error:?}"
        );
    };
    let error = client.register(&Trail::new("bad\0id")).await.unwrap_err();
    refused(&error, "bad\0id", nul);
    let batch = [Trail::new("beside"), Trail::new("bad\0id")];
    let error = client
        .register_many(&batch, StartAt::Now)
        .await
        .unwrap_err();
    refused(&error, "bad\0id", nul);
    let batch = [Trail::new("beside"), Trail::new("")];
    let error = client
        .register_many(&batch, StartAt::Now)
        .await
        .unwrap_err();
    refused(&error, "", "it is empty");
    assert!(client.job("beside").await.unwrap().is_none());
    let other = executor(&db, Plain::new(&script), fast_config());
    match other.execute_and_wait(&Trail::new("bad\0id")).await {
        Err(ExecuteError::Register(error)) => refused(&error, "bad\0id", nul),
        other => panic!("expected a refused id: {other:?}"),
    }
    assert!(script.calls().iter().all(|call| call.job_id != "bad\0id"));
    bystanders.assert_unaffected("NUL characters").await;
    bystanders.stop().await;
}

/// Job data is text holding JSON, and PostgreSQL stores text up to 1 GB: a
/// 10 MB payload is accepted and round-trips through every step.
#[tokio::test]
async fn a_ten_megabyte_payload_is_accepted_and_round_trips() {
    const SIZE: usize = 10 * 1024 * 1024;
    let db = test_db("input_large").await;
    let script = Script::succeed();
    let process = Plain::new(&script);
    let mut bystanders = Bystanders::start(&db, process, patient_config(), &["b1", "b2"]).await;
    let client = bystanders.client.clone();

    let big: String = (0..SIZE)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let data = Trail {
        trail: vec![big.clone()],
        ..Trail::new("big")
    };
    client.register(&data).await.unwrap();
    let job = wait_terminal(&client, "big", Duration::from_secs(60)).await;
    // Not `{job:?}`: ten megabytes of panic message help nobody.
    assert_eq!((job.status, job.exec_count), (JobStatus::Done, 1));
    let stored: Trail = job.data().unwrap();
    assert_eq!(stored.trail.len(), 4);
    assert!(stored.trail[0] == big, "the payload changed on its way");
    assert_eq!(stored.trail[1..], ["s0", "s1", "s2"]);
    let bytes: i32 = sqlx::query_scalar(&format!(
        "SELECT octet_length(job_data) FROM {}.jobs WHERE job_id = 'big'",
        db.schema
    ))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(bytes as usize > SIZE, "{bytes} bytes stored");
    bystanders.assert_unaffected("a 10 MB payload").await;
    bystanders.stop().await;
}

/// A row as another version of the application, or an operator, left it.
struct Stored {
    id: &'static str,
    data: &'static str,
    run_type: RunType,
    next_step: i32,
    exec_count: i32,
    /// The failure message expected.
    reason: String,
}

fn does_not_parse(text: &str) -> String {
    serde_json::from_str::<Trail>(text).unwrap_err().to_string()
}

#[tokio::test]
async fn data_that_no_longer_deserializes_fails_once_with_its_reason() {
    let db = test_db("input_undeserializable").await;
    let script = Script::succeed();
    let process = Saga::new(&script);
    let mut bystanders = Bystanders::start(&db, process, patient_config(), &["b1", "b2"]).await;
    let client = bystanders.client.clone();

    let valid = r#"{"id":"past_the_end","trail":[],"value":0}"#;
    let wrong_type = r#"{"id":"wrong_type","trail":"s0","value":0}"#;
    let missing = r#"{"id":"missing_field"}"#;
    let in_compensation = r#"{"id":"compensating","trail":["s0"],"value":"ten"}"#;
    let cases = [
        Stored {
            id: "not_json",
            data: "not json",
            run_type: RunType::Normal,
            next_step: 0,
            exec_count: 0,
            reason: does_not_parse("not json"),
        },
        Stored {
            id: "wrong_type",
            data: wrong_type,
            run_type: RunType::Normal,
            next_step: 1,
            exec_count: 0,
            reason: does_not_parse(wrong_type),
        },
        Stored {
            id: "missing_field",
            data: missing,
            run_type: RunType::Normal,
            next_step: 2,
            exec_count: 0,
            reason: does_not_parse(missing),
        },
        Stored {
            id: "compensating",
            data: in_compensation,
            run_type: RunType::Compensation,
            next_step: 1,
            exec_count: 3,
            reason: does_not_parse(in_compensation),
        },
        Stored {
            id: "past_the_end",
            data: valid,
            run_type: RunType::Normal,
            next_step: 7,
            exec_count: 0,
            reason: "next step 7 is outside the 3 steps".to_owned(),
        },
    ];
    assert!(cases[1]
        .reason
        .starts_with("invalid type: string \"s0\", expected a sequence"));
    assert!(cases[2].reason.starts_with("missing field `trail`"));
    let insert = format!(
        "INSERT INTO {}.jobs (job_id, job_data, process_id, run_type, next_subprocess, exec_count)
        VALUES ($1, $2, 'scripted', $3, $4, $5)",
        db.schema
    );
    for case in &cases {
        sqlx::query(&insert)
            .bind(case.id)
            .bind(case.data)
            .bind(case.run_type.as_str())
            .bind(case.next_step)
            .bind(case.exec_count)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    for case in &cases {
        let job = wait_terminal(&client, case.id, DEADLINE).await;
        assert_eq!(
            (job.status, job.run_type, job.next_step),
            (JobStatus::Error, case.run_type, case.next_step),
            "{job:?}"
        );
        // One attempt, then never claimed again: a terminal status.
        assert_eq!(job.tokens.len(), 1, "{job:?}");
        let (attempts, others) = match case.run_type {
            RunType::Normal => (job.exec_count, job.comp_count),
            _ => (job.comp_count, job.exec_count - case.exec_count),
        };
        assert_eq!((attempts, others), (1, 0), "{job:?}");
        assert_eq!(
            job.job_data, case.data,
            "the stored data is kept to be fixed"
        );
        let failure = job.last_failure.as_ref().expect("the failure is stored");
        assert_eq!(failure.kind, FailureKind::Data, "{failure:?}");
        assert_eq!(failure.message, case.reason);
        assert_eq!(
            (failure.step, failure.run_type, failure.attempt),
            (case.next_step, case.run_type, 1),
            "{failure:?}"
        );
    }
    let ids: Vec<&str> = cases.iter().map(|case| case.id).collect();
    assert!(
        script
            .calls()
            .iter()
            .all(|call| !ids.contains(&call.job_id.as_str())),
        "a step ran on data that does not deserialize"
    );
    bystanders.assert_unaffected("undeserializable data").await;

    // Fixed by hand and retried by an operator, the job runs on.
    sqlx::query(&format!(
        "UPDATE {}.jobs SET job_data = $1 WHERE job_id = 'wrong_type'",
        db.schema
    ))
    .bind(r#"{"id":"wrong_type","trail":["s0"],"value":0}"#)
    .execute(&db.pool)
    .await
    .unwrap();
    Jobs::new(db.pool.clone(), db.table.clone())
        .retry("wrong_type")
        .await
        .unwrap();
    let job = wait_terminal(&client, "wrong_type", DEADLINE).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.data::<Trail>().unwrap().trail, ["s0", "s1", "s2"]);
    bystanders.stop().await;
}

/// A run type no version of ssproc writes: claimed once, the job ends in
/// `error` naming the value, instead of being claimed after every lease.
#[tokio::test]
async fn an_unknown_run_type_ends_the_job_in_error_once() {
    let db = test_db("input_unknown_run_type").await;
    let script = Script::succeed();
    let mut bystanders =
        Bystanders::start(&db, Saga::new(&script), patient_config(), &["b1"]).await;
    let client = bystanders.client.clone();
    sqlx::query(&format!(
        "INSERT INTO {}.jobs (job_id, job_data, process_id, run_type, next_subprocess)
        VALUES ('sideways', $1, 'scripted', 'sideways', 1)",
        db.schema
    ))
    .bind(r#"{"id":"sideways","trail":["s0"],"value":0}"#)
    .execute(&db.pool)
    .await
    .unwrap();

    // The row does not read as a `Job` until it has ended: poll the column.
    let status = format!(
        "SELECT status::text FROM {}.jobs WHERE job_id = 'sideways'",
        db.schema
    );
    wait_until(DEADLINE, "the job ends", || async {
        let status: String = sqlx::query_scalar(&status)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        status != "ready"
    })
    .await;
    let job = client.job("sideways").await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.next_step),
        (JobStatus::Error, 1),
        "{job:?}"
    );
    assert_eq!(job.tokens.len(), 1, "claimed once: {job:?}");
    assert_eq!((job.exec_count, job.comp_count), (0, 0), "{job:?}");
    let failure = job.last_failure.expect("the failure is stored");
    assert_eq!(failure.kind, FailureKind::Data);
    assert_eq!(failure.message, r#"unknown run_type value "sideways""#);
    assert_eq!((failure.step, failure.step_name.as_str()), (1, "s1"));
    assert!(
        script.calls().iter().all(|call| call.job_id != "sideways"),
        "a step ran for a job of unknown run type"
    );
    bystanders.assert_unaffected("unknown run type").await;
    bystanders.stop().await;
}

const ONLY: &str = "it may hold only ASCII letters, digits, underscores and $";
const START: &str = "it must start with an ASCII letter or an underscore";

#[tokio::test]
async fn names_that_are_not_plain_identifiers_are_refused_before_any_sql() {
    let db = test_db("input_identifiers").await;
    let schema = db.schema.as_str();
    let tables = || async {
        let sql = "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1";
        sqlx::query_scalar::<_, i64>(sql)
            .bind(schema)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    sqlx::query(&format!("CREATE TABLE {schema}.sentinel (x INT)"))
        .execute(&db.pool)
        .await
        .unwrap();
    let before = tables().await;

    let drop = format!("jobs\"; DROP TABLE {schema}.sentinel; --");
    let drop_schema = format!("{schema}; DROP TABLE {schema}.sentinel");
    let quoted = format!("\"{schema}\"");
    let long = "t".repeat(64);
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (schema, &drop, "table", ONLY),
        (&drop_schema, "jobs", "schema", ONLY),
        (schema, "jobs' OR '1'='1", "table", ONLY),
        ("my schema", "jobs", "schema", ONLY),
        (schema, "jobs;", "table", ONLY),
        (schema, "jobs-1", "table", ONLY),
        (schema, "jöbs", "table", ONLY),
        (schema, "jobs\0", "table", ONLY),
        (schema, "1jobs", "table", START),
        (schema, "$jobs", "table", START),
        (&quoted, "jobs", "schema", START),
        ("", "jobs", "schema", "it is empty"),
        (schema, "", "table", "it is empty"),
        (schema, &long, "table", "it is longer than 63 bytes"),
    ];
    for (schema, table, what, reason) in cases {
        let name = if what == "schema" { schema } else { table };
        let error = JobTable::new(schema, table).unwrap_err();
        assert!(
            matches!(
                &error,
                ConfigError::Identifier { what: w, name: n, reason: r }
                    if *w == what && n == name && *r == reason
            ),
            "{schema:?}.{table:?}: {error:?}"
        );
    }

    // The command-line tool's migrate takes names as they come: refused the
    // same way, and nothing runs.
    let refused = cli::run(&[
        "--database-url",
        &db.url,
        "--schema",
        schema,
        "--table",
        &drop,
        "migrate",
    ])
    .await;
    assert_eq!(
        refused.failure(1),
        format!("error: table name {drop:?} is not a plain identifier: {ONLY}")
    );
    assert_eq!(tables().await, before, "a table was created or dropped");
    let sentinel: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{schema}.sentinel"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        sentinel.as_deref(),
        Some(format!("{schema}.sentinel").as_str())
    );
}

#[tokio::test]
async fn reserved_words_and_mixed_case_names_are_quoted_everywhere() {
    let db = test_db("input_quoted_names").await;
    let mixed = "InputQuotedNames";
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{mixed}\" CASCADE"))
        .execute(&db.pool)
        .await
        .unwrap();
    let longest = "x".repeat(63);
    let names = [
        (db.schema.as_str(), "select"),
        (mixed, "Order"),
        (db.schema.as_str(), longest.as_str()),
    ];
    for (schema, name) in names {
        let table = JobTable::new(schema, name).unwrap();
        ssproc::migrate(&db.pool, &table).await.unwrap();
        ssproc::migrate(&db.pool, &table).await.unwrap();
        ssproc::validate_schema(&db.pool, &table).await.unwrap();
        let found: Option<String> = sqlx::query_scalar(
            "SELECT c.relname::text
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1
                AND c.relname = $2",
        )
        .bind(schema)
        .bind(name)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        assert_eq!(found.as_deref(), Some(name), "kept exactly as written");

        let script = Script::succeed();
        let executor = Executor::new(
            db.pool.clone(),
            table.clone(),
            Single::new(&script),
            fast_config(),
        )
        .unwrap();
        let handle = executor.start().await.unwrap();
        let client = Client::<Single>::new(db.pool.clone(), table.clone());
        client.register(&Trail::new("q1")).await.unwrap();
        let job = wait_terminal(&client, "q1", DEADLINE).await;
        handle.shutdown().await;
        assert_eq!(job.status, JobStatus::Done, "{schema}.{name}: {job:?}");
    }
    sqlx::raw_sql(&format!("DROP SCHEMA \"{mixed}\" CASCADE"))
        .execute(&db.pool)
        .await
        .unwrap();
}

const PASSWORD: &str = "pw-5ecret-Zq8";

/// The error, its `Debug`, and those of its sources.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" | {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_password_in_the_url_never_reaches_logs_or_errors() {
    let (logs, _guard) = capture();
    let url = format!(
        "postgres://ssproc_app:{PASSWORD}@127.0.0.1:{}/jobs",
        closed_port()
    );
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&url)
        .unwrap();
    let table = JobTable::default();
    let client = Client::<Single>::new(pool.clone(), table.clone());
    let jobs = Jobs::new(pool.clone(), table.clone());
    let mut shown = Vec::new();

    let error = client.register(&Trail::new("j1")).await.unwrap_err();
    assert!(
        matches!(&error, RegisterError::Database { job_id, .. } if job_id == "j1"),
        "{error:?}"
    );
    shown.push(describe(&error));
    let error = client.job("j1").await.unwrap_err();
    assert!(matches!(error, ReadError::Database(_)), "{error:?}");
    shown.push(describe(&error));
    let error = ssproc::validate_schema(&pool, &table).await.unwrap_err();
    assert!(
        matches!(&error, SchemaError::Database { table, .. } if table == "public.ssproc_jobs"),
        "{error:?}"
    );
    shown.push(describe(&error));
    let error = jobs.stats().await.unwrap_err();
    assert!(matches!(error, ReadError::Database(_)), "{error:?}");
    shown.push(describe(&error));
    let error = jobs.retry("j1").await.unwrap_err();
    assert!(matches!(error, AdminError::Database(_)), "{error:?}");
    shown.push(describe(&error));

    let script = Script::succeed();
    let executor = Executor::new(pool, table, Single::new(&script), fast_config()).unwrap();
    shown.push(format!("{executor:?} {client:?} {jobs:?}"));
    // Start waits for an unreachable database, warning once per try.
    let waited = tokio::time::timeout(Duration::from_secs(2), executor.start()).await;
    assert!(waited.is_err(), "start returned on an unreachable database");
    let warned = logs.with_message("database unreachable at start, will retry");
    assert!(!warned.is_empty(), "{}", logs.text());
    shown.push(logs.text());

    for text in shown {
        assert!(!text.contains(PASSWORD), "the password shows in: {text}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_typed_error_without_the_password() {
    const RIGHT: &str = "right-pw-Xy7";
    let Some(cluster) = private_cluster("input_wrong_password", Auth::Password(RIGHT)).await else {
        return;
    };
    let (logs, _guard) = capture();
    // The right password gets in, so what follows is about the wrong one.
    let right = PgPoolOptions::new()
        .max_connections(2)
        .connect(&cluster.url)
        .await
        .unwrap();
    ssproc::migrate(&right, &JobTable::default()).await.unwrap();

    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
        cluster.port()
    );
    let pool = PgPoolOptions::new().connect_lazy(&url).unwrap();
    let is_refused = |error: &sqlx::Error| match error {
        sqlx::Error::Database(error) => error.code().as_deref() == Some("28P01"),
        _ => false,
    };
    let script = Script::succeed();
    let executor = Executor::new(
        pool.clone(),
        JobTable::default(),
        Single::new(&script),
        fast_config(),
    )
    .unwrap();
    // A refused password is an answer, not an outage: start does not wait.
    let error = tokio::time::timeout(DEADLINE, executor.start())
        .await
        .expect("start gives up on a refused password")
        .unwrap_err();
    match &error {
        StartError::Schema(SchemaError::Database { table, source }) => {
            assert_eq!(table, "public.ssproc_jobs");
            assert!(is_refused(source), "{source:?}");
        }
        other => panic!("expected a refused password: {other:?}"),
    }
    let mut shown = vec![describe(&error)];
    let client = Client::<Single>::new(pool, JobTable::default());
    let error = client.register(&Trail::new("j1")).await.unwrap_err();
    match &error {
        RegisterError::Database { job_id, source } => {
            assert_eq!(job_id, "j1");
            assert!(is_refused(source), "{source:?}");
        }
        other => panic!("expected a refused password: {other:?}"),
    }
    shown.push(describe(&error));
    shown.push(logs.text());
    for text in shown {
        assert!(!text.contains(PASSWORD), "the password shows in: {text}");
        assert!(!text.contains(RIGHT), "the password shows in: {text}");
    }
    right.close().await;
}
