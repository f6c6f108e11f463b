//! The registry behind a linker: which subscribers are linked to which events.
//!
//! Concurrency: emitters read an immutable [`Snapshot`] through `ArcSwap` (one
//! atomic load, no lock, no allocation). Writers (subscribe, remove, and the pop of
//! a one-time subscriber) serialize on a mutex, build the next snapshot by copying
//! only the shard they touch, and publish it with one atomic store, so a
//! subscriber linked to several events appears on, or disappears from, all of them
//! at once. No user code ever runs under the mutex.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};
use hashbrown::HashTable;

use crate::erased::{ErasedLane, EventCallback};
use crate::key::TypeInfo;
use crate::record::SubscriberInner;
use crate::workflow::Defaults;
use crate::{Error, EventKey};

/// Shards of the snapshot: a write copies one shard, so registering many events
/// costs `O(events / SHARDS)` per subscription instead of `O(events)`.
const SHARDS: usize = 32;

/// One event's subscribers, in subscription order.
pub(crate) struct Entry {
    /// The event's key; typed when a type owns the name.
    pub(crate) key: EventKey,
    /// The type that owns the name in this linker, if a typed subscription made it.
    pub(crate) owner: Option<TypeInfo>,
    pub(crate) subs: Box<[Arc<SubscriberInner>]>,
    /// Whether every subscriber can run on a borrowed event (sync, no `Arc<E>`).
    pub(crate) borrow_only: bool,
    /// Whether an emission runs every subscriber as listed: none is one-time (to
    /// be claimed) or also linked to the global event (to be deduplicated).
    pub(crate) plain: bool,
    /// A plain entry whose subscribers are all typed for its owner: a
    /// `Lane<owner>`, which runs them without downcasting.
    pub(crate) lane: Option<ErasedLane>,
    /// Order in which the event was first linked, for stable listings.
    seq: u64,
}

impl Entry {
    fn new(
        key: EventKey,
        owner: Option<TypeInfo>,
        subs: Vec<Arc<SubscriberInner>>,
        seq: u64,
    ) -> Self {
        let plain = subs.iter().all(|s| !s.once && !s.global_and_more);
        let lane = match (owner, subs.first().map(|s| &s.callback)) {
            (Some(owner), Some(EventCallback::Typed(_, typed)))
                if plain && typed.type_id == owner.id =>
            {
                (typed.lane)(&mut subs.iter().map(|s| (&s.workflow, &s.callback)))
            }
            _ => None,
        };
        Entry {
            key,
            owner,
            lane,
            borrow_only: subs.iter().all(|s| !s.callback.needs_shared()),
            plain,
            subs: subs.into_boxed_slice(),
            seq,
        }
    }

    /// Whether an emission of these lists runs every subscriber as listed.
    #[inline]
    pub(crate) fn all_plain(entry: Option<&Arc<Entry>>, global: Option<&Arc<Entry>>) -> bool {
        entry.is_none_or(|e| e.plain) && global.is_none_or(|g| g.plain)
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.subs.iter().any(|s| s.id() == id)
    }
}

/// An immutable view of the registry, as emitters see it.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    shards: [Arc<HashTable<Arc<Entry>>>; SHARDS],
    global: Option<Arc<Entry>>,
}

impl Snapshot {
    fn shard(hash: u64) -> usize {
        // Middle bits: the table itself uses the low bits for buckets and the top
        // seven as tags, so the shard index must not correlate with either.
        ((hash >> 32) as usize) % SHARDS
    }

    /// The entry of the named event with this precomputed hash.
    #[inline]
    pub(crate) fn find(&self, name: &str, hash: u64) -> Option<&Arc<Entry>> {
        self.shards[Self::shard(hash)].find(hash, |e| e.key.names(name))
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

    pub(crate) fn get(&self, key: &EventKey) -> Option<&Arc<Entry>> {
        if key.is_any() {
            self.global.as_ref()
        } else {
            self.find(key.name(), key.hash_value())
        }
    }

    fn set(&mut self, key: &EventKey, entry: Option<Entry>) {
        if key.is_any() {
            self.global = entry.map(Arc::new);
            return;
        }
        let hash = key.hash_value();
        let shard = Arc::make_mut(&mut self.shards[Self::shard(hash)]);
        let found = shard.find_entry(hash, |e| e.key.names(key.name()));
        match (found, entry) {
            (Ok(mut slot), Some(entry)) => *slot.get_mut() = Arc::new(entry),
            (Ok(slot), None) => drop(slot.remove()),
            (Err(_), Some(entry)) => {
                shard.insert_unique(hash, Arc::new(entry), |e| e.key.hash_value());
            }
            (Err(_), None) => {}
        }
    }

    /// Every entry, in the order the events were first linked.
    pub(crate) fn entries(&self) -> Vec<&Arc<Entry>> {
        let mut all: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| s.iter())
            .chain(self.global.iter())
            .collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.global.is_none() && self.shards.iter().all(|s| s.is_empty())
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
    pub(crate) fn all_plain(self) -> bool {
        Entry::all_plain(self.entry, self.global)
    }
}

/// The writer's side: the reverse index (subscriber to events).
#[derive(Default)]
struct Links {
    by_sub: HashMap<u64, (Arc<SubscriberInner>, Vec<EventKey>)>,
    next_seq: u64,
}

/// A linker's registry and settings: what every handle to one linker shares.
pub(crate) struct Registry {
    snapshot: ArcSwap<Snapshot>,
    links: Mutex<Links>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) max_subscribers: Option<usize>,
    pub(crate) defaults: Defaults,
    pub(crate) debug: bool,
}

impl Registry {
    pub(crate) fn new(
        name: Cow<'static, str>,
        max_subscribers: Option<usize>,
        defaults: Defaults,
        debug: bool,
    ) -> Self {
        Registry {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            links: Mutex::new(Links::default()),
            name,
            max_subscribers,
            defaults,
            debug,
        }
    }

    /// Logs a change, in debug mode.
    pub(crate) fn trace(&self, what: &str, detail: &dyn std::fmt::Debug) {
        if self.debug {
            tracing::debug!(target: "pyventus", linker = %self.name, "{what}: {detail:?}");
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    fn lock(&self) -> MutexGuard<'_, Links> {
        // User code never runs under this lock, so a poisoned lock only means a
        // panic inside the registry itself, after which the state is still whole.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Links `sub` to every key, or to none: all checks run before anything changes.
    pub(crate) fn add(&self, sub: &Arc<SubscriberInner>, keys: &[EventKey]) -> Result<(), Error> {
        if keys.is_empty() {
            return Err(Error::NoEvents);
        }
        let mut keys = keys.to_vec();
        dedup_keys(&mut keys);
        for key in &keys {
            key.validate()?;
        }

        let mut links = self.lock();
        let mut next = Snapshot::clone(&self.snapshot.load());
        for key in &keys {
            let entry = next.get(key);
            if let (Some(owner), Some(new)) = (entry.and_then(|e| e.owner), key.type_info())
                && owner.id != new.id
            {
                return Err(Error::NameConflict {
                    name: key.name().to_owned(),
                    existing: owner.name,
                    new: new.name,
                });
            }
            if let Some(limit) = self.max_subscribers
                && entry.map_or(0, |e| e.subs.len()) >= limit
            {
                return Err(Error::MaxSubscribers {
                    event: key.name().to_owned(),
                    limit,
                });
            }
        }

        for key in &keys {
            let (mut subs, owner, seq, stored_key) = if let Some(e) = next.get(key) {
                (e.subs.to_vec(), e.owner, e.seq, e.key.clone())
            } else {
                links.next_seq += 1;
                (Vec::new(), None, links.next_seq, key.clone())
            };
            subs.push(sub.clone());
            let (owner, stored_key) = match owner {
                Some(owner) => (Some(owner), stored_key),
                None if key.type_info().is_some() => (key.type_info(), key.clone()),
                None => (None, stored_key),
            };
            next.set(key, Some(Entry::new(stored_key, owner, subs, seq)));
        }
        links.by_sub.insert(sub.id(), (sub.clone(), keys));
        self.snapshot.store(Arc::new(next));
        Ok(())
    }

    /// Unlinks `id` from `key`; a subscriber left with no events is unsubscribed.
    pub(crate) fn unlink(&self, key: &EventKey, id: u64) -> bool {
        let mut links = self.lock();
        let mut next = Snapshot::clone(&self.snapshot.load());
        if !drop_from_entry(&mut next, key, id) {
            return false;
        }
        forget_key(&mut links, id, key);
        self.snapshot.store(Arc::new(next));
        true
    }

    /// Removes the event and unlinks its subscribers from it.
    pub(crate) fn remove_event(&self, key: &EventKey) -> bool {
        let mut links = self.lock();
        let mut next = Snapshot::clone(&self.snapshot.load());
        let Some(entry) = next.get(key).cloned() else {
            return false;
        };
        next.set(key, None);
        for sub in &entry.subs {
            forget_key(&mut links, sub.id(), key);
        }
        self.snapshot.store(Arc::new(next));
        true
    }

    /// Unlinks the subscriber from all its events at once.
    pub(crate) fn remove_subscriber(&self, id: u64) -> bool {
        let mut links = self.lock();
        let Some((sub, keys)) = links.by_sub.remove(&id) else {
            return false;
        };
        let mut next = Snapshot::clone(&self.snapshot.load());
        for key in &keys {
            drop_from_entry(&mut next, key, id);
        }
        sub.deactivate();
        self.snapshot.store(Arc::new(next));
        true
    }

    pub(crate) fn clear(&self) -> bool {
        let mut links = self.lock();
        if links.by_sub.is_empty() {
            return false;
        }
        for (sub, _) in links.by_sub.values() {
            sub.deactivate();
        }
        links.by_sub.clear();
        self.snapshot.store(Arc::new(Snapshot::default()));
        true
    }

    /// Subscribers in subscription order, each with its events.
    pub(crate) fn subscribers(&self) -> Vec<(Arc<SubscriberInner>, Vec<EventKey>)> {
        let links = self.lock();
        let mut all: Vec<_> = links.by_sub.values().cloned().collect();
        all.sort_by_key(|(s, _)| s.id());
        all
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().by_sub.len()
    }

    /// The events `id` is linked to, or `None` if it is not subscribed here.
    pub(crate) fn keys_of(&self, id: u64) -> Option<Vec<EventKey>> {
        self.lock().by_sub.get(&id).map(|(_, keys)| keys.clone())
    }
}

fn dedup_keys(keys: &mut Vec<EventKey>) {
    let mut seen = Vec::with_capacity(keys.len());
    keys.retain(|k| {
        if seen.contains(k) {
            false
        } else {
            seen.push(k.clone());
            true
        }
    });
}

fn drop_from_entry(next: &mut Snapshot, key: &EventKey, id: u64) -> bool {
    let Some(entry) = next.get(key) else {
        return false;
    };
    if !entry.contains(id) {
        return false;
    }
    let subs: Vec<_> = entry
        .subs
        .iter()
        .filter(|s| s.id() != id)
        .cloned()
        .collect();
    let replacement =
        (!subs.is_empty()).then(|| Entry::new(entry.key.clone(), entry.owner, subs, entry.seq));
    next.set(key, replacement);
    true
}

fn forget_key(links: &mut Links, id: u64, key: &EventKey) {
    if let Some((sub, keys)) = links.by_sub.get_mut(&id) {
        keys.retain(|k| k != key);
        if keys.is_empty() {
            sub.deactivate();
            links.by_sub.remove(&id);
        }
    }
}
