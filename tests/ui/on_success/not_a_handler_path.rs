use pyventus::on_success;

mod orders {
    pub fn charge() -> u64 {
        1
    }
}

#[on_success(orders::charge)]
fn charged(receipt: u64) {
    let _ = (receipt, orders::charge());
}
fn main() {}
