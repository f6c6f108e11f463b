//! Parsing the arguments of `#[on(...)]`, `#[once(...)]`, `#[on_success(...)]`
//! and `#[on_failure(...)]`, and the options of the derives' helper attributes,
//! reporting every bad argument, not just the first.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, LitStr, Path, Token, Type};

use crate::check;
use crate::diagnostics::Errors;
use crate::policy::{self, PolicyArgs};

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
#[derive(Default)]
pub(crate) struct HandlerArgs {
    pub(crate) events: Vec<EventArg>,
    pub(crate) linker: Option<Path>,
    pub(crate) blocking: Option<Ident>,
    /// `inline`: a closure of its own, with the handler inlined into it.
    pub(crate) inline: Option<Ident>,
    /// `crate = path`: where the runtime is.
    pub(crate) krate: Option<Path>,
    /// `retries`, `backoff`, `timeout`, `concurrency`, `busy`.
    pub(crate) policy: PolicyArgs,
    /// Whether an argument meant as an event was malformed (then "no event"
    /// would be noise).
    bad_event: bool,
}

/// The arguments of `#[on_success(...)]` and `#[on_failure(...)]`: the
/// handler the callback belongs to, or none for a linker's default callback.
#[derive(Default)]
pub(crate) struct CallbackArgs {
    pub(crate) handler: Option<Path>,
    /// The linker of a default callback.
    pub(crate) linker: Option<Path>,
    /// `crate = path`: where the runtime is.
    pub(crate) krate: Option<Path>,
    /// Whether an argument meant as the handler was malformed (then whether
    /// this is a default callback is unknown).
    pub(crate) bad_handler: bool,
}

mod kw {
    syn::custom_keyword!(linker);
    syn::custom_keyword!(blocking);
    syn::custom_keyword!(inline);
}

const HANDLER_OPTIONS: &str = "`linker = Path`, `blocking`, `inline`, `crate = path`, \
     or a policy: `retries`, `backoff`, `timeout`, `concurrency`, `busy`";
const CALLBACK_OPTIONS: &str =
    "a handler's name, `linker = Path` for a linker's default callback, or `crate = path`";

/// Parses a comma-separated list, one item at a time with `item`; an item that
/// fails is reported and skipped (to the next comma), so the items after it are
/// still checked.
fn parse_list(
    tokens: TokenStream,
    errors: &mut Errors,
    mut item: impl FnMut(ParseStream<'_>) -> syn::Result<()>,
) {
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            if let Err(err) = item(input) {
                errors.push(err);
                skip_to_comma(input)?;
            }
            if input.is_empty() {
                break;
            }
            if let Err(err) = input.parse::<Token![,]>() {
                errors.push(err);
                skip_to_comma(input)?;
                let _ = input.parse::<Option<Token![,]>>()?;
            }
        }
        Ok(())
    };
    if let Err(err) = parser.parse2(tokens) {
        errors.push(err);
    }
}

/// Skips the rest of a malformed item, up to its comma.
fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// Parses the options of a derive's helper attribute (`#[event(...)]`,
/// `#[linker(...)]`) one at a time with `option`; an option that fails is
/// reported and skipped, so the options after it are still checked.
pub(crate) fn parse_options(
    attr: &Attribute,
    errors: &mut Errors,
    mut option: impl FnMut(&ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    let parsed = attr.parse_nested_meta(|meta| {
        if let Err(err) = option(&meta) {
            errors.push(err);
            skip_to_comma(meta.input)?;
        }
        Ok(())
    });
    errors.check(parsed);
}

/// `key = Path` for a `key` given at most once.
fn set_once(slot: &mut Option<Path>, path: Path, key_span: Span, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key_span,
            format!("duplicate `{key}`; give it once"),
        ));
    }
    *slot = Some(path);
    Ok(())
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

/// `crate = path`, shared by every attribute.
fn parse_crate(input: ParseStream<'_>, slot: &mut Option<Path>) -> syn::Result<()> {
    let key: Token![crate] = input.parse()?;
    input.parse::<Token![=]>()?;
    let path = parse_crate_path(input)?;
    set_once(slot, path, key.span, "crate")
}

/// The value of `crate = path`: a path, not a string (linkme's form).
pub(crate) fn parse_crate_path(input: ParseStream<'_>) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "write the path without quotes: `crate = {}`",
                lit.value().trim()
            ),
        ));
    }
    input.call(Path::parse_mod_style).map_err(|err| {
        syn::Error::new(
            err.span(),
            "expected the path of the pyventus crate: `crate = my_pyventus`",
        )
    })
}

/// Whether the input starts with `crate =`.
fn peek_crate(input: ParseStream<'_>) -> bool {
    input.peek(Token![crate]) && input.peek2(Token![=])
}

/// Whether the item is a single token (a flag such as `blocking`), not the
/// start of a type named like one.
fn ends_item(input: ParseStream<'_>) -> bool {
    input.peek2(Token![,]) || input.peek2(syn::parse::End)
}

/// A flag (`blocking`, `inline`) given at most once.
fn flag(input: ParseStream<'_>, slot: &mut Option<Ident>) -> syn::Result<()> {
    let ident: Ident = input.parse()?;
    if slot.is_some() {
        return Err(syn::Error::new(
            ident.span(),
            format!("duplicate `{ident}`; give it once"),
        ));
    }
    *slot = Some(ident);
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

impl HandlerArgs {
    /// Parses the arguments, reporting each bad one to `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = HandlerArgs::default();
        parse_list(tokens, errors, |input| args.parse_item(input));
        args
    }

    fn parse_item(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        if input.peek(kw::linker) && input.peek2(Token![=]) {
            parse_linker(input, &mut self.linker)
        } else if peek_crate(input) {
            parse_crate(input, &mut self.krate)
        } else if input.peek(kw::blocking) && ends_item(input) {
            flag(input, &mut self.blocking)
        } else if input.peek(kw::inline) && ends_item(input) {
            flag(input, &mut self.inline)
        } else if policy::peek(input) {
            self.policy.parse_item(input)
        } else if input.peek(Ident) && input.peek2(Token![=]) {
            unknown_option(input, HANDLER_OPTIONS)
        } else if input.peek(Token![...]) {
            self.events.push(EventArg::Any(input.parse()?));
            Ok(())
        } else if input.peek(LitStr) {
            let name: LitStr = input.parse()?;
            if name.value() == "..." {
                self.bad_event = true;
                return Err(syn::Error::new(
                    name.span(),
                    "`\"...\"` is a named event; for the global event write `...` without quotes",
                ));
            }
            check::event_name(&name).inspect_err(|_| self.bad_event = true)?;
            self.events.push(EventArg::Named(name));
            Ok(())
        } else {
            let ty: Type = input.parse().map_err(|err| {
                self.bad_event = true;
                syn::Error::new(
                    err.span(),
                    format!(
                        "expected an event: a type (`OrderCreated`), a name (`\"GreetEvent\"`) or `...`, \
                         or an option: {HANDLER_OPTIONS}"
                    ),
                )
            })?;
            self.events.push(EventArg::Typed(ty));
            Ok(())
        }
    }

    /// Checks what parsing alone cannot: at least one event, none twice.
    pub(crate) fn check(&self, attr_span: Span, attr: &str, errors: &mut Errors) {
        if self.events.is_empty() && !self.bad_event {
            errors.push(syn::Error::new(
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
                errors.push(syn::Error::new(
                    span,
                    "this event is listed twice; list it once",
                ));
            }
            seen.push(key);
        }
    }
}

impl CallbackArgs {
    /// Parses the arguments, reporting each bad one to `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = CallbackArgs::default();
        parse_list(tokens, errors, |input| args.parse_item(input));
        if let (Some(_), Some(linker)) = (&args.handler, &args.linker) {
            errors.push(syn::Error::new_spanned(
                linker,
                "a callback of one handler belongs to that handler's linker; remove `linker = ...` \
                 (it names the linker of a default callback: `#[on_failure(linker = UserLinker)]`)",
            ));
        }
        args
    }

    fn parse_item(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        if input.peek(kw::linker) && input.peek2(Token![=]) {
            parse_linker(input, &mut self.linker)
        } else if peek_crate(input) {
            parse_crate(input, &mut self.krate)
        } else if input.peek(Ident) && input.peek2(Token![=]) {
            unknown_option(input, CALLBACK_OPTIONS)
        } else {
            let path: Path = input.parse().map_err(|err| {
                self.bad_handler = true;
                syn::Error::new(
                    err.span(),
                    "expected the handler this callback belongs to (`#[on_success(send_email)]`), \
                     or nothing for the linker's default callback",
                )
            })?;
            if self.handler.is_some() {
                return Err(syn::Error::new_spanned(
                    path,
                    "a callback belongs to one handler; name only one",
                ));
            }
            self.handler = Some(path);
            Ok(())
        }
    }
}
