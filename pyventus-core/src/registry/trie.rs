//! A persistent hash trie: the event table of a registry snapshot.
//!
//! Keyed by the event name's precomputed 64-bit hash, sixteen ways per level.
//! A small table is one leaf (a short list scanned by hash); a leaf that grows
//! past [`LEAF`] entries splits into a branch. A write copies only the path to
//! the leaf it touches (at most sixteen pointers per level), and every other
//! node is shared with the previous version, so linking the 100,000th event
//! costs about what linking the 100th does, while a lookup walks a few levels.

use std::sync::Arc;

/// Entries a leaf holds before it splits.
const LEAF: usize = 8;

/// Bits of the hash each level consumes (sixteen children).
const BITS: u32 = 4;

/// Levels a 64-bit hash can feed; past them leaves grow (equal hashes).
const MAX_DEPTH: u32 = u64::BITS / BITS;

/// Something the trie holds: it knows its hash.
pub(crate) trait Hashed {
    /// The precomputed hash it is filed under.
    fn hash(&self) -> u64;
}

/// One node of the trie.
enum Node<T> {
    /// A few items, scanned by hash.
    Leaf(Vec<Arc<T>>),
    /// Sixteen children, by the next four bits of the hash.
    Branch(Box<[Arc<Node<T>>; 16]>),
}

/// A version of the trie.
pub(crate) struct Trie<T> {
    root: Arc<Node<T>>,
    len: usize,
}

impl<T> Clone for Trie<T> {
    fn clone(&self) -> Self {
        Trie {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(items) => Node::Leaf(items.clone()),
            Node::Branch(children) => Node::Branch(children.clone()),
        }
    }
}

#[inline]
fn index(hash: u64, depth: u32) -> usize {
    ((hash >> (depth * BITS)) & 0xf) as usize
}

impl<T: Hashed> Trie<T> {
    /// An empty trie.
    pub(crate) fn new() -> Self {
        Trie {
            root: Arc::new(Node::Leaf(Vec::new())),
            len: 0,
        }
    }

    /// How many items it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The item with this hash that `matches`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut matches: impl FnMut(&T) -> bool) -> Option<&Arc<T>> {
        let mut node = &*self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Leaf(items) => {
                    return items
                        .iter()
                        .find(|item| item.hash() == hash && matches(item));
                }
                Node::Branch(children) => {
                    node = &children[index(hash, depth)];
                    depth += 1;
                }
            }
        }
    }

    /// Replaces the item with this hash that `matches` by `item`, inserts it,
    /// or (with `None`) removes it. Copies the path to its leaf.
    pub(crate) fn set(&mut self, hash: u64, matches: impl FnMut(&T) -> bool, item: Option<Arc<T>>) {
        let delta = set_in(&mut self.root, hash, 0, matches, item);
        self.len = self.len.checked_add_signed(delta).unwrap_or(0);
    }

    /// Every item, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        let mut stack = vec![&*self.root];
        let mut leaf: std::slice::Iter<'_, Arc<T>> = [].iter();
        std::iter::from_fn(move || {
            loop {
                if let Some(item) = leaf.next() {
                    return Some(item);
                }
                match stack.pop()? {
                    Node::Leaf(items) => leaf = items.iter(),
                    Node::Branch(children) => stack.extend(children.iter().map(|c| &**c)),
                }
            }
        })
    }
}

/// [`Trie::set`] at `node`, `depth` levels down: how the count changed.
fn set_in<T: Hashed>(
    node: &mut Arc<Node<T>>,
    hash: u64,
    depth: u32,
    mut matches: impl FnMut(&T) -> bool,
    item: Option<Arc<T>>,
) -> isize {
    let (delta, overflow) = match Arc::make_mut(node) {
        Node::Branch(children) => {
            let child = &mut children[index(hash, depth)];
            return set_in(child, hash, depth + 1, matches, item);
        }
        Node::Leaf(items) => {
            let found = items.iter().position(|i| i.hash() == hash && matches(i));
            match (found, item) {
                (Some(at), Some(item)) => {
                    items[at] = item;
                    (0, None)
                }
                (Some(at), None) => {
                    items.remove(at);
                    (-1, None)
                }
                (None, None) => (0, None),
                (None, Some(item)) => {
                    items.push(item);
                    let full = items.len() > LEAF && depth < MAX_DEPTH;
                    (1, full.then(|| std::mem::take(items)))
                }
            }
        }
    };
    if let Some(items) = overflow {
        *node = Arc::new(split(items, depth));
    }
    delta
}

/// A branch holding `items`, spread by the hash bits of `depth`.
fn split<T: Hashed>(items: Vec<Arc<T>>, depth: u32) -> Node<T> {
    let mut groups: [Vec<Arc<T>>; 16] = std::array::from_fn(|_| Vec::new());
    for item in items {
        groups[index(item.hash(), depth)].push(item);
    }
    let children = groups.map(|group| {
        Arc::new(if group.len() > LEAF && depth + 1 < MAX_DEPTH {
            split(group, depth + 1)
        } else {
            Node::Leaf(group)
        })
    });
    Node::Branch(Box::new(children))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(u64, u32);

    impl Hashed for Item {
        fn hash(&self) -> u64 {
            self.0
        }
    }

    fn mix(n: u64) -> u64 {
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
    }

    #[test]
    fn items_are_found_replaced_and_removed_across_splits() {
        let mut trie = Trie::new();
        for n in 0..2_000 {
            trie.set(mix(n), |_| true, Some(Arc::new(Item(mix(n), 0))));
        }
        assert_eq!(trie.len(), 2_000);
        let before = trie.clone();
        trie.set(mix(7), |_| true, Some(Arc::new(Item(mix(7), 1))));
        trie.set(mix(8), |_| true, None);
        assert_eq!(trie.find(mix(7), |_| true).map(|i| i.1), Some(1));
        assert!(trie.find(mix(8), |_| true).is_none());
        assert_eq!(trie.len(), 1_999);
        // The previous version is untouched.
        assert_eq!(before.find(mix(7), |_| true).map(|i| i.1), Some(0));
        assert!(before.find(mix(8), |_| true).is_some());
        assert_eq!(trie.iter().count(), 1_999);
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_match() {
        let mut trie = Trie::new();
        for n in 0..20 {
            trie.set(42, |i: &Item| i.1 == n, Some(Arc::new(Item(42, n))));
        }
        assert_eq!(trie.len(), 20);
        for n in 0..20 {
            assert_eq!(trie.find(42, |i| i.1 == n).map(|i| i.1), Some(n));
        }
    }

    mod model {
        //! The trie against a `HashMap`, version by version.

        use std::collections::HashMap;
        use std::sync::Arc;

        use proptest::prelude::*;

        use super::Item;
        use crate::registry::trie::Trie;

        /// A write: the item of this hash and tag set to a value, or removed.
        #[derive(Debug, Clone)]
        struct Set {
            hash: u64,
            tag: u32,
            value: Option<u32>,
        }

        fn hash() -> impl Strategy<Value = u64> {
            prop_oneof![
                // Few hashes: equal ones told apart by the tag, full leaves.
                0_u64..4,
                // Hashes that share their low bits: splits many levels down.
                (0_u64..64).prop_map(|n| n << 56),
                any::<u64>(),
            ]
        }

        fn set() -> impl Strategy<Value = Set> {
            (
                hash(),
                0_u32..3,
                proptest::option::weighted(0.8, 0_u32..1000),
            )
                .prop_map(|(hash, tag, value)| Set { hash, tag, value })
        }

        /// The trie's items, as a map.
        fn contents(trie: &Trie<Item>) -> HashMap<(u64, u32), u32> {
            let mut seen = HashMap::new();
            for item in trie.iter() {
                let Item(hash, packed) = **item;
                assert!(
                    seen.insert((hash, packed >> 16), packed & 0xffff).is_none(),
                    "an item listed twice"
                );
            }
            seen
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Each version holds what the map held when it was made: a
            /// write changes the new version only.
            #[test]
            fn the_trie_holds_what_a_hash_map_holds_in_every_version(
                writes in proptest::collection::vec(set(), 1..200)
            ) {
                let mut trie = Trie::new();
                let mut map: HashMap<(u64, u32), u32> = HashMap::new();
                let mut versions = vec![(trie.clone(), map.clone())];
                for Set { hash, tag, value } in writes {
                    let item = value.map(|v| Arc::new(Item(hash, (tag << 16) | v)));
                    trie.set(hash, |i: &Item| i.1 >> 16 == tag, item);
                    match value {
                        Some(v) => map.insert((hash, tag), v),
                        None => map.remove(&(hash, tag)),
                    };
                    prop_assert_eq!(trie.len(), map.len());
                    for (&(hash, tag), &v) in &map {
                        let found = trie.find(hash, |i| i.1 >> 16 == tag).map(|i| i.1 & 0xffff);
                        prop_assert_eq!(found, Some(v));
                    }
                    versions.push((trie.clone(), map.clone()));
                }
                for (version, map) in &versions {
                    prop_assert_eq!(&contents(version), map);
                    prop_assert_eq!(version.len(), map.len());
                }
            }
        }
    }
}
