//! One delivery: its envelope, then the inbound step every broker's worker
//! shares (`pyventus_core::remote::Inbound`: decode, resolve, target, run
//! under the deadline); then its settlement.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lapin::message::Delivery as Message;
use pyventus_core::remote::{DeliveryFailure, delivery_span};
use tracing::Instrument;

use super::Shared;
use super::settle::settle;
use crate::{Delivery, envelope};

/// The workers' metrics (recorded with the `metrics` feature).
pub(crate) static METRICS: pyventus_core::remote::WorkerMetrics =
    pyventus_core::remote::WorkerMetrics::new("amqp");

/// Handles one message delivered to the worker, in a `pyventus.delivery` span.
pub(crate) async fn handle(shared: &Shared, message: Message) {
    let attempt = envelope::attempt(&message.properties);
    let span = delivery_span(&shared.queue, &message.delivery_tag, attempt);
    // Before the span is entered: a started span's parent is fixed.
    #[cfg(feature = "opentelemetry")]
    pyventus_core::remote::trace::set_parent(&span, &envelope::context_of(&message.properties));
    async {
        let _running = METRICS.received();
        if attempt > 1 {
            shared.stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = match envelope::from_message(&message.properties, &message.data) {
            Ok(mut envelope) => {
                // A request's caller waits at its direct reply-to address.
                if let Some(reply_to) = message.properties.reply_to() {
                    envelope.context.insert(
                        pyventus_core::remote::REPLY_TO.to_owned(),
                        reply_to.as_str().to_owned(),
                    );
                }
                let delivery = Delivery {
                    envelope_id: envelope.id.clone(),
                    delivery_tag: message.delivery_tag,
                    attempt,
                };
                shared.inbound.run(&envelope, Arc::new(delivery)).await
            }
            Err(err) => Err(DeliveryFailure::Envelope(err)),
        };
        settle(shared, &message, attempt, outcome).await;
    }
    .instrument(span)
    .await;
}
