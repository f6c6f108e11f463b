use pyventus::{Event, on};

#[derive(Debug, Clone, Event)]
struct OrderCreated {
    order_id: u64,
}

struct Mailer;

impl Mailer {
    #[on(OrderCreated)]
    fn handler(&self, event: &OrderCreated) {
        let _ = event;
    }
}
fn main() {}
