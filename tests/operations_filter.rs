//! Filtering, pagination, cursors and replicas (BEHAVIOUR.md scenario 22).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use ssproc::{Client, Cursor, JobFilter, JobStatus, Jobs, RunType, TimeRange};

use crate::common::harness::{fast_config, start, wait_terminal};
use crate::common::scripted::{Act, Plain, Script, Trail};
use crate::common::{test_db, wait_until, TestDb};

/// 30 jobs: a0..a9 done, b0..b9 failed for good (error), c0..c9 due later.
async fn populate(db: &crate::common::TestDb) -> Client<Plain> {
    let script = Script::new(|call| {
        if call.job_id.starts_with('b') {
            Act::Fail
        } else {
            Act::Succeed
        }
    });
    let (client, handle) = start(db, Plain::new(&script), fast_config()).await;
    for group in ["a", "b"] {
        for i in 0..10 {
            client
                .register(&Trail::new(format!("{group}{i}")))
                .await
                .unwrap();
        }
    }
    let later = ssproc::StartAt::After(Duration::from_secs(3600));
    for i in 0..10 {
        client
            .register_at(&Trail::new(format!("c{i}")), later)
            .await
            .unwrap();
    }
    for group in ["a", "b"] {
        for i in 0..10 {
            wait_terminal(&client, &format!("{group}{i}"), Duration::from_secs(20)).await;
        }
    }
    handle.shutdown().await;
    client
}

fn ids(jobs: &[ssproc::Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.job_id.as_str()).collect()
}

#[tokio::test]
async fn filters_pages_and_totals() {
    let db = test_db("filter_pages").await;
    populate(&db).await;
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());

    let all = jobs.list(&JobFilter::new(), 0, 100).await.unwrap();
    assert_eq!((all.total, all.jobs.len()), (30, 30));
    let newest_first = all
        .jobs
        .windows(2)
        .all(|w| (w[0].created_at, &w[0].job_id) > (w[1].created_at, &w[1].job_id));
    assert!(newest_first, "not newest first");
    assert_eq!(all.jobs[0].job_id, "c9");

    let errors = JobFilter::new()
        .process_id("scripted")
        .status(JobStatus::Error);
    let first = jobs.list(&errors, 0, 4).await.unwrap();
    let third = jobs.list(&errors, 2, 4).await.unwrap();
    assert_eq!(
        (first.total, first.jobs.len(), third.jobs.len()),
        (10, 4, 2)
    );
    assert_eq!(ids(&first.jobs), ["b9", "b8", "b7", "b6"]);
    assert_eq!(ids(&third.jobs), ["b1", "b0"]);

    let several = JobFilter::new().statuses([JobStatus::Done, JobStatus::Error]);
    assert_eq!(jobs.list(&several, 0, 1).await.unwrap().total, 20);
    let retried = JobFilter::new().min_exec_count(2);
    assert_eq!(jobs.list(&retried, 0, 100).await.unwrap().total, 10);
    let never_ran = JobFilter::new().max_exec_count(0).run_type(RunType::Normal);
    assert_eq!(
        ids(&jobs.list(&never_ran, 0, 3).await.unwrap().jobs),
        ["c9", "c8", "c7"]
    );
    let one = jobs
        .list(&JobFilter::new().job_id("a3"), 0, 10)
        .await
        .unwrap();
    assert_eq!((one.total, ids(&one.jobs)), (1, vec!["a3"]));
    let other = jobs
        .list(&JobFilter::new().process_id("other"), 0, 10)
        .await
        .unwrap();
    assert_eq!(other.total, 0);

    let now = Utc::now() + chrono::Duration::seconds(1);
    let ended = JobFilter::new().ended(TimeRange::new(None, Some(now)));
    assert_eq!(jobs.list(&ended, 0, 1).await.unwrap().total, 20);
    let started_in_future = JobFilter::new().started(TimeRange::new(Some(now), None));
    assert_eq!(jobs.list(&started_in_future, 0, 1).await.unwrap().total, 0);
    let created =
        JobFilter::new().created(TimeRange::new(Some(all.jobs[29].created_at), Some(now)));
    assert_eq!(jobs.list(&created, 0, 1).await.unwrap().total, 30);
    let updated = JobFilter::new().updated(TimeRange::new(None, Some(all.jobs[29].created_at)));
    assert_eq!(jobs.list(&updated, 0, 1).await.unwrap().total, 0);
}

#[tokio::test]
async fn cursors_walk_every_job_once() {
    let db = test_db("filter_cursor").await;
    populate(&db).await;
    let jobs = Jobs::new(db.pool.clone(), db.table.clone());

    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let batch = jobs
            .list_after(&JobFilter::new(), cursor.as_ref(), 7)
            .await
            .unwrap();
        seen.extend(batch.jobs.iter().map(|j| j.job_id.clone()));
        match batch.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all = jobs.list(&JobFilter::new(), 0, 100).await.unwrap();
    assert_eq!(seen, ids(&all.jobs));
}

/// How often the statistics system has seen the test's jobs table read:
/// sequential scans, index scans, and rows fetched through indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scans {
    seq: i64,
    idx: i64,
    fetched: i64,
}

async fn scans(observer: &PgPool, schema: &str) -> Scans {
    let mut tx = observer.begin().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *tx)
        .await
        .unwrap();
    let (seq, idx, fetched) = sqlx::query_as(
        "SELECT seq_scan, coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0)
        FROM pg_stat_user_tables
        WHERE schemaname = $1
            AND relname = 'jobs'",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Scans { seq, idx, fetched }
}

/// Waits until no backend named `name` is left. A backend flushes its
/// statistics when it exits, before it leaves `pg_stat_activity`; while it
/// lives, it may hold back what it counted for seconds.
async fn backends_gone(observer: &PgPool, name: &str) {
    wait_until(Duration::from_secs(30), "backends exit", || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(name)
                .fetch_one(observer)
                .await
                .unwrap();
        left == 0
    })
    .await;
}

/// How `call` moved the scan counters of `db`'s table. It runs on a `Jobs`
/// with a pool of its own, one connection, closed afterwards; `observer`
/// reads the counters and must not touch the table.
async fn scans_of<F, Fut>(db: &TestDb, observer: &PgPool, what: &str, call: F) -> Scans
where
    F: FnOnce(Jobs) -> Fut,
    Fut: Future<Output = ()>,
{
    let before = scans(observer, &db.schema).await;
    let name = format!("{}_probe", db.schema);
    let options = PgConnectOptions::from_str(&db.url)
        .unwrap()
        .application_name(&name);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    call(Jobs::new(pool.clone(), db.table.clone())).await;
    pool.close().await;
    backends_gone(observer, &name).await;
    let mut after = scans(observer, &db.schema).await;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while after.idx == before.idx && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scans(observer, &db.schema).await;
    }
    let moved = Scans {
        seq: after.seq - before.seq,
        idx: after.idx - before.idx,
        fetched: after.fetched - before.fetched,
    };
    assert_eq!(moved.seq, 0, "{what} scanned the table: {moved:?}");
    assert!(moved.idx > 0, "{what} used no index: {moved:?}");
    moved
}

/// The statements `Jobs::list` and `Jobs::list_after` send use an index on
/// a table of 40 000 jobs, and a batch reads only the rows it returns: the
/// listing index gives the order, so no matching row is read to be sorted.
#[tokio::test]
async fn listings_read_through_an_index() {
    let db = test_db("filter_index").await;
    // 20 processes, statuses in turn, one creation second apart.
    sqlx::query(&format!(
        "INSERT INTO {schema}.jobs (job_id, job_data, process_id, status, created_ts, end_ts)
        SELECT 'j' || i, '{{}}', 'p' || (i % 20), (ARRAY['done', 'error', 'ready'])[1 + i % 3],
            now() - i * interval '1 second', CASE WHEN i % 3 < 2 THEN now() END
        FROM generate_series(1, 40000) AS i",
        schema = db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!("VACUUM ANALYZE {}.jobs", db.schema))
        .execute(&db.pool)
        .await
        .unwrap();
    let limit = 50;
    let deep = Jobs::new(db.pool.clone(), db.table.clone())
        .list(&JobFilter::new(), 400, 50)
        .await
        .unwrap()
        .jobs;
    let deep = Cursor::after(&deep[0]);
    // What the setup scanned must be counted before the first probe: its
    // backends go, and an observer of its own reads the counters.
    db.pool.close().await;
    let options = PgConnectOptions::from_str(&db.url)
        .unwrap()
        .application_name("filter_index_observer");
    let observer = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    backends_gone(&observer, &db.schema).await;
    let error = JobStatus::Error;
    let filters = [
        ("every job", JobFilter::new()),
        ("one process", JobFilter::new().process_id("p3")),
        ("one status", JobFilter::new().status(error)),
        (
            "one process and status",
            JobFilter::new().process_id("p3").status(error),
        ),
    ];

    for (what, filter) in &filters {
        for cursor in [None, Some(&deep)] {
            let what = &format!("list_after, {what}, cursor {:?}", cursor.is_some());
            let moved = scans_of(&db, &observer, what, |jobs| async move {
                let batch = jobs.list_after(filter, cursor, limit).await.unwrap();
                assert_eq!(batch.jobs.len(), limit as usize, "{what}");
            })
            .await;
            assert!(
                moved.fetched <= 2 * i64::from(limit),
                "{what} read {} rows for {limit}",
                moved.fetched
            );
        }
    }

    // `list` also counts the matches: with a process filter, through an
    // index too. Without one, counting reads the table (documented).
    let counted = [
        ("one process", JobFilter::new().process_id("p3")),
        (
            "one process and status",
            JobFilter::new().process_id("p3").status(error),
        ),
        ("one job", JobFilter::new().job_id("j77")),
    ];
    for (what, filter) in &counted {
        let what = &format!("list, {what}");
        scans_of(&db, &observer, what, |jobs| async move {
            let page = jobs.list(filter, 3, limit).await.unwrap();
            assert!(page.total > 0, "{what}");
        })
        .await;
    }
}

/// A database of its own, `name`, in the test cluster, holding an empty
/// migrated table of the same schema and name as `db`'s: it stands in for
/// a replica whose rows differ from the primary's, so that a test can tell
/// which one answered. Creating it takes a role allowed to create
/// databases, as the throwaway cluster's is.
async fn other_database(db: &TestDb, name: &str) -> PgPool {
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(&statement).execute(&db.pool).await.unwrap();
    }
    let options = PgConnectOptions::from_str(&db.url)
        .unwrap()
        .database(name)
        .application_name(name);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA {}", db.schema))
        .execute(&pool)
        .await
        .unwrap();
    ssproc::migrate(&pool, &db.table).await.unwrap();
    pool
}

/// Inserts jobs of process `scripted` given as `(job_id, status)`; the
/// finished ones ended an hour ago.
async fn insert(pool: &PgPool, db: &TestDb, rows: &[(&str, &str)]) {
    for (job_id, status) in rows {
        sqlx::query(&format!(
            "INSERT INTO {}.jobs (job_id, job_data, process_id, status, end_ts)
            VALUES ($1, '{{}}', 'scripted', $2,
                CASE WHEN $2 <> 'ready' THEN now() - interval '1 hour' END)",
            db.schema
        ))
        .bind(job_id)
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Where `job_id` stands in the table behind `pool`.
async fn state(pool: &PgPool, db: &TestDb, job_id: &str) -> Option<(String, String)> {
    sqlx::query_as(&format!(
        "SELECT status::text, run_type::text FROM {}.jobs WHERE job_id = $1",
        db.schema
    ))
    .bind(job_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Listing, counting and statistics go to the replicas in turn; reading
/// one job, the actions and cleanup go to the primary. Each replica is a
/// database of its own holding other rows, so every answer shows where it
/// came from. Executors and clients take the primary pool alone; `Jobs` is
/// the only reader of replicas.
#[tokio::test]
async fn replicas_answer_reads_and_the_primary_takes_writes() {
    let db = test_db("filter_replicas").await;
    let replica_a = other_database(&db, "filter_replicas_a").await;
    let replica_b = other_database(&db, "filter_replicas_b").await;
    let primary = &db.pool;
    let rows = [
        ("shared", "ready"),
        ("failed", "error"),
        ("gone", "done"),
        ("old", "done"),
    ];
    insert(primary, &db, &rows).await;
    let rows = [
        ("shared", "done"),
        ("gone", "done"),
        ("old", "done"),
        ("a_only", "ready"),
    ];
    insert(&replica_a, &db, &rows).await;
    insert(&replica_b, &db, &[("b_only", "error")]).await;
    let jobs = Jobs::new(primary.clone(), db.table.clone())
        .with_replicas(vec![replica_a.clone(), replica_b.clone()]);

    // Round robin: a, b, a, b; a page and its total from the same replica.
    let all = JobFilter::new();
    let page = jobs.list(&all, 0, 10).await.unwrap();
    assert_eq!(
        (page.total, ids(&page.jobs)),
        (4, vec!["a_only", "old", "gone", "shared"])
    );
    let page = jobs.list(&all, 0, 10).await.unwrap();
    assert_eq!((page.total, ids(&page.jobs)), (1, vec!["b_only"]));
    let batch = jobs.list_after(&all, None, 10).await.unwrap();
    assert_eq!(ids(&batch.jobs), ["a_only", "old", "gone", "shared"]);
    let stats = jobs.stats().await.unwrap();
    assert_eq!(
        (stats.len(), stats[0].error, stats[0].ready, stats[0].done),
        (1, 1, 0, 0),
        "replica b's one job: {stats:?}"
    );

    // One job is read from the primary, so it sees its own writes.
    let shared = jobs.job("shared").await.unwrap().unwrap();
    assert_eq!(shared.status, JobStatus::Ready);
    assert!(jobs.job("a_only").await.unwrap().is_none());

    // Every action changes the primary alone. On replica a, `shared` is
    // done: a cancel sent there would be refused.
    jobs.cancel("shared").await.unwrap();
    jobs.retry("failed").await.unwrap();
    jobs.delete("gone").await.unwrap();
    let deleted = jobs
        .cleanup("scripted", Duration::from_secs(600), 10)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "old, on the primary");
    let on = |status: &str, run_type: &str| Some((status.to_owned(), run_type.to_owned()));
    assert_eq!(
        state(primary, &db, "shared").await,
        on("ready", "compensation")
    );
    assert_eq!(state(primary, &db, "failed").await, on("ready", "normal"));
    assert_eq!(state(primary, &db, "gone").await, None);
    assert_eq!(state(primary, &db, "old").await, None);
    for job_id in ["shared", "gone", "old"] {
        assert_eq!(
            state(&replica_a, &db, job_id).await,
            on("done", "normal"),
            "{job_id} on replica a"
        );
    }
    assert_eq!(
        state(&replica_b, &db, "b_only").await,
        on("error", "normal")
    );

    replica_a.close().await;
    replica_b.close().await;
    for name in ["filter_replicas_a", "filter_replicas_b"] {
        sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(primary)
            .await
            .unwrap();
    }
}
