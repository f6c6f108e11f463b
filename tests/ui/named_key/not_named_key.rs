pyventus::named_key!(static TICK: u64 = "Tick");

fn main() {}
