//! Serdes: the text an operation's value is recorded as, when it is not to be JSON (AWS's
//! serdes).
//!
//! Every value the SDK records goes through serde into its JSON form. By default that JSON is
//! the recorded text; a [`Serdes`] renders the JSON form as a text of its own instead, and reads
//! that text back into the JSON form, which serde then decodes into the operation's type. The
//! host records an operation's result as given (it is the guest's text), and hands it back as
//! given on replay, so the serdes sees exactly what it wrote. Child contexts take one
//! ([`Ctx::child_with`](crate::Ctx::child_with)), and batches one for each item and one for the
//! whole result ([`BatchConfig::item_serdes`](crate::BatchConfig::item_serdes),
//! [`BatchConfig::serdes`](crate::BatchConfig::serdes)).

use std::rc::Rc;

use serde_json::Value;

use crate::Error;

/// Renders a value's JSON form as the text recorded for it, and reads it back.
///
/// `deserialize(serialize(v))` must give `v` back: a replay decodes what was recorded, so a
/// serdes that loses information makes the replay see another value than the first run did.
pub trait Serdes {
    /// The text to record for `value` (the value's JSON form).
    ///
    /// # Errors
    /// When the value cannot be rendered; the operation then fails with this error.
    fn serialize(&self, value: &Value) -> Result<String, Error>;

    /// The JSON form of the value recorded as `text`.
    ///
    /// # Errors
    /// When the text cannot be read; the operation then fails with this error.
    fn deserialize(&self, text: &str) -> Result<Value, Error>;
}

/// A [`Serdes`] made of two functions.
struct Functions<S, D> {
    serialize: S,
    deserialize: D,
}

impl<S, D> Serdes for Functions<S, D>
where
    S: Fn(&Value) -> Result<String, Error>,
    D: Fn(&str) -> Result<Value, Error>,
{
    fn serialize(&self, value: &Value) -> Result<String, Error> {
        (self.serialize)(value)
    }

    fn deserialize(&self, text: &str) -> Result<Value, Error> {
        (self.deserialize)(text)
    }
}

/// A [`Serdes`] from its two directions.
///
/// ```
/// use aegis_sdk::{Error, serdes};
/// use serde_json::Value;
///
/// // Strings recorded in upper case, without JSON's quotes.
/// let upper = serdes(
///     |value: &Value| Ok(value.as_str().unwrap_or_default().to_uppercase()),
///     |text: &str| Ok(Value::String(text.to_owned())),
/// );
/// assert_eq!(upper.serialize(&Value::from("hi")).unwrap(), "HI");
/// # let _: Result<(), Error> = Ok(());
/// ```
pub fn serdes(
    serialize: impl Fn(&Value) -> Result<String, Error> + 'static,
    deserialize: impl Fn(&str) -> Result<Value, Error> + 'static,
) -> Rc<dyn Serdes> {
    Rc::new(Functions {
        serialize,
        deserialize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    fn wrapped() -> Rc<dyn Serdes> {
        serdes(
            |value| Ok(format!("wrapped:{}", value.as_str().unwrap_or_default())),
            |text| {
                text.strip_prefix("wrapped:")
                    .map(|s| Value::String(s.to_owned()))
                    .ok_or_else(|| Error::new("Test.Serdes", format!("not wrapped: {text}")))
            },
        )
    }

    #[test]
    fn a_value_is_recorded_as_its_serdes_renders_it_and_read_back() {
        let serdes = wrapped();
        let text = payload::encode_with(&"X", Some(&*serdes)).unwrap();
        assert_eq!(text, "wrapped:X");
        let back: String = payload::decode_with(&text, Some(&*serdes)).unwrap();
        assert_eq!(back, "X");
        // Without one, JSON.
        assert_eq!(payload::encode_with(&"X", None).unwrap(), "\"X\"");
    }

    #[test]
    fn a_serdes_error_is_the_operation_s_error_and_a_mismatch_a_decode_error() {
        let serdes = wrapped();
        let error = payload::decode_with::<String>("plain", Some(&*serdes)).unwrap_err();
        assert_eq!(error.error_type, "Test.Serdes");
        let error = payload::decode_with::<u32>("wrapped:X", Some(&*serdes)).unwrap_err();
        assert_eq!(error.error_type, Error::PAYLOAD_DECODE);
    }
}
