//! Named events on the relay's side: the payload types the relay was told,
//! by name, and the event object a decoded payload becomes.

use std::any::{Any, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use pyventus_core::{AnyEvent, EventObject};
use serde::de::DeserializeOwned;

/// Decodes a named event's JSON payload.
pub(crate) type Decoder = fn(&str, &str) -> Result<Arc<AnyEvent>, serde_json::Error>;

/// The named events a relay decodes, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamedTypes(HashMap<String, (Decoder, &'static str)>);

impl NamedTypes {
    pub(crate) fn add<T: DeserializeOwned + Send + Sync + 'static>(&mut self, name: &str) {
        self.0
            .insert(name.to_owned(), (decode::<T>, type_name::<T>()));
    }

    pub(crate) fn get(&self, name: &str) -> Option<Decoder> {
        self.0.get(name).map(|(decoder, _)| *decoder)
    }
}

fn decode<T: DeserializeOwned + Send + Sync + 'static>(
    name: &str,
    json: &str,
) -> Result<Arc<AnyEvent>, serde_json::Error> {
    let payload: T = serde_json::from_str(json)?;
    Ok(Arc::new(NamedPayload {
        name: name.to_owned(),
        payload,
    }))
}

/// A named event read from the outbox: its name and its decoded payload, as
/// `emit_named` would have made it in this process.
struct NamedPayload<T> {
    name: String,
    payload: T,
}

impl<T: Send + Sync + 'static> EventObject for NamedPayload<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn payload(&self) -> &(dyn Any + Send + Sync) {
        &self.payload
    }

    fn payload_type_name(&self) -> &'static str {
        type_name::<T>()
    }

    fn fmt_event(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, type_name::<T>())
    }
}
