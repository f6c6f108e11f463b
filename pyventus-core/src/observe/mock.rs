//! The `metrics` module's twin when the feature is off: the same types and
//! methods, doing nothing, so callers never test the feature (tokio's
//! `metrics/mock.rs`).

use crate::RunReport;

/// What the inline fast path ran: nothing is tallied.
pub(crate) struct Tally;

// The same methods as the real tally's, which needs its `self`.
#[allow(clippy::unused_self)]
impl Tally {
    #[inline]
    pub(crate) fn new() -> Self {
        Tally
    }

    #[inline]
    pub(crate) fn started() -> Self {
        Tally
    }

    #[inline]
    pub(crate) fn settled(&self, _: &Result<(), anyhow::Error>) {}

    #[inline]
    pub(crate) fn unit(&self, _: bool) {}

    #[inline]
    pub(crate) fn record(&self, _: &str) {}
}

/// An emission's accounting: nothing is counted.
#[derive(Debug)]
pub(crate) struct Accounting;

/// An emission's acceptance by its processing service: nothing to settle.
pub(crate) struct Acceptance;

#[allow(clippy::unused_self)]
impl Acceptance {
    #[inline]
    pub(crate) fn settle(self, _: bool, _: bool) {}
}

// The same methods as the real accounting's, which needs its `self`.
#[allow(clippy::unused_self)]
impl Accounting {
    pub(crate) const fn new() -> Self {
        Accounting
    }

    #[inline]
    pub(crate) fn accepted(&mut self, _: &str, _: &'static str) -> Acceptance {
        Acceptance
    }

    #[inline]
    pub(crate) fn started(&mut self, _: &str, _: &'static str) {}

    #[inline]
    pub(crate) fn ran(&mut self, _: &str, _: &'static str, _: &RunReport) {}

    #[inline]
    pub(crate) fn settled(&mut self, _: &str, _: &'static str, _: bool) {}
}

/// A handler's attempt failed and will be retried: nothing to count.
pub(crate) fn retried(_: &str, _: &'static str) {}

/// A handler's policy gave up: nothing to count.
pub(crate) fn exhausted(_: &str, _: &'static str, _: &'static str) {}
