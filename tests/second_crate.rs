//! Handlers declared in another crate of the workspace (`examples/shop`) are
//! registered in the binaries that link that crate.

// The one line a binary needs for a crate it never calls into: without it, the
// linker drops the crate and its handlers (see docs/handlers.md).
use shop as _;

use pyventus::{EventEmitter, EventKey, EventLinker, InlineProcessingService};
use shop::{BackOffice, OrderPlaced};

#[test]
fn handlers_of_a_linked_crate_are_in_the_global_linker() {
    let global = EventLinker::global();
    for id in ["shop::record_order", "shop::send_confirmation"] {
        let found = global.handler(id);
        assert_eq!(found.len(), 1, "{id}");
        assert_eq!(
            global.events_of(&found),
            vec![EventKey::of::<OrderPlaced>()]
        );
    }
    assert!(
        global.handler("shop::audit_order").is_empty(),
        "it belongs to BackOffice"
    );
}

#[test]
fn a_linked_crate_namespaces_and_handlers_run() {
    let emitter = EventEmitter::new(InlineProcessingService::default());
    let before = shop::orders_recorded();
    emitter
        .emit(OrderPlaced {
            order_id: 7,
            email: "user@example.com".into(),
        })
        .unwrap();
    assert_eq!(shop::orders_recorded(), before + 1);

    let back_office = EventEmitter::builder()
        .linker(BackOffice::linker())
        .processor(InlineProcessingService::default())
        .build();
    back_office
        .emit(OrderPlaced {
            order_id: 8,
            email: "x".into(),
        })
        .unwrap();
    assert_eq!(shop::orders_audited(), 1);
}
