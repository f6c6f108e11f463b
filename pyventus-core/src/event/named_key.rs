//! Keys of named events that know their payload's type: [`NamedKey`], declared
//! with [`named_key!`](crate::named_key!), and [`EmitKey`], what
//! [`EventEmitter::emit_to`](crate::EventEmitter::emit_to) takes.

use std::fmt;
use std::ops::Deref;

use crate::EventKey;
use crate::event::slot::LaneSlot;
use crate::sync::LocalKey;

/// The key of a named event whose payload is a `T`, with a slot of its own on
/// each thread: emitting through it costs what emitting a typed event does
/// (no hashing, no lookup, no type check at run time), and a payload of
/// another type is a compile error rather than [`Error::PayloadType`](crate::Error::PayloadType).
///
/// Declare one with [`named_key!`](crate::named_key!); it dereferences to its
/// [`EventKey`], so it goes wherever a key does.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, NamedKey};
///
/// pyventus_core::named_key!(static TICK: NamedKey<u64> = "Tick");
///
/// let linker = EventLinker::new();
/// linker.on_named("Tick").subscribe(|n: &u64| println!("tick {n}"))?;
/// let emitter = EventEmitter::builder().linker(linker).build();
/// for n in 0..3_u64 {
///     emitter.emit_to(&TICK, n)?;
/// }
/// assert_eq!(TICK.name(), "Tick");
/// # Ok::<(), pyventus_core::Error>(())
/// ```
pub struct NamedKey<T: 'static> {
    key: EventKey,
    slot: &'static LocalKey<LaneSlot<T>>,
}

impl<T: 'static> NamedKey<T> {
    /// Used by [`named_key!`](crate::named_key!), which makes the slot.
    #[doc(hidden)]
    pub const fn __new(name: &'static str, slot: &'static LocalKey<LaneSlot<T>>) -> Self {
        NamedKey {
            key: EventKey::named_static(name),
            slot,
        }
    }

    /// The untyped key.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyventus_core::{EventKey, NamedKey};
    ///
    /// pyventus_core::named_key!(static GREET: NamedKey<String> = "Greet");
    /// assert_eq!(GREET.key(), &EventKey::named("Greet"));
    /// ```
    pub fn key(&self) -> &EventKey {
        &self.key
    }
}

impl<T: 'static> Deref for NamedKey<T> {
    type Target = EventKey;

    fn deref(&self) -> &EventKey {
        &self.key
    }
}

impl<T: 'static> fmt::Debug for NamedKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NamedKey<{}>({:?})",
            std::any::type_name::<T>(),
            self.key.name()
        )
    }
}

/// Declares a [`NamedKey`]: a `static` key of a named event with its payload's
/// type, and the per-thread slot that makes emitting through it as cheap as a
/// typed emit.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EventEmitter, EventLinker, NamedKey};
///
/// pyventus_core::named_key! {
///     /// A greeting, with the name to greet.
///     pub static GREET: NamedKey<String> = "Greet";
/// }
///
/// let linker = EventLinker::new();
/// linker.on_named("Greet").subscribe(|name: &String| println!("Hello, {name}!"))?;
/// let emitter = EventEmitter::builder().linker(linker).build();
/// emitter.emit_to(&GREET, "Pyventus".to_owned())?;
/// // emitter.emit_to(&GREET, 7); // error: a `NamedKey<String>` takes a `String`
/// # Ok::<(), pyventus_core::Error>(())
/// ```
#[macro_export]
macro_rules! named_key {
    (
        $(#[$attr:meta])*
        $vis:vis static $key:ident : $first:ident $(:: $rest:ident)* <$payload:ty> = $name:expr $(;)?
    ) => {
        $(#[$attr])*
        // The type as written: `NamedKey` (whose import is then used), or a path to it.
        $vis static $key: $first $(:: $rest)* <$payload> = {
            ::std::thread_local! {
                static SLOT: $crate::__private::LaneSlot<$payload> =
                    const { $crate::__private::LaneSlot::new() };
            }
            $crate::NamedKey::__new($name, &SLOT)
        };
    };
    ($($other:tt)*) => {
        ::core::compile_error!(
            "`named_key!` declares a key as a static of type `NamedKey<Payload>` named by a \
             string: `named_key!(pub static TICK: NamedKey<u64> = \"Tick\");`"
        );
    };
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::EventKey {}
    impl<T> Sealed for crate::NamedKey<T> {}
}

/// What [`EventEmitter::emit_to`](crate::EventEmitter::emit_to) takes: an
/// [`EventKey`] (any payload type), or a [`NamedKey<T>`](NamedKey) (a `T`).
/// Sealed: implemented by those two only.
///
/// # Examples
///
/// ```
/// use pyventus_core::{EmitKey, EventKey, NamedKey};
///
/// fn name_of<K: EmitKey<u64>>(key: &K) -> &str {
///     key.event_key().name()
/// }
///
/// pyventus_core::named_key!(static TICK: NamedKey<u64> = "Tick");
/// assert_eq!(name_of(&TICK), "Tick");
/// assert_eq!(name_of(&EventKey::named("Tock")), "Tock");
/// ```
pub trait EmitKey<T>: sealed::Sealed {
    /// The event's key.
    fn event_key(&self) -> &EventKey;

    /// The per-thread slot of a named key with its payload type.
    #[doc(hidden)]
    fn __slot(&self) -> Option<&'static LocalKey<LaneSlot<T>>> {
        None
    }
}

impl<T> EmitKey<T> for EventKey {
    #[inline]
    fn event_key(&self) -> &EventKey {
        self
    }
}

impl<T: 'static> EmitKey<T> for NamedKey<T> {
    #[inline]
    fn event_key(&self) -> &EventKey {
        &self.key
    }

    #[inline]
    fn __slot(&self) -> Option<&'static LocalKey<LaneSlot<T>>> {
        Some(self.slot)
    }
}
