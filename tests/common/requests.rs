//! The requests the broker tests (`redis_requests`, `amqp_requests`) ask a
//! worker, and the worker's responders. Included by those tests alone, not
//! by `common`: its request types would be in every test binary.

use std::sync::Arc;
use std::time::Duration;

use pyventus::{Event, EventLinker, Request};
use serde::{Deserialize, Serialize};

#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = Quote, error = QuoteError, remote)]
pub(crate) struct GetQuote {
    pub(crate) symbol: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Quote {
    pub(crate) symbol: String,
    pub(crate) price: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum QuoteError {
    UnknownSymbol(String),
}

/// A request whose error is `Infallible` (the default): its answers cross too.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = u64, remote)]
pub(crate) struct Square(pub(crate) u64);

/// A request no worker answers.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = (), remote)]
pub(crate) struct Unanswered;

/// A request the child worker sits on until it is killed.
#[derive(Debug, Event, Request, Serialize, Deserialize)]
#[request(response = (), remote)]
pub(crate) struct Stuck;

/// The worker's responders: `ACME` is 42, `PANIC` panics, `SLOW` takes 50 ms,
/// anything else is unknown.
pub(crate) fn responders() -> EventLinker {
    let linker = EventLinker::new();
    linker
        .respond_async(|q: Arc<GetQuote>| async move {
            match q.symbol.as_str() {
                "PANIC" => panic!("the quote service fell over"),
                "SLOW" => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Quote {
                        symbol: q.symbol.clone(),
                        price: 1,
                    })
                }
                "ACME" => Ok(Quote {
                    symbol: q.symbol.clone(),
                    price: 42,
                }),
                other => Err(QuoteError::UnknownSymbol(other.to_owned())),
            }
        })
        .unwrap();
    linker.respond(|s: &Square| Ok(s.0 * s.0)).unwrap();
    linker
        .respond_async(|_: Arc<Stuck>| async {
            tokio::time::sleep(Duration::from_hours(1)).await;
            Ok(())
        })
        .unwrap();
    linker
}
