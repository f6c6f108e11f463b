//! The subscriber lists registry snapshots share: small lists are contiguous
//! and copied on change (nothing to check per item when emitting); large ones
//! are append-only, so subscribing to an event with many subscribers costs
//! O(1), and removals leave tombstones that a compaction sweeps once they
//! outnumber the live items.
//!
//! A tombstone is dated: each removal takes the next tick of a process-wide
//! clock ([`removal`]), each version of a large list notes the clock when it
//! was made, and a version skips only the items removed by then. An older
//! version, which an emission that started before the removal may be
//! running, still holds the item: what an emission runs is the snapshot it
//! started with, whatever the list's size.
//!
//! Concurrency: a list is shared by every snapshot that holds a version of it.
//! Each version sees a prefix of the shared storage (its own length); the
//! writer, serialized by the registry's mutex, only ever writes past every
//! published length, so readers never see a slot change.

use std::sync::{Arc, OnceLock};

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Lists longer than this are append-only.
pub(crate) const SMALL: usize = 32;

/// Items of the first chunk of a large list; each next chunk doubles.
const BASE: usize = 64;

/// Enough chunks for any length a `usize` can count.
const CHUNKS: usize = usize::BITS as usize - 6;

/// Removals so far, process-wide: the clock that dates tombstones.
static REMOVALS: AtomicU64 = AtomicU64::new(0);

/// A new removal's date. Taken before the versions of the lists that drop
/// the item are made (under the registry's lock), so they skip it, and after
/// every version made before, which keep it.
pub(crate) fn removal() -> u64 {
    REMOVALS.fetch_add(1, Ordering::Relaxed) + 1
}

/// The date a version made now notes.
fn now() -> u64 {
    REMOVALS.load(Ordering::Relaxed)
}

/// Something a list holds that can be removed by a tombstone.
pub(crate) trait Live {
    /// Whether the item is live in a version of a list made at `made`: not
    /// removed by then (nor claimed, for a one-time subscriber).
    fn is_live_in(&self, made: u64) -> bool;
}

/// One version of a subscriber list.
pub(crate) enum SubList<T> {
    /// Up to [`SMALL`] items, contiguous, exact (no tombstones).
    Small(Arc<[T]>),
    /// More: append-only storage shared by every version; this one sees `len`
    /// slots, some of them tombstones (items removed by `made`).
    Large {
        store: Arc<Store<T>>,
        len: usize,
        made: u64,
    },
}

/// A large list's storage: chunks that never move once allocated.
pub(crate) struct Store<T> {
    chunks: Box<[OnceLock<Chunk<T>>]>,
    /// How many slots the writer has filled.
    written: AtomicUsize,
}

/// One chunk of a large list: slots filled once each.
type Chunk<T> = Box<[OnceLock<T>]>;

/// The chunk and offset of slot `i`: chunk `k` holds `BASE << k` slots.
#[inline]
fn locate(i: usize) -> (usize, usize) {
    let x = i / BASE + 1;
    let k = (usize::BITS - 1 - x.leading_zeros()) as usize;
    (k, i - BASE * ((1 << k) - 1))
}

impl<T> Store<T> {
    fn new() -> Self {
        Store {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            written: AtomicUsize::new(0),
        }
    }

    /// Fills slot `i` (the next unwritten one).
    fn put(&self, i: usize, item: T) {
        let (k, offset) = locate(i);
        let chunk =
            self.chunks[k].get_or_init(|| (0..BASE << k).map(|_| OnceLock::new()).collect());
        // Only the writer fills slots, each once, in order.
        let _ = chunk[offset].set(item);
        self.written.store(i + 1, Ordering::Relaxed);
    }
}

impl<T: Clone + Live> SubList<T> {
    /// An exact list of `items` (all live).
    pub(crate) fn of(items: Vec<T>) -> Self {
        if items.len() <= SMALL {
            return SubList::Small(items.into());
        }
        let store = Store::new();
        let len = items.len();
        for (i, item) in items.into_iter().enumerate() {
            store.put(i, item);
        }
        SubList::Large {
            store: Arc::new(store),
            len,
            made: now(),
        }
    }

    /// This list with `item` appended: O(1) for a large list at the tip of its
    /// storage, a copy of at most [`SMALL`] items for a small one.
    pub(crate) fn pushed(&self, item: T) -> Self {
        match self {
            SubList::Small(items) if items.len() < SMALL => {
                let mut next = items.to_vec();
                next.push(item);
                SubList::Small(next.into())
            }
            SubList::Large { store, len, .. } if store.written.load(Ordering::Relaxed) == *len => {
                store.put(*len, item);
                SubList::Large {
                    store: store.clone(),
                    len: len + 1,
                    made: now(),
                }
            }
            _ => {
                let mut items: Vec<T> = self.iter().cloned().collect();
                items.push(item);
                SubList::of(items)
            }
        }
    }

    /// Whether removals leave tombstones here rather than copying the list.
    pub(crate) fn is_large(&self) -> bool {
        matches!(self, SubList::Large { .. })
    }

    /// This version, made now: it skips what was removed until now (a
    /// tombstone just left), where `self` still holds it.
    pub(crate) fn remade(&self) -> Self {
        match self {
            SubList::Small(items) => SubList::Small(items.clone()),
            SubList::Large { store, len, .. } => SubList::Large {
                store: store.clone(),
                len: *len,
                made: now(),
            },
        }
    }

    /// Calls `f` on each live item, in order: one loop per representation
    /// (a small list's is a plain slice loop).
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        match self {
            SubList::Small(items) => {
                // A plain loop: `Iterator::for_each` is a function of its own,
                // which the inliner may leave out of line.
                for item in items.iter() {
                    f(item);
                }
            }
            SubList::Large { .. } => self.for_each_large(f),
        }
    }

    /// The items of a small list (all live), `None` for a large one.
    #[inline]
    pub(crate) fn as_small(&self) -> Option<&[T]> {
        match self {
            SubList::Small(items) => Some(items),
            SubList::Large { .. } => None,
        }
    }

    /// [`for_each`](Self::for_each) over a large list, out of line: what
    /// inlines into every emit is the small list's loop alone.
    #[inline(never)]
    fn for_each_large(&self, f: impl FnMut(&T)) {
        self.iter().for_each(f);
    }

    /// The live items, in order.
    #[inline]
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        match self {
            SubList::Small(items) => Iter::Small(items.iter()),
            SubList::Large { store, len, made } => Iter::Large {
                store,
                next: 0,
                len: *len,
                made: *made,
            },
        }
    }
}

impl<T> Clone for SubList<T> {
    fn clone(&self) -> Self {
        match self {
            SubList::Small(items) => SubList::Small(items.clone()),
            SubList::Large { store, len, made } => SubList::Large {
                store: store.clone(),
                len: *len,
                made: *made,
            },
        }
    }
}

/// The live items of a list.
pub(crate) enum Iter<'a, T> {
    Small(std::slice::Iter<'a, T>),
    Large {
        store: &'a Store<T>,
        next: usize,
        len: usize,
        made: u64,
    },
}

impl<'a, T: Live> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        match self {
            Iter::Small(items) => items.next(),
            Iter::Large {
                store,
                next,
                len,
                made,
            } => {
                while *next < *len {
                    let (k, offset) = locate(*next);
                    *next += 1;
                    let item = store.chunks[k].get().and_then(|chunk| chunk[offset].get());
                    if let Some(item) = item.filter(|item| item.is_live_in(*made)) {
                        return Some(item);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item and when it was removed (0: not removed).
    #[derive(Clone)]
    struct Item(u32, Arc<AtomicU64>);

    impl Live for Item {
        fn is_live_in(&self, made: u64) -> bool {
            let removed = self.1.load(Ordering::Relaxed);
            removed == 0 || removed > made
        }
    }

    impl Item {
        fn remove(&self) {
            self.1.store(removal(), Ordering::Relaxed);
        }
    }

    fn item(n: u32) -> Item {
        Item(n, Arc::new(AtomicU64::new(0)))
    }

    fn values(list: &SubList<Item>) -> Vec<u32> {
        list.iter().map(|i| i.0).collect()
    }

    #[test]
    fn slots_map_to_chunks_that_double() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
    }

    #[test]
    fn versions_see_their_own_prefix_as_the_list_grows_past_small() {
        let mut versions = vec![SubList::of(Vec::new())];
        for n in 0..500 {
            let next = versions.last().unwrap().pushed(item(n));
            versions.push(next);
        }
        for (len, version) in (0_u32..).zip(&versions) {
            assert_eq!(values(version), (0..len).collect::<Vec<_>>());
        }
        assert!(versions[500].is_large());
        assert!(!versions[SMALL].is_large());
    }

    #[test]
    fn a_version_that_is_not_the_tip_copies_instead_of_overwriting() {
        let base = SubList::of((0..100).map(item).collect());
        let a = base.pushed(item(100));
        let b = base.pushed(item(200));
        assert_eq!(values(&a).last(), Some(&100));
        assert_eq!(values(&b).last(), Some(&200));
        assert_eq!(values(&base).len(), 100);
    }

    #[test]
    fn tombstones_hide_items_from_the_versions_made_after_their_removal_only() {
        let items: Vec<Item> = (0..100).map(item).collect();
        let list = SubList::of(items.clone());
        items[3].remove();
        let after = list.remade();
        assert!(
            !values(&after).contains(&3),
            "a tombstone in the version made after"
        );
        assert!(
            values(&list).contains(&3),
            "the version made before still holds it"
        );
        let compact = SubList::of(after.iter().filter(|i| i.0 % 2 == 1).cloned().collect());
        assert_eq!(values(&compact).len(), 49, "the odd ones but the dead 3");
    }

    mod model {
        //! The lists against a `Vec`, as the registry changes them: appends,
        //! removals (a tombstone in a large list, a copy in a small one) and
        //! compactions, always on the newest version, while every older
        //! version keeps what it held.

        use proptest::prelude::*;

        use super::{Item, item, values};
        use crate::registry::list::{SMALL, SubList};

        #[derive(Debug, Clone)]
        enum Change {
            Push,
            /// Removes the item at this index (modulo the length).
            Remove(usize),
            Compact,
        }

        fn change() -> impl Strategy<Value = Change> {
            prop_oneof![
                6 => Just(Change::Push),
                3 => any::<usize>().prop_map(Change::Remove),
                1 => Just(Change::Compact),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn every_version_of_a_list_holds_what_a_vec_held_when_it_was_made(
                changes in proptest::collection::vec(change(), 1..300)
            ) {
                let mut next = 0_u32;
                let mut items: Vec<Item> = Vec::new();
                let mut list: SubList<Item> = SubList::of(Vec::new());
                let mut versions = vec![(list.clone(), Vec::new())];
                for change in changes {
                    list = match change {
                        Change::Push => {
                            let new = item(next);
                            next += 1;
                            items.push(new.clone());
                            list.pushed(new)
                        }
                        Change::Remove(_) if items.is_empty() => continue,
                        Change::Remove(at) => {
                            let gone = items.remove(at % items.len());
                            gone.remove();
                            if list.is_large() {
                                list.remade()
                            } else {
                                SubList::of(items.clone())
                            }
                        }
                        Change::Compact => SubList::of(list.iter().cloned().collect()),
                    };
                    let expected: Vec<u32> = items.iter().map(|i| i.0).collect();
                    prop_assert_eq!(values(&list), expected.clone());
                    if list.as_small().is_some() {
                        prop_assert!(expected.len() <= SMALL);
                    }
                    versions.push((list.clone(), expected));
                }
                for (version, expected) in &versions {
                    prop_assert_eq!(&values(version), expected);
                }
            }
        }
    }
}
