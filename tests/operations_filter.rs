//! Filtering, pagination, cursors and replicas (BEHAVIOUR.md scenario 22).

use std::time::Duration;

use chrono::Utc;
use ssproc::{Client, Cursor, JobFilter, JobStatus, Jobs, RunType, TimeRange};

use crate::common::harness::{fast_config, start, wait_terminal};
use crate::common::scripted::{Act, Plain, Script, Trail};
use crate::common::test_db;

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
    let replica = sqlx::PgPool::connect(&db.url).await.unwrap();
    let jobs =
        Jobs::new(db.pool.clone(), db.table.clone()).with_replicas(vec![replica.clone(), replica]);

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

#[tokio::test]
async fn common_filters_use_an_index() {
    let db = test_db("filter_explain").await;
    // Enough rows that a sequential scan would not be chosen for free.
    sqlx::query(&format!(
        "INSERT INTO {}.jobs (job_id, job_data, process_id, status, end_ts)
        SELECT 'j' || i, '{{}}', 'p' || (i % 20), (ARRAY['done', 'error', 'ready'])[1 + i % 3],
            CASE WHEN i % 3 < 2 THEN now() END
        FROM generate_series(1, 20000) AS i",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(&format!("ANALYZE {}.jobs", db.schema))
        .execute(&db.pool)
        .await
        .unwrap();
    let queries = [
        format!(
            "SELECT * FROM {}.jobs WHERE process_id = 'p3' AND status = 'error'",
            db.schema
        ),
        format!("SELECT * FROM {}.jobs WHERE job_id = 'j77'", db.schema),
        format!(
            "SELECT * FROM {}.jobs WHERE process_id = 'p3' AND status = 'done' AND end_ts < now()",
            db.schema
        ),
    ];
    for query in queries {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
            .fetch_all(&db.pool)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("Index"), "no index for {query}:\n{plan}");
    }
}
