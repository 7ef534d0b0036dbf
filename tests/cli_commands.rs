//! The `ssproc` command-line tool, run as a process against the test
//! database: output and exit codes of every command.

use serde_json::Value;

use crate::common::cli::{run, run_on};
use crate::common::{test_db, TestDb};

/// One job row as a test wants it, inserted with SQL.
struct Row {
    id: &'static str,
    process: &'static str,
    status: &'static str,
    run_type: &'static str,
    next_step: i32,
    exec_count: i32,
    comp_count: i32,
    created: &'static str,
    failure: Option<&'static str>,
}

impl Row {
    fn new(id: &'static str, process: &'static str, status: &'static str) -> Self {
        Self {
            id,
            process,
            status,
            run_type: "normal",
            next_step: 0,
            exec_count: 0,
            comp_count: 0,
            created: "2024-01-01T00:00:00Z",
            failure: None,
        }
    }
}

async fn insert(db: &TestDb, row: Row) {
    let sql = format!(
        "INSERT INTO {}.jobs (
            job_id, job_data, process_id, status, run_type, next_subprocess,
            exec_count, comp_count, created_ts, start_after_ts, last_update_ts,
            end_ts, last_failure
        )
        VALUES (
            $1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $9::timestamptz,
            $9::timestamptz,
            CASE WHEN $4 = 'ready' THEN NULL ELSE $9::timestamptz END,
            $10::jsonb
        )",
        db.schema
    );
    let data = format!(r#"{{"order_id":"{}","amount_cents":12500}}"#, row.id);
    sqlx::query(&sql)
        .bind(row.id)
        .bind(data)
        .bind(row.process)
        .bind(row.status)
        .bind(row.run_type)
        .bind(row.next_step)
        .bind(row.exec_count)
        .bind(row.comp_count)
        .bind(row.created)
        .bind(row.failure)
        .execute(&db.pool)
        .await
        .expect("insert a job row");
}

const CARD_DECLINED: &str = r#"{"step": 1, "step_name": "charge", "run_type": "normal",
    "attempt": 3, "message": "card declined", "kind": "error"}"#;

/// a1 done, a2 error with a failure, a3 ready (process `orders`); b1
/// compensated after a compensation run (process `billing`); a day apart,
/// b1 newest.
async fn populate(db: &TestDb) {
    insert(
        db,
        Row {
            exec_count: 1,
            next_step: 3,
            ..Row::new("a1", "orders", "done")
        },
    )
    .await;
    insert(
        db,
        Row {
            exec_count: 3,
            next_step: 1,
            created: "2024-01-02T00:00:00Z",
            failure: Some(CARD_DECLINED),
            ..Row::new("a2", "orders", "error")
        },
    )
    .await;
    insert(
        db,
        Row {
            created: "2024-01-03T00:00:00Z",
            ..Row::new("a3", "orders", "ready")
        },
    )
    .await;
    insert(
        db,
        Row {
            run_type: "compensation",
            next_step: -1,
            exec_count: 3,
            comp_count: 1,
            created: "2024-01-04T00:00:00Z",
            ..Row::new("b1", "billing", "compensated")
        },
    )
    .await;
}

/// The job ids of a table listing, in order.
fn listed(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip(1)
        .filter(|line| {
            !line.starts_with("page ") && !line.contains(" jobs; ") && !line.contains(" job; ")
        })
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

async fn status_of(db: &TestDb, id: &str) -> Option<(String, String, i32)> {
    sqlx::query_as(&format!(
        "SELECT status::text, run_type::text, exec_count FROM {}.jobs WHERE job_id = $1",
        db.schema
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .expect("read a job row")
}

#[tokio::test]
async fn migrate_twice_then_check_a_good_and_a_broken_table() {
    let db = test_db("cli_migrate").await;
    let on_fresh = |args: &'static [&'static str]| {
        let mut all = vec!["--database-url", db.url.as_str(), "--schema", "cli_migrate"];
        all.extend_from_slice(&["--table", "fresh"]);
        all.extend_from_slice(args);
        all
    };

    let missing = run(&on_fresh(&["check"])).await;
    assert_eq!(
        missing.failure(1),
        "error: table cli_migrate.fresh does not exist"
    );
    for command in [&["jobs", "list"][..], &["stats"][..]] {
        let unmigrated = run(&on_fresh(command)).await;
        let line = unmigrated.failure(1);
        assert!(
            line.starts_with("error: ") && line.contains("\"cli_migrate.fresh\" does not exist"),
            "{line}"
        );
        assert!(
            line.ends_with("(run `ssproc migrate` to create the table)"),
            "{line}"
        );
    }
    for _ in 0..2 {
        let migrated = run(&on_fresh(&["migrate"])).await;
        assert_eq!(
            migrated.success(),
            "cli_migrate.fresh: table and indexes are in place\n"
        );
    }
    let good = run(&on_fresh(&["check"])).await;
    assert_eq!(
        good.success(),
        "cli_migrate.fresh: every column, key and index ssproc needs is in place\n"
    );

    sqlx::query("ALTER TABLE cli_migrate.fresh ALTER COLUMN exec_count TYPE TEXT")
        .execute(&db.pool)
        .await
        .unwrap();
    let broken = run(&on_fresh(&["check"])).await;
    assert_eq!(
        broken.failure(1),
        "error: table cli_migrate.fresh: column exec_count has type text, expected INT NOT NULL DEFAULT 0"
    );

    sqlx::query("ALTER TABLE cli_migrate.fresh DROP CONSTRAINT fresh_pkey")
        .execute(&db.pool)
        .await
        .unwrap();
    let twice = run(&on_fresh(&["check"])).await;
    assert_eq!(twice.code, Some(1));
    assert_eq!(twice.stderr, "error: 2 problems in cli_migrate.fresh\n");
    assert_eq!(
        twice.stdout,
        "table cli_migrate.fresh: column exec_count has type text, expected INT NOT NULL DEFAULT 0\n\
         table cli_migrate.fresh: primary key is none, expected (job_id)\n"
    );
}

#[tokio::test]
async fn list_filters_pages_and_cursors() {
    let db = test_db("cli_list").await;
    populate(&db).await;

    let all = run_on(&db, &["jobs", "list"]).await;
    let stdout = all.success();
    assert!(
        stdout.starts_with(
            "JOB ID  PROCESS  STATUS       RUN           STEP  EXEC  COMP  CREATED               UPDATED\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "a2      orders   error        normal        1     3     0     2024-01-02T00:00:00Z  2024-01-02T00:00:00Z\n"
        ),
        "{stdout}"
    );
    assert_eq!(listed(stdout), ["b1", "a3", "a2", "a1"]);
    assert!(stdout.ends_with("page 1 of 1: jobs 1-4 of 4\n"), "{stdout}");

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--process", "orders", "--status", "error,done"],
            &["a2", "a1"],
        ),
        (
            &["--status", "ready", "--status", "compensated"],
            &["b1", "a3"],
        ),
        (&["--run-type", "compensation"], &["b1"]),
        (&["--job-id", "a3"], &["a3"]),
        (&["--min-exec", "2", "--max-exec", "3"], &["b1", "a2"]),
        (&["--min-comp", "1"], &["b1"]),
        (&["--max-comp", "0", "--max-exec", "1"], &["a3", "a1"]),
        (
            &[
                "--created-from",
                "2024-01-02T00:00:00Z",
                "--created-until",
                "2024-01-04T00:00:00+00:00",
            ],
            &["a3", "a2"],
        ),
        (&["--ended-from", "2024-01-02T00:00:00Z"], &["b1", "a2"]),
        (&["--updated-until", "2024-01-02T00:00:00Z"], &["a1"]),
        (&["--started-from", "2024-01-01T00:00:00Z"], &[]),
    ];
    for (filters, expected) in cases {
        let mut args = vec!["jobs", "list"];
        args.extend_from_slice(filters);
        let listing = run_on(&db, &args).await;
        if expected.is_empty() {
            assert_eq!(listing.success(), "no jobs match\n", "{filters:?}");
        } else {
            assert_eq!(listed(listing.success()), *expected, "{filters:?}");
        }
    }

    let second = run_on(&db, &["jobs", "list", "--page-size", "3", "--page", "2"]).await;
    assert_eq!(listed(second.success()), ["a1"]);
    assert!(second.stdout.ends_with("page 2 of 2: jobs 4-4 of 4\n"));

    let batch = run_on(&db, &["jobs", "list", "--after", "a3", "--page-size", "1"]).await;
    assert_eq!(listed(batch.success()), ["a2"]);
    assert!(batch.stdout.ends_with("1 job; next batch: --after a2\n"));
    let last = run_on(&db, &["jobs", "list", "--after", "a2", "--page-size", "5"]).await;
    assert_eq!(listed(last.success()), ["a1"]);
    assert!(last.stdout.ends_with("1 job; no more\n"));
    let gone = run_on(&db, &["jobs", "list", "--after", "nope"]).await;
    assert_eq!(
        gone.failure(1),
        r#"error: job "nope" given to --after does not exist"#
    );

    let bad_time = run_on(&db, &["jobs", "list", "--created-from", "yesterday"]).await;
    assert!(
        bad_time
            .failure(2)
            .starts_with("error: invalid value 'yesterday' for '--created-from <TIME>'"),
        "{bad_time:?}"
    );
    let bad_status = run_on(&db, &["jobs", "list", "--status", "running"]).await;
    assert!(bad_status
        .failure(2)
        .starts_with("error: invalid value 'running'"));
}

#[tokio::test]
async fn list_as_json() {
    let db = test_db("cli_list_json").await;
    populate(&db).await;

    let listing = run_on(&db, &["jobs", "list", "--process", "orders", "--json"]).await;
    let listing = listing.json();
    assert_eq!(listing["total"], 3);
    assert_eq!(listing["page"], 1);
    assert_eq!(listing["page_size"], 50);
    let jobs = listing["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a3", "a2", "a1"]);
    assert_eq!(jobs[1]["status"], "error");
    assert_eq!(jobs[1]["exec_count"], 3);
    assert_eq!(jobs[1]["created_at"], "2024-01-02T00:00:00.000000Z");
    assert_eq!(jobs[1]["data"]["amount_cents"], 12500);
    assert_eq!(jobs[1]["last_failure"]["message"], "card declined");
    assert_eq!(jobs[0]["ended_at"], Value::Null);

    let batch = run_on(
        &db,
        &[
            "jobs",
            "list",
            "--after",
            "b1",
            "--page-size",
            "2",
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(batch["next_after"], "a2");
    assert_eq!(batch["jobs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn show_prints_every_field_the_data_and_the_failure() {
    let db = test_db("cli_show").await;
    populate(&db).await;

    let shown = run_on(&db, &["jobs", "show", "a2"]).await;
    assert_eq!(
        shown.success(),
        r#"job id:        a2
process:       orders
status:        error
run type:      normal
next step:     1
exec count:    3
comp count:    0
created:       2024-01-02T00:00:00Z
start after:   2024-01-02T00:00:00Z
started:       -
ended:         2024-01-02T00:00:00Z
updated:       2024-01-02T00:00:00Z
token:         -
heartbeat:     -
lease expires: -
tokens:        -
last failure:  step 1 (charge), normal attempt 3, error: card declined
data:
{
  "amount_cents": 12500,
  "order_id": "a2"
}
"#
    );

    let json = run_on(&db, &["jobs", "show", "a2", "--json"]).await.json();
    assert_eq!(json["job_id"], "a2");
    assert_eq!(json["process_id"], "orders");
    assert_eq!(json["next_step"], 1);
    assert_eq!(json["last_failure"]["step_name"], "charge");
    assert_eq!(json["data"]["order_id"], "a2");

    let missing = run_on(&db, &["jobs", "show", "nope"]).await;
    assert_eq!(missing.failure(1), r#"error: job "nope" does not exist"#);
}

#[tokio::test]
async fn retry_cancel_and_delete_refuse_the_wrong_state() {
    let db = test_db("cli_actions").await;
    populate(&db).await;

    let retried = run_on(&db, &["jobs", "retry", "a2"]).await;
    assert_eq!(
        retried.success(),
        "job \"a2\" is ready again at the step where it stopped\n"
    );
    assert_eq!(
        status_of(&db, "a2").await,
        Some(("ready".into(), "normal".into(), 0))
    );
    let again = run_on(&db, &["jobs", "retry", "a2"]).await;
    assert_eq!(
        again.failure(1),
        r#"error: cannot retry job "a2": it is ready (normal run), expected error"#
    );

    let cancelled = run_on(&db, &["jobs", "cancel", "a3"]).await;
    assert_eq!(
        cancelled.success(),
        "job \"a3\" is cancelled and will be compensated now\n"
    );
    assert_eq!(
        status_of(&db, "a3").await,
        Some(("ready".into(), "compensation".into(), 0))
    );
    let shown = run_on(&db, &["jobs", "show", "a3"]).await;
    assert!(
        shown.success().contains(
            "last failure:  step 0, normal attempt 0, cancelled: cancelled by an operator\n"
        ),
        "{shown:?}"
    );
    // A job an attempt holds is compensated once that attempt's lease ends.
    insert(&db, Row::new("a4", "orders", "ready")).await;
    sqlx::query(&format!(
        "UPDATE {}.jobs
        SET goroutine_id = 'running', goroutine_lease_expire_ts = now() + interval '1 hour'
        WHERE job_id = 'a4'",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let held = run_on(&db, &["jobs", "cancel", "a4"]).await;
    assert!(
        held.success().starts_with(
            "job \"a4\" is cancelled and will be compensated once the running attempt's \
             lease ends, at 20"
        ),
        "{held:?}"
    );
    let twice = run_on(&db, &["jobs", "cancel", "a3"]).await;
    assert_eq!(
        twice.failure(1),
        r#"error: cannot cancel job "a3": it is ready (compensation run), expected ready, normal run"#
    );

    let deleted = run_on(&db, &["jobs", "delete", "a1"]).await;
    assert_eq!(deleted.success(), "job \"a1\" is deleted\n");
    assert_eq!(status_of(&db, "a1").await, None);
    let ready = run_on(&db, &["jobs", "delete", "a3"]).await;
    assert_eq!(
        ready.failure(1),
        r#"error: cannot delete job "a3": it is ready (compensation run), expected done, compensated or error"#
    );
    assert!(status_of(&db, "a3").await.is_some());
    for action in ["retry", "cancel", "delete"] {
        let missing = run_on(&db, &["jobs", action, "nope"]).await;
        assert_eq!(missing.failure(1), r#"error: job "nope" does not exist"#);
    }
}

#[tokio::test]
async fn stats_count_by_process_and_status() {
    let db = test_db("cli_stats").await;
    let empty = run_on(&db, &["stats"]).await;
    assert_eq!(empty.success(), "no jobs\n");
    populate(&db).await;

    let stats = run_on(&db, &["stats"]).await;
    let lines: Vec<&str> = stats.success().lines().collect();
    assert_eq!(
        lines[0],
        "PROCESS  READY  DONE  COMPENSATED  ERROR  OTHER  OLDEST READY"
    );
    assert_eq!(
        lines[1],
        "billing  0      0     1            0      0      -"
    );
    assert!(
        lines[2].starts_with("orders   1      1     0            1      0      "),
        "{stats:?}"
    );
    assert!(
        lines[2].ends_with('h'),
        "an age in days and hours: {stats:?}"
    );
    assert_eq!(lines.len(), 3);

    let json = run_on(&db, &["stats", "--json"]).await.json();
    let orders = &json[1];
    assert_eq!(orders["process_id"], "orders");
    assert_eq!(
        (&orders["ready"], &orders["done"], &orders["error"]),
        (&Value::from(1), &Value::from(1), &Value::from(1))
    );
    let age = orders["oldest_ready_age_seconds"].as_f64().unwrap();
    assert!(age > 86_400.0, "a3 was registered in 2024: {age}");
    assert_eq!(json[0]["oldest_ready_age_seconds"], Value::Null);
}

#[tokio::test]
async fn connection_problems_are_one_line_without_the_password() {
    let refused = run(&[
        "--database-url",
        "postgres://app:hunter2@127.0.0.1:1/jobs",
        "stats",
    ])
    .await;
    let line = refused.failure(1);
    assert!(
        line.starts_with("error: could not connect to postgres://app:***@127.0.0.1:1/jobs: "),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "{line}");

    let other = run(&["--database-url", "mysql://app:hunter2@db/jobs", "check"]).await;
    assert_eq!(
        other.failure(1),
        "error: invalid database URL mysql://app:***@db/jobs: \
         expected postgres:// or postgresql://"
    );
    let malformed = run(&[
        "--database-url",
        "postgres://app:hunter2@127.0.0.1:port/jobs",
        "check",
    ])
    .await;
    let line = malformed.failure(1);
    assert!(
        line.starts_with("error: invalid database URL postgres://app:***@127.0.0.1:port/jobs: "),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "{line}");

    let none = run(&["jobs", "list"]).await;
    assert_eq!(
        none.failure(1),
        "error: no database given: pass --database-url or set DATABASE_URL"
    );

    let db = test_db("cli_connect").await;
    let bad_name = run(&["--database-url", &db.url, "--table", "no-dash", "stats"]).await;
    assert_eq!(
        bad_name.failure(1),
        "error: table name \"no-dash\" is not a plain identifier: \
         it may hold only ASCII letters, digits, underscores and $"
    );
}

#[tokio::test]
async fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["migrate"],
        &["check"],
        &["jobs"],
        &["jobs", "list"],
        &["jobs", "show"],
        &["jobs", "retry"],
        &["jobs", "cancel"],
        &["jobs", "delete"],
        &["stats"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = run(&args).await;
        let usage = format!(
            "Usage: {}",
            ["ssproc"]
                .iter()
                .chain(command.iter())
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(help.success().contains(&usage), "{args:?}: {help:?}");
    }
    let check = run(&["check", "--help"]).await;
    assert!(check.success().contains("Reports every problem found"));
    let unknown = run(&["jobs", "lst"]).await;
    assert_eq!(unknown.failure(2), "error: unrecognized subcommand 'lst'");
}
