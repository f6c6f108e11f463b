//! Inspects and replays a RabbitMQ queue's dead letters.
//!
//! ```sh
//! cargo run -p pyventus-examples --example amqp_dead_letters --features amqp -- list
//! cargo run -p pyventus-examples --example amqp_dead_letters --features amqp -- replay <id>
//! cargo run -p pyventus-examples --example amqp_dead_letters --features amqp -- replay-all
//! cargo run -p pyventus-examples --example amqp_dead_letters --features amqp -- remove <id>
//! ```
//!
//! RabbitMQ: `PYVENTUS_AMQP_URL`; queue: `PYVENTUS_QUEUE` (default `shop`).

use pyventus::amqp::{DeadLetters, url_from_env};

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
                let envelope = letter
                    .envelope
                    .as_ref()
                    .map_or("?", |envelope| envelope.id.as_str());
                println!(
                    "{}  {}  after {} deliveries: {}\n    envelope {envelope}  payload {}",
                    letter.id,
                    letter.event(),
                    letter.deliveries,
                    letter.reason,
                    String::from_utf8_lossy(&letter.body),
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
            eprintln!("usage: amqp_dead_letters [list | replay <id> | replay-all | remove <id>]");
            std::process::exit(2);
        }
    }
    Ok(())
}
