//! `LaneSlot`: the cell each thread keeps for one `NamedKey`, in which the
//! registry caches what the current snapshot holds for that event. The cell
//! lives here, so that a `NamedKey` can name it; what it holds and how it is
//! read are the registry's (`registry::thread_cache`, which also keeps the
//! event types' lanes, in a table of its own).

use std::cell::RefCell;
use std::marker::PhantomData;

/// What a thread's [`LaneSlot`] holds: the registry implements it for every
/// type, with one content for all (not typed by the payload, so that a slot
/// compiles no drop glue of its own). Not public API.
#[doc(hidden)]
pub trait LaneCache: 'static {
    /// The cell's content.
    type Cache;
    /// The content of a cell that knows nothing yet.
    const UNKNOWN: Self::Cache;
}

/// A thread's cache of the lane of a named event whose payload is an `E`,
/// keyed by the snapshot generation it was read from (generations are unique
/// across linkers). `named_key!` gives each key one. Not public API.
///
/// Its content is erased; its type says which lanes it may hold: only a lane
/// of `E` is ever put in a `LaneSlot<E>`.
///
/// It keeps one lane per key and thread alive until that thread emits to the
/// key again after the registry changed, or exits: a removed subscriber's
/// closure may be dropped that much later.
#[doc(hidden)]
pub struct LaneSlot<E: LaneCache>(pub(crate) RefCell<E::Cache>, PhantomData<fn() -> E>);

impl<E: LaneCache> LaneSlot<E> {
    /// An empty cache.
    pub const fn new() -> Self {
        LaneSlot(RefCell::new(E::UNKNOWN), PhantomData)
    }
}

impl<E: LaneCache> Default for LaneSlot<E> {
    fn default() -> Self {
        Self::new()
    }
}
