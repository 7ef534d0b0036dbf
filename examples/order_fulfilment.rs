//! Order fulfilment: a three-step saga with compensations.
//!
//! Ten orders are each inserted into the shop's own `orders` table together
//! with their fulfilment job, in one transaction. The job reserves stock,
//! charges the card and ships; when a step fails for good, the stock is
//! released and the charge refunded, newest step first. One card is
//! declined (a permanent failure: compensated at once) and one charge fails
//! twice before it goes through (retried with backoff).
//!
//! Run it with `cargo run --example order_fulfilment`. Without
//! `DATABASE_URL` it starts a throwaway PostgreSQL from the server binaries
//! on this machine and removes it afterwards. It prints each order's final
//! status and exits non-zero unless every job ended as expected.

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use ssproc::{
    process, Client, ExecutorConfig, JobData, JobStatus, JobTable, Process, StartAt, StepContext,
    StepError, StepOutcome, StepResult,
};

/// The job data: what the steps need to know about one order.
#[derive(Debug, Clone, Serialize, Deserialize, JobData)]
struct Order {
    #[job_id]
    order_id: String,
    sku: String,
    quantity: i32,
    amount_cents: i64,
    card: String,
}

/// A card processor that declines one card and fails a few charges first.
#[derive(Default)]
struct Payments {
    attempts: Mutex<HashMap<String, u32>>,
}

#[derive(Debug, thiserror::Error)]
enum PaymentError {
    #[error("card {0} declined")]
    Declined(String),
    #[error("payment gateway timed out")]
    Timeout,
}

impl Payments {
    fn charge(&self, order: &Order) -> Result<(), PaymentError> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = attempts.entry(order.order_id.clone()).or_insert(0);
        *attempt += 1;
        if order.card.ends_with("0002") {
            return Err(PaymentError::Declined(order.card.clone()));
        }
        if order.card.ends_with("0119") && *attempt <= 2 {
            return Err(PaymentError::Timeout);
        }
        Ok(())
    }
}

/// The process: the shop's database and its payment processor.
struct Fulfilment {
    shop: PgPool,
    payments: Payments,
}

#[process(id = "order-fulfilment")]
impl Fulfilment {
    /// Takes the stock and marks the order reserved, in one transaction; a
    /// retry after a crash finds the order reserved and does nothing.
    #[step]
    async fn reserve_stock(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        let mut tx = self.shop.begin().await?;
        let marked = sqlx::query(
            "UPDATE shop_orders SET status = 'reserved' WHERE order_id = $1 AND status = 'new'",
        )
        .bind(&order.order_id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 1 {
            let taken = sqlx::query(
                "UPDATE shop_stock SET available = available - $2 WHERE sku = $1 AND available >= $2",
            )
            .bind(&order.sku)
            .bind(order.quantity)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() == 0 {
                return Err(StepError::permanent(format!(
                    "{} is out of stock",
                    order.sku
                )));
            }
        }
        tx.commit().await?;
        Ok(StepOutcome::Success)
    }

    #[compensate(reserve_stock)]
    async fn release_stock(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        let mut tx = self.shop.begin().await?;
        let marked = sqlx::query(
            "UPDATE shop_orders SET status = 'released' WHERE order_id = $1 AND status = 'reserved'",
        )
        .bind(&order.order_id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 1 {
            sqlx::query("UPDATE shop_stock SET available = available + $2 WHERE sku = $1")
                .bind(&order.sku)
                .bind(order.quantity)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn charge(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        match self.payments.charge(order) {
            Ok(()) => {}
            Err(declined @ PaymentError::Declined(_)) => {
                return Err(StepError::permanent(declined))
            }
            Err(other) => return Err(other.into()),
        }
        sqlx::query("UPDATE shop_orders SET charged_cents = $2 WHERE order_id = $1")
            .bind(&order.order_id)
            .bind(order.amount_cents)
            .execute(&self.shop)
            .await?;
        Ok(StepOutcome::Success)
    }

    #[compensate(charge)]
    async fn refund(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        sqlx::query("UPDATE shop_orders SET charged_cents = 0 WHERE order_id = $1")
            .bind(&order.order_id)
            .execute(&self.shop)
            .await?;
        Ok(StepOutcome::Success)
    }

    #[step]
    async fn ship(&self, _ctx: &StepContext, order: &mut Order) -> StepResult {
        sqlx::query("UPDATE shop_orders SET status = 'shipped' WHERE order_id = $1")
            .bind(&order.order_id)
            .execute(&self.shop)
            .await?;
        Ok(StepOutcome::Success)
    }
}

const SHOP_SCHEMA: &str = "
DROP TABLE IF EXISTS shop_orders, shop_stock;
CREATE TABLE shop_stock (sku TEXT PRIMARY KEY, available INT NOT NULL);
CREATE TABLE shop_orders (
    order_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL REFERENCES shop_stock (sku),
    status TEXT NOT NULL DEFAULT 'new',
    charged_cents BIGINT NOT NULL DEFAULT 0
);
INSERT INTO shop_stock VALUES ('teapot', 100), ('kettle', 100);
";

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr, so that stdout holds the orders' statuses alone.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,ssproc_runtime=info".into()),
        )
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("order_fulfilment failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let url = postgres::database_url().await;
    let pool = PgPool::connect(&url).await?;
    let table = JobTable::new("public", "order_fulfilment_jobs")?;
    sqlx::raw_sql(SHOP_SCHEMA).execute(&pool).await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS public.{}", table.table()))
        .execute(&pool)
        .await?;
    ssproc::migrate(&pool, &table).await?;

    let mut config = ExecutorConfig::default();
    config.name = "example".to_owned();
    config.sweep_interval = Duration::from_secs(1);
    config.retry_backoff_base = Duration::from_millis(100);
    config.retry_backoff_max = Duration::from_secs(1);
    let process = Fulfilment {
        shop: pool.clone(),
        payments: Payments::default(),
    };
    // The `#[process]` value starts its own executor; by hand this is
    // `Executor::new(pool, table, process, config)?.start().await`.
    let handle = process
        .spawn_executor(pool.clone(), table.clone(), config)
        .await?;
    let client = Client::<Fulfilment>::new(pool.clone(), table);

    // Order 2 pays with a card that is declined; order 7's charge times out
    // twice before it goes through.
    let mut expected = Vec::new();
    for n in 1..=10 {
        let card = match n {
            2 => "4000-0000-0000-0002",
            7 => "4000-0000-0000-0119",
            _ => "4242-4242-4242-4242",
        };
        let order = Order {
            order_id: format!("order-{n:02}"),
            sku: if n % 2 == 0 { "kettle" } else { "teapot" }.to_owned(),
            quantity: 1 + n % 3,
            amount_cents: 1_999 * i64::from(n),
            card: card.to_owned(),
        };
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO shop_orders (order_id, sku) VALUES ($1, $2)")
            .bind(&order.order_id)
            .bind(&order.sku)
            .execute(&mut *tx)
            .await?;
        client.register_in(&mut tx, &order, StartAt::Now).await?;
        tx.commit().await?;
        let status = if n == 2 {
            JobStatus::Compensated
        } else {
            JobStatus::Done
        };
        expected.push((order.order_id, status));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut all_as_expected = true;
    for (order_id, want) in &expected {
        let job = loop {
            let job = client.job(order_id).await?.ok_or("job vanished")?;
            if job.status.is_terminal() || tokio::time::Instant::now() > deadline {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (shop_status, charged): (String, i64) =
            sqlx::query_as("SELECT status, charged_cents FROM shop_orders WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(&pool)
                .await?;
        let reason = job
            .last_failure
            .as_ref()
            .map(|f| f.message.as_str())
            .unwrap_or("-");
        println!(
            "{order_id}: job {status:<11} attempts {attempts}  order {shop_status:<8} charged {charged:>6}  last failure: {reason}",
            status = job.status,
            attempts = job.exec_count,
        );
        all_as_expected &= job.status == *want;
    }
    handle.shutdown().await;

    if all_as_expected {
        println!("all 10 orders reached their expected status");
    } else {
        println!("some orders did not reach their expected status");
    }
    Ok(all_as_expected)
}
