//! Handler ids must name one handler: two handlers with one id in one linker
//! (functions of the same name in two function bodies of one module) fail that
//! linker at first use, and callbacks attach in their handler's linker only.
//!
//! This file has its own namespaces, so the global linker of other tests stays
//! intact.

use std::sync::atomic::{AtomicU32, Ordering};

use pyventus::{
    Error, Event, EventEmitter, EventLinker, InlineProcessingService, Linker, on, on_failure,
    on_success,
};

#[derive(Debug, Clone, Event)]
struct Ping;

// --- Two handlers named `dup` in one namespace: ambiguous, refused.

#[derive(Linker)]
struct Twice;

fn first_body() {
    #[on(Ping, linker = Twice)]
    fn dup() -> anyhow::Result<()> {
        anyhow::bail!("first")
    }

    // Which `dup` would this belong to, by id? Neither: the namespace fails.
    #[on_failure(dup)]
    fn dup_failed() {}
}

fn second_body() {
    #[on(Ping, linker = Twice)]
    fn dup() {}
}

#[test]
fn two_handlers_with_one_id_fail_their_namespace_at_first_use() {
    // The bodies only declare items; calling them does nothing.
    first_body();
    second_body();

    let err = Twice::try_linker().unwrap_err();
    assert_eq!(
        err,
        Error::DuplicateHandlerId {
            id: "duplicate_ids::dup".to_owned()
        }
    );
    let message = err.to_string();
    assert!(message.contains("`duplicate_ids::dup`"), "{message}");
    assert!(message.contains("rename one of them"), "{message}");

    let panic = std::panic::catch_unwind(Twice::linker).unwrap_err();
    let panic = panic.downcast_ref::<String>().unwrap();
    assert!(panic.contains("duplicate_ids::dup"), "{panic}");

    // Only that namespace fails.
    assert!(EventLinker::try_global().is_ok());
    assert!(Apart::try_linker().is_ok());
}

// --- One id in two namespaces: two linkers, each with its own handler; a
// callback attaches to the handler in its own linker only.

#[derive(Linker)]
struct Apart;

#[derive(Linker)]
struct Other;

static APART_SUCCESSES: AtomicU32 = AtomicU32::new(0);

fn third_body() {
    #[on(Ping, linker = Apart)]
    fn same_name() -> u32 {
        1
    }

    #[on_success(same_name)]
    fn same_name_done(n: u32) {
        APART_SUCCESSES.fetch_add(n, Ordering::SeqCst);
    }
}

fn fourth_body() {
    #[on(Ping, linker = Other)]
    fn same_name() -> u32 {
        100
    }
}

#[test]
fn one_id_in_two_namespaces_keeps_its_callbacks_apart() {
    third_body();
    fourth_body();

    let apart = Apart::linker();
    let other = Other::linker();
    for linker in [&apart, &other] {
        assert_eq!(linker.handler("duplicate_ids::same_name").len(), 1);
    }

    let inline = |linker: &EventLinker| {
        EventEmitter::builder()
            .processor(InlineProcessingService::default())
            .linker(linker.clone())
            .build()
    };
    inline(&other).emit(Ping).unwrap();
    assert_eq!(
        APART_SUCCESSES.load(Ordering::SeqCst),
        0,
        "`Other`'s handler has no success callback"
    );
    inline(&apart).emit(Ping).unwrap();
    assert_eq!(APART_SUCCESSES.load(Ordering::SeqCst), 1);
}

// --- One `macro_rules!` writing a handler of one name in two modules: two
// ids, each handler with its own callbacks. A callback names its handler by
// a key `#[on]` makes from where the handler is written; both of these are
// written at one place, inside the macro.

#[derive(Linker)]
struct Written;

static WRITTEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

macro_rules! handler_with_callbacks {
    ($module:ident) => {
        mod $module {
            use super::*;

            #[on(Ping, linker = Written)]
            fn written() -> anyhow::Result<()> {
                anyhow::ensure!(stringify!($module) == "ok", "refused");
                Ok(())
            }

            #[on_success(written)]
            fn written_done() {
                WRITTEN
                    .lock()
                    .unwrap()
                    .push(concat!(stringify!($module), ": done"));
            }

            #[on_failure(written)]
            fn written_failed(_: &anyhow::Error) {
                WRITTEN
                    .lock()
                    .unwrap()
                    .push(concat!(stringify!($module), ": failed"));
            }
        }
    };
}

handler_with_callbacks!(ok);
handler_with_callbacks!(refusing);

#[test]
fn handlers_one_macro_writes_at_one_place_keep_their_own_callbacks() {
    let linker = Written::try_linker().expect("each callback names one handler");
    assert_eq!(linker.handler("duplicate_ids::ok::written").len(), 1);
    assert_eq!(linker.handler("duplicate_ids::refusing::written").len(), 1);

    EventEmitter::builder()
        .processor(InlineProcessingService::default())
        .linker(linker)
        .build()
        .emit(Ping)
        .unwrap();
    let mut written = WRITTEN.lock().unwrap().clone();
    written.sort_unstable();
    assert_eq!(written, ["ok: done", "refusing: failed"]);
}

// --- Two registrations of one key: what a compiler whose spans say nothing
// of hygiene would give the two handlers above. Written by hand (as `#[on]`
// writes them), since rustc tells them apart.

#[derive(Linker)]
struct OneKey;

fn one_key_handler(_: &Ping) {}

fn one_key_success() {}

const ONE_KEY: u64 = 0x5eed;

pyventus::__private::inventory::submit! {
    pyventus::__private::Registration::Handler {
        namespace: Some(pyventus::__private::namespace::<OneKey>),
        id: "duplicate_ids::a::one_key",
        key: ONE_KEY,
        keys: <Ping as pyventus::__private::EventKeys>::ONE,
        once: false,
        blocking: false,
        needs: &[],
        callback: &pyventus::__private::UnitRefFn::new::<Ping>(one_key_handler),
        policy: None,
    }
}

pyventus::__private::inventory::submit! {
    pyventus::__private::Registration::Handler {
        namespace: Some(pyventus::__private::namespace::<OneKey>),
        id: "duplicate_ids::b::one_key",
        key: ONE_KEY,
        keys: <Ping as pyventus::__private::EventKeys>::ONE,
        once: false,
        blocking: false,
        needs: &[],
        callback: &pyventus::__private::UnitRefFn::new::<Ping>(one_key_handler),
        policy: None,
    }
}

pyventus::__private::inventory::submit! {
    pyventus::__private::Registration::Success {
        namespace: Some(pyventus::__private::namespace::<OneKey>),
        handler: ONE_KEY,
        callback: &pyventus::__private::IgnoreFn(one_key_success),
    }
}

#[test]
fn a_callback_of_a_key_two_handlers_share_fails_its_namespace() {
    let err = OneKey::try_linker().unwrap_err();
    assert_eq!(
        err,
        Error::AmbiguousHandler {
            first: "duplicate_ids::a::one_key".to_owned(),
            second: "duplicate_ids::b::one_key".to_owned(),
        }
    );
    let message = err.to_string();
    assert!(message.contains("give each its own name"), "{message}");
}
