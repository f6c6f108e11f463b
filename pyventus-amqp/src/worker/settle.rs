//! Settling a delivery: acknowledge the message, return it to the queue for
//! another delivery, or move it to the dead letters with its reason.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::message::Delivery as Message;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use pyventus_core::remote::{Backoff, DeliveryFailure};
use std::sync::atomic::Ordering;

use super::Shared;
use super::execute::METRICS;
use crate::{broker, dead_letter};

/// Acknowledges, returns or dead-letters the message. A failure to reach the
/// broker here leaves the message unacknowledged: the broker delivers it again
/// once its channel is gone, so nothing is lost (it may run twice).
pub(super) async fn settle(
    shared: &Shared,
    message: &Message,
    attempt: u64,
    outcome: Result<(), DeliveryFailure>,
) {
    let stats = &shared.stats;
    match outcome {
        Ok(()) => match message.acker.ack(BasicAckOptions::default()).await {
            Ok(_) => {
                stats.processed.fetch_add(1, Ordering::Relaxed);
                METRICS.acked();
            }
            Err(err) => unsettled("acknowledge", &err),
        },
        Err(failure) if attempt >= shared.max_deliveries || failure.is_permanent() => {
            let reason = failure.to_string();
            let letter = dead_letter::letter_properties(
                &message.properties,
                &message.data,
                &reason,
                attempt,
            );
            match move_to_dead_letters(shared, &message.data, &letter).await {
                Ok(()) => match message.acker.ack(BasicAckOptions::default()).await {
                    Ok(_) => {
                        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                        METRICS.dead_lettered(failure.label());
                        tracing::error!(
                            target: "pyventus",
                            deliveries = attempt,
                            "moved to the dead letters: {reason}"
                        );
                    }
                    // Dead-lettered, and delivered again: it may be dead-lettered
                    // twice (both letters with one id).
                    Err(err) => unsettled("acknowledge a dead-lettered message", &err),
                },
                Err(err) => {
                    tracing::error!(
                        target: "pyventus",
                        "cannot move a message to the dead letters after {DEAD_LETTER_ATTEMPTS} attempts ({err}); returning it to the queue, where the broker dead-letters it at its delivery limit. It failed: {reason}"
                    );
                    nack(message).await;
                }
            }
        }
        Err(failure) => {
            stats.retried.fetch_add(1, Ordering::Relaxed);
            METRICS.retried();
            tracing::warn!(
                target: "pyventus",
                deliveries = attempt,
                max_deliveries = shared.max_deliveries,
                "delivery failed, will be retried: {failure}"
            );
            if !shared.retry_delay.is_zero() {
                // Holds the message (and its slot) before returning it, so a
                // failing message does not loop hot; a shutdown cuts it short.
                tokio::select! {
                    () = tokio::time::sleep(shared.retry_delay) => {}
                    () = shared.shutdown.cancelled() => {}
                }
            }
            nack(message).await;
        }
    }
}

/// How many times a dead letter is published before its message is returned
/// to the queue instead (a confirm slow to come is not counted: it is waited
/// for).
const DEAD_LETTER_ATTEMPTS: u32 = 5;

/// Publishes a message's dead letter on the worker's dead-letter connection
/// (never the one it consumes on: a broker alarm blocks a publishing
/// connection, acknowledgements and all) and waits until the broker has it.
///
/// - A confirm slower than the confirm timeout (a memory or disk alarm delays
///   it until the alarm clears) is waited for, however long, the message held
///   meanwhile: returning it would dead-letter it twice once the broker stores
///   the letter.
/// - A letter returned unroutable (the dead-letter queue was deleted) declares
///   the dead letters again, and is published again.
/// - A refused letter or a lost connection: published again after a backoff,
///   on a new connection, which declares the dead letters (and their exchange,
///   if it was deleted) first. A connection lost while a confirm was awaited
///   may have stored the letter: it is then there twice, with one letter id.
///
/// # Errors
///
/// The last failure, after [`DEAD_LETTER_ATTEMPTS`] of them.
async fn move_to_dead_letters(
    shared: &Shared,
    body: &[u8],
    letter: &BasicProperties,
) -> Result<(), crate::Error> {
    let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));
    let mut failures = 0;
    loop {
        let err = match publish_letter(shared, body, letter.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        failures += 1;
        if failures >= DEAD_LETTER_ATTEMPTS {
            return Err(err);
        }
        let delay = backoff.delay(failures - 1);
        tracing::warn!(
            target: "pyventus",
            "cannot publish a dead letter ({err}); trying again in {delay:?}"
        );
        tokio::time::sleep(delay).await;
    }
}

/// One attempt of [`move_to_dead_letters`].
async fn publish_letter(
    shared: &Shared,
    body: &[u8],
    letter: BasicProperties,
) -> Result<(), crate::Error> {
    let (publisher, topology) = (&shared.dead_letters, &shared.topology);
    let link = publisher.link().await?;
    let outcome = async {
        let mut confirm =
            broker::send(&link.channel, &topology.dlx, &topology.dead, body, letter).await?;
        let confirmation = match tokio::time::timeout(shared.confirm_timeout, &mut confirm).await
        {
            Ok(confirmation) => confirmation?,
            Err(_) => {
                tracing::warn!(
                    target: "pyventus",
                    "the broker has not confirmed a dead letter within {:?} (does a memory or disk alarm block publishers?): the message is held until it does",
                    shared.confirm_timeout
                );
                confirm.await?
            }
        };
        broker::confirmed(&topology.dead, confirmation)
    }
    .await;
    match &outcome {
        Ok(()) => {}
        Err(crate::Error::Unroutable { .. }) => {
            tracing::warn!(
                target: "pyventus",
                queue = %topology.dead,
                "a dead letter came back unroutable: declaring the dead-letter queue again"
            );
            if publisher.declare_dead_letters(&link).await.is_err() {
                publisher.forget(&link);
            }
        }
        Err(_) => publisher.forget(&link),
    }
    outcome
}

/// Returns the message to its queue; the broker counts the delivery.
async fn nack(message: &Message) {
    let options = BasicNackOptions {
        requeue: true,
        multiple: false,
    };
    if let Err(err) = message.acker.nack(options).await {
        unsettled("return", &err);
    }
}

fn unsettled(what: &str, err: &lapin::Error) {
    tracing::warn!(
        target: "pyventus",
        "cannot {what} the message ({err}): the broker will deliver it again once the channel is gone"
    );
}
