//! How the declarative macros read a handler's declared return type: the
//! compile-time probe that tells a `Result` (under any name), another
//! [`HandlerOutput`] and a plain value apart.
//!
//! Not public API: the code `#[on]` and `#[on_success]` generate reaches these
//! items through `__private`.
//!
//! Runtime subscription asks the handler's return type to implement
//! [`HandlerOutput`]; the declarative macros also accept any other value type
//! (a user's `Receipt`), which a blanket impl cannot cover. They decide from the
//! declared type itself, never from how it is spelled, by autoref
//! specialization on [`OutputProbe`]:
//!
//! ```text
//! (&&&OutputProbe::<R>::new()).output_kind().read(returned)
//! ```
//!
//! resolves, in this order, to [`ViaResult`] for any `Result<T, E>` (aliases
//! included), to [`ViaHandlerOutput`] for any other `R: HandlerOutput`, and to
//! [`ViaValue`] for everything else. The first two read the value with
//! `HandlerOutput` (so an `Err` is a failure); the last makes it an `Ok`. A
//! `Result` whose error does not convert into `anyhow::Error` is never taken
//! for a plain value: it fails to compile, as it does at runtime.
//!
//! What `read` returns records the choice in a type: `Result<R::Ok,
//! anyhow::Error>` or `Result<R, Infallible>`. A handler passed as data carries
//! that type, and [`ReadAs`] turns the handler's value into it at runtime, so
//! the choice made once at the handler's declaration needs no code of its own.
//!
//! The same probe gives `#[on_success(handler)]` the handler's `Ok` type, and
//! [`success_value`] checks the callback's parameter against it.

use std::convert::Infallible;
use std::marker::PhantomData;

use crate::HandlerOutput;

/// The `Ok` value a success callback is called with, as the type its parameter
/// declares: the two must be the same type, which this checks at compile time
/// with a message in the callback's terms.
#[inline]
pub fn success_value<Ok: SuccessValue<P>, P>(value: Ok) -> P {
    value.into_param()
}

/// `Self`, the handler's `Ok` type, can be passed as a success callback's
/// parameter `P`: only when they are the same type.
#[diagnostic::on_unimplemented(
    message = "this success callback takes `{P}`, but its handler succeeds with `{Self}`",
    label = "take `{Self}` here, or nothing",
    note = "a success callback takes its handler's `Ok` value by value: `T` for a handler returning \
            `Result<T, E>` (however it is spelled, aliases included), the returned type itself otherwise"
)]
pub trait SuccessValue<P> {
    /// `self`, as the parameter.
    fn into_param(self) -> P;
}

impl<T> SuccessValue<T> for T {
    #[inline]
    fn into_param(self) -> T {
        self
    }
}

/// Probes a handler's declared return type `R` (see this file's module docs).
pub struct OutputProbe<R>(PhantomData<fn() -> R>);

impl<R> OutputProbe<R> {
    /// The probe of `R`.
    #[inline]
    pub const fn new() -> Self {
        OutputProbe(PhantomData)
    }

    /// The probe of the type of `value` (where the type is inferred, not
    /// written: a success callback reads its handler's).
    #[inline]
    pub const fn of(value: &R) -> Self {
        let _ = value;
        OutputProbe(PhantomData)
    }
}

impl<R> Default for OutputProbe<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// `R` is read with [`HandlerOutput`]: an `Err` is a failure.
pub struct AsHandlerOutput<R>(PhantomData<fn() -> R>);

/// `R` is a plain value: always a success.
pub struct AsValue<R>(PhantomData<fn() -> R>);

/// First choice: any `Result`, whatever it is called. Its error must convert
/// into `anyhow::Error` (checked where it is read), so that a `Result` is never
/// mistaken for a plain value.
pub trait ViaResult {
    /// The declared return type.
    type Returned;
    /// How to read it.
    fn output_kind(&self) -> AsHandlerOutput<Self::Returned>;
}

impl<T, E> ViaResult for &&OutputProbe<Result<T, E>> {
    type Returned = Result<T, E>;
    #[inline]
    fn output_kind(&self) -> AsHandlerOutput<Result<T, E>> {
        AsHandlerOutput(PhantomData)
    }
}

/// Second choice: any other [`HandlerOutput`] (`()`, and the types a user
/// implements it for).
pub trait ViaHandlerOutput {
    /// The declared return type.
    type Returned;
    /// How to read it.
    fn output_kind(&self) -> AsHandlerOutput<Self::Returned>;
}

impl<R: HandlerOutput> ViaHandlerOutput for &OutputProbe<R> {
    type Returned = R;
    #[inline]
    fn output_kind(&self) -> AsHandlerOutput<R> {
        AsHandlerOutput(PhantomData)
    }
}

/// Last choice: any other type is a plain value.
pub trait ViaValue {
    /// The declared return type.
    type Returned;
    /// How to read it.
    fn output_kind(&self) -> AsValue<Self::Returned>;
}

impl<R> ViaValue for OutputProbe<R> {
    type Returned = R;
    #[inline]
    fn output_kind(&self) -> AsValue<R> {
        AsValue(PhantomData)
    }
}

// The probes' `read` methods are picked by autoref on the probe's type, and
// every read returns a `Result`, whatever its value: `self` and the wrapping
// are their shape, not waste.
#[allow(clippy::unused_self)]
impl<R> AsHandlerOutput<R> {
    /// The handler's result read with [`HandlerOutput`]. Split here (the
    /// return type names `R::Ok`), so that an error type that is not an error
    /// is reported once, at this call, which the macro spans at the return type.
    #[inline]
    pub fn read(self, returned: R) -> Result<R::Ok, anyhow::Error>
    where
        R: HandlerOutput,
    {
        returned.into_result()
    }
}

#[allow(clippy::unused_self, clippy::unnecessary_wraps)]
impl<R> AsValue<R> {
    /// The handler's value, as a success.
    #[inline]
    pub fn read(self, returned: R) -> Result<R, Infallible>
    where
        R: Send + 'static,
    {
        Ok(returned)
    }
}

/// How a handler's value `Self` becomes `O`, what the probe read it as: with
/// [`HandlerOutput`] into `Result<Self::Ok, anyhow::Error>`, or as a plain value
/// into `Result<Self, Infallible>`. The two impls never overlap (their error
/// types differ), so `O` alone picks one.
pub trait ReadAs<O> {
    /// The handler's value, read.
    fn read_as(self) -> O;
}

impl<R: HandlerOutput> ReadAs<Result<R::Ok, anyhow::Error>> for R {
    #[inline]
    fn read_as(self) -> Result<R::Ok, anyhow::Error> {
        self.into_result()
    }
}

impl<R> ReadAs<Result<R, Infallible>> for R {
    #[inline]
    fn read_as(self) -> Result<R, Infallible> {
        Ok(self)
    }
}

#[cfg(test)]
// Autoref specialization: the borrows pick the impl, they are not needless.
#[allow(clippy::needless_borrow)]
mod tests {
    #[allow(unused_imports)]
    use super::{OutputProbe, ReadAs, ViaHandlerOutput as _, ViaResult as _, ViaValue as _};
    use crate::HandlerOutput;

    #[derive(Debug, PartialEq)]
    struct Receipt(u32);

    type Fallible = anyhow::Result<u32>;

    #[test]
    fn a_result_is_read_whatever_it_is_called() {
        let returned: Fallible = Err(anyhow::anyhow!("declined"));
        let read = (&&&OutputProbe::<Fallible>::new())
            .output_kind()
            .read(returned);
        assert_eq!(read.unwrap_err().to_string(), "declined");

        let io: std::io::Result<u8> = Ok(3);
        let read = (&&&OutputProbe::<std::io::Result<u8>>::new())
            .output_kind()
            .read(io);
        assert_eq!(read.unwrap(), 3);
    }

    #[test]
    fn any_other_type_is_a_plain_value() {
        let read = (&&&OutputProbe::<Receipt>::new())
            .output_kind()
            .read(Receipt(7));
        assert_eq!(read.into_result().unwrap(), Receipt(7));

        let read = (&&&OutputProbe::<u64>::new()).output_kind().read(5);
        assert_eq!(read.into_result().unwrap(), 5);
    }

    #[test]
    fn a_value_is_read_as_the_probe_read_it() {
        // What `read` returned picks how a handler passed as data is read.
        let failed: Result<u8, anyhow::Error> =
            Err::<u8, _>(std::io::Error::other("declined")).read_as();
        assert!(failed.is_err(), "a Result is read with HandlerOutput");
        let value: Result<Receipt, std::convert::Infallible> = Receipt(2).read_as();
        assert!(matches!(value, Ok(Receipt(2))), "any other type is a value");
        let unit: Result<(), anyhow::Error> = ().read_as();
        assert!(unit.is_ok());
    }
}
