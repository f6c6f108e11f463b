//! Events as streams: `linker.stream::<E>(capacity)` and `stream_named`; a slow
//! consumer gets a lag item with the exact count it missed, then the newest
//! events; dropping the stream unsubscribes; nothing is lost silently.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::{emitter, inline_fast};
use futures::StreamExt;
use pyventus::{Error, Event, EventLinker, Lagged, TokioProcessingService};

#[derive(Debug, PartialEq, Event)]
struct Tick(u64);

#[tokio::test]
async fn a_stalled_consumer_gets_the_exact_lag_then_the_newest_events() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let mut ticks = linker.stream::<Tick>(16).unwrap();
    // The consumer stalls while 100 events go by.
    for n in 0..100 {
        emitter.emit(Tick(n)).unwrap();
    }
    assert_eq!(ticks.len(), 16);
    assert_eq!(ticks.next().await, Some(Err(Lagged { missed: 84 })));
    for n in 84..100 {
        assert_eq!(ticks.next().await.unwrap().unwrap().0, n);
    }
    // It keeps receiving, the newest first, with no lag while it keeps up.
    for n in 100..200 {
        emitter.emit(Tick(n)).unwrap();
        assert_eq!(ticks.next().await.unwrap().unwrap().0, n);
    }
    assert!(ticks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stalled_behind_a_tokio_emitter_lags_then_catches_up() {
    let linker = EventLinker::new();
    let service = TokioProcessingService::builder()
        .enforce_submission_order(true)
        .build();
    let emitter = emitter(&linker, service.clone());
    let mut ticks = linker.stream::<Tick>(16).unwrap();
    let (go, stalled) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(async move {
        // Stalled until every emission has run.
        stalled.await.unwrap();
        let mut items = Vec::new();
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(200), ticks.next()).await
        {
            items.push(item.map(|t| t.0));
        }
        items
    });
    for n in 0..1_000 {
        emitter.emit(Tick(n)).unwrap();
    }
    service.wait_for_tasks().await.unwrap();
    go.send(()).unwrap();
    let items = consumer.await.unwrap();
    assert_eq!(items[0], Err(Lagged { missed: 984 }));
    let newest: Vec<u64> = items[1..].iter().map(|i| *i.as_ref().unwrap()).collect();
    assert_eq!(newest, (984..1_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_received_or_counted_as_missed() {
    const THREADS: u64 = 4;
    const EACH: u64 = 5_000;
    let linker = EventLinker::new();
    let mut ticks = linker.stream::<Tick>(64).unwrap();
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let emitter = inline_fast(&linker);
            std::thread::spawn(move || {
                for n in 0..EACH {
                    emitter.emit(Tick(t * EACH + n)).unwrap();
                }
            })
        })
        .collect();
    let (mut received, mut missed, mut lags) = (0_u64, 0_u64, 0_u64);
    while received + missed < THREADS * EACH {
        let next = tokio::time::timeout(Duration::from_secs(10), ticks.next())
            .await
            .unwrap_or_else(|_| panic!("stalled at {received} received + {missed} missed"));
        match next {
            Some(Ok(_)) => received += 1,
            Some(Err(Lagged { missed: n })) => {
                assert!(n > 0);
                missed += n;
                lags += 1;
            }
            None => panic!("the stream ended"),
        }
        if received % 100 == 0 {
            // A slow consumer now and then.
            tokio::task::yield_now().await;
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(received + missed, THREADS * EACH);
    eprintln!("received {received}, missed {missed} in {lags} lag items");
}

#[tokio::test]
async fn a_named_stream_yields_each_payload() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let mut greetings = linker.stream_named::<String>("Greet", 4).unwrap();
    emitter.emit_named("Greet", "Ada".to_string()).unwrap();
    emitter.emit_named("Greet", "Grace".to_string()).unwrap();
    assert_eq!(greetings.next().await, Some(Ok("Ada".to_string())));
    assert_eq!(greetings.next().await, Some(Ok("Grace".to_string())));
}

#[test]
fn dropping_a_stream_unsubscribes_it() {
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let ticks = linker.stream::<Tick>(4).unwrap();
    let sub = ticks.guard().subscriber().clone();
    emitter.emit(Tick(1)).unwrap();
    assert_eq!(ticks.len(), 1);
    drop(ticks);
    assert!(!sub.is_subscribed());
    assert!(linker.is_empty());
    emitter.emit(Tick(2)).unwrap();
}

#[tokio::test]
async fn a_stream_ends_once_its_subscriber_is_removed_by_other_means() {
    let linker = EventLinker::new();
    let mut ticks = linker.stream::<Tick>(4).unwrap();
    inline_fast(&linker).emit(Tick(7)).unwrap();
    assert!(linker.remove_all());
    assert_eq!(ticks.next().await.unwrap().unwrap().0, 7);
    let end = tokio::time::timeout(Duration::from_secs(5), ticks.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[test]
fn a_stream_of_capacity_zero_is_refused() {
    let linker = EventLinker::new();
    let err = linker.stream::<Tick>(0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSetting {
                setting: "capacity",
                ..
            }
        ),
        "{err}"
    );
    assert!(linker.is_empty());
}

#[test]
fn a_stream_drops_the_events_it_pushes_out() {
    #[derive(Debug, Event)]
    struct Counted(Arc<AtomicU64>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let linker = EventLinker::new();
    let emitter = inline_fast(&linker);
    let dropped = Arc::new(AtomicU64::new(0));
    let stream = linker.stream::<Counted>(2).unwrap();
    let d = dropped.clone();
    // From a thread that exits: no thread's cache keeps the subscriber after.
    std::thread::spawn(move || {
        for _ in 0..5 {
            emitter.emit(Counted(d.clone())).unwrap();
        }
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(SeqCst), 3);
    drop(stream);
    assert_eq!(dropped.load(SeqCst), 5);
}
