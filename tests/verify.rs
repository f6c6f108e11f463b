//! `pyventus::verify()`: one call builds every linker of the binary and lists
//! every one that cannot be built, with why, before an `emit` in production
//! finds the first of them out and panics.
//!
//! This binary holds three broken namespaces (and a sound one, and sound
//! global handlers), so `verify` has something to find.

use pyventus::{Error, Event, Linker, on, on_success};

// --- Sound: the global linker and one namespace.

#[derive(Debug, Clone, Event)]
struct Welcome;

#[on(Welcome)]
fn greet() {}

#[derive(Linker)]
struct Sound;

#[on(Welcome, linker = Sound)]
fn also_greet() {}

// --- Two event types with one default name, handled in one namespace: the
// mistake of `billing::Created` beside `shipping::Created`.

mod billing {
    #[derive(Debug, Clone, pyventus::Event)]
    pub(crate) struct Created;
}

mod shipping {
    #[derive(Debug, Clone, pyventus::Event)]
    pub(crate) struct Created;
}

#[derive(Linker)]
struct Clashing;

#[on(billing::Created, linker = Clashing)]
fn invoice() {}

#[on(shipping::Created, linker = Clashing)]
fn ship() {}

// --- More handlers than the namespace allows.

#[derive(Linker)]
#[linker(max_subscribers = 1)]
struct Crowded;

#[on(Welcome, linker = Crowded)]
fn first_guest() {}

#[on(Welcome, linker = Crowded)]
fn second_guest() {}

// --- A handler with two success callbacks.

#[derive(Linker)]
struct Doubled;

#[on(Welcome, linker = Doubled)]
fn counted() -> u32 {
    1
}

#[on_success(counted)]
fn once_counted(_: u32) {}

#[on_success(counted)]
fn twice_counted(_: u32) {}

#[test]
fn verify_lists_every_linker_that_cannot_be_built() {
    let err = pyventus::verify().unwrap_err();
    let names: Vec<_> = err.failures().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["verify::Clashing", "verify::Crowded", "verify::Doubled"],
        "each broken namespace, sorted; the sound ones are not listed"
    );

    let errors: Vec<_> = err.failures().iter().map(|(_, error)| error).collect();
    assert!(
        matches!(errors[0], Error::NameConflict { name, .. } if name == "Created"),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(errors[1], Error::MaxSubscribers { .. }),
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(errors[2], Error::DuplicateCallback { handler, callback: "success" } if handler == "verify::counted"),
        "{:?}",
        errors[2]
    );

    // What `verify().unwrap()` prints in a failing test: the whole list.
    let message = format!("{err:?}");
    assert!(
        message.starts_with("3 linkers cannot be built:"),
        "{message}"
    );
    for (line, expected) in message.lines().skip(1).zip([
        "  - verify::Clashing: ",
        "  - verify::Crowded: ",
        "  - verify::Doubled: ",
    ]) {
        assert!(line.starts_with(expected), "{message}");
    }
    assert!(
        message.contains("#[event(name = \"...\")]"),
        "says how to fix a clash: {message}"
    );
}

#[test]
fn verify_leaves_the_sound_linkers_working() {
    let _ = pyventus::verify();
    assert_eq!(Sound::linker().subscriber_count(), 1);
    assert_eq!(pyventus::EventLinker::global().subscriber_count(), 1);
    assert!(
        Clashing::try_linker().is_err(),
        "a broken namespace stays broken"
    );
}
