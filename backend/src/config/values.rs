//! How one configuration value is read: each is parsed here, once, into the type the
//! rest of the backend uses. Lists come as comma-separated text (the environment's form)
//! or as YAML sequences; an empty secret or URL means "unset", as it does for the legacy.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::{FUNCTIONS, ShadowProviderMode};
use crate::ai_types::{AiUse, ChainEntry};
use crate::client_address::TrustedProxies;

/// A list as the environment spells it (`a, b`) or as YAML does (`[a, b]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrList {
    Text(String),
    List(Vec<String>),
}

impl TextOrList {
    /// The items, trimmed, empty ones dropped.
    fn items(self) -> Vec<String> {
        let items: Vec<String> = match self {
            TextOrList::Text(text) => text.split(',').map(str::to_owned).collect(),
            TextOrList::List(list) => list,
        };
        items
            .into_iter()
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    }
}

/// A comma-separated (or YAML) list of strings.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(TextOrList::deserialize(deserializer)?.items())
}

/// A secret; empty means unset.
pub fn optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.filter(|text| !text.is_empty()).map(SecretString::from))
}

/// An `http(s)` URL with a host; empty means unset.
pub fn optional_http_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<url::Url>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(Some(url))
        }
        _ => Err(D::Error::custom(format!("`{text}` is not an http(s) URL"))),
    }
}

/// Addresses and CIDR ranges of trusted proxies.
pub fn trusted_proxies<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<TrustedProxies, D::Error> {
    let items = TextOrList::deserialize(deserializer)?.items();
    TrustedProxies::parse(&items.join(",")).map_err(D::Error::custom)
}

/// Plain `public` table names (lower-case letters, digits, `_`).
pub fn table_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let tables = TextOrList::deserialize(deserializer)?.items();
    if let Some(bad) = tables.iter().find(|table| {
        !table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }) {
        return Err(D::Error::custom(format!(
            "`{bad}` is not a plain table name"
        )));
    }
    Ok(tables)
}

/// Provider chains per use: `provider[:model]` items, tried in order.
pub fn chains<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<AiUse, Vec<ChainEntry>>, D::Error> {
    let texts = BTreeMap::<AiUse, TextOrList>::deserialize(deserializer)?;
    let mut chains = BTreeMap::new();
    for (ai_use, text) in texts {
        let chain = ChainEntry::parse_list(&text.items().join(","))
            .map_err(|why| D::Error::custom(format!("{}: {why}", ai_use.config_key())))?;
        chains.insert(ai_use, chain);
    }
    Ok(chains)
}

/// Per-function shadow provider modes: `function=mode, …` or a YAML map.
pub fn shadow_overrides<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, ShadowProviderMode>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Overrides {
        Text(String),
        Map(BTreeMap<String, String>),
    }
    let pairs: Vec<(String, String)> = match Overrides::deserialize(deserializer)? {
        Overrides::Map(map) => map.into_iter().collect(),
        Overrides::Text(text) => TextOrList::Text(text)
            .items()
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((function, mode)) => Ok((function.trim().to_owned(), mode.trim().to_owned())),
                None => Err(D::Error::custom(format!("`{item}` is not function=mode"))),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut modes = BTreeMap::new();
    for (function, mode) in pairs {
        if !FUNCTIONS.contains(&function.as_str()) {
            return Err(D::Error::custom(format!("unknown function `{function}`")));
        }
        let mode = match mode.as_str() {
            "live" => ShadowProviderMode::Live,
            "skip" => ShadowProviderMode::Skip,
            other => {
                return Err(D::Error::custom(format!(
                    "mode `{other}` is neither live nor skip"
                )));
            }
        };
        modes.insert(function, mode);
    }
    Ok(modes)
}
