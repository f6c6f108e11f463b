//! The path generated code uses to reach the runtime.

use proc_macro2::TokenStream;
use quote::quote;

/// `::pyventus`: generated code names the runtime through the facade, so users
/// depend on `pyventus` alone.
pub(crate) fn runtime() -> TokenStream {
    quote!(::pyventus)
}

/// `::pyventus::__private`: what generated code needs that is not public API.
pub(crate) fn private() -> TokenStream {
    quote!(::pyventus::__private)
}
