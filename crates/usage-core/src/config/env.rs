//! `USAGE_<SECTION>__<KEY>` environment variables: the provider, and the check
//! that no such variable names a section that does not exist.

use super::{suggest, ConfigError};
use figment::providers::Env;

/// Config sections environment variables may set.
const ENV_SECTIONS: [&str; 4] = ["pipeline__", "spool__", "exporters__", "gateway__"];

/// The `USAGE_` environment provider: `USAGE_<SECTION>__<KEY>...` (`__` separates
/// levels). Only the config sections are read, so other `USAGE_*` variables
/// (`USAGE_CONFIG`, `USAGE_LOG`, `USAGE_CLOCK`, a tool's own) are not mistaken for keys.
pub fn env_provider() -> Env {
    Env::prefixed("USAGE_")
        .filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            ENV_SECTIONS.iter().any(|s| k.starts_with(s))
        })
        .split("__")
}

/// A `USAGE_<SECTION>__...` variable whose section does not exist would be ignored
/// by [`env_provider`]; it is a misspelt key, so it is an error naming it.
pub(super) fn check_env_sections(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<(), ConfigError> {
    for (name, _) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("USAGE_") else {
            continue;
        };
        let Some((section, _)) = rest.split_once("__") else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        let known = ENV_SECTIONS.map(|s| s.trim_end_matches("__"));
        if !known.contains(&section.as_str()) {
            return Err(ConfigError::msg(format!(
                "environment variable {name}: `{section}` is not a config section ({}){}",
                known.join(", "),
                suggest::hint(&section, known)
            )));
        }
    }
    Ok(())
}
