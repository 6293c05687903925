//! JSON shapes the derive does not check: a nested struct must be a JSON object, not an
//! array that serde would also accept field by field.

/// A JSON object deserialized as `T`, and only an object: serde's derive also fills a
/// struct from an array, field by field in order, which the documented schema does not
/// allow. The fields are read from the original map, so error paths stay whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Visit(std::marker::PhantomData))
            .map(Object)
    }
}

/// `#[serde(deserialize_with = "object")]`: a nested struct that must be a JSON object.
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(|Object(value)| value)
}

/// As [`object`], for an optional field (`null` is none); pair it with `#[serde(default)]`.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let value: Option<Object<T>> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.map(|Object(value)| value))
}

/// As [`object`], for an array of structs.
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let values: Vec<Object<T>> = serde::Deserialize::deserialize(deserializer)?;
    Ok(values.into_iter().map(|Object(value)| value).collect())
}
