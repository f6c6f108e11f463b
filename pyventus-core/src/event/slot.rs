//! `LaneSlot`: the cell each thread keeps for one event type (or one
//! `NamedKey`), in which the registry caches what the current snapshot holds
//! for that event. The cell lives here, so that an `Event` can name it; what
//! it holds and how it is read are the registry's (`registry::thread_cache`).

use std::cell::RefCell;
use std::marker::PhantomData;

/// What a thread's [`LaneSlot`] holds: the registry implements it for every
/// type, with one content for all (not typed by the event, so that an event
/// type's slot compiles no drop glue of its own). Not public API.
#[doc(hidden)]
pub trait LaneCache: 'static {
    /// The cell's content.
    type Cache;
    /// The content of a cell that knows nothing yet.
    const UNKNOWN: Self::Cache;
}

/// A thread's cache of the lane of the event type `E`, keyed by the snapshot
/// generation it was read from (generations are unique across linkers). Its
/// content is erased; its type says which lanes it may hold: only a lane of
/// `E` is ever put in a `LaneSlot<E>`.
/// `#[derive(Event)]` gives each event type one, `named_key!` each key. Not
/// public API.
///
/// It keeps one lane per event type and thread alive until that thread emits
/// the type again after the registry changed, or exits: a removed subscriber's
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
