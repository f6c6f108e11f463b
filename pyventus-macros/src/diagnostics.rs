//! Diagnostics shared by every macro: collecting several errors, placing
//! generated tokens at the user's own, and emitting the user's item on error.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Block, ItemFn, Visibility};

/// Collects several errors, so a user fixes them in one round (serde's `Ctxt`).
/// It must be [`finish`](Self::finish)ed: dropped unchecked, it panics, so a
/// path that forgets to report what it collected fails every build of it, in
/// this crate's own tests, instead of dropping a user's errors in silence.
#[derive(Default)]
pub(crate) struct Errors {
    collected: Option<syn::Error>,
    finished: bool,
}

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.collected {
            Some(all) => all.combine(err),
            None => self.collected = Some(err),
        }
    }

    /// Records the error of `result`, if any, and hands back its value.
    pub(crate) fn check<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|err| self.push(err)).ok()
    }

    /// Every error collected, as one (syn prints each at its own span).
    pub(crate) fn finish(mut self) -> syn::Result<()> {
        self.finished = true;
        self.collected.take().map_or(Ok(()), Err)
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        assert!(
            self.finished || std::thread::panicking(),
            "pyventus-macros: collected errors were never reported (`Errors::finish`)"
        );
    }
}

/// `tokens` with every token placed at `span`, so the errors the compiler finds
/// in generated code point at the user's own tokens (`quote_spanned!` spans
/// only the tokens it writes, not the ones it interpolates).
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// Expands an attribute on a function with `expand`, which gets the function
/// (its body left unparsed) and the item's own tokens, to emit as they are. On
/// error the function is still emitted beside the error, so the rest of the
/// crate type-checks (tokio's `entry.rs` does the same). `attr` and `role` name
/// the attribute and what the function is, for the error on anything that is
/// not a function.
pub(crate) fn expand_fn(
    item: TokenStream,
    attr: &str,
    role: &str,
    expand: impl FnOnce(&ItemFn, &TokenStream) -> syn::Result<TokenStream>,
) -> TokenStream {
    let Ok(func) = parse_fn.parse2(item.clone()) else {
        let err = syn::Error::new(
            Span::call_site(),
            format!("`#[{attr}]` goes on a function: {role}"),
        );
        return item.into_iter().chain(err.into_compile_error()).collect();
    };
    match expand(&func, &item) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = item;
            tokens.extend(err.into_compile_error());
            tokens
        }
    }
}

/// A function item, its signature parsed and its body skipped: the macros read
/// only the signature and emit the item's own tokens, and a proc macro runs
/// unoptimized in most builds, where parsing every handler's body would be a
/// cost paid per handler for nothing (tokio's `entry.rs` skips it too).
fn parse_fn(input: ParseStream<'_>) -> syn::Result<ItemFn> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    let sig: syn::Signature = input.parse()?;
    let body = match input.parse::<TokenTree>()? {
        TokenTree::Group(body) if body.delimiter() == Delimiter::Brace => body,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "expected the function's body",
            ));
        }
    };
    Ok(ItemFn {
        attrs,
        vis,
        sig,
        block: Box::new(Block {
            brace_token: syn::token::Brace(body.delim_span()),
            stmts: Vec::new(),
        }),
    })
}
