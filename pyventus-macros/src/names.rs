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
    compilation().hash(&mut hasher);
    EXPANSIONS
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .hash(&mut hasher);
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

/// The crate being compiled, as far as a macro can tell: its name and
/// version, and what tells apart two compilations of one crate in one
/// binary. A library's unit tests may link a second copy of it (through a
/// dev-dependency that depends on it), and a package's library and binary may
/// both mount one module file: same name, same files, same places. Cargo
/// gives each compilation its own `-C metadata=...` (what keeps their symbols
/// apart), which the compiler's arguments, read by the macro running inside
/// it, carry; `--test` and the crate type are kept too.
fn compilation() -> u64 {
    static COMPILATION: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *COMPILATION.get_or_init(|| {
        compilation_of(
            &["CARGO_CRATE_NAME", "CARGO_PKG_VERSION"].map(|var| std::env::var(var).ok()),
            std::env::args(),
        )
    })
}

fn compilation_of(crate_vars: &[Option<String>; 2], mut args: impl Iterator<Item = String>) -> u64 {
    use std::hash::{Hash, Hasher};

    let mut hasher = std::hash::DefaultHasher::new();
    crate_vars.hash(&mut hasher);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--test" => arg.hash(&mut hasher),
            "--crate-type" => args.next().hash(&mut hasher),
            "-C" => {
                if let Some(option) = args.next().filter(|o| o.starts_with("metadata=")) {
                    option.hash(&mut hasher);
                }
            }
            _ => {}
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::compilation_of;

    /// The compilation `args` (rustc's arguments, split at spaces) describe.
    fn of(args: &str) -> u64 {
        compilation_of(
            &[Some("dual".to_owned()), Some("0.1.0".to_owned())],
            args.split(' ').map(str::to_owned),
        )
    }

    #[test]
    fn two_compilations_of_one_crate_in_one_binary_are_told_apart() {
        let lib = of("--crate-name dual --crate-type lib -C metadata=1a2b");
        let bin = of("--crate-name dual --crate-type bin -C metadata=3c4d");
        let test = of("--crate-name dual --test -C metadata=5e6f");
        assert!(lib != bin && bin != test && lib != test);
        // What does not tell compilations apart is left out: paths, flags.
        assert_eq!(
            lib,
            of("--crate-name dual --crate-type lib -C metadata=1a2b -C opt-level=3 --out-dir /x")
        );
    }
}
