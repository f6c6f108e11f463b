//! `#[on(E, inline)]`: a handler compiled into a closure of its own behaves
//! exactly as the same handler passed as data (the default), in every
//! parameter form, with its callbacks, on every processor.

mod common;

use std::sync::{Arc, Mutex, PoisonError};

use common::emitter;
use pyventus::{
    AnyEvent, Event, ExecutorProcessingService, InlineProcessingService, Linker, ProcessingService,
    TokioProcessingService, on, on_failure, on_success, once,
};

#[derive(Debug, Clone, Event)]
struct Payment {
    cents: u64,
}

/// What the handlers did.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: impl Into<String>) {
    LOG.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry.into());
}

fn take_log() -> Vec<String> {
    let mut log = std::mem::take(&mut *LOG.lock().unwrap_or_else(PoisonError::into_inner));
    log.sort();
    log
}

/// The same handlers, declared twice: once as data, once `inline`, each in a
/// namespace of its own and tagged with it.
macro_rules! handlers {
    ($module:ident, $linker:ident $(, $inline:ident)?) => {
        mod $module {
            use super::*;

            #[derive(Linker)]
            pub(super) struct $linker;

            const TAG: &str = stringify!($module);

            #[on(Payment, linker = $linker $(, $inline)?)]
            fn by_ref(e: &Payment) -> anyhow::Result<u64> {
                if e.cents == 0 {
                    anyhow::bail!("nothing to pay");
                }
                Ok(e.cents * 2)
            }

            #[on_success(by_ref)]
            fn by_ref_done(doubled: u64) {
                log(format!("{TAG}: by_ref {doubled}"));
            }

            #[on_failure(by_ref)]
            fn by_ref_failed(err: &anyhow::Error) {
                log(format!("{TAG}: by_ref failed: {err}"));
            }

            #[on(Payment, linker = $linker $(, $inline)?)]
            fn by_value(e: Payment) -> String {
                format!("{} cents", e.cents)
            }

            #[on_success(by_value)]
            fn by_value_done(text: String) {
                log(format!("{TAG}: by_value {text}"));
            }

            #[on(Payment, linker = $linker $(, $inline)?)]
            fn shared(e: Arc<Payment>) {
                log(format!("{TAG}: shared {}", e.cents));
            }

            #[on(Payment, linker = $linker $(, $inline)?)]
            fn erased(e: &AnyEvent) {
                log(format!("{TAG}: erased {}", e.name()));
            }

            #[on(Payment, linker = $linker $(, $inline)?)]
            fn nothing() {
                assert!(!TAG.is_empty(), "never fails");
            }

            #[on_success(nothing)]
            fn nothing_done() {
                log(format!("{TAG}: nothing"));
            }

            #[once(Payment, linker = $linker $(, $inline)?)]
            fn first(e: &Payment) {
                log(format!("{TAG}: first {}", e.cents));
            }
        }
    };
}

handlers!(as_data, AsData);
handlers!(inlined, Inlined, inline);

fn processors(runtime: &tokio::runtime::Runtime) -> Vec<Arc<dyn ProcessingService>> {
    let _guard = runtime.enter();
    vec![
        Arc::new(InlineProcessingService::default()),
        Arc::new(TokioProcessingService::default()),
        Arc::new(ExecutorProcessingService::with_threads(2)),
    ]
}

/// Every line `as_data` logged, with the tag of the other namespace.
fn retagged(log: &[String]) -> Vec<String> {
    log.iter()
        .map(|line| line.replace("as_data", "inlined"))
        .collect()
}

#[test]
fn an_inline_handler_behaves_as_the_same_handler_passed_as_data() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (round, processor) in processors(&runtime).into_iter().enumerate() {
        let mut runs = Vec::new();
        for linker in [as_data::AsData::linker(), inlined::Inlined::linker()] {
            let emitter = emitter(&linker, processor.clone());
            for cents in [5, 0] {
                runtime
                    .block_on(emitter.emit_and_wait(Payment { cents }))
                    .unwrap();
            }
            runs.push(take_log());
        }
        let [as_data, inlined] = <[_; 2]>::try_from(runs).unwrap();
        assert_eq!(retagged(&as_data), inlined);
        let mut expected = vec![
            "inlined: by_ref 10",
            "inlined: by_ref failed: nothing to pay",
            "inlined: by_value 0 cents",
            "inlined: by_value 5 cents",
            "inlined: erased Payment",
            "inlined: erased Payment",
            "inlined: nothing",
            "inlined: nothing",
            "inlined: shared 0",
            "inlined: shared 5",
        ];
        // The one-time handler fired on the first emission of all, and only then.
        if round == 0 {
            expected.insert(6, "inlined: first 5");
        }
        assert_eq!(inlined, expected);
    }
}
