//! Testing what code emits: [`Recorder`], a processing service that keeps
//! every emission, and the assertions [`assert_emitted!`] and
//! [`assert_not_emitted!`]. See `docs/testing.md`.
//!
//! ```
//! use pyventus::testing::Recorder;
//! use pyventus::{Event, EventEmitter, assert_emitted, assert_not_emitted};
//!
//! #[derive(Debug, Clone, Event)]
//! struct OrderCreated {
//!     id: u64,
//! }
//!
//! fn place_order(emitter: &EventEmitter, id: u64) -> Result<(), pyventus::Error> {
//!     emitter.emit(OrderCreated { id })
//! }
//!
//! let recorder = Recorder::new();
//! place_order(&recorder.emitter(), 42)?;
//!
//! assert_emitted!(recorder, OrderCreated { id: 42, .. });
//! assert_emitted!(recorder, OrderCreated, times = 1);
//! assert_not_emitted!(recorder, OrderCreated { id: 7, .. });
//! assert_not_emitted!(recorder, "OrderCancelled");
//! # Ok::<(), pyventus::Error>(())
//! ```

pub use crate::{assert_emitted, assert_not_emitted};
pub use pyventus_core::testing::*;

/// Asserts that a [`Recorder`] recorded an emission matching a typed event
/// (optionally a struct pattern, or a predicate on `&E`) or an event name, at
/// least once (or exactly `times = N`). On failure it panics with what was
/// emitted.
///
/// ```
/// # use pyventus::{Event, testing::Recorder, assert_emitted};
/// #[derive(Debug, Clone, Event)]
/// struct Charged(u64);
///
/// let recorder = Recorder::new();
/// let emitter = recorder.emitter();
/// emitter.emit(Charged(10))?;
/// emitter.emit(Charged(20))?;
/// emitter.emit_named("Audit", ())?;
///
/// assert_emitted!(recorder, Charged, times = 2);
/// assert_emitted!(recorder, Charged, |c| c.0 == 20);
/// assert_emitted!(recorder, "Audit");
/// # Ok::<(), pyventus::Error>(())
/// ```
#[macro_export]
macro_rules! assert_emitted {
    ($recorder:expr, $name:literal $(, times = $times:expr)? $(,)?) => {
        $crate::__assert_count!(
            $recorder, true, ::core::stringify!($name) $(, $times)?;
            |r| r.name() == $name
        )
    };
    ($recorder:expr, $ty:path { $($fields:tt)* } $(, times = $times:expr)? $(,)?) => {
        $crate::__assert_count!(
            $recorder, true, ::core::stringify!($ty { $($fields)* }) $(, $times)?;
            |r| ::core::matches!(r.downcast_ref::<$ty>(), ::core::option::Option::Some($ty { $($fields)* }))
        )
    };
    ($recorder:expr, $ty:path, |$e:pat_param| $predicate:expr $(, times = $times:expr)? $(,)?) => {
        $crate::__assert_count!(
            $recorder, true, ::core::stringify!($ty where |$e| $predicate) $(, $times)?;
            |r| r.downcast_ref::<$ty>().is_some_and(|$e: &$ty| $predicate)
        )
    };
    ($recorder:expr, $ty:path $(, times = $times:expr)? $(,)?) => {
        $crate::__assert_count!(
            $recorder, true, ::core::stringify!($ty) $(, $times)?;
            |r| r.downcast_ref::<$ty>().is_some()
        )
    };
}

/// Asserts that a [`Recorder`] recorded no emission matching the pattern (the
/// same forms as [`assert_emitted!`], without `times`).
///
/// ```
/// # use pyventus::{Event, testing::Recorder, assert_not_emitted};
/// #[derive(Debug, Clone, Event)]
/// struct Refunded(u64);
///
/// let recorder = Recorder::new();
/// assert_not_emitted!(recorder, Refunded);
/// assert_not_emitted!(recorder, "Refunded");
/// ```
#[macro_export]
macro_rules! assert_not_emitted {
    ($recorder:expr, $name:literal $(,)?) => {
        $crate::__assert_count!($recorder, false, ::core::stringify!($name), 0; |r| r.name() == $name)
    };
    ($recorder:expr, $ty:path { $($fields:tt)* } $(,)?) => {
        $crate::__assert_count!(
            $recorder, false, ::core::stringify!($ty { $($fields)* }), 0;
            |r| ::core::matches!(r.downcast_ref::<$ty>(), ::core::option::Option::Some($ty { $($fields)* }))
        )
    };
    ($recorder:expr, $ty:path, |$e:pat_param| $predicate:expr $(,)?) => {
        $crate::__assert_count!(
            $recorder, false, ::core::stringify!($ty where |$e| $predicate), 0;
            |r| r.downcast_ref::<$ty>().is_some_and(|$e: &$ty| $predicate)
        )
    };
    ($recorder:expr, $ty:path $(,)?) => {
        $crate::__assert_count!($recorder, false, ::core::stringify!($ty), 0; |r| r.downcast_ref::<$ty>().is_some())
    };
}

/// Not public API: the body of the assertion macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __assert_count {
    ($recorder:expr, $emitted:expr, $what:expr $(, $times:expr)?; |$r:ident| $matches:expr) => {{
        let recorder: &$crate::testing::Recorder = &$recorder;
        let found = recorder.count_matching(|$r: &$crate::testing::Recorded| $matches);
        let expected: ::core::option::Option<usize> = ::core::option::Option::None $(.or(::core::option::Option::Some($times)))?;
        let ok = match expected {
            ::core::option::Option::Some(times) => found == times,
            ::core::option::Option::None => found > 0,
        };
        if !ok {
            let wanted = match expected {
                ::core::option::Option::Some(0) => ::std::string::String::from("no emission"),
                ::core::option::Option::Some(times) => ::std::format!("exactly {times} emission(s)"),
                ::core::option::Option::None => ::std::string::String::from("at least one emission"),
            };
            ::core::panic!(
                "{} failed: expected {} matching `{}`, found {}; {}",
                if $emitted { "assert_emitted!" } else { "assert_not_emitted!" },
                wanted,
                $what,
                found,
                recorder.describe(),
            );
        }
    }};
}
