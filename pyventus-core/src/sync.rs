//! The synchronization the concurrent core is built on, through one door: the
//! registry's snapshot and its generation, the per-thread caches, one-time
//! claims and the in-flight counts import their atomics, locks, `ArcSwap` and
//! thread-locals from here.
//!
//! In every build these are `std`'s and `arc_swap`'s own, re-exported: the
//! code that compiles is exactly what it would be without this module. In the
//! crate's unit tests built with `RUSTFLAGS="--cfg shuttle"` (the
//! model-checking step of `.ci/run`), they are [Shuttle](https://docs.rs/shuttle)'s,
//! whose scheduler then decides at each of their operations which thread runs
//! next, and `src/interleavings/` explores those schedules. Under Shuttle:
//!
//! - atomics, `Mutex` and `Condvar` are Shuttle's (sequentially consistent:
//!   Shuttle explores interleavings, not weaker memory orderings);
//! - `ArcSwap` is a lock around an `Arc<T>`, linearizable as `arc_swap`
//!   promises: each `load` and `swap` is one step of the schedule;
//! - each `thread_local!` is a Shuttle thread-local: Shuttle's threads share
//!   one OS thread, whose own thread-locals they would otherwise share;
//! - `Arc` stays `std`'s (its counts are not where this crate's races are).

#[cfg(not(all(test, shuttle)))]
pub(crate) use arc_swap::{ArcSwap, Guard};
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, atomic};
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::thread::{AccessError, LocalKey};
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::thread_local;

#[cfg(all(test, shuttle))]
pub(crate) use model::{AccessError, ArcSwap, Guard, LocalKey, thread_local};
#[cfg(all(test, shuttle))]
pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard, atomic};

pub(crate) use std::sync::{Arc, PoisonError};

#[cfg(all(test, shuttle))]
mod model {
    use std::cell::Cell;
    use std::ops::Deref;
    use std::sync::{Arc, PoisonError};

    pub(crate) use shuttle::thread::AccessError;

    /// `arc_swap::ArcSwap`, linearizable: each load and swap is one step of
    /// the schedule (Shuttle may switch threads before it, never inside it).
    pub(crate) struct ArcSwap<T> {
        current: std::sync::Mutex<Arc<T>>,
        step: shuttle::sync::atomic::AtomicBool,
    }

    /// What [`ArcSwap::load`] returns: the loaded `Arc`.
    pub(crate) struct Guard<T>(T);

    impl<T> Deref for Guard<T> {
        type Target = T;

        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> ArcSwap<T> {
        pub(crate) fn from_pointee(value: T) -> Self {
            ArcSwap {
                current: std::sync::Mutex::new(Arc::new(value)),
                step: shuttle::sync::atomic::AtomicBool::new(false),
            }
        }

        /// The operation's scheduling point. Shuttle runs one thread at a
        /// time and switches only at such points, so the lock after it is
        /// never contended.
        fn current(&self) -> std::sync::MutexGuard<'_, Arc<T>> {
            self.step.load(std::sync::atomic::Ordering::SeqCst);
            self.current.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn load(&self) -> Guard<Arc<T>> {
            Guard(self.load_full())
        }

        pub(crate) fn load_full(&self) -> Arc<T> {
            self.current().clone()
        }

        pub(crate) fn swap(&self, next: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.current(), next)
        }
    }

    impl<T: Default> Default for ArcSwap<T> {
        fn default() -> Self {
            Self::from_pointee(T::default())
        }
    }

    /// `std::thread::LocalKey`, over a Shuttle thread-local: the methods of
    /// std's that this crate uses.
    #[allow(unreachable_pub)] // public signatures name it (`NamedKey::__new`), as they name std's
    pub struct LocalKey<T: 'static>(pub(crate) shuttle::thread::LocalKey<T>);

    impl<T: 'static> LocalKey<T> {
        pub(crate) fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
            self.0.with(f)
        }

        pub(crate) fn try_with<R>(
            &'static self,
            f: impl FnOnce(&T) -> R,
        ) -> Result<R, AccessError> {
            self.0.try_with(f)
        }
    }

    impl<T: Copy + 'static> LocalKey<Cell<T>> {
        pub(crate) fn get(&'static self) -> T {
            self.with(Cell::get)
        }

        pub(crate) fn set(&'static self, value: T) {
            self.with(|cell| cell.set(value));
        }

        pub(crate) fn replace(&'static self, value: T) -> T {
            self.with(|cell| cell.replace(value))
        }
    }

    /// `std::thread_local!`, declaring Shuttle thread-locals.
    macro_rules! shuttle_thread_local {
        () => {};
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }; $($rest:tt)*) => {
            $crate::sync::thread_local!($(#[$attr])* $vis static $name: $t = $init; $($rest)*);
        };
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }) => {
            $crate::sync::thread_local!($(#[$attr])* $vis static $name: $t = $init);
        };
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
            $crate::sync::thread_local!($(#[$attr])* $vis static $name: $t = $init);
            $crate::sync::thread_local!($($rest)*);
        };
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
            $(#[$attr])* $vis static $name: $crate::sync::LocalKey<$t> =
                $crate::sync::LocalKey(::shuttle::thread::LocalKey {
                    init: || $init,
                    _p: ::std::marker::PhantomData,
                });
        };
    }
    pub(crate) use shuttle_thread_local as thread_local;
}
