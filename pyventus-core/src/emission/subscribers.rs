//! Who an emission runs: the event's subscribers, then the global event's that
//! are not already among them, one-time ones claimed (exactly one emission
//! wins each).

use std::sync::Arc;

use crate::registry::record::SubscriberInner;
use crate::registry::{Entry, Registry, Route};

/// The subscribers an emission runs.
pub(crate) enum Subscribers {
    /// The event's and the global event's lists, shared with the registry
    /// snapshot: nothing to claim or deduplicate, so nothing to copy.
    Lists(Option<Arc<Entry>>, Option<Arc<Entry>>),
    /// A selection (one-time subscribers claimed, duplicates dropped).
    Selected(Vec<Arc<SubscriberInner>>),
}

impl Subscribers {
    /// Resolves the subscribers of an emission routed to `route`.
    pub(crate) fn resolve(registry: &Registry, route: Route<'_>) -> Self {
        if route.all_direct() {
            return Subscribers::Lists(route.entry.cloned(), route.global.cloned());
        }
        let capacity = route.entry.map_or(0, |e| e.len()) + route.global.map_or(0, |g| g.len());
        let mut selected = Vec::with_capacity(capacity);
        select(registry, route, |sub| selected.push(sub.clone()));
        Subscribers::Selected(selected)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<SubscriberInner>> {
        let (entry, global, selected) = match self {
            Subscribers::Lists(entry, global) => (entry.as_deref(), global.as_deref(), &[][..]),
            Subscribers::Selected(selected) => (None, None, &selected[..]),
        };
        entry
            .into_iter()
            .flat_map(Entry::iter)
            .chain(global.into_iter().flat_map(Entry::iter))
            .chain(selected)
    }

    /// Calls `f` on each subscriber, in order.
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<SubscriberInner>)) {
        match self {
            Subscribers::Lists(entry, global) => {
                if let Some(entry) = entry {
                    entry.for_each(&mut f);
                }
                if let Some(global) = global {
                    global.for_each(&mut f);
                }
            }
            Subscribers::Selected(selected) => selected.iter().for_each(f),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Subscribers::Lists(entry, global) => {
                entry.as_ref().map_or(0, |e| e.len()) + global.as_ref().map_or(0, |g| g.len())
            }
            Subscribers::Selected(selected) => selected.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Picks the subscribers an emission routed to `route` runs: the event's, then
/// the global event's that are not already among them, claiming one-time ones
/// (exactly one emission wins each) and unlinking those it wins.
#[inline]
pub(crate) fn select(
    registry: &Registry,
    route: Route<'_>,
    mut f: impl FnMut(&Arc<SubscriberInner>),
) {
    let mut visit = |sub: &Arc<SubscriberInner>| {
        if sub.once {
            if !sub.claim() {
                return;
            }
            registry.remove_subscriber(sub.id());
        }
        f(sub);
    };
    if let Some(entry) = route.entry {
        entry.iter().for_each(&mut visit);
    }
    if let Some(global) = route.global {
        for sub in global.iter() {
            if sub.global_and_more && route.entry.is_some_and(|e| e.contains(sub.id())) {
                continue;
            }
            visit(sub);
        }
    }
}
