//! The resilience options of `#[on]` and `#[once]`: `retries = N`,
//! `backoff = "min..max"`, `timeout = "2s"`, `concurrency = N`,
//! `busy = wait | refuse`. Parsed and checked here (durations read at compile
//! time, so a typo is an error at the literal), then written as a constant
//! `Policy` in the handler's registration.

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use syn::parse::ParseStream;
use syn::{Ident, LitInt, LitStr, Token};

use crate::diagnostics::Errors;

mod kw {
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(concurrency);
    syn::custom_keyword!(busy);
}

/// The policy options of one attribute, each with where it was written.
#[derive(Default)]
pub(crate) struct PolicyArgs {
    retries: Option<(Span, u32)>,
    /// In microseconds.
    backoff: Option<(Span, u64, u64)>,
    timeout: Option<(Span, u64)>,
    concurrency: Option<(Span, u32)>,
    refuse: Option<(Span, bool)>,
}

/// Whether the input starts with one of the policy options.
pub(crate) fn peek(input: ParseStream<'_>) -> bool {
    input.peek2(Token![=])
        && (input.peek(kw::retries)
            || input.peek(kw::backoff)
            || input.peek(kw::timeout)
            || input.peek(kw::concurrency)
            || input.peek(kw::busy))
}

impl PolicyArgs {
    /// Parses one option ([`peek`] said there is one).
    pub(crate) fn parse_item(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        input.parse::<Token![=]>()?;
        self.parse_value(&key, input)
    }

    /// Whether `key` names a policy option.
    pub(crate) fn is_option(key: &syn::Path) -> bool {
        ["retries", "backoff", "timeout", "concurrency", "busy"]
            .iter()
            .any(|name| key.is_ident(name))
    }

    /// Parses the value of the option `key` (after its `=`).
    pub(crate) fn parse_value(&mut self, key: &Ident, input: ParseStream<'_>) -> syn::Result<()> {
        let span = key.span();
        let name = key.to_string();
        let duplicate = match name.as_str() {
            "retries" => self.retries.is_some(),
            "backoff" => self.backoff.is_some(),
            "timeout" => self.timeout.is_some(),
            "concurrency" => self.concurrency.is_some(),
            _ => self.refuse.is_some(),
        };
        if duplicate {
            return Err(syn::Error::new(
                span,
                format!("duplicate `{name}`; give it once"),
            ));
        }
        match name.as_str() {
            "retries" => {
                let n = positive(input, "retries", "`retries = 3`")?;
                self.retries = Some((span, n));
            }
            "concurrency" => {
                let n = positive(input, "concurrency", "`concurrency = 8`")?;
                self.concurrency = Some((span, n));
            }
            "timeout" => {
                let lit: LitStr = input.parse().map_err(|err| {
                    syn::Error::new(err.span(), "expected a duration: `timeout = \"2s\"`")
                })?;
                let micros = duration(&lit.value()).map_err(|m| syn::Error::new(lit.span(), m))?;
                if micros == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a timeout of 0 would fail every attempt; give a positive duration, \
                         or remove `timeout`",
                    ));
                }
                self.timeout = Some((span, micros));
            }
            "backoff" => {
                let lit: LitStr = input.parse().map_err(|err| {
                    syn::Error::new(
                        err.span(),
                        "expected a range of durations: `backoff = \"100ms..5s\"`",
                    )
                })?;
                let (min, max) =
                    backoff(&lit.value()).map_err(|m| syn::Error::new(lit.span(), m))?;
                self.backoff = Some((span, min, max));
            }
            _ => {
                let value: Ident = input.parse().map_err(|err| {
                    syn::Error::new(err.span(), "expected `busy = wait` or `busy = refuse`")
                })?;
                let refuse = match value.to_string().as_str() {
                    "wait" => false,
                    "refuse" => true,
                    other => {
                        return Err(syn::Error::new(
                            value.span(),
                            format!("unknown `busy = {other}`; expected `wait` or `refuse`"),
                        ));
                    }
                };
                self.refuse = Some((span, refuse));
            }
        }
        Ok(())
    }

    /// The checks across options and the signature: a backoff paces retries,
    /// `busy` needs a limit, a timeout needs an `async fn` (`is_async`:
    /// `None` for a linker's default, whose timeout applies to its async
    /// handlers only).
    pub(crate) fn check(&self, is_async: Option<bool>, errors: &mut Errors) {
        if let (Some((span, ..)), None) = (self.backoff, self.retries) {
            errors.push(syn::Error::new(
                span,
                "`backoff` paces retries, and there are none; add `retries = N`, \
                 or remove `backoff`",
            ));
        }
        if let (Some((span, _)), None) = (self.refuse, self.concurrency) {
            errors.push(syn::Error::new(
                span,
                "`busy` says what to do at a concurrency limit, and there is none; \
                 add `concurrency = N`, or remove `busy`",
            ));
        }
        if let (Some((span, _)), Some(false)) = (self.timeout, is_async) {
            errors.push(syn::Error::new(
                span,
                "`timeout` cancels an `async fn` handler at its deadline, and a synchronous \
                 handler cannot be cancelled; make it `async fn`, or remove `timeout`",
            ));
        }
    }

    /// The registration's `policy`: `None`, or the constant `Policy`.
    pub(crate) fn expand(&self, public: &TokenStream) -> TokenStream {
        if self.retries.is_none()
            && self.backoff.is_none()
            && self.timeout.is_none()
            && self.concurrency.is_none()
        {
            return quote!(::core::option::Option::None);
        }
        let micros = |n: u64| {
            let n = Literal::u64_suffixed(n);
            quote!(::core::time::Duration::from_micros(#n))
        };
        let mut policy = quote!(#public::resilience::Policy::new());
        if let Some((_, n)) = self.retries {
            let n = Literal::u32_suffixed(n);
            policy.extend(quote!(.retries(#n)));
        }
        if let Some((_, min, max)) = self.backoff {
            let (min, max) = (micros(min), micros(max));
            policy.extend(quote!(.backoff(#min, #max)));
        }
        if let Some((_, t)) = self.timeout {
            let t = micros(t);
            policy.extend(quote!(.timeout(#t)));
        }
        if let Some((_, n)) = self.concurrency {
            let n = Literal::u32_suffixed(n);
            policy.extend(quote!(.concurrency(#n)));
        }
        if let Some((_, true)) = self.refuse {
            policy.extend(quote!(.when_busy(#public::resilience::Busy::Refuse)));
        }
        quote!(::core::option::Option::Some(#policy))
    }
}

/// A whole number of at least 1.
fn positive(input: ParseStream<'_>, key: &str, example: &str) -> syn::Result<u32> {
    let lit: LitInt = input.parse().map_err(|err| {
        syn::Error::new(err.span(), format!("expected a whole number: {example}"))
    })?;
    let n: u32 = lit.base10_parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("expected a whole number from 1 to {}: {example}", u32::MAX),
        )
    })?;
    if n == 0 {
        let message = match key {
            "retries" => "`retries = 0` retries nothing; give at least 1, or remove `retries`",
            _ => {
                "`concurrency = 0` would never run the handler; allow at least 1, \
                  or remove `concurrency` for no limit"
            }
        };
        return Err(syn::Error::new(lit.span(), message));
    }
    Ok(n)
}

/// `"min..max"` (or one duration, for a constant delay), in microseconds.
fn backoff(text: &str) -> Result<(u64, u64), String> {
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (duration(min)?, duration(max)?),
        None => {
            let d = duration(text)?;
            (d, d)
        }
    };
    if min > max {
        return Err(format!(
            "the backoff `{text}` starts above its cap; give the shorter delay first (`min..max`)"
        ));
    }
    Ok((min, max))
}

/// A duration such as `250ms`, `2s` or `1m`, in microseconds.
fn duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let unparsable = || {
        format!(
            "cannot read `{text}` as a duration; write a whole number and a unit: \
             `250ms`, `2s`, `1m` (units: `us`, `ms`, `s`, `m`, `h`)"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(unparsable)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| unparsable())?;
    let scale: u64 = match unit.trim() {
        "us" | "µs" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return Err(unparsable()),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("the duration `{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(duration("250ms"), Ok(250_000));
        assert_eq!(duration(" 2s "), Ok(2_000_000));
        assert_eq!(duration("1m"), Ok(60_000_000));
        assert_eq!(duration("5us"), Ok(5));
        assert!(duration("1.5s").is_err());
        assert!(duration("10").is_err());
        assert!(duration("s").is_err());
        assert!(duration("10 parsecs").is_err());
    }

    #[test]
    fn backoffs_are_ranges_from_the_shorter_delay() {
        assert_eq!(backoff("100ms..5s"), Ok((100_000, 5_000_000)));
        assert_eq!(backoff("1s"), Ok((1_000_000, 1_000_000)));
        assert!(backoff("5s..100ms").is_err());
        assert!(backoff("100ms..").is_err());
    }
}
