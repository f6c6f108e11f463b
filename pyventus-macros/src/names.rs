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

/// A handler's key, which its callbacks name it by at link time: a hash of
/// its crate and version, this expansion's place among the crate's `#[on]`
/// expansions, where it is written (file, line and column, and the compiler's
/// own view of its name's span) and its name. One expansion writes it in both
/// the hidden alias and the registration, so the two always agree.
///
/// Where it is written is not enough: one macro expansion may write a name
/// in several modules, and one file may be included twice, so the count of
/// expansions (the macro's own, kept while the compiler builds a crate)
/// tells them apart. A compiler that forgot it between expansions would
/// leave such handlers one key, and the linker refuses a callback of either
/// (`Error::AmbiguousHandler`) rather than guess.
///
/// Not the handler's id (`module_path!()` and its name): a proc macro cannot
/// know its module path, and an alias's constant computed from it costs the
/// build as much again as the alias (docs/benchmarks.md).
pub(crate) fn handler_key(handler: &Ident) -> u64 {
    use std::hash::{Hash, Hasher};

    static EXPANSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    // `DefaultHasher::new()` has fixed keys: the same key in every build.
    let mut hasher = std::hash::DefaultHasher::new();
    EXPANSIONS
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .hash(&mut hasher);
    for var in ["CARGO_CRATE_NAME", "CARGO_PKG_VERSION"] {
        std::env::var(var).ok().hash(&mut hasher);
    }
    if proc_macro::is_available() {
        let span = handler.span().unwrap();
        (span.file(), span.line(), span.column()).hash(&mut hasher);
        // rustc prints the span's syntax context (`#3 bytes(..)`): it differs
        // between two expansions of one `macro_rules!`. Not a stable format,
        // so it only adds to the rest.
        format!("{span:?}").hash(&mut hasher);
    }
    handler.to_string().hash(&mut hasher);
    hasher.finish()
}

/// Whether `tokens` write `impl` anywhere (an `impl Trait` type).
pub(crate) fn mentions_impl(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == "impl",
        proc_macro2::TokenTree::Group(group) => mentions_impl(&group.stream()),
        _ => false,
    })
}
