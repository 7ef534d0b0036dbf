//! Catching a changed step list before it moves open jobs.

use crate::error::StartError;
use crate::process::Process;
use crate::storage::Store;

/// Compares the process's steps with those it last started with, refuses a
/// change that moves open jobs (unless allowed), then records the current
/// list.
pub(super) async fn check<P: Process>(
    store: &Store,
    allow_changes: bool,
) -> Result<(), StartError> {
    let database = |source| StartError::Database {
        process_id: P::ID.to_owned(),
        source,
    };
    let recorded = store.process_steps_get(P::ID).await.map_err(database)?;
    if let Some(recorded) = recorded {
        if recorded
            .iter()
            .map(String::as_str)
            .ne(P::STEPS.iter().copied())
        {
            let open = store.job_open_steps(P::ID).await.map_err(database)?;
            let positions = moved(&recorded, P::STEPS, &open);
            if positions.is_empty() || allow_changes {
                tracing::info!(process_id = P::ID, ?recorded, current = ?P::STEPS, "step list changed");
            } else {
                return Err(StartError::StepsChanged {
                    process_id: P::ID.to_owned(),
                    positions,
                    recorded,
                    current: P::STEPS.iter().map(|s| (*s).to_owned()).collect(),
                });
            }
        }
    }
    store
        .process_steps_put(P::ID, P::STEPS)
        .await
        .map_err(database)
}

/// The open positions whose step, or any step before it, is not what it
/// was: a job there would resume (or compensate) at a different step.
fn moved(recorded: &[String], current: &[&str], open: &[i32]) -> Vec<i32> {
    let same_until = recorded
        .iter()
        .zip(current)
        .take_while(|(old, new)| old.as_str() == **new)
        .count();
    open.iter()
        .copied()
        .filter(|&position| {
            // A job at `position` needs steps 0..=position unchanged; one
            // past the last recorded step (a finished normal run) needs all.
            let needed = usize::try_from(position)
                .map_or(0, |p| p + 1)
                .min(recorded.len());
            needed > same_until
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::moved;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn appending_moves_nothing() {
        assert!(moved(&names(&["a", "b"]), &["a", "b", "c"], &[0, 1]).is_empty());
    }

    #[test]
    fn insertion_moves_jobs_at_and_after_it() {
        let recorded = names(&["a", "b", "c"]);
        assert_eq!(moved(&recorded, &["a", "x", "b", "c"], &[0, 1, 2]), [1, 2]);
    }

    #[test]
    fn removal_and_reordering_are_caught() {
        let recorded = names(&["a", "b", "c"]);
        assert_eq!(moved(&recorded, &["a", "c"], &[0, 2]), [2]);
        assert_eq!(moved(&recorded, &["b", "a", "c"], &[0]), [0]);
    }

    #[test]
    fn a_change_after_every_open_job_is_fine() {
        let recorded = names(&["a", "b", "c"]);
        assert!(moved(&recorded, &["a", "b", "z"], &[0, 1]).is_empty());
        assert!(moved(&recorded, &["a", "b", "z"], &[]).is_empty());
        assert!(moved(&recorded, &["a", "b", "z"], &[-1]).is_empty());
    }
}
