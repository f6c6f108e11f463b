//! How typed events cross a process: the JSON codec of each event type that
//! derives `Serialize` and `Deserialize`, registered by `#[derive(Event)]`.

use std::any::{TypeId, type_name};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AnyEvent, Error, Event};

/// Encodes and decodes one event type as JSON.
#[derive(Clone, Copy)]
#[doc(hidden)]
pub struct Codec {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    encode: fn(&AnyEvent) -> Option<serde_json::Result<String>>,
    decode: fn(&str) -> serde_json::Result<Arc<AnyEvent>>,
}

impl Codec {
    fn of<E: Event + Serialize + DeserializeOwned>() -> Self {
        Codec {
            name: E::NAME,
            type_id: TypeId::of::<E>(),
            type_name: type_name::<E>(),
            encode: |event| event.downcast_ref::<E>().map(serde_json::to_string),
            decode: |json| {
                serde_json::from_str::<E>(json).map(|event| Arc::new(event) as Arc<AnyEvent>)
            },
        }
    }
}

/// A link-time registration of `#[derive(Event)]`: the codec of its type, when
/// the type derives `Serialize` and `Deserialize`.
#[doc(hidden)]
pub struct CodecRegistration {
    pub codec: fn() -> Option<Codec>,
}

inventory::collect!(CodecRegistration);

/// Picks an event type's codec by autoref specialization: `(&&Probe::<E>::new()).codec()`
/// resolves to [`ViaSerde`] when `E` derives serde's traits, to [`ViaNothing`]
/// otherwise. Used by the code `#[derive(Event)]` generates.
#[doc(hidden)]
pub struct Probe<E>(PhantomData<fn() -> E>);

impl<E> Probe<E> {
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<E> Default for Probe<E> {
    fn default() -> Self {
        Self::new()
    }
}

#[doc(hidden)]
pub trait ViaSerde {
    fn codec(&self) -> Option<Codec>;
}

impl<E: Event + Serialize + DeserializeOwned> ViaSerde for &Probe<E> {
    fn codec(&self) -> Option<Codec> {
        Some(Codec::of::<E>())
    }
}

#[doc(hidden)]
pub trait ViaNothing {
    fn codec(&self) -> Option<Codec>;
}

impl<E> ViaNothing for Probe<E> {
    fn codec(&self) -> Option<Codec> {
        None
    }
}

struct Codecs {
    by_type: HashMap<TypeId, Codec>,
    by_name: HashMap<&'static str, Codec>,
    /// Names claimed by two serializable types: they cannot be decoded.
    conflicts: HashMap<&'static str, (&'static str, &'static str)>,
}

fn codecs() -> &'static Codecs {
    static CODECS: OnceLock<Codecs> = OnceLock::new();
    CODECS.get_or_init(|| {
        let mut codecs = Codecs {
            by_type: HashMap::new(),
            by_name: HashMap::new(),
            conflicts: HashMap::new(),
        };
        for registration in inventory::iter::<CodecRegistration> {
            let Some(codec) = (registration.codec)() else {
                continue;
            };
            codecs.by_type.insert(codec.type_id, codec);
            if let Some(first) = codecs.by_name.insert(codec.name, codec)
                && first.type_id != codec.type_id
            {
                codecs
                    .conflicts
                    .insert(codec.name, (first.type_name, codec.type_name));
            }
        }
        codecs
    })
}

/// The event as JSON, or why it cannot cross a process.
///
/// # Errors
///
/// [`Error::NotSerializable`] for a named event, or a typed event that does not
/// derive `Serialize` and `Deserialize`; [`Error::Encode`] if serde fails.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::encode;
/// use pyventus_core::{Error, Event};
///
/// // Without `Serialize` and `Deserialize`, an event stays in its process.
/// #[derive(Debug)]
/// struct Local;
/// impl Event for Local {
///     const NAME: &'static str = "Local";
/// }
/// assert!(matches!(encode(&Local), Err(Error::NotSerializable { .. })));
/// ```
pub fn encode(event: &AnyEvent) -> Result<String, Error> {
    let codec = codecs().by_type.get(&event.payload().type_id());
    let not_serializable = || Error::NotSerializable {
        event: event.name().to_owned(),
        type_name: event.payload_type_name(),
    };
    // A named event is its payload under a name: only typed events carry a
    // type the worker can decode by name.
    match codec.filter(|c| c.name == event.name()) {
        Some(codec) => match (codec.encode)(event) {
            Some(Ok(json)) => Ok(json),
            Some(Err(err)) => Err(Error::Encode {
                event: event.name().to_owned(),
                reason: err.to_string(),
            }),
            None => Err(not_serializable()),
        },
        None => Err(not_serializable()),
    }
}

/// Why a payload could not become an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No type of that name derives `Event` and `Deserialize` in this process.
    #[error(
        "unknown event `{0}`: no type of this name derives `Event`, `Serialize` and `Deserialize` in this process"
    )]
    Unknown(String),
    /// Two types claim the name in this process.
    #[error("ambiguous event `{name}`: both `{first}` and `{second}` claim this name")]
    Ambiguous {
        /// The event's name.
        name: String,
        /// One type.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// The payload is not what the type expects.
    #[error("malformed payload: {source} (event `{event}`)")]
    Malformed {
        /// The event's name.
        event: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// The event named `name` with this JSON payload, decoded by the codec of the
/// type that derives `Event` with that name.
///
/// # Errors
///
/// [`DecodeError`]: no such type, two such types, or a payload it cannot take.
///
/// # Examples
///
/// ```
/// use pyventus_core::remote::{DecodeError, decode};
///
/// assert!(matches!(decode("NoSuchEvent", "{}"), Err(DecodeError::Unknown(_))));
/// ```
pub fn decode(name: &str, payload: &str) -> Result<Arc<AnyEvent>, DecodeError> {
    let codecs = codecs();
    if let Some((first, second)) = codecs.conflicts.get(name) {
        return Err(DecodeError::Ambiguous {
            name: name.to_owned(),
            first,
            second,
        });
    }
    let codec = codecs
        .by_name
        .get(name)
        .ok_or_else(|| DecodeError::Unknown(name.to_owned()))?;
    (codec.decode)(payload).map_err(|source| DecodeError::Malformed {
        event: name.to_owned(),
        source,
    })
}
