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
