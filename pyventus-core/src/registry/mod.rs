//! The registry behind a linker: which subscribers are linked to which events,
//! published as snapshots for emitters, and changed by one writer at a time.
//!
//! - `Registry` (this file): the published snapshot, its generation, and the
//!   writers' side (the reverse index from subscriber to events).
//! - `snapshot`: an immutable `Snapshot`, event to `Entry` (its subscribers,
//!   and a typed lane when they allow one), in a persistent hash `trie`;
//!   `list`: an entry's subscribers, copied when small, append-only with dated
//!   tombstones when large.
//! - `record`: a subscriber's record (`SubscriberInner`): its callback
//!   (`callback`, the type-erased form of every handler) and its workflow.
//! - `lane`: a typed lane, the subscribers of an event that are all
//!   synchronous callbacks of its type, called without downcasting.
//! - `thread_cache`: each thread's caches of all of the above, behind one
//!   lookup the emitter asks.
//!
//! Concurrency: emitters read an immutable [`Snapshot`], from a per-thread
//! cache while it is current (one atomic load of the generation, no
//! read-modify-write, no lock), else through `ArcSwap`. Writers (subscribe,
//! remove, and the removal of a claimed one-time subscriber) serialize on a
//! mutex, build the next snapshot sharing everything they do not touch, and
//! publish it with one atomic store, so a subscriber linked to several events
//! appears on, or disappears from, all of them at once. No user code ever runs
//! under the mutex.

pub(crate) mod callback;
pub(crate) mod lane;
pub(crate) mod list;
pub(crate) mod record;
pub(crate) mod snapshot;
pub(crate) mod thread_cache;
pub(crate) mod trie;

use std::collections::HashMap;

use crate::registry::record::{Responder, SubscriberInner};
pub(crate) use crate::registry::snapshot::{Entry, Route, Snapshot};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, ArcSwap, Guard, Mutex, MutexGuard, PoisonError};
use crate::workflow::LinkerSettings;
use crate::{Error, EventKey};

/// A process-unique snapshot generation.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
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
    /// The generation of the published snapshot: a thread whose cached
    /// snapshot has it uses the cache, with no atomic read-modify-write.
    generation: AtomicU64,
    links: Mutex<Links>,
    pub(crate) settings: LinkerSettings,
    pub(crate) max_subscribers: Option<usize>,
    pub(crate) debug: bool,
}

impl Registry {
    pub(crate) fn new(
        settings: LinkerSettings,
        max_subscribers: Option<usize>,
        debug: bool,
    ) -> Self {
        let generation = next_generation();
        Registry {
            snapshot: ArcSwap::from_pointee(Snapshot::empty(generation)),
            generation: AtomicU64::new(generation),
            links: Mutex::new(Links::default()),
            settings,
            max_subscribers,
            debug,
        }
    }

    /// The linker's name.
    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }

    /// Logs a change, in debug mode.
    pub(crate) fn trace(&self, what: &str, detail: &dyn std::fmt::Debug) {
        crate::observe::trace::debug_event!(self.debug, linker = %self.name(), "{what}: {detail:?}");
    }

    /// The current snapshot, for callers that keep it (queries, emissions
    /// built off the fast path).
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The ids of its link-time handlers, sorted.
    pub(crate) fn handler_ids(&self) -> Vec<&'static str> {
        let links = self.lock();
        let mut ids: Vec<_> = links
            .by_sub
            .values()
            .filter_map(|(sub, _)| sub.handler_id())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every subscriber's needs: its handler's id and each state it takes.
    pub(crate) fn needs(&self) -> Vec<(String, crate::workflow::extract::StateNeed)> {
        let links = self.lock();
        let mut needs: Vec<_> = links
            .by_sub
            .values()
            .flat_map(|(sub, _)| {
                let handler = sub.handler_id().unwrap_or("<runtime>");
                sub.needs
                    .iter()
                    .flatten()
                    .map(move |need| (handler.to_owned(), *need))
            })
            .collect();
        needs.sort_by(|a, b| a.0.cmp(&b.0));
        needs
    }

    /// The generation of the published snapshot.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes the next snapshot, handing back the previous one: the caller
    /// drops it once the lock is let go (it may hold the last reference to a
    /// removed subscriber, whose closure's captures run user code on drop).
    #[must_use = "drop the previous snapshot after unlocking"]
    fn publish(&self, mut next: Snapshot) -> Arc<Snapshot> {
        let generation = next_generation();
        next.generation = generation;
        let previous = self.snapshot.swap(Arc::new(next));
        self.generation.store(generation, Ordering::Release);
        previous
    }

    fn lock(&self) -> MutexGuard<'_, Links> {
        // User code never runs under this lock (what a change releases is
        // dropped after it), so a poisoned lock only means a panic inside the
        // registry itself, after which the state is still whole.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Links `sub` to every key, or to none: all checks run before anything changes.
    pub(crate) fn add(&self, sub: &Arc<SubscriberInner>, keys: &[EventKey]) -> Result<(), Error> {
        let keys = checked_keys(keys)?;
        let previous = {
            let mut links = self.lock();
            let mut next = Snapshot::clone(&self.snapshot.load());
            self.link(&mut links, &mut next, sub, keys)?;
            self.publish(next)
        };
        drop(previous);
        Ok(())
    }

    /// Links many subscribers with one publication (a linker's link-time
    /// handlers, collected on first use): the whole batch costs O(subscribers).
    /// On an error, nothing is linked.
    pub(crate) fn add_all(
        &self,
        subs: Vec<(Arc<SubscriberInner>, Vec<EventKey>)>,
    ) -> Result<(), Error> {
        let mut checked = Vec::with_capacity(subs.len());
        for (sub, keys) in subs {
            checked.push((sub, checked_keys(&keys)?));
        }
        let mut released = Released::default();
        let result = {
            let mut links = self.lock();
            let mut next = Snapshot::clone(&self.snapshot.load());
            let mut linked = Vec::with_capacity(checked.len());
            let mut failed = None;
            for (sub, keys) in &checked {
                if let Err(err) = self.link(&mut links, &mut next, sub, keys.clone()) {
                    failed = Some(err);
                    break;
                }
                linked.push(sub.id());
            }
            match failed {
                Some(err) => {
                    for id in linked {
                        released
                            .subs
                            .extend(links.by_sub.remove(&id).map(|(sub, _)| sub));
                    }
                    Err(err)
                }
                None => {
                    released.snapshot = Some(self.publish(next));
                    Ok(())
                }
            }
        };
        // The subscribers too, after the lock (a failed batch drops them here).
        drop((released, checked));
        result
    }

    /// Links `sub` to `keys` in `next`, or to none.
    fn link(
        &self,
        links: &mut Links,
        next: &mut Snapshot,
        sub: &Arc<SubscriberInner>,
        keys: Vec<EventKey>,
    ) -> Result<(), Error> {
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
            if sub.responder == Some(Responder::Only)
                && let Some(existing) =
                    entry.and_then(|e| e.iter().find(|s| s.responder.is_some() && s.is_live()))
            {
                return Err(Error::TwoResponders {
                    request: key.name().to_owned(),
                    existing: existing.describe(),
                    new: sub.describe(),
                });
            }
            if let Some(limit) = self.max_subscribers
                && entry.map_or(0, |e| e.len()) >= limit
            {
                return Err(Error::MaxSubscribers {
                    event: key.name().to_owned(),
                    limit,
                });
            }
        }
        for key in &keys {
            let entry = match next.get(key) {
                // A name first linked by name, then by its type: the type owns it.
                Some(e) if e.owner.is_none() && key.type_info().is_some() => {
                    let mut subs: Vec<_> = e.iter().cloned().collect();
                    subs.push(sub.clone());
                    Entry::new(key.clone(), key.type_info(), subs, e.seq)
                }
                Some(e) => e.with(sub),
                None => {
                    links.next_seq += 1;
                    Entry::new(
                        key.clone(),
                        key.type_info(),
                        vec![sub.clone()],
                        links.next_seq,
                    )
                }
            };
            next.set(key, Some(entry));
        }
        links.by_sub.insert(sub.id(), (sub.clone(), keys));
        Ok(())
    }

    /// Unlinks `id` from `key`; a subscriber left with no events is unsubscribed.
    pub(crate) fn unlink(&self, key: &EventKey, id: u64) -> bool {
        let mut links = self.lock();
        let linked = links
            .by_sub
            .get(&id)
            .is_some_and(|(_, keys)| keys.contains(key));
        if !linked {
            return false;
        }
        let gone = links
            .by_sub
            .get(&id)
            .is_some_and(|(_, keys)| keys.len() == 1);
        if gone && let Some((sub, _)) = links.by_sub.get(&id) {
            sub.deactivate();
        }
        let mut released = Released::default();
        let mut next = Snapshot::clone(&self.snapshot.load());
        drop_from_entry(&mut next, key, id, gone);
        forget_key(&mut links, id, key, &mut released);
        released.snapshot = Some(self.publish(next));
        drop(links);
        drop(released);
        true
    }

    /// Removes the event and unlinks its subscribers from it.
    pub(crate) fn remove_event(&self, key: &EventKey) -> bool {
        let mut links = self.lock();
        let mut next = Snapshot::clone(&self.snapshot.load());
        let Some(entry) = next.get(key).cloned() else {
            return false;
        };
        let mut released = Released::default();
        next.set(key, None);
        for sub in entry.iter() {
            forget_key(&mut links, sub.id(), key, &mut released);
        }
        released.entries.push(entry);
        released.snapshot = Some(self.publish(next));
        drop(links);
        drop(released);
        true
    }

    /// Unlinks the subscriber from all its events at once.
    pub(crate) fn remove_subscriber(&self, id: u64) -> bool {
        let mut links = self.lock();
        let Some((sub, keys)) = links.by_sub.remove(&id) else {
            return false;
        };
        // A tombstone first: large lists skip it from now on.
        sub.deactivate();
        let mut next = Snapshot::clone(&self.snapshot.load());
        for key in &keys {
            drop_from_entry(&mut next, key, id, true);
        }
        let previous = self.publish(next);
        drop(links);
        drop((previous, sub));
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
        let subs = std::mem::take(&mut links.by_sub);
        let previous = self.publish(Snapshot::empty(0));
        drop(links);
        drop((previous, subs));
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

/// The keys of a subscription, deduplicated and checked.
fn checked_keys(keys: &[EventKey]) -> Result<Vec<EventKey>, Error> {
    if keys.is_empty() {
        return Err(Error::NoEvents);
    }
    let mut unique: Vec<EventKey> = Vec::with_capacity(keys.len());
    for key in keys {
        key.validate()?;
        if !unique.contains(key) {
            unique.push(key.clone());
        }
    }
    Ok(unique)
}

/// Removes the linked subscriber `id` from `key`'s entry (`gone`: from all its
/// events, so a large list may keep a tombstone).
fn drop_from_entry(next: &mut Snapshot, key: &EventKey, id: u64, gone: bool) {
    let Some(entry) = next.get(key) else {
        return;
    };
    let replacement = entry.without(id, gone);
    next.set(key, replacement);
}

fn forget_key(links: &mut Links, id: u64, key: &EventKey, released: &mut Released) {
    if let Some((sub, keys)) = links.by_sub.get_mut(&id) {
        keys.retain(|k| k != key);
        if keys.is_empty() {
            sub.deactivate();
            released
                .subs
                .extend(links.by_sub.remove(&id).map(|(sub, _)| sub));
        }
    }
}

/// What a change to the registry let go of, dropped only after its lock is:
/// dropping a subscriber drops its closure, whose captures' `Drop` is user code
/// (which may use the linker).
#[derive(Default)]
struct Released {
    snapshot: Option<Arc<Snapshot>>,
    entries: Vec<Arc<Entry>>,
    subs: Vec<Arc<SubscriberInner>>,
}
