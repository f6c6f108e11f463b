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

/// Emits a `Ping` through `linker`, inline: its handlers and callbacks have
/// run when this returns.
fn emit_ping(linker: &EventLinker) {
    EventEmitter::builder()
        .processor(InlineProcessingService::default())
        .linker(linker.clone())
        .build()
        .emit(Ping)
        .unwrap();
}

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

    emit_ping(&other);
    assert_eq!(
        APART_SUCCESSES.load(Ordering::SeqCst),
        0,
        "`Other`'s handler has no success callback"
    );
    emit_ping(&apart);
    assert_eq!(APART_SUCCESSES.load(Ordering::SeqCst), 1);
}

// --- One `macro_rules!` writing a handler of one name in several modules,
// each with its own callbacks: in separate expansions, and in one expansion
// repeating it. `#[on]` gives each handler its own key all the same.

#[derive(Linker)]
struct Written;

static WRITTEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

#[derive(Linker)]
struct Repeated;

static REPEATED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

macro_rules! audited {
    ($linker:ident, $log:ident, $passing:literal: $($module:ident),*) => {$(
        mod $module {
            use super::*;

            #[on(Ping, linker = $linker)]
            fn audit() -> anyhow::Result<()> {
                anyhow::ensure!(stringify!($module) == $passing, "refused");
                Ok(())
            }

            #[on_failure(audit)]
            fn audit_failed(_: &anyhow::Error) {
                $log.lock().unwrap().push(concat!(stringify!($module), ": failed"));
            }

            #[on_success(self::audit)]
            fn audit_done() {
                $log.lock().unwrap().push(concat!(stringify!($module), ": done"));
            }
        }
    )*};
}

audited!(Written, WRITTEN, "ok": ok);
audited!(Written, WRITTEN, "ok": refusing);
audited!(Repeated, REPEATED, "passing": passing, refusing_one, refusing_two);

#[test]
fn handlers_one_macro_writes_at_one_place_keep_their_own_callbacks() {
    let linker = Written::try_linker().expect("each callback names one handler");
    assert_eq!(linker.handler("duplicate_ids::ok::audit").len(), 1);
    assert_eq!(linker.handler("duplicate_ids::refusing::audit").len(), 1);

    emit_ping(&linker);
    let mut written = WRITTEN.lock().unwrap().clone();
    written.sort_unstable();
    assert_eq!(written, ["ok: done", "refusing: failed"]);
}

// --- Handlers written at one place more than once: one macro expansion
// repeating a name (above, and `$name` in two modules below), or one file
// included twice. Each callback finds its own handler.

macro_rules! one_name_twice {
    ($name:ident) => {
        mod twice_x {
            use super::*;

            #[on(Ping, linker = Repeated)]
            pub(crate) fn $name() -> char {
                'x'
            }
        }

        mod twice_y {
            use super::*;

            #[on(Ping, linker = Repeated)]
            pub(crate) fn $name() -> char {
                'y'
            }
        }
    };
}

one_name_twice!(shared);

#[on_success(twice_y::shared)]
fn shared_done(which: char) {
    REPEATED
        .lock()
        .unwrap()
        .push(if which == 'y' { "y" } else { "x" });
}

#[derive(Linker)]
struct Included;

static INCLUDED: std::sync::Mutex<Vec<(&'static str, u32)>> = std::sync::Mutex::new(Vec::new());

mod first_copy {
    use super::*;
    include!("duplicate_ids/included.rs");
}

mod second_copy {
    use super::*;
    include!("duplicate_ids/included.rs");
}

#[test]
fn handlers_written_at_one_place_more_than_once_keep_their_own_callbacks() {
    emit_ping(&Repeated::try_linker().expect("each callback finds its handler"));
    let mut repeated = REPEATED.lock().unwrap().clone();
    repeated.sort_unstable();
    assert_eq!(
        repeated,
        [
            "passing: done",
            "refusing_one: failed",
            "refusing_two: failed",
            "y"
        ]
    );

    emit_ping(&Included::try_linker().expect("each callback finds its handler"));
    let mut included = INCLUDED.lock().unwrap().clone();
    included.sort_unstable();
    assert_eq!(
        included,
        [
            ("duplicate_ids::first_copy", 25),
            ("duplicate_ids::second_copy", 26)
        ]
    );
}

// --- Paths a text could not follow: an import in a function body shadowing
// a module, `$crate`, a raw identifier, and function bodies one expansion
// writes, each with its own linker. Rustc resolves each; the callback keeps
// its handler.

#[derive(Linker)]
struct Resolved;

static RESOLVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

macro_rules! resolved {
    ($($module:ident),*) => {$(
        mod $module {
            use super::*;

            #[on(Ping, linker = Resolved)]
            pub(crate) fn h() -> String {
                stringify!($module).to_owned()
            }

            #[on(Ping, linker = Resolved)]
            pub(crate) fn r#raw() -> String {
                concat!(stringify!($module), " raw").to_owned()
            }
        }
    )*};
}

resolved!(shadowed, shadowing, by_crate);

#[allow(dead_code)]
fn shadow() {
    use crate::shadowing as shadowed;

    #[on_success(shadowed::h)]
    fn shadowed_done(module: String) {
        RESOLVED.lock().unwrap().push(module);
    }
}

macro_rules! by_crate_callback {
    () => {
        #[on_success($crate::by_crate::h)]
        fn by_crate_done(module: String) {
            RESOLVED.lock().unwrap().push(module);
        }
    };
}

by_crate_callback!();

#[on_success(shadowing::raw)]
fn raw_done(module: String) {
    RESOLVED.lock().unwrap().push(module);
}

#[derive(Linker)]
struct BodyOne;

#[derive(Linker)]
struct BodyTwo;

macro_rules! in_bodies {
    ($($body:ident => $linker:ident),*) => {$(
        #[allow(dead_code)]
        fn $body() {
            #[on(Ping, linker = $linker)]
            fn in_body() -> String {
                stringify!($body).to_owned()
            }

            #[on_success(in_body)]
            fn in_body_done(body: String) {
                RESOLVED.lock().unwrap().push(body);
            }
        }
    )*};
}

in_bodies!(body_one => BodyOne, body_two => BodyTwo);

#[test]
fn callbacks_keep_the_handlers_rustc_resolved_their_paths_to() {
    for linker in [
        Resolved::try_linker(),
        BodyOne::try_linker(),
        BodyTwo::try_linker(),
    ] {
        emit_ping(&linker.expect("each callback finds its handler"));
    }
    let mut resolved = RESOLVED.lock().unwrap().clone();
    resolved.sort_unstable();
    assert_eq!(
        resolved,
        [
            "body_one",
            "body_two",
            "by_crate",
            "shadowing",
            "shadowing raw"
        ]
    );
}

// --- A handler of a linker the callback cannot name: the callback needs
// only the handler.

static HIDDEN: AtomicU32 = AtomicU32::new(0);

mod hidden_linker {
    use super::*;

    #[derive(Linker)]
    struct Hidden;

    #[on(Ping, linker = Hidden)]
    pub(crate) fn counted() -> u32 {
        7
    }

    pub(crate) fn linker() -> EventLinker {
        Hidden::linker()
    }
}

#[on_success(hidden_linker::counted)]
fn counted_done(n: u32) {
    HIDDEN.fetch_add(n, Ordering::SeqCst);
}

#[test]
fn a_callback_names_a_handler_whose_linker_it_cannot_see() {
    emit_ping(&hidden_linker::linker());
    assert_eq!(HIDDEN.load(Ordering::SeqCst), 7);
}

// --- Two handlers of one key, which `#[on]` does not make (it counts its
// expansions): written by hand, as `#[on]` and `#[on_success]` write them.
// A callback of either fails their linker rather than take a guess.

#[derive(Linker)]
struct OneKey;

fn one_key_handler(_: &Ping) {}

fn one_key_success() {}

const ONE_KEY: u64 = 0x5eed;

macro_rules! one_key_handler {
    ($id:literal) => {
        pyventus::__private::inventory::submit! {
            pyventus::__private::Registration::Handler {
                namespace: Some(pyventus::__private::namespace::<OneKey>),
                id: $id,
                key: ONE_KEY,
                keys: <Ping as pyventus::__private::EventKeys>::ONE,
                once: false,
                blocking: false,
                needs: &[],
                callback: &pyventus::__private::UnitRefFn::new::<Ping>(one_key_handler),
                policy: None,
            }
        }
    };
}

one_key_handler!("duplicate_ids::a::one_key");
one_key_handler!("duplicate_ids::b::one_key");

pyventus::__private::inventory::submit! {
    pyventus::__private::Registration::Success {
        handler: ONE_KEY,
        named: ("duplicate_ids::c", "one_key"),
        callback: &pyventus::__private::IgnoreFn(one_key_success),
    }
}

#[test]
fn a_callback_of_a_key_two_handlers_share_fails_its_namespace() {
    let err = OneKey::try_linker().unwrap_err();
    assert_eq!(
        err,
        Error::AmbiguousHandler {
            path: "one_key".to_owned(),
            module: "duplicate_ids::c".to_owned(),
            first: "duplicate_ids::a::one_key".to_owned(),
            second: "duplicate_ids::b::one_key".to_owned(),
        }
    );
    let message = err.to_string();
    assert!(message.contains("give each its own name"), "{message}");
}
