//! Processes whose steps do what each test scripts, and count their calls.
//!
//! Each shape (one step, three steps with compensations, ...) is a process
//! written with `#[process]` whose steps `s0`, `s1`, ... and compensations
//! all hand over to the test's [`Script`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, RunType, StepContext, StepError, StepOutcome, StepResult};

/// The data of a scripted job: its id, the trail of steps that succeeded,
/// and a counter tests can bump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JobData)]
pub struct Trail {
    #[job_id]
    pub id: String,
    pub trail: Vec<String>,
    pub value: i64,
}

impl Trail {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

/// One call of a step or compensation, as the script sees it.
#[derive(Debug, Clone)]
pub struct Call {
    pub job_id: String,
    pub step: usize,
    pub run_type: RunType,
    pub attempt: i32,
    pub token: String,
    /// Calls of this (job, step, run type) before this one.
    pub earlier: u32,
}

/// What a scripted call does.
#[derive(Debug, Clone)]
pub enum Act {
    /// Append the step to the trail and succeed.
    Succeed,
    /// Fail, retryably.
    Fail,
    /// Fail permanently.
    FailPermanently,
    /// Panic with a known message.
    Panic,
    /// Exit early as done.
    ExitDone,
    /// Exit early as error.
    ExitError,
    /// Add to `value`, save mid-step, then fail.
    SaveThenFail(i64),
    /// Sleep, then succeed; does not look at the cancellation signal.
    Sleep(Duration),
    /// Wait for the attempt's cancellation (at most a minute), then fail.
    WaitForCancel,
    /// Wait until the test opens the script's gate, then succeed.
    AwaitGate,
}

type Behaviour = dyn Fn(&Call) -> Act + Send + Sync;

/// The script: what each call does, and the log of every call made.
pub struct Script {
    behaviour: Box<Behaviour>,
    log: Mutex<Vec<Call>>,
    gate: tokio::sync::watch::Sender<bool>,
}

impl Script {
    pub fn new(behaviour: impl Fn(&Call) -> Act + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            behaviour: Box::new(behaviour),
            log: Mutex::new(Vec::new()),
            gate: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Lets every call waiting in [`Act::AwaitGate`], and every later one,
    /// through.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Every step succeeds.
    pub fn succeed() -> Arc<Self> {
        Self::new(|_| Act::Succeed)
    }

    /// Every step succeeds but one: in job `<letter><n>`, step `n` does
    /// `act`.
    pub fn exit_at(act: Act) -> Arc<Self> {
        Self::new(move |call| {
            let at: usize = call.job_id[1..]
                .parse()
                .expect("job ids are a letter and a step");
            if call.step == at {
                act.clone()
            } else {
                Act::Succeed
            }
        })
    }

    /// All calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().expect("script log poisoned").clone()
    }

    /// Calls per normal step of `job_id`, indexed by step.
    pub fn step_calls(&self, job_id: &str, steps: usize) -> Vec<u32> {
        let mut counts = vec![0; steps];
        for call in self.calls() {
            if call.job_id == job_id && call.run_type == RunType::Normal {
                counts[call.step] += 1;
            }
        }
        counts
    }

    /// Steps whose compensation ran for `job_id`, in call order.
    pub fn compensations(&self, job_id: &str) -> Vec<usize> {
        self.calls()
            .into_iter()
            .filter(|c| c.job_id == job_id && c.run_type == RunType::Compensation)
            .map(|c| c.step)
            .collect()
    }

    /// Calls per (job, step) of normal runs.
    pub fn counts(&self) -> HashMap<(String, usize), u32> {
        let mut counts = HashMap::new();
        for call in self.calls() {
            if call.run_type == RunType::Normal {
                *counts.entry((call.job_id, call.step)).or_default() += 1;
            }
        }
        counts
    }

    pub async fn act(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        let call = {
            let mut log = self.log.lock().expect("script log poisoned");
            let earlier = log
                .iter()
                .filter(|c| {
                    c.job_id == ctx.job_id() && c.step == ctx.step() && c.run_type == ctx.run_type()
                })
                .count() as u32;
            let call = Call {
                job_id: ctx.job_id().to_owned(),
                step: ctx.step(),
                run_type: ctx.run_type(),
                attempt: ctx.attempt(),
                token: ctx.token().to_owned(),
                earlier,
            };
            log.push(call.clone());
            call
        };
        let mark = match call.run_type {
            RunType::Normal => format!("s{}", call.step),
            _ => format!("c{}", call.step),
        };
        match (self.behaviour)(&call) {
            Act::Succeed => {
                data.trail.push(mark);
                Ok(StepOutcome::Success)
            }
            Act::Fail => Err(StepError::retry(format!("{mark} failed"))),
            Act::FailPermanently => Err(StepError::permanent(format!("{mark} declined"))),
            Act::Panic => panic!("{mark} exploded"),
            Act::ExitDone => {
                data.trail.push(mark);
                Ok(StepOutcome::EarlyExitDone)
            }
            Act::ExitError => Ok(StepOutcome::early_exit_error(format!("{mark} gave up"))),
            Act::SaveThenFail(add) => {
                data.value += add;
                ctx.save(data).await?;
                data.value += 1000;
                Err(StepError::retry(format!("{mark} failed after saving")))
            }
            Act::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                data.trail.push(mark);
                Ok(StepOutcome::Success)
            }
            Act::WaitForCancel => {
                tokio::select! {
                    () = ctx.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                Err(StepError::retry(format!("{mark} cancelled")))
            }
            Act::AwaitGate => {
                let mut gate = self.gate.subscribe();
                if gate.wait_for(|open| *open).await.is_err() {
                    return Err(StepError::retry(format!("{mark} gate dropped")));
                }
                data.trail.push(mark);
                Ok(StepOutcome::Success)
            }
        }
    }
}

/// The processes the tests run, written with `#[process]`: every step and
/// compensation hands over to the script.
macro_rules! scripted {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name {
            pub script: Arc<Script>,
        }

        impl $name {
            pub fn new(script: &Arc<Script>) -> Self {
                Self { script: Arc::clone(script) }
            }
        }
    )*};
}

scripted! {
    /// One step, no compensation.
    Single;
    /// Two steps, no compensation.
    Two;
    /// Three steps, no compensation.
    Plain;
    /// Three steps, each with a compensation.
    Saga;
    /// Three steps; steps 0 and 2 have a compensation, step 1 has none.
    SkipMiddle;
}

#[process(id = "scripted")]
impl Single {
    #[step]
    async fn s0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }
}

#[process(id = "scripted")]
impl Two {
    #[step]
    async fn s0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s1(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }
}

#[process(id = "scripted")]
impl Plain {
    #[step]
    async fn s0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s1(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s2(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }
}

#[process(id = "scripted")]
impl Saga {
    #[step]
    async fn s0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[compensate(s0)]
    async fn c0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s1(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[compensate(s1)]
    async fn c1(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s2(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[compensate(s2)]
    async fn c2(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }
}

#[process(id = "scripted")]
impl SkipMiddle {
    #[step]
    async fn s0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[compensate(s0)]
    async fn c0(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s1(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[step]
    async fn s2(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }

    #[compensate(s2)]
    async fn c2(&self, ctx: &StepContext, data: &mut Trail) -> StepResult {
        self.script.act(ctx, data).await
    }
}
