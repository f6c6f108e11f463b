//! Inspects and replays a queue's dead letters.
//!
//! ```sh
//! cargo run -p pyventus-examples --example redis_dead_letters --features redis -- list
//! cargo run -p pyventus-examples --example redis_dead_letters --features redis -- replay <id>
//! cargo run -p pyventus-examples --example redis_dead_letters --features redis -- replay-all
//! cargo run -p pyventus-examples --example redis_dead_letters --features redis -- remove <id>
//! ```
//!
//! Redis: `PYVENTUS_REDIS_URL`; queue: `PYVENTUS_QUEUE` (default `shop`).

use pyventus::redis::{DeadLetters, url_from_env};

#[tokio::main]
async fn main() -> Result<(), pyventus::Error> {
    let queue = std::env::var("PYVENTUS_QUEUE").unwrap_or_else(|_| "shop".to_owned());
    let dead = DeadLetters::connect(&url_from_env(), &queue).await?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["list"] => {
            let letters = dead.list(100).await?;
            if letters.is_empty() {
                println!("no dead letters on queue `{queue}`");
            }
            for letter in letters {
                // Payloads may be huge or binary: show the start, as text.
                let payload = letter.payload().unwrap_or_default();
                let shown = String::from_utf8_lossy(&payload[..payload.len().min(200)]);
                println!(
                    "{}  {}  after {} deliveries: {}\n    envelope {}  payload ({} bytes) {shown}",
                    letter.id,
                    letter.event(),
                    letter.deliveries,
                    letter.reason,
                    letter.envelope_id().unwrap_or_default(),
                    payload.len(),
                );
            }
        }
        ["replay", id] => println!(
            "{}",
            if dead.replay(id).await? {
                "replayed"
            } else {
                "no such dead letter"
            }
        ),
        ["replay-all"] => println!("{} replayed", dead.replay_all().await?),
        ["remove", id] => println!(
            "{}",
            if dead.remove(id).await? {
                "removed"
            } else {
                "no such dead letter"
            }
        ),
        _ => {
            eprintln!("usage: redis_dead_letters [list | replay <id> | replay-all | remove <id>]");
            std::process::exit(2);
        }
    }
    Ok(())
}
