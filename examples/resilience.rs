//! Resilient handlers: a flaky mail server retried with backoff, a hung call
//! cut off at its deadline and dead-lettered, and middleware that times every
//! attempt.
//!
//! Run with `cargo run --example resilience`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pyventus::resilience::{DeadLetter, Delivery, Middleware};
use pyventus::{Event, EventEmitter, InlineProcessingService, Linker, on, on_failure};

#[derive(Linker)]
struct Shop;

#[derive(Debug, Clone, Event)]
struct OrderPlaced {
    id: u64,
}

#[derive(Debug, Clone, Event)]
struct OrderShipped {
    id: u64,
}

static MAIL_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// The mail server is busy twice, then takes the mail: three attempts.
#[on(OrderPlaced, linker = Shop, retries = 3, backoff = "10ms..100ms")]
fn send_confirmation(e: &OrderPlaced) -> anyhow::Result<()> {
    let attempt = MAIL_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt < 3 {
        println!("order {}: mail server busy (attempt {attempt})", e.id);
        anyhow::bail!("mail server busy");
    }
    println!("order {}: confirmation sent (attempt {attempt})", e.id);
    Ok(())
}

/// The warehouse never answers: cancelled at its deadline, then retried once.
#[on(OrderShipped, linker = Shop, retries = 1, backoff = "10ms", timeout = "50ms")]
async fn notify_warehouse(e: &OrderShipped) {
    let _ = e.id;
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[on_failure(notify_warehouse)]
fn warehouse_failed(err: &anyhow::Error) {
    println!("warehouse: {err:#}");
}

/// Times each attempt of the handlers it wraps.
struct Timing;

impl Middleware for Timing {
    fn after(&self, delivery: &Delivery<'_>, outcome: Result<(), &anyhow::Error>, took: Duration) {
        let verdict = if outcome.is_ok() { "ok" } else { "failed" };
        let fast = if took < Duration::from_secs(1) {
            "under a second"
        } else {
            "slow"
        };
        println!(
            "audit {}: attempt {}/{} {verdict}, {fast}",
            delivery.event().name(),
            delivery.attempt(),
            delivery.max_attempts()
        );
    }
}

fn main() -> Result<(), pyventus::Error> {
    let linker = Shop::linker();
    linker.set_dead_letters(Some(|letter: &DeadLetter<'_>| {
        println!(
            "dead letter: {} after {} attempts",
            letter.event().name(),
            letter.exhausted().attempts()
        );
    }));
    linker
        .on::<OrderPlaced>()
        .retries(1)
        .middleware(Timing)
        .subscribe(|e: &OrderPlaced| println!("order {}: audited", e.id))?;

    // Inline: each `emit` returns once its handlers succeeded or gave up.
    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::default())
        .linker(linker)
        .build();
    emitter.emit(OrderPlaced { id: 7 })?;
    emitter.emit(OrderShipped { id: 7 })?;
    Ok(())
}
