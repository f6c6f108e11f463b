//! Parsing the arguments of `#[on(...)]`, `#[once(...)]`, `#[on_success(...)]`
//! and `#[on_failure(...)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Path, Token, Type};

use crate::event::check_name;

/// One event a handler is linked to.
// Lives only while one attribute expands; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum EventArg {
    /// A typed event: `OrderCreated`.
    Typed(Type),
    /// A named event: `"GreetEvent"`.
    Named(LitStr),
    /// The global event: `...`.
    Any(Token![...]),
}

/// The arguments of `#[on(...)]` and `#[once(...)]`.
pub(crate) struct HandlerArgs {
    pub(crate) events: Vec<EventArg>,
    pub(crate) linker: Option<Path>,
    pub(crate) blocking: Option<Ident>,
}

mod kw {
    syn::custom_keyword!(linker);
    syn::custom_keyword!(blocking);
}

/// `linker = Path`, shared by every attribute that takes it.
fn parse_linker(input: ParseStream<'_>, slot: &mut Option<Path>) -> syn::Result<()> {
    let key: kw::linker = input.parse()?;
    input.parse::<Token![=]>()?;
    let path: Path = input.parse()?;
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span,
            "duplicate `linker`; a handler belongs to one linker",
        ));
    }
    *slot = Some(path);
    Ok(())
}

/// An `ident = ...` that is not an option we know.
fn unknown_option(input: ParseStream<'_>, expected: &str) -> syn::Result<()> {
    let ident: Ident = input.parse()?;
    Err(syn::Error::new(
        ident.span(),
        format!("unknown option `{ident}`; expected {expected}"),
    ))
}

impl Parse for HandlerArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = HandlerArgs {
            events: Vec::new(),
            linker: None,
            blocking: None,
        };
        while !input.is_empty() {
            if input.peek(kw::linker) && input.peek2(Token![=]) {
                parse_linker(input, &mut args.linker)?;
            } else if input.peek(kw::blocking)
                && (input.peek2(Token![,]) || input.peek2(syn::parse::End))
            {
                let ident: Ident = input.parse()?;
                if args.blocking.is_some() {
                    return Err(syn::Error::new(ident.span(), "duplicate `blocking`"));
                }
                args.blocking = Some(ident);
            } else if input.peek(Ident) && input.peek2(Token![=]) {
                unknown_option(input, "`linker = Path` or `blocking`")?;
            } else if input.peek(Token![...]) {
                args.events.push(EventArg::Any(input.parse()?));
            } else if input.peek(LitStr) {
                let name: LitStr = input.parse()?;
                if name.value() == "..." {
                    return Err(syn::Error::new(
                        name.span(),
                        "`\"...\"` is a named event; for the global event write `...` without quotes",
                    ));
                }
                check_name(&name)?;
                args.events.push(EventArg::Named(name));
            } else {
                let ty: Type = input.parse().map_err(|err| {
                    syn::Error::new(
                        err.span(),
                        "expected an event: a type (`OrderCreated`), a name (`\"GreetEvent\"`) or `...`, \
                         or an option: `linker = Path`, `blocking`",
                    )
                })?;
                args.events.push(EventArg::Typed(ty));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

impl HandlerArgs {
    /// Checks what parsing alone cannot: at least one event, none twice.
    pub(crate) fn check(&self, attr_span: Span, attr: &str) -> syn::Result<()> {
        if self.events.is_empty() {
            return Err(syn::Error::new(
                attr_span,
                format!(
                    "`#[{attr}]` needs an event: `#[{attr}(OrderCreated)]`, `#[{attr}(\"GreetEvent\")]` \
                     or `#[{attr}(...)]` for every event"
                ),
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for event in &self.events {
            let (key, span) = match event {
                EventArg::Typed(ty) => (
                    quote::quote!(#ty).to_string(),
                    syn::spanned::Spanned::span(ty),
                ),
                EventArg::Named(name) => (format!("{:?}", name.value()), name.span()),
                EventArg::Any(dots) => ("...".to_owned(), dots.spans[0]),
            };
            if seen.contains(&key) {
                return Err(syn::Error::new(
                    span,
                    "this event is listed twice; list it once",
                ));
            }
            seen.push(key);
        }
        Ok(())
    }
}

/// The arguments of `#[on_success(...)]` and `#[on_failure(...)]`.
pub(crate) enum CallbackArgs {
    /// `#[on_success(handler)]`: a callback of one handler.
    Of(Path),
    /// `#[on_success]` or `#[on_success(linker = L)]`: a linker's default callback.
    Default { linker: Option<Path> },
}

impl Parse for CallbackArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(CallbackArgs::Default { linker: None });
        }
        if input.peek(kw::linker) && input.peek2(Token![=]) {
            let mut linker = None;
            parse_linker(input, &mut linker)?;
            input.parse::<Option<Token![,]>>()?;
            if !input.is_empty() {
                return Err(input.error(
                    "a default callback takes only `linker = Path`; to attach the callback to a handler, \
                     name the handler alone",
                ));
            }
            return Ok(CallbackArgs::Default { linker });
        }
        if input.peek(Ident) && input.peek2(Token![=]) {
            unknown_option(
                input,
                "a handler's name, or `linker = Path` for a linker's default callback",
            )?;
        }
        let path: Path = input.parse().map_err(|err| {
            syn::Error::new(
                err.span(),
                "expected the handler this callback belongs to (`#[on_success(send_email)]`), \
                 or nothing for the linker's default callback",
            )
        })?;
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("a callback belongs to one handler; name only one"));
        }
        Ok(CallbackArgs::Of(path))
    }
}
