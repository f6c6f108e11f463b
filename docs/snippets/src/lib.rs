//! The guide's pages, each a module whose doctests are the page's snippets.
//! This crate has no code of its own; see `Cargo.toml` for why it exists.

#[cfg(doctest)]
macro_rules! pages {
    ($($name:ident = $file:literal),* $(,)?) => {
        $(
            #[doc = include_str!(concat!("../../", $file))]
            mod $name {}
        )*
    };
}

#[cfg(doctest)]
pages! {
    readme = "../README.md",
    events = "events.md",
    handlers = "handlers.md",
    linkers = "linkers.md",
    emitters = "emitters.md",
    workflow = "workflow.md",
    requests = "requests.md",
    resilience = "resilience.md",
    lifecycle = "lifecycle.md",
    testing = "testing.md",
    axum = "axum.md",
    redis = "redis.md",
    amqp = "amqp.md",
    postgres = "postgres.md",
    metrics = "metrics.md",
    web_and_worker = "web_and_worker.md",
    architecture = "architecture.md",
    compile_errors = "compile-errors.md",
    benchmarks = "benchmarks.md",
}
