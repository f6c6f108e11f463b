//! `crate = path`: the macros of a crate that depends on pyventus under another
//! name (`tests/renamed_dependency`, where `::pyventus` does not resolve) find
//! the runtime by that path, and its handlers register and run.

use pyventus::{EventEmitter, EventKey, InlineProcessingService};
use renamed_dependency::{Bank, Deposit, Withdrawal};

#[test]
fn handlers_declared_with_a_crate_path_register_and_run() {
    let linker = Bank::linker();
    assert_eq!(linker.name(), "bank");
    let found = linker.handler("renamed_dependency::deposit");
    assert_eq!(linker.events_of(&found), vec![EventKey::of::<Deposit>()]);
    assert_eq!(<Withdrawal as pyventus::Event>::NAME, "renamed.withdrawal");

    let emitter = EventEmitter::builder()
        .processor(InlineProcessingService::default())
        .linker(linker)
        .build();
    emitter.emit(Deposit { amount: 5 }).unwrap();
    emitter.emit(Deposit { amount: 0 }).unwrap();
    emitter.emit(Withdrawal).unwrap();

    assert_eq!(renamed_dependency::balance(), 5);
    assert_eq!(renamed_dependency::failures(), 1);
    assert_eq!(renamed_dependency::opened(), 1);
    assert_eq!(
        renamed_dependency::default_failures(),
        1,
        "the withdrawal's failure, which has no callback of its own"
    );
}
