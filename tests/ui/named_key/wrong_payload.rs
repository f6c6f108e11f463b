use pyventus::{EventEmitter, NamedKey};

pyventus::named_key!(static TICK: NamedKey<u64> = "Tick");

fn main() {
    let emitter = EventEmitter::builder().build();
    // A `NamedKey<u64>` takes a `u64`: a `&str` is refused at compile time.
    let _ = emitter.emit_to(&TICK, "eleven");
}
