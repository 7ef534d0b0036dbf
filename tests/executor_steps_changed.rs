//! A changed step list that would move open jobs is refused at start.

use std::time::Duration;

use ssproc::{Client, Executor, StartAt, StartError};

use crate::common::harness::{fast_config, with};
use crate::common::scripted::{Plain, Script, Trail, Two};
use crate::common::test_db;

#[tokio::test]
async fn reordering_under_open_jobs_is_refused_unless_allowed() {
    let db = test_db("steps_changed").await;
    let script = Script::succeed();
    let start = |allow: bool| {
        let config = with(|c| c.allow_step_changes = allow);
        let executor = Executor::new(db.pool.clone(), db.table.clone(), Two::new(&script), config);
        async move { executor.unwrap().start().await }
    };
    // Record a three-step list, and leave a job open at step 2.
    let three = Executor::new(
        db.pool.clone(),
        db.table.clone(),
        Plain::new(&script),
        fast_config(),
    )
    .unwrap();
    three.start().await.unwrap().shutdown().await;
    let client = Client::<Plain>::new(db.pool.clone(), db.table.clone());
    client
        .register_at(
            &Trail::new("open"),
            StartAt::After(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    sqlx::query(&format!(
        "UPDATE {}.jobs SET next_subprocess = 2",
        db.schema
    ))
    .execute(&db.pool)
    .await
    .unwrap();

    // Dropping the last step moves the job at step 2.
    match start(false).await {
        Err(StartError::StepsChanged {
            process_id,
            positions,
            recorded,
            current,
        }) => {
            assert_eq!(process_id, "scripted");
            assert_eq!(positions, [2]);
            assert_eq!(recorded, ["s0", "s1", "s2"]);
            assert_eq!(current, ["s0", "s1"]);
        }
        other => panic!("expected StepsChanged, got {other:?}"),
    }
    start(true).await.unwrap().shutdown().await;
    // Now recorded as two steps: appending one back is fine.
    three.start().await.unwrap().shutdown().await;
}
