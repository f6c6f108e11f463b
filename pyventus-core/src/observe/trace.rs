//! How pyventus shows up in `tracing`: one span per delivery, and the events of
//! Pyventus's debug mode, all with target `pyventus`.
//!
//! Levels and targets decide what is shown (`RUST_LOG=pyventus=debug` shows
//! every delivery's span and every subscribe, remove and emit). Debug mode
//! (`PYVENTUS_DEBUG`, or `.debug(true)` on a linker or emitter) is Pyventus's
//! switch on top: it raises those spans and events to `INFO`, so they show
//! under the usual filters too.

use tracing::{Level, Span};

use crate::AnyEvent;

/// Logs one of debug mode's events: at `INFO` in debug mode, else at `DEBUG`.
macro_rules! debug_event {
    ($debug:expr, $($arg:tt)+) => {
        if $debug {
            ::tracing::info!(target: "pyventus", $($arg)+)
        } else {
            ::tracing::debug!(target: "pyventus", $($arg)+)
        }
    };
}
pub(crate) use debug_event;

/// Whether `pyventus` spans and events of `DEBUG` would be recorded: then
/// every emission takes the path that makes them.
#[inline]
pub(crate) fn debug_enabled() -> bool {
    tracing::enabled!(target: "pyventus", Level::DEBUG)
}

/// Who a delivery's span and its failure's log name: the event, the handler,
/// the subscriber and the emission (`None` on the inline fast path).
pub(crate) struct Subscriber<'a> {
    /// Its name is read only if the span or log is recorded.
    pub(crate) event: &'a AnyEvent,
    pub(crate) handler: &'a str,
    pub(crate) id: u64,
    pub(crate) emission: Option<u64>,
}

/// The span of one subscriber's delivery, `pyventus.delivery`, with the event,
/// the handler, the subscriber and the emission. Its parent is `parent`, the
/// span that was current where the event was emitted (or the current one).
pub(crate) fn delivery_span(who: &Subscriber<'_>, parent: Option<&Span>, debug: bool) -> Span {
    macro_rules! span {
        ($level:expr) => {
            match parent {
                Some(parent) => tracing::span!(
                    target: "pyventus",
                    parent: parent,
                    $level,
                    "pyventus.delivery",
                    event = who.event.name(),
                    handler = who.handler,
                    subscriber = who.id,
                    emission = who.emission,
                ),
                None => tracing::span!(
                    target: "pyventus",
                    $level,
                    "pyventus.delivery",
                    event = who.event.name(),
                    handler = who.handler,
                    subscriber = who.id,
                    emission = who.emission,
                ),
            }
        };
    }
    if debug {
        span!(Level::INFO)
    } else {
        span!(Level::DEBUG)
    }
}

/// Logs, in its span, that a subscriber's delivery starts.
#[inline]
pub(crate) fn started(debug: bool) {
    debug_event!(debug, "executing subscriber");
}

/// Who handled a failure: nobody, or a callback (then logged at this level,
/// if any).
#[derive(Clone, Copy)]
pub(crate) enum Handled {
    No,
    Yes(Option<Level>),
}

/// Logs a subscriber's failure: at `ERROR` when no callback handled it, else
/// at the linker's level for handled failures (if any).
pub(crate) fn failure(handled: Handled, who: &Subscriber<'_>, err: &anyhow::Error) {
    macro_rules! log {
        ($level:expr, $what:literal) => {
            tracing::event!(
                target: "pyventus",
                $level,
                event = who.event.name(),
                handler = who.handler,
                subscriber = who.id,
                emission = who.emission,
                "{}: {err:#}",
                $what
            )
        };
    }
    match handled {
        Handled::No => log!(Level::ERROR, "event callback failed"),
        Handled::Yes(None) => {}
        Handled::Yes(Some(Level::ERROR)) => log!(Level::ERROR, "event callback failed (handled)"),
        Handled::Yes(Some(Level::WARN)) => log!(Level::WARN, "event callback failed (handled)"),
        Handled::Yes(Some(Level::INFO)) => log!(Level::INFO, "event callback failed (handled)"),
        Handled::Yes(Some(Level::DEBUG)) => log!(Level::DEBUG, "event callback failed (handled)"),
        Handled::Yes(Some(_)) => log!(Level::TRACE, "event callback failed (handled)"),
    }
}
