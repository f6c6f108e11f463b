//! The names generated code uses: the path to the runtime (`::pyventus`, or
//! the one given with `crate = path`), and the hidden items it defines.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Ident, Path};

/// Where generated code finds the runtime. By default `::pyventus`, so users
/// depend on the facade alone; `crate = path` (linkme's option, tokio's
/// `crate = "..."`) names it for crates that rename the dependency or re-export
/// pyventus from one of their own.
pub(crate) struct Runtime(TokenStream);

impl Runtime {
    pub(crate) fn new(krate: Option<&Path>) -> Self {
        Runtime(match krate {
            Some(path) => quote!(#path),
            None => quote!(::pyventus),
        })
    }

    /// The runtime's public API.
    pub(crate) fn public(&self) -> TokenStream {
        self.0.clone()
    }

    /// `<runtime>::__private`: what generated code needs that is not public API.
    pub(crate) fn private(&self) -> TokenStream {
        let runtime = &self.0;
        quote!(#runtime::__private)
    }

    /// The runtime's path as a user writes it, for generated docs.
    pub(crate) fn to_doc_path(&self) -> String {
        self.0.to_string().replace(' ', "")
    }
}

/// The hidden item `#[on_success(handler)]` finds a handler by.
pub(crate) fn handler_info(handler: &Ident) -> Ident {
    format_ident!("__pyventus_handler_{}", handler, span = handler.span())
}
