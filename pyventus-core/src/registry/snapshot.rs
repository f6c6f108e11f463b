//! Immutable views of a registry, as emitters read them: which subscribers each
//! event has, and who handles an emitted event.
//!
//! A snapshot's events are a persistent hash trie (see `trie`): a write copies
//! the path to one leaf, so linking an event costs about the same in a registry
//! of ten events or of 100,000. A subscriber list is shared between versions
//! (see `list`).

use std::any::TypeId;
use std::sync::Arc;

use crate::EventKey;
use crate::event::key::TypeInfo;
use crate::registry::callback::EventCallback;
use crate::registry::lane::ErasedLane;
use crate::registry::list::{Iter, SubList};
use crate::registry::record::SubscriberInner;
use crate::registry::trie::{Hashed, Trie};

/// One event's subscribers, in subscription order.
pub(crate) struct Entry {
    /// The event's key; typed when a type owns the name.
    pub(crate) key: EventKey,
    /// The type that owns the name in this linker, if a typed subscription made it.
    pub(crate) owner: Option<TypeInfo>,
    subs: SubList<Arc<SubscriberInner>>,
    /// How many subscribers are live; the list may hold as many tombstones.
    live: usize,
    /// How many tombstones the list holds.
    dead: usize,
    /// Whether every subscriber can run on a borrowed event (sync, no `Arc<E>`).
    pub(crate) borrow_only: bool,
    /// Whether an emission runs every subscriber as listed: none is one-time (to
    /// be claimed) or also linked to the global event (to be deduplicated).
    pub(crate) direct: bool,
    /// A direct entry whose subscribers are all typed for its owner: a
    /// `Lane<owner>`, which runs them without downcasting.
    pub(crate) lane: Option<ErasedLane>,
    /// Order in which the event was first linked, for stable listings.
    pub(crate) seq: u64,
}

impl Entry {
    /// The entry of these subscribers, every property computed afresh.
    pub(crate) fn new(
        key: EventKey,
        owner: Option<TypeInfo>,
        subs: Vec<Arc<SubscriberInner>>,
        seq: u64,
    ) -> Self {
        let direct = subs.iter().all(|s| !s.once && !s.global_and_more);
        // A lane of the owner's type, or of a named event's payload type when
        // every subscriber takes the same one.
        let lane = match subs.first().map(|s| &s.callback) {
            Some(EventCallback::Typed(_, typed))
                if direct && owner.is_none_or(|owner| owner.id == typed.types.event()) =>
            {
                typed.lane(&mut subs.iter().map(|s| (&s.workflow, s.callback.typed_side())))
            }
            _ => None,
        };
        Entry {
            key,
            owner,
            lane,
            borrow_only: subs.iter().all(|s| !s.callback.needs_shared()),
            direct,
            live: subs.len(),
            dead: 0,
            subs: SubList::of(subs),
            seq,
        }
    }

    /// This entry with `sub` appended: O(1) for a large list.
    pub(crate) fn with(&self, sub: &Arc<SubscriberInner>) -> Self {
        let direct = self.direct && !sub.once && !sub.global_and_more;
        let lane = match (&self.lane, &sub.callback) {
            (Some(lane), EventCallback::Typed(_, typed)) if direct => {
                typed.pushed(lane, &sub.workflow)
            }
            _ => None,
        };
        Entry {
            key: self.key.clone(),
            owner: self.owner,
            subs: self.subs.pushed(sub.clone()),
            live: self.live + 1,
            dead: self.dead,
            borrow_only: self.borrow_only && !sub.callback.needs_shared(),
            direct,
            lane,
            seq: self.seq,
        }
    }

    /// This entry without the subscriber `id`, or `None` when none is left.
    /// A subscriber removed from all its events (`gone`, and so already
    /// dated by its removal) leaves a tombstone in a large list, swept once
    /// tombstones outnumber the live subscribers, so removals cost O(1)
    /// amortized; otherwise the list is copied. The list's version is made
    /// anew, so this entry skips the subscriber while the snapshots before
    /// it, and the emissions running them, still run it; its lane (which
    /// both would share) is dropped until the next copy.
    pub(crate) fn without(&self, id: u64, gone: bool) -> Option<Self> {
        if self.live <= 1 {
            return None;
        }
        if gone && self.subs.is_large() && self.dead < self.live - 1 {
            return Some(Entry {
                key: self.key.clone(),
                owner: self.owner,
                subs: self.subs.remade(),
                live: self.live - 1,
                dead: self.dead + 1,
                borrow_only: self.borrow_only,
                direct: self.direct,
                lane: None,
                seq: self.seq,
            });
        }
        let subs: Vec<_> = self.iter().filter(|s| s.id() != id).cloned().collect();
        Some(Entry::new(self.key.clone(), self.owner, subs, self.seq))
    }

    /// Whether an emission of these lists runs every subscriber as listed.
    #[inline]
    pub(crate) fn all_direct(entry: Option<&Arc<Entry>>, global: Option<&Arc<Entry>>) -> bool {
        entry.is_none_or(|e| e.direct) && global.is_none_or(|g| g.direct)
    }

    /// Calls `f` on each live subscriber, in order (what an emission's run
    /// loops over: cheaper than chaining iterators).
    #[inline]
    pub(crate) fn for_each(&self, f: impl FnMut(&Arc<SubscriberInner>)) {
        self.subs.for_each(f);
    }

    /// The live subscribers, in subscription order.
    #[inline]
    pub(crate) fn iter(&self) -> Iter<'_, Arc<SubscriberInner>> {
        self.subs.iter()
    }

    /// How many subscribers the event has.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.iter().any(|s| s.id() == id)
    }
}

impl Hashed for Entry {
    #[inline]
    fn hash(&self) -> u64 {
        self.key.hash_value()
    }
}

/// An immutable view of the registry, as emitters see it.
#[derive(Clone)]
pub(crate) struct Snapshot {
    events: Trie<Entry>,
    global: Option<Arc<Entry>>,
    /// Process-unique: which publication this is, for the per-thread caches.
    pub(crate) generation: u64,
}

impl Snapshot {
    /// A snapshot with no entries.
    pub(crate) fn empty(generation: u64) -> Self {
        Snapshot {
            events: Trie::new(),
            global: None,
            generation,
        }
    }

    /// The entry of the named event with this precomputed hash.
    #[inline]
    pub(crate) fn find(&self, name: &str, hash: u64) -> Option<&Arc<Entry>> {
        self.events.find(hash, |e| e.key.names(name))
    }

    /// Who handles an event of this name and payload type: the event's entry and
    /// the global event's, or the type that owns the name when it is another.
    /// The emitter and the workers resolve events through this one function.
    #[inline]
    pub(crate) fn lookup(
        &self,
        name: &str,
        hash: u64,
        payload: TypeId,
    ) -> Result<Route<'_>, TypeInfo> {
        let entry = self.find(name, hash);
        match entry.and_then(|e| e.owner) {
            Some(owner) if owner.id != payload => Err(owner),
            _ => Ok(Route {
                entry,
                global: self.global.as_ref(),
            }),
        }
    }

    /// Whether anything subscribes to the global event.
    #[inline]
    pub(crate) fn has_global(&self) -> bool {
        self.global.is_some()
    }

    pub(crate) fn get(&self, key: &EventKey) -> Option<&Arc<Entry>> {
        if key.is_any() {
            self.global.as_ref()
        } else {
            self.find(key.name(), key.hash_value())
        }
    }

    /// Replaces (or removes) the entry of `key`: copies the path to its leaf,
    /// unless this snapshot already owns it (a batch of writes).
    pub(crate) fn set(&mut self, key: &EventKey, entry: Option<Entry>) {
        if key.is_any() {
            self.global = entry.map(Arc::new);
            return;
        }
        let name = key.name();
        self.events
            .set(key.hash_value(), |e| e.key.names(name), entry.map(Arc::new));
    }

    /// Every entry, in the order the events were first linked.
    pub(crate) fn entries(&self) -> Vec<&Arc<Entry>> {
        let mut all: Vec<_> = self.events.iter().chain(self.global.iter()).collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.global.is_none() && self.events.len() == 0
    }
}

/// The subscribers an event goes to: its own and the global event's.
#[derive(Clone, Copy)]
pub(crate) struct Route<'a> {
    pub(crate) entry: Option<&'a Arc<Entry>>,
    pub(crate) global: Option<&'a Arc<Entry>>,
}

impl Route<'_> {
    /// Whether an emission runs every subscriber as listed.
    #[inline]
    pub(crate) fn all_direct(self) -> bool {
        Entry::all_direct(self.entry, self.global)
    }
}
