//! What a handler may return, and how its return value splits into success or
//! failure: the `HandlerOutput` trait.

/// What a handler may return: `()`, a value, or `Result<T, E>` with
/// `E: Into<anyhow::Error>`. `Ok` values go to the success callback.
///
/// Implemented for `()`, `Result`, and common value types (numbers, `bool`, `char`,
/// `String`, `&'static str`, `Vec<T>`, `Option<T>`). For another value type return
/// `Ok::<_, std::convert::Infallible>(value)`; the declarative `#[on]` macros
/// accept any type.
///
/// # Examples
///
/// ```
/// use pyventus_core::HandlerOutput;
///
/// assert_eq!(42_u64.into_result().unwrap(), 42);
/// assert!(Err::<u8, _>(anyhow::anyhow!("no")).into_result().is_err());
/// ```
pub trait HandlerOutput: Send + 'static {
    /// The value handed to the success callback.
    type Ok: Send + 'static;

    /// Splits the return value into success or failure.
    fn into_result(self) -> Result<Self::Ok, anyhow::Error>;
}

impl HandlerOutput for () {
    type Ok = ();
    fn into_result(self) -> Result<(), anyhow::Error> {
        Ok(())
    }
}

impl<T: Send + 'static, E: Into<anyhow::Error> + Send + 'static> HandlerOutput for Result<T, E> {
    type Ok = T;
    fn into_result(self) -> Result<T, anyhow::Error> {
        self.map_err(Into::into)
    }
}

macro_rules! value_outputs {
    ($($ty:ty),* $(,)?) => {$(
        impl HandlerOutput for $ty {
            type Ok = $ty;
            fn into_result(self) -> Result<$ty, anyhow::Error> {
                Ok(self)
            }
        }
    )*};
}

value_outputs!(
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str
);

impl<T: Send + 'static> HandlerOutput for Vec<T> {
    type Ok = Vec<T>;
    fn into_result(self) -> Result<Vec<T>, anyhow::Error> {
        Ok(self)
    }
}

impl<T: Send + 'static> HandlerOutput for Option<T> {
    type Ok = Option<T>;
    fn into_result(self) -> Result<Option<T>, anyhow::Error> {
        Ok(self)
    }
}
