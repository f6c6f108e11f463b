//! Requests answered by a worker in another process: the answer's codec
//! (JSON, written by `#[derive(Request)]` for a request declared `remote`,
//! whose response and error types must then derive `Serialize` and
//! `Deserialize`), the slot a worker's responder
//! leaves its encoded answer in, and the caller's half, which sends the
//! request through its broker's [`RemoteRequests`](crate::remote::RemoteRequests).
//!
//! An answer on the wire is serde's externally tagged form of [`Wire`]:
//! `{"Ok": response}`, `{"Responder": error}`, `{"Panicked": "message"}`,
//! `"NoResponder"`.

use crate::request::{Answer, Request};

/// Encodes and decodes the answers of the request `R`. Not public API: what
/// `#[derive(Request)]` registers.
#[doc(hidden)]
pub struct AnswerCodec<R: Request> {
    pub(crate) encode: fn(Answer<R>) -> String,
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) decode: fn(&str) -> Option<Answer<R>>,
}

impl<R: Request> Clone for AnswerCodec<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: Request> Copy for AnswerCodec<R> {}

#[cfg(feature = "serde")]
pub(crate) use wire::decode_or_malformed;
#[cfg(feature = "serde")]
#[doc(hidden)]
pub use wire::{CrossesProcess, answer_codec, infallible_answer_codec};

#[cfg(feature = "serde")]
mod wire {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::AnswerCodec;
    use crate::HandlerPanic;
    use crate::request::{Answer, Request, RequestError};

    /// An answer as it crosses a process.
    #[derive(Serialize, Deserialize)]
    pub(crate) enum Wire<T, E> {
        Ok(T),
        Responder(E),
        Panicked(String),
        NoResponder,
    }

    fn to_wire<T, E>(name: &'static str, answer: Result<T, RequestError<E>>) -> Wire<T, E> {
        match answer {
            Ok(response) => Wire::Ok(response),
            Err(RequestError::Responder { error, .. }) => Wire::Responder(error),
            Err(RequestError::Panicked { panic, .. }) => Wire::Panicked(panic.message().to_owned()),
            // A responder answers with its value, its error or its panic.
            Err(_) => Wire::Panicked(format!("the responder of `{name}` gave no answer")),
        }
    }

    fn from_wire<R: Request>(wire: Wire<R::Response, R::Error>) -> Answer<R> {
        let request = R::NAME;
        match wire {
            Wire::Ok(response) => Ok(response),
            Wire::Responder(error) => Err(RequestError::Responder { request, error }),
            Wire::Panicked(message) => Err(RequestError::Panicked {
                request,
                panic: HandlerPanic::from_message(message),
            }),
            Wire::NoResponder => Err(RequestError::NoResponder { request }),
        }
    }

    pub(super) fn json<T: Serialize>(wire: &T) -> String {
        serde_json::to_string(wire).unwrap_or_else(|err| {
            serde_json::to_string(&Wire::<(), ()>::Panicked(format!(
                "the worker could not encode the answer: {err}"
            )))
            .unwrap_or_default()
        })
    }

    /// Decodes an answer, or says why it could not.
    pub(crate) fn decode_or_malformed<R: Request>(
        codec: AnswerCodec<R>,
        answer: &str,
    ) -> Answer<R> {
        (codec.decode)(answer).unwrap_or_else(|| {
            Err(RequestError::Panicked {
                request: R::NAME,
                panic: HandlerPanic::from_message(format!(
                    "the worker's answer is not one of `{}`: {answer}",
                    R::NAME
                )),
            })
        })
    }

    /// What the response and error of a `remote` request must be: types
    /// that derive `Serialize` and `Deserialize` (and own their data). Not
    /// public API: named in the errors of `#[derive(Request)]`.
    #[doc(hidden)]
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot cross a process, and a `remote` request's answers do",
        label = "not `Serialize` and `DeserializeOwned`",
        note = "derive `Serialize` and `Deserialize` on it (with owned fields: `String`, not `&str`), or drop `remote` from `#[request(...)]`"
    )]
    pub trait CrossesProcess: Serialize + DeserializeOwned {}

    impl<T: Serialize + DeserializeOwned> CrossesProcess for T {}

    /// The answer codec of a `remote` request. Not public API: what
    /// `#[derive(Request)]` writes for `#[request(..., remote)]`.
    #[doc(hidden)]
    pub fn answer_codec<R>() -> AnswerCodec<R>
    where
        R: Request,
        R::Response: CrossesProcess,
        R::Error: CrossesProcess,
    {
        AnswerCodec {
            encode: |answer| json(&to_wire(R::NAME, answer)),
            decode: |text| serde_json::from_str(text).ok().map(from_wire::<R>),
        }
    }

    /// The answer codec of a `remote` request whose error is `Infallible`
    /// (which serde does not encode). Not public API.
    #[doc(hidden)]
    pub fn infallible_answer_codec<R>() -> AnswerCodec<R>
    where
        R: Request<Error = std::convert::Infallible>,
        R::Response: CrossesProcess,
    {
        AnswerCodec {
            encode: |answer| {
                let answer = answer.map_err(|err| match err {
                    RequestError::Panicked { request, panic } => {
                        RequestError::Panicked { request, panic }
                    }
                    _ => RequestError::Dropped { request: R::NAME },
                });
                json(&to_wire::<_, ()>(R::NAME, answer))
            },
            decode: |text| {
                let wire: Wire<R::Response, ()> = serde_json::from_str(text).ok()?;
                match wire {
                    Wire::Ok(response) => Some(Ok(response)),
                    Wire::Responder(()) => None,
                    Wire::Panicked(message) => Some(from_wire::<R>(Wire::Panicked(message))),
                    Wire::NoResponder => Some(from_wire::<R>(Wire::NoResponder)),
                }
            },
        }
    }
}

/// Asks a worker in another process, through the emitter's broker: the
/// request goes out in an envelope with a reply address, and its answer
/// comes back there within `timeout`.
#[cfg(feature = "serde")]
pub(crate) async fn ask<R: Request>(
    emitter: &crate::EventEmitter,
    request: R,
    timeout: std::time::Duration,
) -> Answer<R> {
    use crate::request::RequestError;
    let name = R::NAME;
    let (Some(codec), Some(requests)) = (R::__pyventus_answer_codec(), emitter.remote_requests())
    else {
        return Err(RequestError::Remote { request: name });
    };
    let emit = |source| RequestError::Emit {
        request: name,
        source,
    };
    let payload = crate::remote::encode(&request).map_err(emit)?;
    let mut envelope = crate::remote::Envelope::new(name, payload);
    // Past it nobody waits: a worker that takes the request later sends nothing.
    let by = std::time::SystemTime::now() + timeout;
    envelope.context.insert(
        crate::remote::REPLY_BY.to_owned(),
        crate::remote::millis(by).to_string(),
    );
    // The worker's delivery span continues the caller's trace.
    #[cfg(feature = "opentelemetry")]
    crate::remote::trace::inject_current(&mut envelope);
    match requests.ask(envelope, timeout).await.map_err(emit)? {
        Some(answer) => decode_or_malformed(codec, &answer),
        None => Err(RequestError::Timeout {
            request: name,
            timeout,
        }),
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use crate::lifecycle::answer::RemoteAnswer;

    #[test]
    fn the_no_responder_answer_a_worker_sends_is_the_wires() {
        assert_eq!(
            super::wire::json(&super::wire::Wire::<(), ()>::NoResponder),
            RemoteAnswer::NO_RESPONDER
        );
    }
}
