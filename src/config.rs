//! Bootstrap configuration (where the data dir is) and the admin settings kept in the store.
//!
//! Owns: the list of settings with their defaults and validation (one table drives the
//! CLI today and the admin form later), and data-dir resolution.
//! Must not: hold globals; settings are loaded into a `Settings` value and passed along.

use crate::store::{Reader, StoreError, Tx};
use std::path::PathBuf;

/// One admin setting: its key, default, help text and validator.
pub struct SettingDef {
    pub key: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    pub validate: fn(&str) -> Result<(), String>,
}

fn validate_tag_prefix(v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().count() > 20 {
        return Err("must be 1 to 20 characters".into());
    }
    if v.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '[' | ']') || c.is_ascii_digit()
    }) {
        return Err("must not contain spaces, brackets or digits".into());
    }
    Ok(())
}

fn validate_retention(v: &str) -> Result<(), String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=3650).contains(&n) => Ok(()),
        _ => Err("must be a number of days from 1 to 3650".into()),
    }
}

fn validate_site_name(v: &str) -> Result<(), String> {
    if v.trim().is_empty() || v.chars().count() > 60 || v.chars().any(char::is_control) {
        return Err("must be 1 to 60 characters, without control characters".into());
    }
    Ok(())
}

fn validate_message_mb(v: &str) -> Result<(), String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(()),
        _ => Err("must be a number of megabytes from 1 to 1024".into()),
    }
}

fn validate_time_zone(v: &str) -> Result<(), String> {
    crate::timezone::TimeZone::named(v, std::path::Path::new(crate::timezone::ZONEINFO)).map(drop)
}

/// Every setting there is.
fn validate_recipients(v: &str) -> Result<(), String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => Ok(()),
        _ => Err("must be a number from 1 to 100".into()),
    }
}

fn validate_web_url(v: &str) -> Result<(), String> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host = rest.trim_end_matches('/');
    if host.is_empty()
        || host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err("must be https://HOST or https://HOST:PORT, nothing after the host".into());
    }
    Ok(())
}

pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "subject_tag_prefix",
        default: "#",
        help: "what stands before the conversation number in subject tags: \"#\" gives [#1234], \"Ticket#\" gives [Ticket#1234]",
        validate: validate_tag_prefix,
    },
    SettingDef {
        key: "comm_log_retention_days",
        default: "30",
        help: "how many days the communication log keeps its entries (mail itself is never removed by this)",
        validate: validate_retention,
    },
    SettingDef {
        key: "max_recipients",
        default: "10",
        help: "most recipients (To, Cc and BCC together) one message may have: a guard against bulk sending",
        validate: validate_recipients,
    },
    SettingDef {
        key: "site_name",
        default: "Postroom",
        help: "the name of this helpdesk, shown in the browser's title bar and at the top of every page",
        validate: validate_site_name,
    },
    SettingDef {
        key: "max_message_mb",
        default: "25",
        help: "the size limit of new mail accounts in megabytes: larger messages stay on the server and are reported (each account can change its own)",
        validate: validate_message_mb,
    },
    SettingDef {
        key: "time_zone",
        default: "UTC",
        help: "the time zone times are shown in: UTC, an offset like +01:00, or a name like Europe/Paris",
        validate: validate_time_zone,
    },
    SettingDef {
        key: "web_url",
        default: "https://postroom.local",
        help: "the address of the web UI as the team reaches it: links in notification mails point there",
        validate: validate_web_url,
    },
];

/// A setting could not be changed.
#[derive(Debug)]
pub enum SettingError {
    Unknown(String),
    Invalid {
        key: String,
        value: String,
        why: String,
    },
    Store(StoreError),
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingError::Unknown(k) => {
                let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
                write!(
                    f,
                    "there is no setting {k:?}; known settings: {}",
                    known.join(", ")
                )
            }
            SettingError::Invalid { key, value, why } => {
                write!(f, "{key} cannot be {value:?}: it {why}")
            }
            SettingError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SettingError {}

impl From<StoreError> for SettingError {
    fn from(e: StoreError) -> Self {
        SettingError::Store(e)
    }
}

pub fn setting_def(key: &str) -> Result<&'static SettingDef, SettingError> {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .ok_or_else(|| SettingError::Unknown(key.to_owned()))
}

/// Validates and stores a setting.
pub fn set(tx: &mut Tx<'_>, key: &str, value: &str) -> Result<(), SettingError> {
    let def = setting_def(key)?;
    (def.validate)(value).map_err(|why| SettingError::Invalid {
        key: key.into(),
        value: value.into(),
        why,
    })?;
    if value == def.default {
        tx.remove_setting(key)?;
    } else {
        tx.set_setting(key, value)?;
    }
    Ok(())
}

/// The settings the pipeline needs, loaded once per run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub subject_tag_prefix: String,
    pub comm_log_retention_days: u32,
    pub max_recipients: u32,
    pub site_name: String,
    /// The size limit new mail accounts start with, in bytes.
    pub max_message_bytes: u64,
    /// The name of the time zone times are shown in.
    pub time_zone: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            subject_tag_prefix: "#".into(),
            comm_log_retention_days: 30,
            max_recipients: 10,
            site_name: "Postroom".into(),
            max_message_bytes: 25 << 20,
            time_zone: "UTC".into(),
        }
    }
}

impl Settings {
    /// Loads from the store; a stored value that no longer validates falls back to the
    /// default with a warning in the log.
    pub fn load(r: &Reader) -> Result<Settings, StoreError> {
        let get = |key: &str| -> Result<String, StoreError> {
            let def = setting_def(key).map_err(|_| StoreError::NotFound {
                what: "setting",
                id: 0,
            })?;
            Ok(match r.setting(key)? {
                Some(v) if (def.validate)(&v).is_ok() => v,
                Some(v) => {
                    log::warn!(
                        "setting {key} has the invalid value {v:?}; using the default {:?}",
                        def.default
                    );
                    def.default.to_owned()
                }
                None => def.default.to_owned(),
            })
        };
        Ok(Settings {
            subject_tag_prefix: get("subject_tag_prefix")?,
            comm_log_retention_days: get("comm_log_retention_days")?.parse().unwrap_or(30),
            max_recipients: get("max_recipients")?.parse().unwrap_or(10),
            site_name: get("site_name")?,
            time_zone: get("time_zone")?,
            max_message_bytes: u64::from(get("max_message_mb")?.parse::<u32>().unwrap_or(25)) << 20,
        })
    }
}

/// Where the data lives: `--data`/`POSTROOM_DATA` if given, else `$XDG_DATA_HOME/postroom`,
/// else `~/.local/share/postroom`, else `./postroom-data`.
/// The settings file of the installed package (`image/build-deb`).
pub const ETC_DEFAULT: &str = "/etc/default/postroom";
/// The package's data directory when its settings file names none.
pub const PACKAGE_DATA_DIR: &str = "/var/lib/postroom";

/// The data dir an installed package uses, from the text of `/etc/default/postroom`:
/// its `POSTROOM_DATA=` line, else the package default.
pub fn package_data_dir(etc_default: &str) -> PathBuf {
    etc_default
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("POSTROOM_DATA="))
        .map(|v| v.trim().trim_matches(['"', '\'']))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PACKAGE_DATA_DIR))
}

/// Where the data lives when neither `--data` nor `POSTROOM_DATA` says: the installed
/// package's directory when the package is installed (so `postroom account list` on
/// the appliance talks to its service), else the user's data dir.
pub fn default_data_dir() -> PathBuf {
    if let Ok(text) = std::fs::read_to_string(ETC_DEFAULT) {
        return package_data_dir(&text);
    }
    user_data_dir()
}

fn user_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("postroom");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/postroom");
    }
    PathBuf::from("postroom-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_settings_file_names_the_data_dir() {
        let made_by_postinst =
            "# Where the store ...\n#POSTROOM_DATA=/var/lib/postroom\n#RUST_LOG=info\n";
        assert_eq!(
            package_data_dir(made_by_postinst),
            PathBuf::from("/var/lib/postroom")
        );
        assert_eq!(
            package_data_dir("RUST_LOG=debug\n POSTROOM_DATA=\"/srv/postroom\"\n"),
            PathBuf::from("/srv/postroom")
        );
    }

    #[test]
    fn retention_is_validated() {
        assert!(validate_retention("30").is_ok());
        assert!(validate_retention("0").is_err());
        assert!(validate_retention("ten").is_err());
    }

    #[test]
    fn tag_prefix_is_validated() {
        assert!(validate_tag_prefix("#").is_ok());
        assert!(validate_tag_prefix("Ticket#").is_ok());
        assert!(validate_tag_prefix("").is_err());
        assert!(validate_tag_prefix("a b").is_err());
        assert!(validate_tag_prefix("x]").is_err());
        assert!(validate_tag_prefix("T1").is_err());
    }
}
