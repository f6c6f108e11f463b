//! Event keys: what a subscription is linked to and an emission is dispatched by.

use std::any::{TypeId, type_name};
use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::{Error, Event};

/// The name of the global event, whose subscribers receive every event.
pub(crate) const ANY_NAME: &str = "...";

/// The key of an event in a linker: a typed event, a named event, or the global event.
///
/// Keys compare by name: `EventKey::of::<OrderCreated>()` and
/// `EventKey::named("OrderCreated")` are the same key, just as Pyventus links a
/// dataclass event and its name to the same subscribers. The typed form also carries
/// the type, so that two types claiming one name are reported instead of merged.
/// The hash is computed once, when the key is built (at compile time for typed keys).
///
/// # Examples
///
/// ```
/// use pyventus_core::{Event, EventKey};
///
/// #[derive(Debug)]
/// struct OrderCreated;
/// impl Event for OrderCreated {
///     const NAME: &'static str = "OrderCreated";
/// }
///
/// assert_eq!(EventKey::of::<OrderCreated>(), EventKey::named("OrderCreated"));
/// assert_eq!(EventKey::of::<OrderCreated>().name(), "OrderCreated");
/// assert!(EventKey::any().is_any());
/// assert_eq!(EventKey::any().name(), "...");
/// // Methods that take a key take anything that converts into one.
/// let key: EventKey = "Greet".into();
/// assert_eq!(key, EventKey::named(String::from("Greet")));
/// ```
#[derive(Clone)]
pub struct EventKey {
    name: Name,
    hash: u64,
    kind: Kind,
    /// Whether the name may be emitted to, decided when the key is built.
    check: NameCheck,
}

#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

#[derive(Clone, Copy)]
enum Kind {
    Typed(TypeInfo),
    Named,
    Any,
}

/// A type's identity and name, remembered by the key that introduced it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeInfo {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl TypeInfo {
    pub(crate) fn of<T: 'static>() -> Self {
        TypeInfo {
            id: TypeId::of::<T>(),
            name: type_name::<T>(),
        }
    }
}

impl EventKey {
    /// The key of the typed event `E`.
    pub fn of<E: Event>() -> Self {
        EventKey {
            name: Name::Static(E::NAME),
            hash: KeyHash::<E>::HASH,
            kind: Kind::Typed(TypeInfo::of::<E>()),
            check: KeyHash::<E>::NAME,
        }
    }

    /// The key of a named event. An empty name (or `"..."`) is rejected where the
    /// key is used, with [`Error::EmptyEventName`] (or [`Error::ReservedEventName`]).
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        let name = match name.into() {
            Cow::Borrowed(s) => Name::Static(s),
            Cow::Owned(s) => Name::Shared(s.into()),
        };
        let hash = hash_name(name.as_str());
        let check = NameCheck::of(name.as_str());
        EventKey {
            name,
            hash,
            kind: Kind::Named,
            check,
        }
    }

    /// The key of a named event, built at compile time: its name is hashed once,
    /// so emitting through it ([`EventEmitter::emit_to`](crate::EventEmitter::emit_to))
    /// skips the hashing `emit_named` does at each call.
    ///
    /// Keep it in a `static` rather than a `const`: each use of a `const` key
    /// builds (and drops) a copy of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::EventKey;
    ///
    /// static GREET: EventKey = EventKey::named_static("Greet");
    /// assert_eq!(GREET, EventKey::named("Greet"));
    /// ```
    pub const fn named_static(name: &'static str) -> Self {
        EventKey {
            name: Name::Static(name),
            hash: hash_name(name),
            kind: Kind::Named,
            check: NameCheck::of(name),
        }
    }

    /// The key of the global event (Pyventus's `...`): its subscribers receive every
    /// event emitted through the linker.
    pub fn any() -> Self {
        EventKey {
            name: Name::Static(ANY_NAME),
            hash: hash_name(ANY_NAME),
            kind: Kind::Any,
            check: NameCheck::Valid,
        }
    }

    /// The name, if it is a `&'static str` (a key built by `named_static`,
    /// and every `NamedKey`).
    #[inline]
    pub(crate) fn static_name(&self) -> Option<&'static str> {
        match self.name {
            Name::Static(name) => Some(name),
            Name::Shared(_) => None,
        }
    }

    /// The name as a shared `str` (a static one is copied: for a key whose
    /// [`static_name`](Self::static_name) is `None`, it is only cloned).
    #[inline]
    pub(crate) fn shared_name(&self) -> Arc<str> {
        match &self.name {
            Name::Static(s) => Arc::from(*s),
            Name::Shared(s) => s.clone(),
        }
    }

    /// The event's name (`"..."` for the global event).
    #[inline]
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether this is the global event's key.
    #[inline]
    pub fn is_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// The Rust type behind a typed key, if this key was built with [`EventKey::of`].
    pub fn type_name(&self) -> Option<&'static str> {
        self.type_info().map(|t| t.name)
    }

    pub(crate) fn type_info(&self) -> Option<TypeInfo> {
        match self.kind {
            Kind::Typed(t) => Some(t),
            Kind::Named | Kind::Any => None,
        }
    }

    #[inline]
    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Checks the name: non-empty, and not the global event's unless this is it.
    #[inline]
    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.check.result()
    }

    /// Whether this key names `name` (never true for the global key).
    #[inline]
    pub(crate) fn names(&self, name: &str) -> bool {
        let own = self.name();
        // A typed key's name is usually the very `E::NAME` it is compared with.
        let same = std::ptr::eq(own, name) || own == name;
        same && !self.is_any()
    }
}

impl Name {
    #[inline]
    fn as_str(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl PartialEq for EventKey {
    fn eq(&self, other: &Self) -> bool {
        self.is_any() == other.is_any() && self.hash == other.hash && self.name() == other.name()
    }
}

impl Eq for EventKey {}

impl Hash for EventKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Typed(t) => write!(f, "EventKey::of::<{}>", t.name),
            Kind::Named => write!(f, "EventKey::named({:?})", self.name()),
            Kind::Any => f.write_str("EventKey::any()"),
        }
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&'static str> for EventKey {
    fn from(name: &'static str) -> Self {
        EventKey::named(name)
    }
}

impl From<String> for EventKey {
    fn from(name: String) -> Self {
        EventKey::named(name)
    }
}

impl From<&EventKey> for EventKey {
    fn from(key: &EventKey) -> Self {
        key.clone()
    }
}

/// Whether an event name is usable, decided at compile time for `E::NAME`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameCheck {
    Valid,
    Empty,
    Reserved,
}

impl NameCheck {
    const fn of(name: &str) -> Self {
        let (bytes, any) = (name.as_bytes(), ANY_NAME.as_bytes());
        if bytes.is_empty() {
            return NameCheck::Empty;
        }
        if bytes.len() != any.len() {
            return NameCheck::Valid;
        }
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != any[i] {
                return NameCheck::Valid;
            }
            i += 1;
        }
        NameCheck::Reserved
    }

    #[inline]
    pub(crate) fn result(self) -> Result<(), Error> {
        match self {
            NameCheck::Valid => Ok(()),
            NameCheck::Empty => Err(Error::EmptyEventName),
            NameCheck::Reserved => Err(Error::ReservedEventName),
        }
    }
}

/// The key hash of `E`, computed at compile time so that emitting costs no hashing.
pub(crate) struct KeyHash<E>(PhantomData<E>);

impl<E: Event> KeyHash<E> {
    pub(crate) const HASH: u64 = hash_name(E::NAME);
    /// Whether `E::NAME` is usable: checking it at emit costs nothing.
    pub(crate) const NAME: NameCheck = NameCheck::of(E::NAME);
}

/// FNV-1a over the name, finished with a 64-bit mixer so every bit of the result
/// depends on every byte (the table uses the top bits as a tag).
pub(crate) const fn hash_name(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Ping;
    impl Event for Ping {
        const NAME: &'static str = "Ping";
    }

    #[test]
    fn typed_and_named_keys_of_one_name_are_equal_and_hash_alike() {
        let typed = EventKey::of::<Ping>();
        let named = EventKey::named(String::from("Ping"));
        assert_eq!(typed, named);
        assert_eq!(typed.hash_value(), named.hash_value());
        assert_eq!(typed.type_name(), Some(type_name::<Ping>()));
        assert_eq!(named.type_name(), None);
    }

    #[test]
    fn the_global_key_differs_from_a_named_key_spelled_alike() {
        assert_ne!(EventKey::any(), EventKey::named("..."));
        assert!(matches!(
            EventKey::named("...").validate(),
            Err(Error::ReservedEventName)
        ));
        assert!(matches!(
            EventKey::named("").validate(),
            Err(Error::EmptyEventName)
        ));
        assert!(EventKey::any().validate().is_ok());
    }
}
