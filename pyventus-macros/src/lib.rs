//! Procedural macros of pyventus.
