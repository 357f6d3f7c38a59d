//! JSON payloads: every value that crosses into the journal goes through here.
//!
//! One place for encoding keeps the rules uniform. A value that cannot be encoded, or a recorded
//! payload that does not decode into the requested type, becomes an [`Error`] of type
//! [`Error::PAYLOAD_ENCODE`] / [`Error::PAYLOAD_DECODE`], never a panic.
//!
//! Floats: `serde_json` writes every NaN and infinity as `null`, so whatever bits a NaN carries
//! never reach the journal (the canonical form is `null`). Decoding that `null` back into an `f64`
//! fails with [`Error::PAYLOAD_DECODE`], so a NaN result surfaces as a clear error, and the same one
//! on the first run and on replay, because callers always decode what was recorded.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Error, Serdes};

/// Encodes `value` as a JSON document.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|err| Error::payload_encode(&err))
}

/// Decodes a JSON document into `T`.
pub(crate) fn decode<T: DeserializeOwned>(payload: &str) -> Result<T, Error> {
    serde_json::from_str(payload).map_err(|err| Error::payload_decode(&err))
}

/// Encodes `value` as the text `serdes` renders its JSON form as (as JSON without one).
pub(crate) fn encode_with<T: Serialize + ?Sized>(
    value: &T,
    serdes: Option<&dyn Serdes>,
) -> Result<String, Error> {
    match serdes {
        None => encode(value),
        Some(serdes) => {
            let json = serde_json::to_value(value).map_err(|err| Error::payload_encode(&err))?;
            serdes.serialize(&json)
        }
    }
}

/// Decodes `text`, recorded by `serdes` (JSON without one), into `T`.
pub(crate) fn decode_with<T: DeserializeOwned>(
    text: &str,
    serdes: Option<&dyn Serdes>,
) -> Result<T, Error> {
    match serdes {
        None => decode(text),
        Some(serdes) => serde_json::from_value(serdes.deserialize(text)?)
            .map_err(|err| Error::payload_decode(&err)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn round_trips_a_value() {
        let text = encode(&vec![1, 2, 3]).unwrap();
        assert_eq!(decode::<Vec<i32>>(&text).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn unit_is_null() {
        assert_eq!(encode(&()).unwrap(), "null");
        decode::<()>("null").unwrap();
    }

    #[test]
    fn nan_is_canonical_and_decodes_to_a_clear_error() {
        let nan_a = f64::NAN;
        let nan_b = f64::from_bits(f64::NAN.to_bits() ^ 1);
        assert_eq!(encode(&nan_a).unwrap(), "null");
        assert_eq!(encode(&nan_b).unwrap(), "null");
        let err = decode::<f64>("null").unwrap_err();
        assert_eq!(err.error_type, Error::PAYLOAD_DECODE);
    }

    #[test]
    fn malformed_payload_is_a_decode_error() {
        let err = decode::<u64>("{not json").unwrap_err();
        assert_eq!(err.error_type, Error::PAYLOAD_DECODE);
    }

    #[test]
    fn unencodable_value_is_an_encode_error() {
        let mut map = BTreeMap::new();
        map.insert(vec![1u8], 1);
        let err = encode(&map).unwrap_err();
        assert_eq!(err.error_type, Error::PAYLOAD_ENCODE);
    }
}
