//! `Inbound`, the step every broker's worker shares, driven as a custom
//! backend drives it (`examples/custom_backend.rs`): its future made, then
//! instrumented with the delivery's span, then awaited, on a runtime made for
//! it if need be. Nothing of the delivery happens before the first poll.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Logs;
use pyventus::remote::{Envelope, Inbound, delivery_span};
use pyventus::{Event, Linker, on};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

#[derive(Debug, Clone, Event, Serialize, Deserialize)]
struct Parcel {
    n: u64,
}

#[derive(Linker)]
struct Parcels;

#[on(Parcel, linker = Parcels)]
fn receive(parcel: &Parcel) {
    tracing::info!(n = parcel.n, "received");
}

/// With a deadline, whose timer needs a runtime.
fn inbound() -> Inbound {
    Inbound::new(Parcels::linker(), "test").handler_timeout(Some(Duration::from_secs(5)))
}

#[tokio::test(flavor = "current_thread")]
async fn a_delivery_runs_in_the_span_its_caller_instruments_it_with() {
    let (logs, _guard) = Logs::capture();
    // Synchronous handlers run on pyventus's blocking threads.
    let _threads = logs.capture_threads("pyventus-blocking");
    let inbound = inbound();
    let envelope = Envelope::new("Parcel", r#"{"n":1}"#);
    async {
        let run = inbound.run(&envelope, Arc::new(()));
        run.instrument(delivery_span("parcels", &"m-1", 1))
            .await
            .unwrap();
    }
    .instrument(tracing::info_span!("outer"))
    .await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("received n=1"))
        .unwrap_or_else(|| panic!("the handler did not log: {text}"));
    // The delivery's span, with the envelope recorded on it, and the
    // handler's span under it.
    let Some((delivery, _)) = line
        .split_once("outer:pyventus.delivery{queue=parcels")
        .and_then(|(_, rest)| rest.split_once("}:pyventus.delivery{"))
    else {
        panic!("the handler ran under the delivery's span: {line}")
    };
    assert!(
        delivery.contains(&format!("envelope=\"{}\"", envelope.id))
            && delivery.contains("event=\"Parcel\""),
        "the delivery's span records its envelope: {line}"
    );
}

#[test]
fn a_delivery_made_outside_a_runtime_runs_on_one() {
    let inbound = inbound();
    let envelope = Envelope::new("Parcel", r#"{"n":2}"#);
    let run = inbound.run(&envelope, Arc::new(()));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run)
        .unwrap();
}
