//! Events, a namespace and handlers declared in a crate that depends on
//! pyventus under another name (`my_pyventus`), each macro told where the
//! runtime is with `crate = my_pyventus`.
//!
//! `::pyventus` does not resolve here: this crate compiling proves that every
//! macro honours the option; `tests/crate_option.rs` in the facade runs its
//! handlers.

use std::sync::atomic::{AtomicU64, Ordering};

use my_pyventus::{Event, Linker, on, on_failure, on_success, once};

/// An event of this crate.
#[derive(Debug, Clone, Event)]
#[event(crate = my_pyventus)]
pub struct Deposit {
    /// How much.
    pub amount: u64,
}

/// Another event, with a name of its own.
#[derive(Debug, Clone, Event)]
#[event(name = "renamed.withdrawal", crate = my_pyventus)]
pub struct Withdrawal;

/// This crate's namespace.
#[derive(Linker)]
#[linker(name = "bank", crate = my_pyventus)]
pub struct Bank;

static BALANCE: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);
static OPENED: AtomicU64 = AtomicU64::new(0);
static DEFAULT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// What the deposits added up to in this process.
pub fn balance() -> u64 {
    BALANCE.load(Ordering::SeqCst)
}

/// How many deposits failed.
pub fn failures() -> u64 {
    FAILURES.load(Ordering::SeqCst)
}

/// How many times the account was opened (once at most).
pub fn opened() -> u64 {
    OPENED.load(Ordering::SeqCst)
}

/// How many failures reached the namespace's default failure callback.
pub fn default_failures() -> u64 {
    DEFAULT_FAILURES.load(Ordering::SeqCst)
}

#[on(Deposit, linker = Bank, crate = my_pyventus)]
fn deposit(e: &Deposit) -> anyhow::Result<u64> {
    if e.amount == 0 {
        anyhow::bail!("an empty deposit");
    }
    Ok(e.amount)
}

#[on_success(deposit, crate = my_pyventus)]
fn deposited(amount: u64) {
    BALANCE.fetch_add(amount, Ordering::SeqCst);
}

#[on_failure(deposit, crate = my_pyventus)]
fn deposit_failed(err: &anyhow::Error) {
    let _ = err;
    FAILURES.fetch_add(1, Ordering::SeqCst);
}

#[once(Deposit, linker = Bank, crate = my_pyventus)]
async fn open_account() {
    std::future::ready(()).await;
    OPENED.fetch_add(1, Ordering::SeqCst);
}

#[on(Withdrawal, linker = Bank, crate = my_pyventus)]
fn withdraw() -> anyhow::Result<()> {
    anyhow::bail!("withdrawals are closed")
}

#[on_failure(linker = Bank, crate = my_pyventus)]
fn bank_failure(err: &anyhow::Error) {
    let _ = err;
    DEFAULT_FAILURES.fetch_add(1, Ordering::SeqCst);
}
