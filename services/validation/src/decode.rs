//! Decoding one YAML or JSON document into a JSON value as kubectl's strict decoding does:
//! a key repeated in one mapping is an error (which of the two would win is an accident of the
//! decoder), unless the run is not strict, where the last one wins as in kubectl's lax mode.
//! Depth is checked before YAML reaches serde_yaml (`nesting`; serde_json bounds JSON itself
//! at 128 levels) and alias expansion by serde_yaml (it refuses "billion laughs" repetition);
//! those errors carry positions too.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// YAML's merge key.
const MERGE_KEY: &str = "<<";

/// A seed that builds a [`Value`], refusing duplicate keys when `strict`.
#[derive(Clone, Copy)]
pub struct StrictValue {
    pub strict: bool,
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // kubectl's YAML-to-JSON step writes a whole float as an integer (`port: 80.0` is sent
        // as 80), so integer fields accept it.
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            return Ok(Value::Number((v as i64).into()));
        }
        // JSON has no NaN or infinity; YAML's `.nan` and `.inf` cannot reach the API server.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a number JSON can carry")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut merged = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            // YAML merge keys (`<<: *defaults`), which kubectl's YAML decoder applies: the
            // merged mappings fill in the keys the mapping does not set itself.
            if key == MERGE_KEY {
                match value {
                    Value::Object(m) => merged.push(m),
                    Value::Array(items) if items.iter().all(Value::is_object) => {
                        merged.extend(items.into_iter().filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        }));
                    }
                    _ => {
                        return Err(de::Error::custom(
                            "a merge key (<<) must name a mapping or a list of mappings",
                        ));
                    }
                }
                continue;
            }
            if out.contains_key(&key) && self.strict {
                return Err(de::Error::custom(format!(
                    "duplicate key `{key}` in the mapping that starts here (kubectl refuses it; --no-strict keeps the last)"
                )));
            }
            out.insert(key, value);
        }
        // Earlier merged mappings win over later ones, as in YAML's merge-key rules.
        for m in merged {
            for (key, value) in m {
                out.entry(key).or_insert(value);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn yaml(text: &str, strict: bool) -> Result<Value, serde_yaml::Error> {
        let doc = serde_yaml::Deserializer::from_str(text).next().unwrap();
        StrictValue { strict }.deserialize(doc)
    }

    #[test]
    fn duplicate_keys_are_errors_with_a_position_unless_lax() {
        let text = "a: 1\nb:\n  c: 1\n  c: 2\n";
        let e = yaml(text, true).unwrap_err();
        assert!(e.to_string().contains("duplicate key `c`"), "{e}");
        let at = e.location().expect("a position");
        assert_eq!(
            (at.line(), at.column()),
            (3, 3),
            "the mapping holding it: {e}"
        );
        assert_eq!(yaml(text, false).unwrap()["b"]["c"], 2);
    }

    #[test]
    fn merge_keys_fill_in_and_whole_floats_are_integers() {
        let v = yaml(
            "base: &b {a: 1, b: 2}\nmore: &m {c: 3}\nx:\n  <<: [*b, *m]\n  b: 20\nport: 80.0\nratio: 0.5\n",
            true,
        )
        .unwrap();
        assert_eq!(v["x"], serde_json::json!({"a": 1, "b": 20, "c": 3}));
        assert_eq!(v["port"], serde_json::json!(80));
        assert!(v["port"].is_i64());
        assert_eq!(v["ratio"], serde_json::json!(0.5));
        let e = yaml("x:\n  <<: 3\n", true).unwrap_err();
        assert!(e.to_string().contains("merge key"), "{e}");
    }

    #[test]
    fn json_duplicates_are_refused_too() {
        let mut d = serde_json::Deserializer::from_str(r#"{"a": 1, "a": 2}"#);
        let e = StrictValue { strict: true }
            .deserialize(&mut d)
            .unwrap_err();
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");
        assert_eq!(e.line(), 1);
    }

    #[test]
    fn values_keep_their_types() {
        let v = yaml("n: 1\nf: 1.5\nb: true\ns: x\nnil: null\nl: [1, a]\n", true).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"n": 1, "f": 1.5, "b": true, "s": "x", "nil": null, "l": [1, "a"]})
        );
        assert!(yaml("x: .nan\n", true).is_err(), "NaN is not JSON");
        // Plain values deserialize the same as serde_json's own Value would.
        let plain = Value::deserialize(
            serde_yaml::Deserializer::from_str("a: [1]\n")
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(plain, yaml("a: [1]\n", true).unwrap());
    }
}
