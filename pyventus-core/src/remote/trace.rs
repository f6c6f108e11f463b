//! Traces that cross a process (feature `opentelemetry`): the emitting span's
//! W3C trace context travels in an [`Envelope`]'s `context` and becomes the
//! parent of the worker's delivery span.
//!
//! A distributed processing service calls [`inject_current`] on each envelope
//! it builds; its worker calls [`set_parent`] on the span it runs the delivery
//! in, before entering it. Both read the spans through `tracing`: with a
//! [`tracing_opentelemetry`] layer installed, a worker's delivery span is a
//! child of the span that emitted the event, in the same trace, whatever the
//! broker and the process. Without the layer both do nothing.
//!
//! The context is written and read as W3C Trace Context (`traceparent`,
//! `tracestate`) with [`TraceContextPropagator`], whatever global propagator
//! the process set: both ends of a queue agree on it without configuration.

use std::collections::BTreeMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

use super::Envelope;

/// Puts the OpenTelemetry context of the current `tracing` span into the
/// envelope (W3C `traceparent`, and `tracestate` when it has one). Outside any
/// traced span it falls back to OpenTelemetry's current context, and leaves
/// the envelope as it is if there is none.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::{Envelope, trace};
///
/// let mut envelope = Envelope::new("OrderPlaced", r#"{"order_id":7}"#);
/// // No OpenTelemetry layer is installed here: nothing to carry.
/// trace::inject_current(&mut envelope);
/// assert!(envelope.context.is_empty());
/// ```
pub fn inject_current(envelope: &mut Envelope) {
    inject(&tracing::Span::current(), &mut envelope.context);
}

/// Puts the OpenTelemetry context of `span` into `context` (W3C
/// `traceparent`, and `tracestate` when it has one). If `span` is not traced
/// (no OpenTelemetry layer, or the span is disabled), OpenTelemetry's current
/// context is used; if that has no span either, `context` is left as it is.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use pyventus_core::remote::trace;
///
/// let mut context = BTreeMap::new();
/// trace::inject(&tracing::info_span!("checkout"), &mut context);
/// assert!(context.is_empty()); // no OpenTelemetry layer in this example
/// ```
pub fn inject(span: &tracing::Span, context: &mut BTreeMap<String, String>) {
    let mut cx = span.context();
    if !cx.span().span_context().is_valid() {
        cx = Context::current();
    }
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Carrier(context));
    }
}

/// The OpenTelemetry context carried in `context`, or `None` if it carries no
/// valid W3C trace context (none was injected, or it is malformed).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use opentelemetry::trace::TraceContextExt;
/// use pyventus_core::remote::trace;
///
/// let context = BTreeMap::from([(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// )]);
/// let parent = trace::extract(&context).expect("a valid traceparent");
/// assert_eq!(
///     parent.span().span_context().trace_id().to_string(),
///     "4bf92f3577b34da6a3ce929d0e0e4736"
/// );
/// assert!(trace::extract(&BTreeMap::new()).is_none());
/// ```
pub fn extract(context: &BTreeMap<String, String>) -> Option<Context> {
    let cx = TraceContextPropagator::new().extract(&Reader(context));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes the trace context carried in `context` the parent of `span`, and
/// says whether it did. Call it before the span is entered: an OpenTelemetry
/// span's parent is fixed once it starts.
///
/// It does nothing (and returns `false`) when `context` carries no valid trace
/// context, when no OpenTelemetry layer is installed, when `span` is disabled,
/// or when it has already started (which is logged at debug level, target
/// `pyventus`).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use pyventus_core::remote::trace;
///
/// let span = tracing::info_span!("pyventus.delivery");
/// let context = BTreeMap::from([(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// )]);
/// // No OpenTelemetry layer is installed here: the span is left as it is.
/// assert!(!trace::set_parent(&span, &context));
/// ```
pub fn set_parent(span: &tracing::Span, context: &BTreeMap<String, String>) -> bool {
    let Some(parent) = extract(context) else {
        return false;
    };
    match span.set_parent(parent) {
        Ok(()) => true,
        Err(SetParentError::AlreadyStarted) => {
            tracing::debug!(
                target: "pyventus",
                "the delivery span had started: it cannot take the emitter's trace context as its parent"
            );
            false
        }
        // No OpenTelemetry layer, or the span is filtered out: nothing to do.
        Err(_) => false,
    }
}

/// Writes propagation headers into an envelope's context; header names are
/// case-insensitive, so they are kept in lowercase.
struct Carrier<'a>(&'a mut BTreeMap<String, String>);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_ascii_lowercase(), value);
    }
}

/// Reads propagation headers from an envelope's context, whatever the case of
/// their names.
struct Reader<'a>(&'a BTreeMap<String, String>);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).or_else(|| {
            self.0
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.as_str())
        })
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Span as _, Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    #[test]
    fn the_current_opentelemetry_span_goes_into_the_envelope_and_comes_back() {
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("test");
        let span = tracer.start("emit");
        let sent = span.span_context().clone();
        let _attached = Context::current_with_span(span).attach();

        let mut envelope = Envelope::new("E", "{}");
        inject_current(&mut envelope);
        let traceparent = &envelope.context["traceparent"];
        assert_eq!(
            *traceparent,
            format!("00-{}-{}-01", sent.trace_id(), sent.span_id())
        );

        let back = extract(&envelope.context).expect("a valid context");
        let back = back.span().span_context().clone();
        assert_eq!(back.trace_id(), sent.trace_id());
        assert_eq!(back.span_id(), sent.span_id());
        assert!(back.is_remote());
    }

    #[test]
    fn headers_are_read_whatever_the_case_of_their_names() {
        let context = BTreeMap::from([(
            "TraceParent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        )]);
        assert!(extract(&context).is_some());
    }

    #[test]
    fn a_malformed_traceparent_carries_no_context() {
        let context = BTreeMap::from([("traceparent".to_owned(), "not a trace".to_owned())]);
        assert!(extract(&context).is_none());
        assert!(!set_parent(&tracing::info_span!("delivery"), &context));
    }

    #[test]
    fn outside_any_span_nothing_is_injected() {
        let mut envelope = Envelope::new("E", "{}");
        envelope
            .context
            .insert("baggage".to_owned(), "k=v".to_owned());
        inject_current(&mut envelope);
        assert_eq!(envelope.context.len(), 1, "left as it was");
    }
}
