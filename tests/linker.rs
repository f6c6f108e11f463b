//! The event linker's registry: subscribing, every query, every removal path, and
//! its limits, ported from the behaviours Pyventus tests.

use pyventus::{AnyEvent, Error, Event, EventKey, EventLinker, EventSubscriber};

#[derive(Debug, Clone, Event)]
struct FirstEvent;

#[derive(Debug, Clone, Event)]
struct SecondEvent;

#[derive(Debug, Event)]
#[event(name = "renamed.event")]
struct Renamed;

mod elsewhere {
    /// Another type claiming `FirstEvent`'s name.
    #[derive(Debug, pyventus::Event)]
    pub(crate) struct FirstEvent;
}

fn noop() {}

fn first() -> EventKey {
    EventKey::of::<FirstEvent>()
}

fn second() -> EventKey {
    EventKey::of::<SecondEvent>()
}

#[test]
fn an_empty_linker_answers_every_query_with_nothing() {
    let linker = EventLinker::new();
    let stranger = EventLinker::new().on_named("X").subscribe(noop).unwrap();

    assert!(linker.is_empty());
    assert!(linker.events().is_empty());
    assert!(linker.subscribers().is_empty());
    assert_eq!(linker.event_count(), 0);
    assert_eq!(linker.subscriber_count(), 0);
    assert!(linker.events_of(std::slice::from_ref(&stranger)).is_empty());
    assert!(linker.subscribers_of([first(), EventKey::any()]).is_empty());
    assert_eq!(linker.event_count_of(&stranger), 0);
    assert_eq!(linker.subscriber_count_of(first()), 0);
    assert!(!linker.contains_event(first()));
    assert!(!linker.contains_subscriber(&stranger));
    assert!(!linker.are_linked("X", &stranger));
}

#[test]
fn a_populated_linker_answers_every_query() {
    let linker = EventLinker::new();
    let a = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    let b = linker.on_keys([first(), second()]).subscribe(noop).unwrap();
    let c = linker.on_any().subscribe(|_: &AnyEvent| {}).unwrap();

    assert!(!linker.is_empty());
    assert_eq!(linker.events(), vec![first(), second(), EventKey::any()]);
    assert_eq!(linker.subscribers(), vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(linker.event_count(), 3);
    assert_eq!(linker.subscriber_count(), 3);
    assert_eq!(
        linker.events_of(&[a.clone(), b.clone()]),
        vec![first(), second()]
    );
    assert_eq!(
        linker.events_of(std::slice::from_ref(&c)),
        vec![EventKey::any()]
    );
    assert_eq!(linker.subscribers_of([first()]), vec![a.clone(), b.clone()]);
    assert_eq!(
        linker.subscribers_of([second(), EventKey::any()]),
        vec![b.clone(), c.clone()]
    );
    assert_eq!(linker.event_count_of(&b), 2);
    assert_eq!(linker.subscriber_count_of(first()), 2);
    assert_eq!(linker.subscriber_count_of(EventKey::any()), 1);
    assert!(linker.contains_event(second()));
    assert!(
        linker.contains_event("SecondEvent"),
        "a typed event is found by its name too"
    );
    assert!(linker.contains_subscriber(&c));
    assert!(linker.are_linked(first(), &b));
    assert!(!linker.are_linked(second(), &a));
}

#[test]
fn the_same_callback_subscribed_twice_gives_two_subscribers() {
    let linker = EventLinker::new();
    let one = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    let two = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    assert_ne!(one, two);
    assert_eq!(linker.subscriber_count_of(first()), 2);
}

#[test]
fn the_same_event_twice_in_one_subscription_links_once() {
    let linker = EventLinker::new();
    let sub = linker
        .on_keys([first(), first(), "FirstEvent".into()])
        .subscribe(noop)
        .unwrap();
    assert_eq!(linker.event_count_of(&sub), 1);
    assert_eq!(linker.subscriber_count_of(first()), 1);
}

#[test]
fn remove_unlinks_one_event_and_keeps_the_others() {
    let linker = EventLinker::new();
    let sub = linker.on_keys([first(), second()]).subscribe(noop).unwrap();

    assert!(linker.remove(first(), &sub));
    assert!(!linker.remove(first(), &sub), "already unlinked");
    assert!(
        !linker.contains_event(first()),
        "an event left with no subscribers goes"
    );
    assert!(linker.are_linked(second(), &sub));
    assert!(sub.is_subscribed());

    assert!(linker.remove(second(), &sub));
    assert!(
        !sub.is_subscribed(),
        "a subscriber left with no events is unsubscribed"
    );
    assert!(!linker.contains_subscriber(&sub));
    assert!(linker.is_empty());
}

#[test]
fn remove_event_unlinks_all_its_subscribers_from_it() {
    let linker = EventLinker::new();
    let only_first = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    let both = linker.on_keys([first(), second()]).subscribe(noop).unwrap();

    assert!(linker.remove_event(first()));
    assert!(!linker.remove_event(first()));
    assert!(
        !linker.contains_subscriber(&only_first),
        "it had no other event"
    );
    assert!(
        linker.contains_subscriber(&both),
        "it still has SecondEvent"
    );
    assert_eq!(
        linker.events_of(std::slice::from_ref(&both)),
        vec![second()]
    );
}

#[test]
fn remove_subscriber_unlinks_it_from_every_event() {
    let linker = EventLinker::new();
    let sub = linker
        .on_keys([first(), second(), EventKey::any()])
        .subscribe(noop)
        .unwrap();
    let other = linker.on::<SecondEvent>().subscribe(noop).unwrap();

    assert!(linker.remove_subscriber(&sub));
    assert!(!linker.remove_subscriber(&sub));
    assert_eq!(linker.events(), vec![second()]);
    assert_eq!(linker.subscribers(), vec![other]);
}

#[test]
fn unsubscribe_is_remove_subscriber_on_the_subscribers_own_linker() {
    let linker = EventLinker::new();
    let sub = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    assert_eq!(sub.linker().map(|l| l.ptr_eq(&linker)), Some(true));
    assert!(sub.unsubscribe());
    assert!(!sub.unsubscribe());
    assert!(linker.is_empty());
}

#[test]
fn remove_all_empties_the_registry() {
    let linker = EventLinker::new();
    assert!(!linker.remove_all(), "nothing to remove");
    let subs: Vec<EventSubscriber> = (0..3)
        .map(|_| linker.on_any().subscribe(noop).unwrap())
        .collect();
    linker.on_keys([first(), second()]).subscribe(noop).unwrap();

    assert!(linker.remove_all());
    assert!(linker.is_empty());
    assert_eq!(linker.subscriber_count(), 0);
    assert!(subs.iter().all(|s| !s.is_subscribed()));
}

#[test]
fn max_subscribers_is_enforced_per_event_and_leaves_the_registry_as_it_was() {
    let linker = EventLinker::builder().max_subscribers(2).build();
    assert_eq!(linker.max_subscribers(), Some(2));
    linker.on::<FirstEvent>().subscribe(noop).unwrap();
    linker.on::<FirstEvent>().subscribe(noop).unwrap();
    linker.on::<SecondEvent>().subscribe(noop).unwrap();

    let err = linker
        .on_keys([second(), first()])
        .subscribe(noop)
        .unwrap_err();
    assert_eq!(
        err,
        Error::MaxSubscribers {
            event: "FirstEvent".into(),
            limit: 2
        }
    );
    assert!(
        err.to_string()
            .contains("`FirstEvent` already has 2 subscriber(s)")
    );
    assert_eq!(
        linker.subscriber_count_of(second()),
        1,
        "all or nothing: SecondEvent was not linked"
    );
    assert_eq!(linker.subscriber_count(), 3);

    // Another event still has room.
    linker.on::<SecondEvent>().subscribe(noop).unwrap();
}

#[test]
fn a_zero_limit_is_refused_when_the_linker_is_built() {
    let err = EventLinker::builder()
        .max_subscribers(0)
        .try_build()
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSetting {
            setting: "max_subscribers",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "`max_subscribers` is 0, so no event could ever have a subscriber; \
         set at least 1, or leave it out for no limit"
    );
    let panic = std::panic::catch_unwind(|| EventLinker::builder().max_subscribers(0).build())
        .expect_err("build() refuses it too");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("`max_subscribers` is 0"), "{message}");
    assert!(
        EventLinker::builder()
            .max_subscribers(1)
            .try_build()
            .is_ok()
    );
}

#[test]
fn empty_and_reserved_names_are_errors_not_panics() {
    let linker = EventLinker::new();
    assert_eq!(
        linker.on_named("").subscribe(noop).unwrap_err(),
        Error::EmptyEventName
    );
    assert_eq!(
        linker.on_named("...").subscribe(noop).unwrap_err(),
        Error::ReservedEventName
    );
    assert_eq!(
        linker
            .on_keys(Vec::<EventKey>::new())
            .subscribe(noop)
            .unwrap_err(),
        Error::NoEvents
    );
    assert_eq!(
        linker.on_keys(["ok", ""]).subscribe(noop).unwrap_err(),
        Error::EmptyEventName
    );
    assert!(linker.is_empty());
}

#[test]
fn two_types_claiming_one_name_are_reported_not_merged() {
    let linker = EventLinker::new();
    linker.on::<FirstEvent>().subscribe(noop).unwrap();
    let err = linker
        .on::<elsewhere::FirstEvent>()
        .subscribe(noop)
        .unwrap_err();
    let Error::NameConflict {
        name,
        existing,
        new,
    } = &err
    else {
        panic!("expected a name conflict, got {err:?}");
    };
    assert_eq!(name, "FirstEvent");
    assert!(existing.ends_with("linker::FirstEvent"));
    assert!(new.ends_with("elsewhere::FirstEvent"));
    assert!(
        err.to_string().contains("#[event(name = \"...\")]"),
        "the message says how to fix it"
    );
    assert_eq!(linker.subscriber_count(), 1);
}

#[test]
fn a_named_subscription_and_a_typed_one_share_the_event() {
    let linker = EventLinker::new();
    let named = linker.on_named("FirstEvent").subscribe(noop).unwrap();
    let typed = linker.on::<FirstEvent>().subscribe(noop).unwrap();
    assert_eq!(linker.events(), vec![first()]);
    assert_eq!(
        linker.events()[0].type_name(),
        first().type_name(),
        "the typed key is reported"
    );
    assert_eq!(linker.subscribers_of(["FirstEvent"]), vec![named, typed]);
}

#[test]
fn the_derive_names_events_after_the_type_or_the_attribute() {
    assert_eq!(FirstEvent::NAME, "FirstEvent");
    assert_eq!(Renamed::NAME, "renamed.event");
    assert_eq!(EventKey::of::<Renamed>(), EventKey::named("renamed.event"));
}

#[test]
fn a_subscriber_reports_its_kind() {
    let linker = EventLinker::new();
    let once = linker
        .once::<FirstEvent>()
        .blocking()
        .subscribe(noop)
        .unwrap();
    let asynchronous = linker
        .on::<FirstEvent>()
        .subscribe_async(|| async {})
        .unwrap();
    assert!(once.is_once() && once.is_blocking() && !once.is_async());
    assert!(asynchronous.is_async() && !asynchronous.is_once());
    assert_eq!(once.handler_id(), None, "made at runtime");
    let shown = format!("{once:?}");
    assert!(shown.contains("once: true"), "{shown}");
}

#[test]
fn a_subscriber_outlives_its_linker_harmlessly() {
    let sub = {
        let linker = EventLinker::new();
        linker.on::<FirstEvent>().subscribe(noop).unwrap()
    };
    assert!(sub.linker().is_none());
    assert!(!sub.unsubscribe());
    assert!(!sub.is_subscribed());
}

/// Runs `f` when dropped: what a subscriber's closure may capture.
struct OnDrop(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Runs `change` on a linker whose only subscriber (to "X", nowhere else
/// referenced) captures a value that subscribes to the same linker when it is
/// dropped; fails if the change does not return within seconds.
fn dropping_a_capture_that_uses_the_linker(
    what: &str,
    change: impl FnOnce(&EventLinker, EventSubscriber) + Send + 'static,
) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let linker = EventLinker::new();
        let again = linker.clone();
        let capture = OnDrop(Some(Box::new(move || {
            again.on_named("Other").subscribe(noop).unwrap();
        })));
        let sub = linker
            .on_named("X")
            .subscribe(move || {
                let _keep = &capture;
            })
            .unwrap();
        change(&linker, sub);
        // The capture was dropped, and its subscription went through.
        assert_eq!(linker.event_count(), 1, "only \"Other\" is left");
        done.send(()).unwrap();
    });
    assert!(
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok(),
        "{what} deadlocked: a removed subscriber's closure was dropped under the registry's lock"
    );
}

#[test]
fn removing_drops_a_subscribers_closure_outside_the_registrys_lock() {
    dropping_a_capture_that_uses_the_linker("remove_event", |linker, sub| {
        drop(sub);
        assert!(linker.remove_event("X"));
    });
    dropping_a_capture_that_uses_the_linker("remove_all", |linker, sub| {
        drop(sub);
        assert!(linker.remove_all());
    });
}
