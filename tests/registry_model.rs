//! The registry against a plain model: random sequences of subscribe, once,
//! unsubscribe, `remove`, `remove_event`, `remove_all` and emit (typed, named
//! and the global event `...`) deliver to the same subscribers, in the same
//! order, as many times, as a `Vec` of subscriptions says they should, and
//! the linker's answers (what each removal returns, the counts) agree.
//!
//! The model: each event keeps its subscribers in the order they were linked
//! to it. An emit of an event runs its subscribers, then the global event's
//! that are not among them; emitting the global event runs the global
//! event's. A one-time subscriber runs once, at its first emit, and is then
//! unlinked from all its events. An event exists while it has a subscriber.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use pyventus::{
    AnyEvent, Event, EventEmitter, EventKey, EventLinker, EventSubscriber, InlineProcessingService,
};

#[derive(Debug, Event)]
struct Alpha;

#[derive(Debug, Event)]
struct Beta;

/// The events of the model: two typed, two named, and the global event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Alpha,
    Beta,
    X,
    Y,
    Any,
}

const KEYS: [Key; 5] = [Key::Alpha, Key::Beta, Key::X, Key::Y, Key::Any];

impl Key {
    fn event_key(self) -> EventKey {
        match self {
            Key::Alpha => EventKey::of::<Alpha>(),
            Key::Beta => EventKey::of::<Beta>(),
            Key::X => EventKey::named("x"),
            Key::Y => EventKey::named("y"),
            Key::Any => EventKey::any(),
        }
    }

    fn index(self) -> usize {
        KEYS.iter().position(|k| *k == self).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Subscribes to these events (deduplicated), once or not.
    Subscribe {
        keys: Vec<Key>,
        once: bool,
    },
    /// Subscribes `count` plain subscribers to one event (past 32, its list
    /// is append-only and removals leave tombstones).
    Crowd {
        key: Key,
        count: usize,
    },
    /// `EventSubscriber::unsubscribe` of the subscriber at this index
    /// (modulo how many were made).
    Unsubscribe(usize),
    /// `EventLinker::remove(key, sub)`.
    Unlink(usize, Key),
    RemoveEvent(Key),
    RemoveAll,
    /// Emits the event (`emit_global` for the global event).
    Emit(Key),
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::Alpha),
        Just(Key::Beta),
        Just(Key::X),
        Just(Key::Y),
        Just(Key::Any)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec(key(), 1..=3), proptest::bool::weighted(0.3))
            .prop_map(|(keys, once)| Op::Subscribe { keys, once }),
        1 => (key(), 20_usize..=40).prop_map(|(key, count)| Op::Crowd { key, count }),
        3 => any::<usize>().prop_map(Op::Unsubscribe),
        2 => (any::<usize>(), key()).prop_map(|(at, key)| Op::Unlink(at, key)),
        1 => key().prop_map(Op::RemoveEvent),
        1 => Just(Op::RemoveAll),
        10 => key().prop_map(Op::Emit),
    ]
}

/// What the model knows of one subscriber.
struct Modelled {
    keys: Vec<Key>,
    once: bool,
}

/// The model: the subscribers, and each event's list of them in order.
#[derive(Default)]
struct Model {
    subs: Vec<Modelled>,
    lists: [Vec<usize>; 5],
}

impl Model {
    fn subscribe(&mut self, keys: &[Key], once: bool) -> usize {
        let id = self.subs.len();
        let mut unique: Vec<Key> = Vec::new();
        for key in keys {
            if !unique.contains(key) {
                unique.push(*key);
                self.lists[key.index()].push(id);
            }
        }
        self.subs.push(Modelled { keys: unique, once });
        id
    }

    fn unlink(&mut self, id: usize, key: Key) -> bool {
        let list = &mut self.lists[key.index()];
        let Some(at) = list.iter().position(|s| *s == id) else {
            return false;
        };
        list.remove(at);
        self.subs[id].keys.retain(|k| *k != key);
        true
    }

    fn unsubscribe(&mut self, id: usize) -> bool {
        let keys = std::mem::take(&mut self.subs[id].keys);
        for key in &keys {
            self.lists[key.index()].retain(|s| *s != id);
        }
        !keys.is_empty()
    }

    fn remove_event(&mut self, key: Key) -> bool {
        let list = std::mem::take(&mut self.lists[key.index()]);
        for id in &list {
            self.subs[*id].keys.retain(|k| *k != key);
        }
        !list.is_empty()
    }

    fn remove_all(&mut self) -> bool {
        let any = self.lists.iter().any(|l| !l.is_empty());
        for id in 0..self.subs.len() {
            self.unsubscribe(id);
        }
        any
    }

    /// Who an emit of `key` runs, in order; one-time ones are then unlinked.
    fn emit(&mut self, key: Key) -> Vec<usize> {
        let mut ran = self.lists[key.index()].clone();
        if key != Key::Any {
            for id in &self.lists[Key::Any.index()] {
                if !ran.contains(id) {
                    ran.push(*id);
                }
            }
        }
        for id in &ran {
            if self.subs[*id].once {
                self.unsubscribe(*id);
            }
        }
        ran
    }

    fn subscriber_count(&self) -> usize {
        self.subs.iter().filter(|s| !s.keys.is_empty()).count()
    }
}

/// The real registry, driven alongside the model.
struct Real {
    linker: EventLinker,
    emitter: EventEmitter,
    subs: Vec<EventSubscriber>,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Real {
    fn new() -> Self {
        let linker = EventLinker::new();
        let emitter = EventEmitter::builder()
            .linker(linker.clone())
            .processor(InlineProcessingService::default())
            .debug(false)
            .build();
        Real {
            linker,
            emitter,
            subs: Vec::new(),
            log: Arc::default(),
        }
    }

    /// Subscribes with the handler form each kind of subscription takes
    /// (typed and named ones run on lanes, the others on the general path).
    fn subscribe(&mut self, keys: &[Key], once: bool, id: usize) {
        let log = self.log.clone();
        let record = move || log.lock().unwrap().push(id);
        let linker = &self.linker;
        let sub = match keys {
            [Key::Alpha] if once => linker.once::<Alpha>().subscribe(move |_: &Alpha| record()),
            [Key::Alpha] => linker.on::<Alpha>().subscribe(move |_: &Alpha| record()),
            [Key::Beta] if once => linker.once::<Beta>().subscribe(move |_: &Beta| record()),
            [Key::Beta] => linker.on::<Beta>().subscribe(move |_: &Beta| record()),
            [Key::X] if once => linker.once_named("x").subscribe(move |(): &()| record()),
            [Key::X] => linker.on_named("x").subscribe(move |(): &()| record()),
            [Key::Any] if once => linker.once_any().subscribe(move |_: &AnyEvent| record()),
            [Key::Any] => linker.on_any().subscribe(move |_: &AnyEvent| record()),
            keys if once => linker
                .once_keys(keys.iter().map(|k| k.event_key()))
                .subscribe(move |_: &AnyEvent| record()),
            keys => linker
                .on_keys(keys.iter().map(|k| k.event_key()))
                .subscribe(record),
        };
        self.subs.push(sub.expect("subscribes"));
    }

    fn emit(&self, key: Key) -> Vec<usize> {
        self.log.lock().unwrap().clear();
        match key {
            Key::Alpha => self.emitter.emit(Alpha),
            Key::Beta => self.emitter.emit(Beta),
            Key::X => self.emitter.emit_named("x", ()),
            Key::Y => self.emitter.emit_named("y", ()),
            Key::Any => self.emitter.emit_global(),
        }
        .expect("emits");
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        self.linker.remove_all();
    }
}

/// Runs `ops` on the model and the registry, comparing as it goes.
fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut real = Real::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Subscribe { keys, once } => {
                let id = model.subscribe(keys, *once);
                real.subscribe(keys, *once, id);
            }
            Op::Crowd { key, count } => {
                for _ in 0..*count {
                    let id = model.subscribe(&[*key], false);
                    real.subscribe(&[*key], false, id);
                }
            }
            Op::Unsubscribe(_) | Op::Unlink(..) if model.subs.is_empty() => {}
            Op::Unsubscribe(at) => {
                let id = at % model.subs.len();
                prop_assert_eq!(
                    real.subs[id].unsubscribe(),
                    model.unsubscribe(id),
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            Op::Unlink(at, key) => {
                let id = at % model.subs.len();
                let removed = real.linker.remove(key.event_key(), &real.subs[id]);
                prop_assert_eq!(removed, model.unlink(id, *key), "step {}: {:?}", step, op);
            }
            Op::RemoveEvent(key) => {
                let removed = real.linker.remove_event(key.event_key());
                prop_assert_eq!(removed, model.remove_event(*key), "step {}: {:?}", step, op);
            }
            Op::RemoveAll => {
                prop_assert_eq!(
                    real.linker.remove_all(),
                    model.remove_all(),
                    "step {}",
                    step
                );
            }
            Op::Emit(key) => {
                prop_assert_eq!(real.emit(*key), model.emit(*key), "step {}: {:?}", step, op);
            }
        }
        prop_assert_eq!(
            real.linker.subscriber_count(),
            model.subscriber_count(),
            "step {}: {:?}",
            step,
            op
        );
        for key in KEYS {
            let expected = model.lists[key.index()].len();
            prop_assert_eq!(
                real.linker.subscriber_count_of(key.event_key()),
                expected,
                "step {}: {:?}",
                step,
                key
            );
            prop_assert_eq!(
                real.linker.contains_event(key.event_key()),
                expected > 0,
                "step {}: {:?}",
                step,
                key
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_registry_delivers_as_a_list_of_subscriptions_says(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        check(&ops)?;
    }
}

/// A sequence the property test found worth keeping: a subscriber of an
/// event and the global event, emitted once by each.
#[test]
fn a_subscriber_of_an_event_and_the_global_event_runs_once_per_emit() {
    check(&[
        Op::Subscribe {
            keys: vec![Key::X, Key::Any],
            once: false,
        },
        Op::Subscribe {
            keys: vec![Key::Any],
            once: true,
        },
        Op::Emit(Key::X),
        Op::Emit(Key::Any),
        Op::Emit(Key::Alpha),
    ])
    .unwrap();
}
