//! JSON read the one way every reader reads it, or refused: an object that
//! names a member twice is refused, at any depth.
//!
//! serde_json keeps the last of two members of one name; Go's
//! `encoding/json`, which runsc and runc read config.json with, decodes
//! both into the same struct, so that fields only the first one holds
//! survive. A config.json with `"process"` twice would be hashed and
//! checked by nucleus as one process and run by the runtime as another.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON document, refusing duplicate member names.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let Strict(value) = serde_json::from_slice(bytes)?;
    Ok(value)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(n.into())))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Strict, E> {
        Ok(Strict(Number::from_f64(n).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Strict, D::Error> {
        Strict::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(format_args!("the member {name:?} is named twice in one object")));
            }
            let Strict(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Strict(Value::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = br#"{"a":[1,-2,18446744073709551615,1.5,true,null,"\u00e9"],"b":{"c":{}}}"#;
        assert_eq!(from_slice(text).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
    }

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        for text in [
            &br#"{"process":{"user":{"additionalGids":[0]}},"process":{}}"#[..],
            br#"{"linux":{"sysctl":{"a":"1","a":"2"}}}"#,
            br#"[{"x":1,"y":2,"x":1}]"#,
            br#"{"mounts":[],"mo\u0075nts":[]}"#,
        ] {
            let err = from_slice(text).unwrap_err();
            assert!(err.to_string().contains("named twice"), "{err}");
        }
    }
}
