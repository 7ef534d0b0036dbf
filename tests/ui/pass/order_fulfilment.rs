//! The order-fulfilment shape: steps in order, compensations declared
//! before and after their step, a step without one, other items untouched.

#![deny(warnings)]

use serde::{Deserialize, Serialize};
use ssproc::{process, JobData, Process, StepContext, StepError, StepOutcome, StepResult};

#[derive(Debug, Clone, Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    order_id: String,
    amount_cents: i64,
}

struct Fulfilment {
    warehouse: String,
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {}

#[process(id = "order-fulfilment")]
impl Fulfilment {
    const LIMIT_CENTS: i64 = 100_000;

    #[compensate(reserve_stock)]
    async fn release_stock(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn reserve_stock(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
        let _ = (ctx.attempt(), &self.warehouse);
        order.amount_cents += 0;
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn charge(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        if order.amount_cents > Self::LIMIT_CENTS {
            return Err(StepError::permanent(Declined));
        }
        let parsed: i64 = "12".parse()?;
        order.amount_cents += parsed - 12;
        Ok(StepOutcome::Success)
    }

    #[compensate(charge)]
    async fn refund(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Ok(StepOutcome::early_exit_error("refund refused"))
    }

    #[step]
    async fn ship(&self, _ctx: &StepContext, _order: &mut Order) -> StepResult {
        Err(Declined)?
    }

    fn helper(&self) -> &str {
        &self.warehouse
    }
}

fn assert_send_sync<T: Send + Sync + 'static>() {}

fn main() {
    assert_send_sync::<Fulfilment>();
    assert_eq!(<Fulfilment as Process>::ID, "order-fulfilment");
    assert_eq!(Fulfilment::STEPS, ["reserve_stock", "charge", "ship"]);
    assert_eq!(Fulfilment::COMPENSATED, [true, true, false]);
    let order = Order {
        order_id: "o-1".to_owned(),
        amount_cents: 5,
    };
    assert_eq!(order.job_id(), "o-1");
    let fulfilment = Fulfilment {
        warehouse: "north".to_owned(),
    };
    assert_eq!(fulfilment.helper(), "north");
}
